"""The transfer curves of the memoryless catalogue (`simulators.catalog`), one builder per shape.

Each builder takes the simulator's parameter values and returns a numpy
function of the (n, in_dim) inputs; noise, quantisation and range checks
are the device's (`simulators.base.SimDevice`), not the curve's.
"""

from __future__ import annotations

import numpy as np

from hwloop.simulators.base import Transfer


def tanh(p: dict) -> Transfer:
    g = p["gain"]
    return lambda x: np.tanh(g * x)


def rapp(p: dict) -> Transfer:
    g, sat, s = p["gain"], p["sat"], p["p"]

    def f(x: np.ndarray) -> np.ndarray:
        u = g * x
        return u / (1.0 + np.abs(u / sat) ** (2 * s)) ** (1.0 / (2 * s))

    return f


def saleh(p: dict) -> Transfer:
    a, b = p["alpha"], p["beta"]
    return lambda x: a * x / (1.0 + b * x * x)


def saleh_iq(p: dict) -> Transfer:
    aa, ba, ap, bp = p["alpha_a"], p["beta_a"], p["alpha_p"], p["beta_p"]

    def f(x: np.ndarray) -> np.ndarray:
        z = x[:, 0] + 1j * x[:, 1]
        r = np.abs(z)
        gain = aa / (1.0 + ba * r * r)  # A(r)/r, finite at r = 0
        phase = ap * r * r / (1.0 + bp * r * r)
        out = gain * z * np.exp(1j * phase)
        return np.stack([out.real, out.imag], axis=1)

    return f


MIMO_COUPLING = np.array([[0.0, 0.25, -0.10], [0.20, 0.0, 0.15], [-0.05, 0.30, 0.0]])
MIMO_GAIN = np.array([1.0, 0.9, 1.1])


def _mixing(p: dict) -> np.ndarray:
    return np.diag(MIMO_GAIN) + p["coupling"] * MIMO_COUPLING / 0.25


def mimo3(p: dict) -> Transfer:
    a = _mixing(p)
    return lambda x: np.tanh(x @ a.T)


def mimo3_folded(p: dict) -> Transfer:
    """Each channel's Saleh curve 2u/(1 + u^2) of the mixed input u = A x: past |u| = 1 it folds."""
    a = _mixing(p)

    def f(x: np.ndarray) -> np.ndarray:
        u = x @ a.T
        return 2.0 * u / (1.0 + u * u)

    return f


def cubic(p: dict) -> Transfer:
    off, g, k3 = p["offset"], p["gain"], p["k3"]
    return lambda x: off + g * x + k3 * x**3


def quantised(p: dict) -> Transfer:
    return lambda x: 0.95 * np.tanh(1.2 * x) / np.tanh(1.2)
