"""The textbook GMP predistorter by indirect learning: the reference the DPD benchmarks compare with.

Written apart from hwloop/dpd on purpose (no code shared with what it
judges): Morgan et al.'s generalised memory polynomial with K = 7 orders,
M = 4 delays and L = 2 lagging and 2 leading envelope lags... on the causal
side only (a streaming predistorter): aligned terms x[n-m]|x[n-m]|^(k-1),
k = 1..7, m = 0..3, and lagging terms x[n-m]|x[n-m-l]|^(k-1), k = 2..7,
m = 0..3, l = 1..2: 28 + 48 = 76 complex coefficients. Indirect learning
(Eun and Powers 1997): drive the amplifier with the predistorter's output,
fit a post-inverse from the normalised answer y/G back to the drive by
ridge-regularised least squares (Tikhonov, lambda = 1e-6 times the mean
column power, on unit-normalised columns), copy it in front; three rounds
of a third of the queries on the first stretch of the training signal.
"""

from __future__ import annotations

import numpy as np

K, M, L = 7, 4, 2
RIDGE = 1e-6
ROUNDS = 3


def basis(z: np.ndarray) -> np.ndarray:
    """(n, 76) textbook GMP columns of the complex sequence z (zeros before it)."""
    d = M - 1 + L
    ext = np.concatenate([np.zeros(d, complex), np.asarray(z, complex)])
    n = len(z)
    mag = np.abs(ext)

    def at(delay: int) -> slice:
        return slice(d - delay, d - delay + n)

    cols = [ext[at(m)] * mag[at(m)] ** (k - 1) for k in range(1, K + 1) for m in range(M)]
    cols += [
        ext[at(m)] * mag[at(m + lag)] ** (k - 1)
        for k in range(2, K + 1)
        for m in range(M)
        for lag in range(1, L + 1)
    ]
    return np.stack(cols, axis=1)


def ridge_fit(phi: np.ndarray, target: np.ndarray) -> np.ndarray:
    scale = np.sqrt(np.mean(np.abs(phi) ** 2, axis=0))
    a = phi / scale
    gram = a.conj().T @ a
    lam = RIDGE * np.real(np.trace(gram)) / gram.shape[0]
    c = np.linalg.solve(gram + lam * np.eye(gram.shape[0]), a.conj().T @ target)
    return c / scale


class TextbookILA:
    """A textbook GMP predistorter: ``fit(query_sequence, t, budget)``, then ``apply(t)``."""

    def __init__(self, peak: float = 1.0) -> None:
        self.peak = peak
        self.coeffs: np.ndarray | None = None
        self.start_gain = 1.0

    @property
    def terms(self) -> int:
        return K * M + (K - 1) * M * L

    def apply(self, t: np.ndarray) -> np.ndarray:
        z = t[:, 0].astype(np.float64) + 1j * t[:, 1]
        x = z / self.start_gain if self.coeffs is None else basis(z) @ self.coeffs
        mag = np.abs(x)
        lim = self.peak * (1 - 1e-6)  # float32 rounding must not carry a sample past the peak
        x = np.where(mag > lim, x * lim / np.maximum(mag, 1e-300), x)
        return np.stack([x.real, x.imag], axis=1)

    def fit(self, query_sequence, t: np.ndarray, budget: int, gain: complex = 1.0) -> int:
        """Three rounds on the first budget/3 samples of t; returns the queries spent."""
        n = min(len(t), budget // ROUNDS)
        u = np.asarray(t[:n], np.float64)
        self.start_gain = float(np.abs(u[:, 0] + 1j * u[:, 1]).max()) / self.peak
        spent = 0
        for _ in range(ROUNDS):
            x = self.apply(u)
            y = np.asarray(query_sequence(x), np.float64)
            spent += len(x)
            self.coeffs = ridge_fit(basis((y[:, 0] + 1j * y[:, 1]) / gain), x[:, 0] + 1j * x[:, 1])
        return spent
