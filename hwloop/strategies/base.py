"""What a strategy gets and what it gives back: `Settings`, `Context`, `Outcome`.

`Settings` is the strategy's view of the plan (`hwloop.rundir.RunPlan`), one
typed, frozen object built by `Settings.from_plan`; `Context` adds what the
run opened for it (the metered device, prior pairs, mask and signal arrays,
a progress callback). Keeps `import hwloop.strategies` free of TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from hwloop.device import DeviceInfo
    from hwloop.metered import MeteredDevice
    from hwloop.rundir import RunPlan

StepFn = Callable[[int, float], None]


@dataclass(frozen=True, kw_only=True)
class Settings:
    """The plan's settings a strategy reads; defaults are the CLI's."""

    seed: int = 0
    requested: str = "auto"  # the --strategy the user chose
    fit_steps: int = 8000
    memory_depth: int = 5
    inverse: str = "auto"  # inverse family: auto, tapped, gru or gmp
    hold: tuple[int, ...] = ()
    init_from: str | None = None
    fs: float = 800e6  # the signal's sample rate and channel bandwidth, Hz
    bw: float = 200e6

    @classmethod
    def from_plan(cls, plan: RunPlan) -> Settings:
        from hwloop.dpd.signals import resolve_fs

        o = plan.options
        return cls(
            seed=plan.seed,
            requested=plan.strategy,
            fit_steps=o.fit_steps,
            memory_depth=o.memory_depth,
            inverse=o.inverse,
            hold=tuple(o.hold or ()),
            init_from=o.init_from,
            fs=resolve_fs(o.fs, o.signal),  # the signal's own rate unless --fs says otherwise
            bw=o.bw,
        )


@dataclass(kw_only=True)
class Context:
    """What a strategy gets: the metered device, the run's settings and its data."""

    dev: MeteredDevice | None  # None: offline, from pairs alone
    info: DeviceInfo
    settings: Settings
    prior: tuple[np.ndarray, np.ndarray] | None = None  # pairs measured before this run
    mask: np.ndarray | None = None  # device connections (in_dim, out_dim), 0: none
    signal: np.ndarray | None = None  # targets to linearise (n, 2), in the device's output units
    on_step: StepFn | None = None


@dataclass
class Outcome:
    """What a strategy hands back to the run.

    ``inverse`` is the unclipped Keras model (targets -> inputs); for a device
    with memory ``memory`` holds the tapped inverse's depth and lookahead, or
    ``kind`` ("gmp", "gru") when ``inverse`` is already the packaged inverse.
    ``details`` are the method's own switches and figures, for metrics.json.
    """

    inverse: Any
    curve: list[float]
    surrogate: Any = None
    details: dict = field(default_factory=dict)
    memory: dict | None = None
