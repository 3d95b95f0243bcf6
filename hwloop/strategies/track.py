"""Track a deployed predistorter: check it a few queries at a time, recalibrate it when it degrades.

Each check sends one stretch of the signal through the current predistorter
after a reset (``check_queries`` samples, the window around the signal's
largest sample, the same every time, so two checks differ only by what the
amplifier did) and scores it: ACPR (worse side), EVM and NMSE against the
targets, past the first `GUARD` samples. The session's first check is the
baseline; a later check whose watched figures (ACPR and EVM by default) are
worse than the baseline by more than ``threshold_db`` starts a recalibration
(`hwloop.strategies.recalibrate.recalibrate`, ``adapt_queries`` queries) from
the current predistorter and its amplifier model, the check's answers added
to the model's. A new version keeps the baseline (the amplifier drifts on
while it is recalibrated: its first check must not lower the bar), and its
first check raises it where it is better. A recalibration whose rounds keep
the current predistorter (training's rule: no round better by more than the
judged uncertainty) makes no version; its check becomes the new baseline,
so a figure that cannot be improved does not start one recalibration after
another.

The loop stops when the next check would pass ``budget`` device queries
(checks and recalibrations together) or after ``max_checks`` checks. Every
step (a check, and the recalibration it started) ends with `Journal.commit`,
which the run side persists with the rows of the query log it consumed, so a
killed session resumes at the last committed step, the rows logged after it
replayed from the log: no logged query is paid twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from hwloop.dpd.fitting import spread_windows
from hwloop.dpd.gmp import GMPInverse, Stretch, peak_limit
from hwloop.dpd.metrics import acpr_db, evm_db, nmse_db
from hwloop.dpd.signals import cplx, iq
from hwloop.errors import UsageError
from hwloop.metered import MeteredDevice
from hwloop.strategies.condition_model import ConditionedSurrogate
from hwloop.strategies.recalibrate import MIN_ROUND, recalibrate, steady_rows

log = logging.getLogger(__name__)

WATCHABLE = ("acpr", "evm", "nmse")
FIGURE = {"acpr": "acpr_dbc", "evm": "evm_db", "nmse": "nmse_db"}


@dataclass(frozen=True)
class TrackSettings:
    """How a session tracks: its budget, the checks, when and how it adapts."""

    budget: int
    adapt_queries: int
    check_queries: int = 2048
    threshold_db: float = 1.0
    check_every: float = 0.0  # seconds from one check's start to the next's (wall clock)
    watch: tuple[str, ...] = ("acpr", "evm")
    max_checks: int | None = None
    fs: float = 800e6
    bw: float = 200e6

    def check(self) -> TrackSettings:
        if self.check_queries < MIN_ROUND:
            raise UsageError(f"--check-queries must be at least {MIN_ROUND}, got {self.check_queries}")
        if self.adapt_queries < 2 * MIN_ROUND:
            raise UsageError(f"--adapt-queries must be at least {2 * MIN_ROUND}, got {self.adapt_queries}")
        if self.budget < self.check_queries:
            raise UsageError(f"--budget {self.budget} does not pay for one check of {self.check_queries}")
        if self.threshold_db <= 0 or self.check_every < 0:
            raise UsageError("--threshold-db must be > 0 and --check-every >= 0")
        bad = [w for w in self.watch if w not in WATCHABLE]
        if bad or not self.watch:
            raise UsageError(f"--watch takes {', '.join(WATCHABLE)}, got {','.join(self.watch)!r}")
        return self


@dataclass
class TrackState:
    """Where a session is, committed after every step."""

    checks: int = 0  # checks done in this session
    version: int = 0  # the version in service
    baseline: dict | None = None  # the figures degradation is measured from
    fresh: bool = False  # a version came in since the last check: its first check may raise the bar
    used: dict = field(default_factory=lambda: {"eval": 0, "train": 0})  # queries by kind, this session
    adaptations: int = 0
    stopped: str | None = None  # why the session ended ("budget", "max_checks"), None while it runs

    @property
    def spent(self) -> int:
        return int(self.used["eval"] + self.used["train"])


class Journal(Protocol):
    """Where a session keeps what it did (the run directory, on the run side)."""

    def load(self, version: int) -> tuple[GMPInverse, ConditionedSurrogate]: ...

    def add_check(self, record: dict) -> None: ...

    def add_version(
        self, version: int, inverse: GMPInverse, model: ConditionedSurrogate, record: dict
    ) -> None: ...

    def commit(self, state: TrackState) -> None: ...


def check_stretch(t: np.ndarray, n: int) -> Stretch:
    """The window of n samples around the signal's largest: where compression shows first."""
    z = cplx(np.asarray(t, np.float64))
    n = min(n, len(z))
    (a, b), *_ = spread_windows(len(z), n, 1, must=int(np.argmax(np.abs(z))))
    return Stretch(z, [(a, b)])


def figures(y: np.ndarray, stretch: Stretch, gain: complex, fs: float, bw: float) -> dict:
    """ACPR, EVM and NMSE of the answer y to the stretch's drive, past its first samples."""
    ok = steady_rows(stretch)
    u = stretch.u
    return {
        "acpr_dbc": round(acpr_db(y[ok], fs, bw), 3),
        "evm_db": round(evm_db(y[ok], u[ok], gain, fs, bw), 3),
        "nmse_db": round(nmse_db(y[ok], u[ok], gain), 3),
    }


def degraded(now: dict, baseline: dict, watch: tuple[str, ...], threshold_db: float) -> list[str]:
    """The watched figures worse than the baseline's by more than the threshold (dB: up is worse)."""
    return [w for w in watch if now[FIGURE[w]] - baseline[FIGURE[w]] > threshold_db]


def track(
    dev: MeteredDevice,
    t: np.ndarray,
    journal: Journal,
    settings: TrackSettings,
    state: TrackState,
    *,
    condition: Callable[[], object] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> TrackState:
    """Run a session from ``state`` (a fresh one, or the last committed) until it stops."""
    s = settings.check()
    inverse, model = journal.load(state.version)
    stretch = check_stretch(t, s.check_queries)
    last_start: float | None = None
    while state.stopped is None:
        if state.spent + len(stretch.u) > s.budget:
            state.stopped = "budget"
        elif s.max_checks is not None and state.checks >= s.max_checks:
            state.stopped = "max_checks"
        if state.stopped is not None:
            journal.commit(state)
            break
        if last_start is not None and s.check_every and not dev.replaying:
            sleep(max(0.0, last_start + s.check_every - time.monotonic()))
        last_start = time.monotonic()
        dev.reset()
        x = peak_limit(stretch.basis(inverse.model.cfg) @ inverse.model.coeffs, inverse.peak)
        y = cplx(dev.query(iq(x), "eval"))
        state.used["eval"] += len(x)
        figs = figures(y, stretch, complex(inverse.gain), s.fs, s.bw)
        record = {"check": state.checks, "version": state.version, **figs, "queries": state.spent}
        if condition is not None:
            record["condition"] = condition()
        if state.baseline is not None and state.fresh:  # the new version's figures, where better
            state.baseline = {k: min(v, figs[k]) for k, v in state.baseline.items()}
        state.fresh = False
        worse = [] if state.baseline is None else degraded(figs, state.baseline, s.watch, s.threshold_db)
        record["baseline"] = state.baseline is None
        record["degraded"] = worse
        if state.baseline is None:
            state.baseline = figs
        elif worse and state.spent + s.adapt_queries <= s.budget:
            inverse, model = _adapt(dev, t, journal, s, state, inverse, model, (x, y), record)
        elif worse:
            record["adapt"] = "not enough budget left for a recalibration"
        state.checks += 1
        journal.add_check(record)
        journal.commit(state)
        log.info("check %s", record)
    return state


def _adapt(
    dev: MeteredDevice,
    t: np.ndarray,
    journal: Journal,
    s: TrackSettings,
    state: TrackState,
    inverse: GMPInverse,
    model: ConditionedSurrogate,
    check: tuple[np.ndarray, np.ndarray],
    record: dict,
) -> tuple[GMPInverse, ConditionedSurrogate]:
    """Recalibrate from the version in service; a new version when a later round is kept."""

    def query_sequence(x: np.ndarray) -> np.ndarray:
        dev.reset()
        return dev.query(np.asarray(x, np.float32), "train")

    res = recalibrate(query_sequence, t, inverse, model, s.adapt_queries, fs=s.fs, bw=s.bw, extra=[check])
    state.used["train"] += res.queries
    state.adaptations += 1
    kept = res.rounds[res.kept_round]
    record["adapt"] = {"queries": res.queries, "kept_round": res.kept_round, "rounds": res.rounds}
    if res.kept_round == 0:  # the version in service stays (and its model): this check is its new baseline
        state.baseline = {k: record[k] for k in ("acpr_dbc", "evm_db", "nmse_db")}
        return inverse, model
    res.inverse.info = inverse.info
    new = state.version + 1
    journal.add_version(
        new,
        res.inverse,
        res.surrogate,
        {
            "version": new,
            "from_version": state.version,
            "reason": f"check {state.checks}: {', '.join(record['degraded'])} degraded",
            "check": state.checks,
            "queries": res.queries + len(check[0]),  # the recalibration and the check that started it
            "recal_round": {k: kept[k] for k in ("judge_nmse_db", "acpr_dbc", "evm_db")},
            "model": res.surrogate.info,
        },
    )
    state.version, state.fresh = new, True  # the bar stays where it was (drift during the recalibration
    record["adapted_to"] = new  # must not lower it); the new version's first check may raise it
    return journal.load(new)  # as saved (a resumed session drives exactly what this one would)
