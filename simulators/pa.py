"""I/Q power-amplifier simulators with memory, fitted to a measured amplifier (DPA_200MHz).

Both are complex-baseband models, 2->2 (I, Q in; I, Q out), in the units of
the DPA_200MHz measurement (OpenDPD; a 40 nm CMOS digital PA at 2.4 GHz
driven by a 200 MHz OFDM-like signal at 800 MS/s): input peak |x| = 1
gives an output peak near 2.5, average gain about 3.16. They are
``stateful``: the rows of one query are consecutive samples, the delay lines
persist across queries until ``reset()`` zeroes them (an idle amplifier).
Seeded Gaussian noise of std ``noise`` (default 1e-3, about -61 dB below the
output RMS on the DPA signal) is added to I and Q; `clean_sequence` gives
the noise-free answer for scoring.

Safe input range: |I|, |Q| <= 1 (the box the DPA input fits in). The models
were fitted on |x| <= 1, the measured range; beyond it (the box's corners,
or ``drive`` > 1) the amplifier saturates: ``pa_gmp`` limits the envelope
entering the polynomial to 1 (a polynomial would blow up outside its fitting
range), ``pa_wh`` saturates through its Rapp curve.

- ``pa_gmp``: generalised memory polynomial, aligned orders 1..7 at delays
  0..9 and lagging envelope terms of orders 2..5, delays 0..3, lags 1..4
  (134 complex coefficients). Parameters: ``drive``, ``nonlin`` (scale of
  the terms of order >= 2).
- ``pa_wh``: Wiener-Hammerstein, complex FIR h1 (3 taps) -> Rapp AM/AM and
  Saleh AM/PM -> complex FIR h2 (10 taps). Parameters: ``drive``, ``sat``
  (scale of the saturation level), ``am_pm`` (scale of the AM/PM),
  ``thermal`` and ``tau``: a gain droop that follows the stage's
  temperature, a one-pole heating with a time constant of ``tau`` samples
  (default 2,000, 2.5 us; 0 droop by default). Thermal memory is far longer
  than any GMP's lags reach: ``sim:pa_wh?thermal=0.03`` is an amplifier whose
  memory a GMP surrogate cannot fit.

Both take two linear-response variants (`LINEAR_PARAMS`), the response of a
PA between real converters: ``frac_delay=F`` (0 <= F < 1) puts a fractional
delay of F samples in front of the amplifier (a DAC's hold between samples:
linear interpolation, the FIR (1 - F) + F z^-1, a delay of F at DC, a droop
of 0.5 dB (F = 0.3) to 0.7 dB (F = 0.5) at the channel edge of a 200 MHz
channel at 800 MS/s; its zero at z = -F / (1 - F) reaches the unit circle at
F = 0.5 and leaves it beyond); ``nmp_zero=A`` (A > 1) puts a zero at z = -A outside the unit circle
behind it (an output network that is not minimum phase: the FIR
(1 + A z^-1) / (1 + A), DC gain 1, within 0.5 dB over the channel for
A >= 1.2, an in-band delay of about A / (1 + A) samples). Either makes the
amplifier's inverse non-causal. 0 (the default) is none.

Fitted by ``benchmarks/fit_pa.py`` on the train split (23,040 samples);
coefficients in ``simulators/data/pa_dpa200.npz``. GMP: least squares with
relative ridge 1e-4. WH: nonlinear least squares (scipy ``least_squares``)
started from the GMP's linear part; fitted AM/AM small-signal gain 3.14,
saturation 2.98, Rapp p 2.28, AM/PM 0.085 rad at |u| = 1. Normalised
mean-square error of the model output against the measured output on the
test split (7,680 samples): pa_gmp -31.5 dB, pa_wh -31.3 dB (a memoryless
linear gain alone: -19.8 dB). No-predistortion ACPR on the test input
(`hwloop.dpd.metrics`, Welch Hann 2048, worse side): measured -32.0 dBc,
pa_gmp -32.6 dBc, pa_wh -32.1 dBc.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hwloop.device import BadDeviceParameterError, DeviceInfo, IQEnvelope, Param, check_inputs
from hwloop.simulators.base import BASE_PARAMS, NoisySim, check_base_values

FIT_FILE = Path(__file__).resolve().parent / "data" / "pa_dpa200.npz"

State = tuple[np.ndarray, ...]
Term = tuple[int, int, int]  # (order k, delay m, envelope lag l): x[n-m] |x[n-m-l]|^(k-1)


def gmp_terms(order: int, memory: int, cross_order: int, cross_memory: int, lag: int) -> list[Term]:
    """Aligned then lagging GMP terms, in the order `hwloop.dpd.gmp.GMPConfig.terms` lists them."""
    terms = [(k, m, 0) for k in range(1, order + 1) for m in range(memory)]
    terms += [
        (k, m, j) for k in range(2, cross_order + 1) for m in range(cross_memory) for j in range(1, lag + 1)
    ]
    return terms


def _limit(z: np.ndarray, peak: float) -> np.ndarray:
    mag = np.abs(z)
    return np.where(mag > peak, z * (peak / np.maximum(mag, 1e-300)), z)


def _fir(z: np.ndarray, taps: np.ndarray, history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """y[n] = sum_k taps[k] z[n-k], continuing from the last len(taps)-1 inputs."""
    ext = np.concatenate([history, z])
    keep = len(taps) - 1
    return np.convolve(ext, taps, mode="valid"), ext[len(ext) - keep :].copy()


@dataclass(frozen=True)
class GMPAmplifier:
    """y[n] = sum_i c_i x[n-m_i] |x[n-m_i-l_i]|^(k_i-1), the envelope limited to ``sat_in``."""

    coeffs: np.ndarray  # complex, one per term
    terms: tuple[Term, ...]
    drive: float = 1.0
    sat_in: float = 1.0

    @property
    def depth(self) -> int:
        return max(m + lag for _, m, lag in self.terms)

    def initial_state(self) -> State:
        return (np.zeros(self.depth, complex),)

    def run(self, z: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        d, n = self.depth, len(z)
        ext = np.concatenate([state[0], _limit(self.drive * z, self.sat_in)])
        mag = np.abs(ext)
        y = np.zeros(n, complex)
        for c, (k, m, lag) in zip(self.coeffs, self.terms, strict=True):
            term = ext[d - m : d - m + n]
            if k > 1:
                term = term * mag[d - m - lag : d - m - lag + n] ** (k - 1)
            y += c * term
        return y, (ext[len(ext) - d :].copy() if d else ext[:0],)


@dataclass(frozen=True)
class WHAmplifier:
    """u = h1 * x; v = Rapp(|u|) exp(j (phi0 + alpha |u|^2 / (1 + beta |u|^2))) u/|u|; y = h2 * v.

    With ``thermal`` > 0 the stage's gain also droops with its temperature:
    v[n] *= 1 - thermal * T[n-1], T[n] = a T[n-1] + (1 - a) |u[n]|^2 / P_REF,
    a = exp(-1 / tau): a one-pole heating of time constant ``tau`` samples,
    T = 1 at a mean |u|^2 of P_REF, about the DPA signal's. A reset starts the amplifier cold.
    """

    h1: np.ndarray  # complex taps
    h2: np.ndarray
    gain: float
    sat: float
    p: float
    alpha: float
    beta: float
    phi0: float = 0.0
    drive: float = 1.0
    thermal: float = 0.0
    tau: float = 2000.0

    P_REF = 0.1  # T = 1 at this mean |u|^2, about the DPA_200MHz input's level (peak 1)

    def initial_state(self) -> State:
        return np.zeros(len(self.h1) - 1, complex), np.zeros(len(self.h2) - 1, complex), np.zeros(1)

    def nonlinearity(self, u: np.ndarray) -> np.ndarray:
        """The static AM/AM (Rapp) and AM/PM (Saleh) stage, gain finite at u = 0."""
        r = np.abs(u)
        am = self.gain / (1.0 + (self.gain * r / self.sat) ** (2 * self.p)) ** (1.0 / (2 * self.p))
        pm = self.phi0 + self.alpha * r**2 / (1.0 + self.beta * r**2)
        return am * np.exp(1j * pm) * u

    def heating(self, u: np.ndarray, temp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Gain factor per sample (from the temperature before it) and the temperature after u."""
        if not self.thermal or not len(u):
            return np.ones(len(u)), temp
        a = np.exp(-1.0 / self.tau)
        from scipy import signal as sps  # here: opening a simulator stays light

        t, _ = sps.lfilter([1 - a], [1, -a], np.abs(u) ** 2 / self.P_REF, zi=a * temp)
        before = np.concatenate([temp, t[:-1]])
        return 1.0 - self.thermal * before, t[-1:].copy()

    def run(self, z: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        u, s1 = _fir(self.drive * z, self.h1, state[0])
        droop, temp = self.heating(u, state[2])
        y, s2 = _fir(self.nonlinearity(u) * droop, self.h2, state[1])
        return y, (s1, s2, temp)


def frac_delay_taps(frac: float) -> np.ndarray:
    """Linear interpolation between the last two samples, x[n - F] ~ (1 - F) x[n] + F x[n-1]: a
    delay of F samples at DC (within 0.02 sample over |f| <= fs / 8), a droop of
    |cos(pi f F)|-like size towards the band edges, its zero at z = -F / (1 - F)."""
    return np.array([1.0 - frac, frac], complex)


@dataclass(frozen=True)
class FilteredAmplifier:
    """An amplifier between two linear filters: x -> front FIR -> amplifier -> back FIR."""

    inner: GMPAmplifier | WHAmplifier
    front: np.ndarray
    back: np.ndarray

    def initial_state(self) -> State:
        return (
            np.zeros(len(self.front) - 1, complex),
            self.inner.initial_state(),
            np.zeros(len(self.back) - 1, complex),
        )

    def run(self, z: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        u, s0 = _fir(z, self.front, state[0])
        v, s1 = self.inner.run(u, state[1])  # type: ignore[arg-type]
        y, s2 = _fir(v, self.back, state[2])
        return y, (s0, s1, s2)


def with_linear_response(
    system: GMPAmplifier | WHAmplifier, values: Mapping[str, Any], where: str
) -> Amplifier:
    """``system`` behind the ``frac_delay`` and ``nmp_zero`` filters of `LINEAR_PARAMS` (none at 0)."""
    frac, zero = float(values["frac_delay"]), float(values["nmp_zero"])
    if not 0 <= frac < 1:
        raise BadDeviceParameterError(f"{where}: frac_delay must be in [0, 1) samples, got {frac}")
    if zero != 0 and not zero > 1:
        raise BadDeviceParameterError(
            f"{where}: nmp_zero must be 0 (none) or > 1 (outside the unit circle), got {zero}"
        )
    if not frac and not zero:
        return system
    front = frac_delay_taps(frac) if frac else np.ones(1, complex)
    back = np.array([1.0, zero], complex) / (1.0 + zero) if zero else np.ones(1, complex)
    return FilteredAmplifier(system, front, back)


Amplifier = GMPAmplifier | WHAmplifier | FilteredAmplifier


class IQMemorySimDevice(NoisySim):
    """A stateful 2->2 simulated amplifier: a complex stream system plus seeded output noise."""

    def __init__(
        self, info: DeviceInfo, system: Amplifier, *, noise: float, seed: int, latency: float
    ) -> None:
        if not info.stateful or info.in_dim != 2 or info.out_dim != 2:
            raise ValueError("an IQMemorySimDevice is stateful and 2 -> 2")
        super().__init__(info, noise=noise, seed=seed, latency=latency)
        self.system = system
        self._state = system.initial_state()

    @staticmethod
    def _iq(y: np.ndarray) -> np.ndarray:
        return np.stack([y.real, y.imag], axis=1)

    def _query_batch(self, x: np.ndarray) -> np.ndarray:
        z = x[:, 0].astype(np.float64) + 1j * x[:, 1].astype(np.float64)
        y, self._state = self.system.run(z, self._state)
        return self._measured(self._iq(y)).astype(np.float32)

    def _reset(self) -> None:
        """Zero the delay lines; the noise stream goes on (it is not device memory)."""
        self._state = self.system.initial_state()

    def clean_sequence(self, x: np.ndarray) -> np.ndarray:
        """Noise-free answer to the sequence ``x`` from a reset state; the device's own state is untouched."""
        arr = check_inputs(self.info, x).astype(np.float64)
        y, _ = self.system.run(arr[:, 0] + 1j * arr[:, 1], self.system.initial_state())
        return self._iq(y).astype(np.float32)


def _fitted() -> dict[str, np.ndarray]:
    with np.load(FIT_FILE, allow_pickle=False) as data:
        return {k: data[k] for k in data}


def gmp_system(values: Mapping[str, Any]) -> GMPAmplifier:
    """The fitted GMP; ``nonlin`` scales every term of order k >= 2."""
    fit = _fitted()
    terms = gmp_terms(*(int(v) for v in fit["gmp_cfg"]))
    coeffs = fit["gmp_coeffs"].astype(complex)
    coeffs = np.where([k > 1 for k, _, _ in terms], coeffs * values["nonlin"], coeffs)
    return GMPAmplifier(coeffs, tuple(terms), drive=values["drive"])


def wh_system(values: Mapping[str, Any]) -> WHAmplifier:
    """The fitted Wiener-Hammerstein model; ``sat`` and ``am_pm`` scale its saturation and AM/PM."""
    fit = _fitted()
    gain, sat, p, alpha, beta, phi0 = (float(v) for v in fit["wh_nl"])
    if values["sat"] <= 0:
        raise BadDeviceParameterError(f"sim:pa_wh: sat must be > 0, got {values['sat']}")
    if not 0 <= values["thermal"] < 1 or values["tau"] < 1:
        raise BadDeviceParameterError(
            f"sim:pa_wh: thermal must be in [0, 1) and tau >= 1, got {values['thermal']} and {values['tau']}"
        )
    return WHAmplifier(
        fit["wh_h1"].astype(complex),
        fit["wh_h2"].astype(complex),
        gain,
        sat * values["sat"],
        p,
        alpha * values["am_pm"],
        beta,
        phi0,
        drive=values["drive"],
        thermal=values["thermal"],
        tau=values["tau"],
    )


DRIVE = Param(float, 1.0, "input scale before the amplifier (> 1 drives it harder into compression)")
LINEAR_PARAMS = {
    "frac_delay": Param(
        float, 0.0, "fractional delay in front, samples in [0, 1) (linear interpolation; 0: none)"
    ),
    "nmp_zero": Param(float, 0.0, "a zero at z = -A outside the unit circle behind, A > 1 (0: none)"),
}


@dataclass(frozen=True)
class PASpec:
    """A catalogue entry for an I/Q amplifier simulator (2->2, stateful, safe box |I|,|Q| <= 1)."""

    name: str
    summary: str
    params: Mapping[str, Param]
    system: Callable[[Mapping[str, Any]], Amplifier]
    extra: Mapping[str, Any] = field(default_factory=dict)

    def all_params(self) -> dict[str, Param]:
        return {**BASE_PARAMS, **self.params}


PA_SIMULATORS: dict[str, PASpec] = {
    s.name: s
    for s in [
        PASpec(
            "pa_gmp",
            "I/Q PA, generalised memory polynomial fitted to DPA_200MHz (stateful)",
            {
                "drive": DRIVE,
                "nonlin": Param(float, 1.0, "scale of the non-linear terms (0: linear)"),
                **LINEAR_PARAMS,
            },
            gmp_system,
        ),
        PASpec(
            "pa_wh",
            "I/Q PA, Wiener-Hammerstein (FIR, AM/AM+AM/PM, FIR) fitted to DPA_200MHz (stateful)",
            {
                "drive": DRIVE,
                "sat": Param(float, 1.0, "scale of the Rapp saturation level"),
                "am_pm": Param(float, 1.0, "scale of the AM/PM conversion"),
                "thermal": Param(float, 0.0, "gain droop at the average power's temperature (0: none)"),
                "tau": Param(float, 2000.0, "thermal time constant in samples (2.5 us at 800 MS/s)"),
                **LINEAR_PARAMS,
            },
            wh_system,
        ),
    ]
}


def build_pa_sim(name: str, values: Mapping[str, Any]) -> IQMemorySimDevice:
    """Build from fully parsed parameter values (every key of ``all_params()``)."""
    spec = PA_SIMULATORS[name]
    where = f"sim:{name}"
    check_base_values(where, values)
    if values["drive"] <= 0:
        raise BadDeviceParameterError(f"{where}: drive must be > 0, got {values['drive']}")
    info = DeviceInfo(
        name=name,
        in_dim=2,
        out_dim=2,
        max_batch=values["max_batch"],
        low=(-1.0, -1.0),
        high=(1.0, 1.0),
        stateful=True,
        firmware=f"hwloop-sim/{name}",
        envelope=IQEnvelope(((0, 1),), 1.0),  # the measured input's peak |x| = 1
    )
    system = with_linear_response(spec.system(values), values, where)
    return IQMemorySimDevice(
        info, system, noise=values["noise"], seed=values["seed"], latency=values["latency"]
    )
