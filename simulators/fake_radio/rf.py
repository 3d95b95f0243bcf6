"""What lies between the fake radio's DAC and its ADC: the amplifier and a transceiver's impairments.

TX buffer (int16 I,Q; the DAC keeps the 12 most significant bits) -> DAC
units d = code12 / 2047 -> TX attenuation ``hardwaregain`` (dB, <= 0) and a
fixed drive: the amplifier's input u = d * 10^((tx_gain + pa_drive_db)/20)
(|u| = 1 is the amplifier's full scale) -> the amplifier (any 2 -> 2 hwloop
device), steady state of the looped buffer -> a fixed delay (integer +
fractional, band-limited on the periodic stream) -> the coupler and
attenuator to the receiver and its gain: 10^((rx_path_db + rx_gain)/20) with
a fixed phase -> the residual carrier offset between TX and RX LOs, a phase
ramp exp(j 2 pi cfo t) whose phase at the capture's start is random (the
capture starts whenever the DMA does) -> the receiver's IQ imbalance
(gain ``iq_gain_db`` and phase ``iq_phase_deg`` between I and Q:
y = mu r + nu conj(r)) -> its DC offset -> noise (``noise_dbfs``, per complex
sample) -> the 12-bit ADC (codes -2048..2047; a sample at the rails is a
clipped capture). Each capture starts at a random sample of the looped buffer.

Drive beyond the amplifier's declared envelope is clipped onto it (a real
amplifier saturates; a simulator would refuse) and counted in ``overdriven``.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

import numpy as np

from hwloop.device import Device

DAC_FS = 2047.0
ADC_FS = 2048.0


def dac_units(iq16: np.ndarray) -> np.ndarray:
    """Complex DAC units of an (n, 2) int16 I,Q buffer: the 12 most significant bits over 2047."""
    codes = np.asarray(iq16, np.int16) >> 4
    return (codes[:, 0].astype(np.float64) + 1j * codes[:, 1].astype(np.float64)) / DAC_FS


@dataclass
class RadioPath:
    """The fixed impairments of one fake radio, drawn from ``seed`` unless given."""

    pa: Device
    seed: int = 0
    pa_drive_db: float = 10.0  # amplifier input at DAC full scale and 0 dB TX gain, dB re |u| = 1
    rx_path_db: float | None = None  # amplifier output |y| = 1 at the ADC with 0 dB RX gain, dBFS;
    # None: drawn so that at 30 dB RX gain the small-signal output at full drive is -8 +- 1 dBFS
    delay: float | None = None  # samples: integer 3..40 plus a fraction
    phase: float | None = None  # rad
    cfo_hz: float | None = None  # residual carrier offset, drawn in +-[20, 200] Hz
    dc_dbfs: float = -40.0
    iq_gain_db: float = 0.3
    iq_phase_deg: float = 2.0
    noise_dbfs: float = -72.0
    rng: np.random.Generator = field(init=False, repr=False)
    dc: complex = field(init=False)
    overdriven: int = 0
    _cache: tuple | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        if (self.pa.info.in_dim, self.pa.info.out_dim) != (2, 2):
            raise ValueError(f"{self.pa.info.name}: the fake radio needs an I/Q device (2 -> 2)")
        self.rng = np.random.default_rng(self.seed)
        if self.delay is None:
            self.delay = float(self.rng.integers(3, 41) + self.rng.uniform(0.05, 0.95))
        if self.phase is None:
            self.phase = float(self.rng.uniform(-math.pi, math.pi))
        if self.rx_path_db is None:
            self.rx_path_db = -(self.small_signal_gain_db() + 38.0) + float(self.rng.uniform(-1.0, 1.0))
        if self.cfo_hz is None:
            self.cfo_hz = float(self.rng.choice([-1, 1]) * self.rng.uniform(20.0, 200.0))
        self.dc = complex(10 ** (self.dc_dbfs / 20) * np.exp(1j * self.rng.uniform(-math.pi, math.pi)))

    def small_signal_gain_db(self) -> float:
        """The amplifier's gain at 1/20 of full scale (a tone, steady state), dB."""
        n = np.arange(1024)
        u = 0.05 * np.exp(2j * math.pi * 5 * n / 256)
        self.pa.reset()
        y = self._pa(u)[512:]
        return 20 * math.log10(max(abs(np.vdot(u[512:], y) / np.vdot(u[512:], u[512:])), 1e-12))

    @property
    def iq(self) -> tuple[complex, complex]:
        """(mu, nu) of the receiver's IQ imbalance: y = mu r + nu conj(r)."""
        g = 10 ** (self.iq_gain_db / 20)
        p = math.radians(self.iq_phase_deg)
        return complex((1 + g * np.exp(-1j * p)) / 2), complex((1 - g * np.exp(1j * p)) / 2)

    @property
    def image_rejection_db(self) -> float:
        mu, nu = self.iq
        return 20 * math.log10(abs(mu) / abs(nu)) if abs(nu) > 0 else math.inf

    def _pa(self, u: np.ndarray) -> np.ndarray:
        env = self.pa.info.envelope
        x = np.stack([u.real, u.imag], axis=1).astype(np.float32)
        if env is not None:
            x, moved = env.clip(x)
            self.overdriven += moved
        x = np.clip(x, self.pa.info.low_array, self.pa.info.high_array)
        y = self.pa.query(x).astype(np.float64)
        return y[:, 0] + 1j * y[:, 1]

    def period(self, waveform: np.ndarray, tx_gain_db: float) -> np.ndarray:
        """One period of what reaches the receiver's mixer for the looped ``waveform``: the amplifier's
        steady state (a period after a warm-up period), delayed (band-limited and circular: exact for
        the periodic stream) and with the path's phase. Kept while the same buffer plays, so a capture
        is cheap, as on a radio that streams; the amplifier's own noise is then the same in every
        period (and new with every buffer). Thread-safe: the radio computes it ahead when a buffer
        arrives."""
        with self._lock:
            cached = self._cache
            if cached is None or cached[0][0] is not waveform or cached[0][1] != tx_gain_db:
                d = dac_units(waveform) * 10 ** ((tx_gain_db + self.pa_drive_db) / 20)
                self.pa.reset()
                out = self._pa(np.tile(d, 2))[len(d) :]
                k = np.fft.fftfreq(len(out)) * len(out)
                if len(out) % 2 == 0:
                    k[len(out) // 2] = 0.0  # the Nyquist bin has no sign: leave it unrotated
                out = np.fft.ifft(np.fft.fft(out) * np.exp(-2j * np.pi * k * self.delay / len(out)))
                cached = self._cache = ((waveform, tx_gain_db), out * np.exp(1j * self.phase))
            return cached[1]

    def capture(
        self,
        waveform: np.ndarray | None,
        n: int,
        *,
        tx_gain_db: float,
        rx_gain_db: float,
        fs: float,
        overflow: bool = False,
    ) -> tuple[np.ndarray, bool]:
        """``n`` ADC samples (int16 (n, 2), 12-bit codes) of the looped ``waveform`` (int16 (P, 2);
        None: no TX buffer), and whether any sample clipped. ``overflow`` loses a stretch of samples
        in the middle, as an RX DMA overflow does."""
        if waveform is None or not len(waveform):
            r = np.zeros(n, complex)
        else:
            per = self.period(waveform, tx_gain_db)
            start = int(self.rng.integers(len(per)))  # free-running: any sample of the period
            lost = n // 4
            idx = np.r_[0 : n // 3, n // 3 + lost : n + lost] if overflow else np.arange(n)
            r = per[(start + idx) % len(per)] * 10 ** ((self.rx_path_db + rx_gain_db) / 20)
        t = np.arange(n) / fs
        r = r * np.exp(1j * (2 * math.pi * self.cfo_hz * t + self.rng.uniform(-math.pi, math.pi)))
        mu, nu = self.iq
        r = mu * r + nu * np.conj(r) + self.dc
        sigma = math.sqrt(10 ** (self.noise_dbfs / 10) / 2)
        r = r + sigma * (self.rng.normal(size=n) + 1j * self.rng.normal(size=n))
        codes = np.rint(np.stack([r.real, r.imag], axis=1) * ADC_FS)
        clipped = bool(np.any(codes > ADC_FS - 1) or np.any(codes < -ADC_FS))
        return np.clip(codes, -ADC_FS, ADC_FS - 1).astype(np.int16), clipped
