"""What lies between the fake generator's output and the fake analyser's input.

generator envelope a (sqrt mW) -> PA input u = a / sqrt(P_fs) (PA units, |u| = 1 at
``pa_full_scale_dbm``) -> the PA simulator, steady state of the looped ARB
period -> a fixed delay (integer + fractional, windowed-sinc FIR on the
periodic stream) -> a fixed path gain and phase (cables, attenuator) ->
analyser noise (complex Gaussian, ``noise_dbc`` below the reference level:
an ADC's dynamic range) -> clipping above the reference level (overload).
A capture starts at a random sample of the looped period (free-running).

The PA is any I/Q simulator of the ``sim`` catalogue (``sim:pa_wh?seed=3``);
its own output noise stays on. Drive beyond the PA's declared envelope is
clipped onto it (a real amplifier saturates; the simulator would refuse) and
counted in ``overdriven``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hwloop.device import BaseDevice
from hwloop.simulators.catalog import open_sim

FIR_HALF = 32  # taps each side of the fractional-delay interpolator


def fractional_fir(frac: float, half: int = FIR_HALF) -> np.ndarray:
    """Kaiser-windowed sinc taps that delay by ``frac`` samples (plus ``half``), flat to about 0.42 fs."""
    k = np.arange(-half, half + 1)
    taps = np.sinc(k - frac) * np.kaiser(len(k), 8.0)
    return taps / taps.sum()


@dataclass
class PathModel:
    """The RF path of one fake bench, seeded: delay, gain, phase and the PA are fixed per bench."""

    pa_uri: str = "sim:pa_wh?seed=3"
    pa_full_scale_dbm: float = -8.0
    seed: int = 0
    delay: float | None = None  # samples; None: drawn from the seed (integer 3..40 plus a fraction)
    gain_db: float | None = None  # path gain after the PA; None: drawn in [-13, -7] dB
    phase: float | None = None  # rad; None: drawn
    noise_dbc: float = -75.0  # analyser noise power below the reference level
    pa: BaseDevice = field(init=False, repr=False)
    rng: np.random.Generator = field(init=False, repr=False)
    overdriven: int = 0

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        if self.delay is None:
            self.delay = float(self.rng.integers(3, 41) + self.rng.uniform(0.05, 0.95))
        if self.gain_db is None:
            self.gain_db = float(self.rng.uniform(-13.0, -7.0))
        if self.phase is None:
            self.phase = float(self.rng.uniform(-np.pi, np.pi))
        self.pa = open_sim(self.pa_uri)
        if (self.pa.info.in_dim, self.pa.info.out_dim) != (2, 2):
            raise ValueError(f"{self.pa_uri}: the fake bench needs an I/Q device (2 -> 2)")

    @property
    def gain(self) -> complex:
        return complex(10 ** (self.gain_db / 20) * np.exp(1j * self.phase))

    def _pa(self, u: np.ndarray) -> np.ndarray:
        env = self.pa.info.envelope
        x = np.stack([u.real, u.imag], axis=1).astype(np.float32)
        if env is not None:
            x, moved = env.clip(x)
            self.overdriven += moved
        x = np.clip(x, self.pa.info.low_array, self.pa.info.high_array)
        y = self.pa.query(x).astype(np.float64)
        return y[:, 0] + 1j * y[:, 1]

    def capture(self, envelope: np.ndarray | None, n: int, ref_level_dbm: float) -> tuple[np.ndarray, bool]:
        """``n`` analyser samples (sqrt mW) of the looped ``envelope`` (None: RF off), and if they clipped."""
        scale = np.sqrt(10 ** (self.pa_full_scale_dbm / 10))
        if envelope is None or not len(envelope):
            y = np.zeros(n, complex)
        else:
            period = len(envelope)
            d_int = int(np.floor(self.delay))
            start = int(self.rng.integers(period))  # free-running: any sample of the period
            need = start + n + 2 * FIR_HALF + d_int
            reps = -(-need // period) + 1  # one period more first: the PA reaches its steady state
            self.pa.reset()
            out = self._pa(np.tile(envelope / scale, reps))[period:]
            y = self._delayed(out, float(self.delay - d_int), start, n, d_int) * scale * self.gain
        ref = np.sqrt(10 ** (ref_level_dbm / 10))
        sigma = ref * np.sqrt(10 ** (self.noise_dbc / 10) / 2)
        y = y + sigma * (self.rng.normal(size=n) + 1j * self.rng.normal(size=n))
        mag = np.abs(y)
        over = mag > ref
        if over.any():
            y = np.where(over, y * ref / np.maximum(mag, 1e-300), y)
        return y, bool(over.any())

    @staticmethod
    def _delayed(out: np.ndarray, frac: float, start: int, n: int, d_int: int) -> np.ndarray:
        """Samples start .. start+n of ``out`` (a whole number of periods) delayed by d_int + frac:
        sample m is out at time start + m - d_int - frac, band-limited interpolation."""
        pad = d_int + FIR_HALF
        stream = np.concatenate([out[len(out) - pad :], out])  # out is periodic: its past is its end
        seg = stream[start : start + n + 2 * FIR_HALF]
        return np.convolve(seg, fractional_fir(frac), mode="valid")
