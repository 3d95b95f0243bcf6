"""Operating conditions of the I/Q amplifier simulators: temperature, supply, and a slow drift.

A measured amplifier is not one curve: its gain, compression point, AM/PM
and memory move with the die temperature, the supply voltage and what it is
asked to carry. ``sim:pa_wh`` and ``sim:pa_gmp`` (and any amplifier with
``initial_state()`` and ``run(z, state)``, e.g. the benchmarks' held-out
model) take these URI parameters:

- ``temp`` (deg C, reference 25) and ``vdd`` (V, reference `VDD_NOM` 5.0): a
  fixed condition, ``sim:pa_wh?temp=60&vdd=4.5``;
- ``drift=duty``: the die heats with the amplifier's own duty, the average
  drive power over seconds of queries: ``T = temp + heat * d``, with ``d``
  the drive power |x|^2 / `P_REF` low-passed with time constant ``drift_tau``
  seconds (one pole, like a heat sink);
- ``drift=script:t0:T0,t1:T1,...`` (or ``t:T:V`` triples that also script the
  supply): the condition follows that trajectory, piecewise linear in
  seconds, held after its last point;
- ``clock=samples`` (default): the device clock advances ``1/rate`` seconds a
  sample sent (deterministic: a seeded session drifts the same way each
  time); ``clock=wall``: it is the wall clock, and between queries the
  amplifier is taken to go on transmitting at its last query's power (a
  transmitter in service between the captures hwloop makes).

``reset()`` clears the delay lines (the amplifier's short memory) but not the
die temperature: a drifting device drifts across sequences. A reopened
simulator starts again from its URI's condition (as an amplifier that cooled
while nothing drove it).

How a condition moves the amplifier, relative to 25 deg C and 5.0 V, on the
nominal model F (typical magnitudes of measured GaAs/GaN/LDMOS PAs):

- small-signal gain: `GAIN_DB_PER_K` -0.015 dB/K (datasheets: -0.01 to -0.03
  dB/K for GaAs and GaN FETs), `GAIN_DB_PER_V` +0.4 dB/V of supply;
- saturated output: `SAT_DB_PER_K` -0.025 dB/K, and the voltage swing
  follows the supply (20 log10(vdd / 5.0) dB: Psat goes with vdd^2), so the
  compression point moves with both: ``F_c(x) = g s F(x / s)``, g the gain
  change, g s the saturation change (the small-signal gain of s F(x/s) is F's);
- AM/PM: an added phase ``pm (|x| / s)^2`` growing with temperature
  (`PM_DEG_PER_K` 0.05 deg/K at the peak drive: +3 deg over 60 K, against
  pa_wh's own 4.9 deg) and as the supply drops (`PM_DEG_PER_V` 4 deg/V);
- memory: a bias-network memory whose strength grows with temperature and
  with falling supply: the gain follows changes of the recent drive power,
  ``y[n] *= 1 - mem (p_fast[n-1] - p_slow[n-1])``, the drive power |x|^2 /
  `P_REF` through one-poles of `MEM_TAU` and `MEM_SLOW` samples (a constant
  envelope sees none of it; `MEM_PER_K` 5e-4 /K, `MEM_PER_V` 0.03 /V).

The figures these produce (gain, output at the peak drive, AM/PM, ACPR with
and without a predistorter trained at 25 deg C) are measured by
``benchmarks/drift.py`` and tabulated in docs/drift.md. A condition changes
the amplifier, not which amplifier it is: the firmware string carries it
after ``#`` (``hwloop-sim/pa_wh?seed=1#temp=60&vdd=4.5``), so ``hwloop track``
and ``--init-from`` accept the same device at another condition, while a
``--resume``d run must be on the same URI.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from scipy import signal as sps

from hwloop.device import BadDeviceParameterError, DeviceInfo, Param, check_inputs
from hwloop.simulators.base import NoisySim

TEMP_REF = 25.0  # deg C
VDD_NOM = 5.0  # V
P_REF = 0.1  # drive power |x|^2 of duty 1: about the DPA_200MHz signal's mean at peak 1 (PAPR 10 dB)

GAIN_DB_PER_K = -0.015
GAIN_DB_PER_V = 0.4
SAT_DB_PER_K = -0.02
PM_DEG_PER_K = 0.05
PM_DEG_PER_V = 4.0  # per volt BELOW nominal
MEM_PER_K = 1.5e-4
MEM_PER_V = 0.01  # per volt below nominal
MEM_TAU = 2.0  # samples: the bias network follows the drive power this fast...
MEM_SLOW = 16.0  # ...relative to its level over this many (a GMP predistorter's memory reaches 12 to 16)

CONDITION_PARAMS: dict[str, Param] = {
    "temp": Param(float, TEMP_REF, "die temperature, deg C (25: as fitted)"),
    "vdd": Param(float, VDD_NOM, "supply voltage, V (5.0: as fitted)"),
    "drift": Param(str, "none", "slow drift: none, duty (self-heating) or script:t0:T0,t1:T1,..."),
    "drift_tau": Param(float, 30.0, "thermal time constant of drift=duty, seconds of device clock"),
    "heat": Param(float, 40.0, "drift=duty: temperature rise, K, at a duty of 1 (drive power P_REF)"),
    "clock": Param(str, "samples", "device clock of the drift: samples (1/rate s a sample) or wall"),
    "rate": Param(float, 1e4, "samples a second of the device clock (clock=samples)"),
}


@dataclass(frozen=True)
class Condition:
    """Where the amplifier operates: die temperature (deg C) and supply (V)."""

    temp: float = TEMP_REF
    vdd: float = VDD_NOM

    def check(self, where: str = "condition") -> Condition:
        if not -55.0 <= self.temp <= 150.0:
            raise BadDeviceParameterError(f"{where}: temp must be in -55..150 deg C, got {self.temp}")
        if not 0.5 * VDD_NOM <= self.vdd <= 1.5 * VDD_NOM:
            raise BadDeviceParameterError(
                f"{where}: vdd must be in {0.5 * VDD_NOM}..{1.5 * VDD_NOM} V, got {self.vdd}"
            )
        return self

    @property
    def nominal(self) -> bool:
        return self.temp == TEMP_REF and self.vdd == VDD_NOM


@dataclass(frozen=True)
class Effect:
    """What a condition does to the nominal amplifier F: y = (1 - mem (p - 1)) e^{j pm r^2} g s F(x / s)."""

    gain: float  # g, linear
    scale: float  # s: the compression point's input-referred scale
    pm: float  # rad of added AM/PM at |x| / s = 1
    mem: float  # bias-network memory strength

    @classmethod
    def of(cls, c: Condition) -> Effect:
        dt, dv = c.temp - TEMP_REF, c.vdd - VDD_NOM
        gain_db = GAIN_DB_PER_K * dt + GAIN_DB_PER_V * dv
        sat_db = SAT_DB_PER_K * dt + 20.0 * np.log10(c.vdd / VDD_NOM)
        return cls(
            gain=float(10 ** (gain_db / 20)),
            scale=float(10 ** ((sat_db - gain_db) / 20)),
            pm=float(np.radians(PM_DEG_PER_K * dt - PM_DEG_PER_V * dv)),
            mem=float(MEM_PER_K * dt - MEM_PER_V * dv),
        )


class Amplifier(Protocol):
    """A complex stream system: its delay lines are explicit state."""

    def initial_state(self) -> tuple: ...

    def run(self, z: np.ndarray, state: tuple) -> tuple[np.ndarray, tuple]: ...


def _one_pole(v: np.ndarray, tau: float, last: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """v low-passed with time constant tau samples from ``last``: the value before each sample, and after."""
    a = np.exp(-1.0 / tau)
    out, _ = sps.lfilter([1 - a], [1, -a], v, zi=a * last)
    return np.concatenate([last, out[:-1]]), out[-1:].copy()


def run_at(system: Amplifier, effect: Effect, z: np.ndarray, state: tuple) -> tuple[np.ndarray, tuple]:
    """The amplifier at a condition on samples z, from ``state`` = (system's, fast power, slow power)."""
    if not len(z):
        return np.zeros(0, complex), state
    inner, fast, slow = state
    y, inner = system.run(z / effect.scale, inner)
    y = y * (effect.gain * effect.scale) * np.exp(1j * effect.pm * np.abs(z / effect.scale) ** 2)
    power = np.abs(z) ** 2 / P_REF
    p_fast, fast = _one_pole(power, MEM_TAU, fast)
    p_slow, slow = _one_pole(power, MEM_SLOW, slow)
    if effect.mem:  # the bias network answers changes of the drive power, not its level
        y = y * (1.0 - effect.mem * (p_fast - p_slow))
    return y, (inner, fast, slow)


def initial_state(system: Amplifier) -> tuple:
    return system.initial_state(), np.zeros(1), np.zeros(1)


@dataclass
class Drift:
    """The condition over the device clock: fixed, following the duty, or scripted."""

    base: Condition
    kind: str = "none"  # none, duty, script
    tau: float = 30.0
    heat: float = 40.0
    clock: str = "samples"
    rate: float = 1e4
    points: list[tuple[float, float, float]] = field(default_factory=list)  # (s, temp, vdd)
    t: float = 0.0  # seconds of device clock so far
    duty: float = 0.0  # low-passed drive power / P_REF
    _power: float = 0.0  # the last query's drive power / P_REF (clock=wall: between queries)
    _wall: float | None = None

    def now(self) -> Condition:
        if self.kind == "duty":
            return Condition(self.base.temp + self.heat * self.duty, self.base.vdd)
        if self.kind == "script":
            s, temp, vdd = (np.asarray(v, np.float64) for v in zip(*self.points, strict=True))
            return Condition(float(np.interp(self.t, s, temp)), float(np.interp(self.t, s, vdd)))
        return self.base

    def _relax(self, seconds: float, power: float) -> None:
        if self.kind == "duty" and seconds > 0:
            self.duty = power + (self.duty - power) * float(np.exp(-seconds / self.tau))

    def advance(self, z: np.ndarray) -> None:
        """The clock and the duty after the samples z were sent."""
        if self.clock == "wall":
            now = time.monotonic()
            if self._wall is not None:
                self._relax(now - self._wall, self._power)
                self.t += now - self._wall
            self._wall = now
            if len(z):
                self._power = float(np.mean(np.abs(z) ** 2)) / P_REF
            return
        if not len(z):
            return
        if self.kind == "duty":
            a = float(np.exp(-1.0 / (self.tau * self.rate)))
            d, _ = sps.lfilter([1 - a], [1, -a], np.abs(z) ** 2 / P_REF, zi=[a * self.duty])
            self.duty = float(d[-1])
        self.t += len(z) / self.rate


def parse_script(text: str, base: Condition, where: str) -> list[tuple[float, float, float]]:
    """``t0:T0,t1:T1,...`` or ``t:T:V`` triples: seconds ascending, temperatures (and supplies)."""
    points = []
    for item in text.split(","):
        parts = item.strip().split(":")
        try:
            values = [float(p) for p in parts]
        except ValueError:
            values = []
        if len(values) not in (2, 3):
            raise BadDeviceParameterError(
                f"{where}: drift=script: takes t:temp or t:temp:vdd points separated by commas, got {item!r}"
            )
        vdd = values[2] if len(values) == 3 else base.vdd
        Condition(values[1], vdd).check(where)
        points.append((values[0], values[1], vdd))
    times = [p[0] for p in points]
    if times[0] < 0 or any(b <= a for a, b in itertools.pairwise(times)):
        raise BadDeviceParameterError(
            f"{where}: drift=script: times must start >= 0 and increase, got {times}"
        )
    return points


def drift_from(values: Mapping[str, Any], where: str) -> Drift:
    """The condition and its drift from parsed URI values (the keys of `CONDITION_PARAMS`)."""
    base = Condition(values["temp"], values["vdd"]).check(where)
    kind, _, script = str(values["drift"]).partition(":")
    if kind not in ("none", "duty", "script") or (kind == "script") != bool(script):
        raise BadDeviceParameterError(
            f"{where}: drift must be none, duty or script:t0:T0,t1:T1,..., got {values['drift']!r}"
        )
    if values["clock"] not in ("samples", "wall"):
        raise BadDeviceParameterError(f"{where}: clock must be samples or wall, got {values['clock']!r}")
    if min(values["drift_tau"], values["rate"]) <= 0 or values["heat"] < 0:
        raise BadDeviceParameterError(f"{where}: drift_tau and rate must be > 0 and heat >= 0")
    points = parse_script(script, base, where) if kind == "script" else []
    return Drift(base, kind, values["drift_tau"], values["heat"], values["clock"], values["rate"], points)


def is_nominal(values: Mapping[str, Any]) -> bool:
    """True when the URI sets no condition away from the reference: the catalogue's own amplifier."""
    return all(values.get(k, p.default) == p.default for k, p in CONDITION_PARAMS.items())


class ConditionedPA(NoisySim):
    """A stateful 2->2 amplifier at a condition that may drift while it is driven."""

    def __init__(
        self, info: DeviceInfo, system: Amplifier, drift: Drift, *, noise: float, seed: int, latency: float
    ) -> None:
        if not info.stateful or info.in_dim != 2 or info.out_dim != 2:
            raise ValueError("a ConditionedPA is stateful and 2 -> 2")
        super().__init__(info, noise=noise, seed=seed, latency=latency)
        self.system, self.drift = system, drift
        self._state = initial_state(system)

    @property
    def condition(self) -> Condition:
        """The condition the next sample meets."""
        return self.drift.now()

    def _query_batch(self, x: np.ndarray) -> np.ndarray:
        z = x[:, 0].astype(np.float64) + 1j * x[:, 1].astype(np.float64)
        if self.drift.clock == "wall":
            self.drift.advance(z[:0])  # the time since the last query, at its power
        y, self._state = run_at(self.system, Effect.of(self.drift.now()), z, self._state)
        self.drift.advance(z)
        return self._measured(np.stack([y.real, y.imag], axis=1)).astype(np.float32)

    def _reset(self) -> None:
        """Clear the delay lines and the bias memory; the die keeps its temperature."""
        self._state = initial_state(self.system)

    def clean_sequence(self, x: np.ndarray) -> np.ndarray:
        """Noise-free answer to ``x`` from a reset, at the current condition; nothing drifts."""
        arr = check_inputs(self.info, x).astype(np.float64)
        y, _ = run_at(
            self.system, Effect.of(self.condition), arr[:, 0] + 1j * arr[:, 1], initial_state(self.system)
        )
        return np.stack([y.real, y.imag], axis=1).astype(np.float32)
