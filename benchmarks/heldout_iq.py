"""Held-out memoryless I/Q amplifiers for the export benchmarks and tests: not in the catalogue.

The catalogue's I/Q amplifier is Saleh's (`sim:saleh_iq`); an export tuned to
it is checked here on amplifiers of other shapes, each a transmitter chain of
an I/Q modulator with gain and phase imbalance and a DC offset, then a
memoryless amplifier:

- ``rapp_pm``: the modified Rapp model of IEEE 802.11ad (AM/AM a smooth
  limiter, AM/PM a rational function of the envelope's fourth power);
- ``ghorbani``: Ghorbani's model (AM/AM and AM/PM each x1 r^x2 / (1 + x3 r^x2) + x4 r), with
  x2 = 1 for the AM/AM: a gain compressing with r itself, not with r^2 as Saleh's.

Every seed draws its own unit: the nominal parameters spread by a few per
cent (``np.random.default_rng([shape, seed])``), and its own output noise. The
input is an I/Q pair with |x| <= 1 (the envelope), 2 -> 2, no memory;
``clean`` gives the noise-free answer for scoring, as the simulators do.
"""

from __future__ import annotations

import numpy as np

from hwloop.device import DeviceInfo, IQEnvelope
from hwloop.simulators.base import SimDevice

SHAPES = ("rapp_pm", "ghorbani")
SPREAD = 0.05  # relative spread of each unit's parameters around the nominal


def _modulator(rng: np.random.Generator):
    """I/Q imbalance and DC offset: z = mu x + nu conj(x) + dc (small, as a trimmed modulator has)."""
    g = 1.0 + rng.normal(0.0, 0.02)
    phi = np.deg2rad(rng.normal(0.0, 1.5))
    mu = 0.5 * (1.0 + g * np.exp(-1j * phi))
    nu = 0.5 * (1.0 - g * np.exp(1j * phi))
    dc = complex(*rng.normal(0.0, 0.004, 2))
    return lambda x: mu * x + nu * np.conj(x) + dc


def _rapp_pm(rng: np.random.Generator):
    s = 1.0 + SPREAD * rng.standard_normal(6)
    gain, vsat, p = 1.6 * s[0], 1.0 * s[1], 1.2 * s[2]
    alpha, beta, q = 0.5 * s[3], 0.7 * s[4], 4.0 * s[5]

    def pa(z: np.ndarray) -> np.ndarray:
        r = np.abs(z)
        am = gain / (1.0 + (gain * r / vsat) ** (2 * p)) ** (1.0 / (2 * p))  # A(r) / r
        pm = alpha * r**q / (1.0 + (r / beta) ** q)
        return am * z * np.exp(1j * pm)

    return pa


def _ghorbani(rng: np.random.Generator):
    s = 1.0 + SPREAD * rng.standard_normal(8)
    x1, x2, x3, x4 = 1.6 * s[0], 1.0, 0.9 * s[2], 0.1 * s[3]  # compressive from the first sample
    y1, y2, y3, y4 = 4.6 * s[4], 2.09 * s[5], 10.5 * s[6], -0.003 * s[7]

    def pa(z: np.ndarray) -> np.ndarray:
        r = np.abs(z)
        rs = np.maximum(r, 1e-300)
        am = (x1 * rs**x2 / (1.0 + x3 * rs**x2) + x4 * rs) / rs  # A(r) / r
        pm = y1 * r**y2 / (1.0 + y3 * r**y2) + y4 * r
        return am * z * np.exp(1j * pm)

    return pa


def heldout_iq(shape: str = "rapp_pm", *, seed: int = 0, noise: float = 1e-3) -> SimDevice:
    """A held-out I/Q amplifier of ``shape``, the unit ``seed`` draws, with output noise ``noise``."""
    if shape not in SHAPES:
        raise ValueError(f"unknown held-out shape {shape!r} (choose from {', '.join(SHAPES)})")
    rng = np.random.default_rng([SHAPES.index(shape), seed])
    mod = _modulator(rng)
    pa = (_rapp_pm if shape == "rapp_pm" else _ghorbani)(rng)

    def transfer(x: np.ndarray) -> np.ndarray:
        y = pa(mod(x[:, 0] + 1j * x[:, 1]))
        return np.stack([y.real, y.imag], axis=1)

    info = DeviceInfo(
        name=f"heldout_iq_{shape}",
        in_dim=2,
        out_dim=2,
        max_batch=4096,
        low=(-1.0, -1.0),
        high=(1.0, 1.0),
        firmware=f"benchmarks/heldout_iq:{shape}:{seed}",
        envelope=IQEnvelope(((0, 1),), 1.0),
    )
    return SimDevice(info, transfer, noise=noise, seed=1000 + seed)
