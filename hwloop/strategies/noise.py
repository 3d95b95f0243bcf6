"""Where the device's noise enters: at its output, or at its input (referred through its slope).

A surrogate F_hat fitted on uniform pairs leaves the noise in its residuals,
``v = |y - F_hat(x)|^2``. Noise added at the output has the same variance
everywhere; noise added at the input (a jittery DAC, an unsteady actuator)
reaches the output through the device's slope, ``v = s_out^2 + s_in^2
|J(x)|_F^2`` with J = dF/dx (each input with the same variance). A
least-squares fit of v on |J|^2, J from the same surrogate, splits the two;
the share of the noise that is input-referred is ``b mean|J|^2 / mean(v)``.
No query is spent on it. Measured on 2,000 uniform pairs and a 2,000-step
surrogate: 0.96 to 0.99 with ``input_noise=0.02`` (rapp, tanh, cubic), at
most 0.31 without (saleh_folded; rapp, tanh, cubic, saleh, mimo3, saleh_iq,
lowsnr, quantised lower).

Why a strategy cares: noise at the input sits in ILA's regression target,
not its regressor, so ILA stays unbiased under it, and no device round can
beat it: on a device `hwloop.strategies.fold` measures one-to-one, `auto`
then spends its budget as `ila` or `iila` does (which, by the size of both
noises referred to the input against iterative ILA's jitter: ``referred_sd``).
It does not decide alone: on a
device that is not one-to-one ILA is biased whatever the noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

SIGNIFICANT_SHARE = 0.5  # input-referred when more than half the noise is, by more than 2 SE


@dataclass(frozen=True)
class NoiseSplit:
    """The fit of repeated-answer variance on the surrogate's squared slope."""

    pairs: int
    output_var: float  # intercept: noise variance at the output (summed over outputs)
    input_var: float  # slope: noise variance per input, referred through J
    input_var_se: float
    input_share: float  # of the mean repeated-answer variance
    slope2: float = 0.0  # mean |J|_F^2 over the pairs: what refers the output noise to the input

    @property
    def referred_sd(self) -> float:
        """Both noises as one sd at the input, per input: input_var + output_var / mean|J|^2 (the
        output noise referred back through the slope; exact for a scaled rotation, as an I/Q
        amplifier's small-signal Jacobian is, or one input and output)."""
        out = self.output_var / self.slope2 if self.slope2 > 0 else 0.0
        return float(np.sqrt(max(self.input_var, 0.0) + max(out, 0.0)))

    @property
    def input_referred(self) -> bool:
        return self.input_var > 2 * self.input_var_se and self.input_share > SIGNIFICANT_SHARE

    def to_dict(self) -> dict:
        return {
            "pairs": self.pairs,
            "output_var": float(f"{self.output_var:.4g}"),
            "input_var": float(f"{self.input_var:.4g}"),
            # None where the split was too degenerate to fit (JSON has no Infinity)
            "input_var_se": float(f"{self.input_var_se:.4g}") if np.isfinite(self.input_var_se) else None,
            "input_share": round(self.input_share, 4),
            "slope2": float(f"{self.slope2:.4g}"),
            "input_referred": self.input_referred,
        }


def squared_slope(surrogate: keras.Model, x: np.ndarray) -> np.ndarray:
    """|dF_hat/dx|_F^2 per row."""
    xs = tf.constant(np.asarray(x, np.float32))
    with tf.GradientTape() as tape:
        tape.watch(xs)
        ys = surrogate(xs)
    jac = tape.batch_jacobian(ys, xs).numpy().astype(np.float64)
    return np.sum(jac**2, axis=(1, 2))


def split_noise(x: np.ndarray, y: np.ndarray, surrogate: keras.Model) -> NoiseSplit:
    """Least squares of the surrogate's squared residual v = |y - F_hat(x)|^2 on [1, |J(x)|^2]."""
    v = np.sum(
        (np.asarray(y, np.float64) - np.asarray(surrogate(np.asarray(x, np.float32)), np.float64)) ** 2, 1
    )
    g = squared_slope(surrogate, x)
    n = len(v)
    if n < 8 or float(np.mean(v)) <= 0 or float(np.std(g)) <= 0:
        mean_v, mean_g = (float(np.mean(v)), float(np.mean(g))) if n else (0.0, 0.0)
        return NoiseSplit(n, mean_v, 0.0, float("inf"), 0.0, mean_g)
    design = np.stack([np.ones(n), g], axis=1)
    coef, *_ = np.linalg.lstsq(design, v, rcond=None)
    resid = v - design @ coef
    cov = np.linalg.inv(design.T @ design) * float(np.sum(resid**2)) / max(n - 2, 1)
    share = float(coef[1] * np.mean(g) / np.mean(v))
    return NoiseSplit(n, float(coef[0]), float(coef[1]), float(np.sqrt(cov[1, 1])), share, float(np.mean(g)))
