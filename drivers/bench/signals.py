"""What the benches play besides the user's drive: int16 and 12-bit quantisation, the calibration signal.

Shared by the instrument bench (`device`) and the radio (`radio_device`).
"""

from __future__ import annotations

import numpy as np

MEMORY = 1 << 24  # samples: the generic set's waveform and record-length ceiling (a radio's buffers too)
CAL_SEED = 20240623
DAC_FS = 2047  # a 12-bit DAC's full-scale code


def quantise(z: np.ndarray) -> np.ndarray:
    """int16 (n, 2) I,Q of complex z in full-scale units, never above |z| in magnitude."""
    z = np.asarray(z, complex)
    iq = np.rint(np.stack([z.real, z.imag], axis=1) * 32767.0)
    over = np.hypot(iq[:, 0], iq[:, 1]) > np.abs(z) * 32767.0
    if over.any():  # rounding both parts up can step outside |z|: round those toward zero
        iq[over] = np.trunc(np.stack([z[over].real, z[over].imag], axis=1) * 32767.0)
    return np.clip(iq, -32767, 32767).astype(np.int16)


def calibration_signal(n: int, rms: float, peak: float) -> np.ndarray:
    """Seeded complex noise inside +-0.4 fs, clipped to 9 dB PAPR, at RMS ``rms`` (peak below ``peak``)."""
    rng = np.random.default_rng(CAL_SEED)
    z = rng.normal(size=n) + 1j * rng.normal(size=n)
    keep = np.abs(np.fft.fftfreq(n)) < 0.4
    for _ in range(4):
        z = np.fft.ifft(np.fft.fft(z) * keep)
        limit = np.sqrt(np.mean(np.abs(z) ** 2) * 10**0.9)
        z = np.where(np.abs(z) > limit, z * limit / np.maximum(np.abs(z), 1e-300), z)
    z *= rms / np.sqrt(np.mean(np.abs(z) ** 2))
    return z * min(1.0, 0.999 * peak / np.abs(z).max())


def quantise12(z: np.ndarray) -> np.ndarray:
    """12-bit DAC codes (n, 2) of complex z in full-scale units, never above |z| in magnitude."""
    z = np.asarray(z, complex)
    iq = np.rint(np.stack([z.real, z.imag], axis=1) * DAC_FS)
    over = np.hypot(iq[:, 0], iq[:, 1]) > np.abs(z) * DAC_FS
    if over.any():
        iq[over] = np.trunc(np.stack([z[over].real, z[over].imag], axis=1) * DAC_FS)
    return np.clip(iq, -DAC_FS, DAC_FS).astype(np.int16)
