"""The one Gauss-Newton step the surrogate-VJP trainers share, and the range penalty beside it.

Training M through a surrogate F_hat with the plain gradient J^T (y - t)
under-weights flat stretches of the device (small J) and over-steps steep
ones. The Gauss-Newton-scaled upstream gradient ``(J J^T + lambda I)^-1
(y - t)``, with J = dF_hat/dx at M's proposals, takes the step the local
linearisation asks for; lambda is ``damping`` times the mean eigenvalue of
J J^T per row, so the damping is relative and the step stays bounded where J
is rank-deficient, and at least `FLAT_DAMPING` times that eigenvalue's mean
over the batch, so it stays bounded where all of J vanishes at once. (Relative
damping alone does not bound it there: on a one-output device J J^T is a
scalar, and at its fold the step err/J grows without bound. On saleh_folded
a few proposals near the peak then dominated Adam's step sizes, and one noise
seed of three ended with M rippled at the low end, 9 dB behind the others:
benchmarks/matrix.py.) `range_penalty` keeps proposals inside the safe range
(the meter clips whatever leaves it, which would give M no gradient).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from hwloop.device import IQEnvelope

# The least damping of any row, as a share of the batch's mean |J|^2 per output: on saleh_folded
# (output noise) 0.03 and 0.1 both brought the worst seed from -54.8 to -62.3/-62.9 dB; in the
# robustness matrix 0.1 also lifted the folded devices on two and three outputs by 2.4 to 4.2 dB.
# A row at the batch's mean |J|^2 takes a step 9 % shorter than undamped (Adam rescales the whole
# step anyway), a row at a tenth of it half.
FLAT_DAMPING = 0.1


def gauss_newton_upstream(
    surrogate: keras.Model, x: tf.Tensor, err: tf.Tensor, damping: float, flat: float = FLAT_DAMPING
) -> tf.Tensor:
    """(J J^T + lambda I)^-1 err per row, J = dF_hat/dx at x (held constant), lambda per row the
    larger of ``damping`` times its mean eigenvalue of J J^T and ``flat`` times the batch's mean."""
    xs = tf.stop_gradient(x)
    with tf.GradientTape() as tape:
        tape.watch(xs)
        ys = surrogate(xs)
    jac = tape.batch_jacobian(ys, xs)  # (n, out, in)
    jjt = tf.matmul(jac, jac, transpose_b=True)
    dim = tf.shape(jjt)[1]
    scale = tf.linalg.trace(jjt)[:, None, None] / tf.cast(dim, tf.float32)
    lam = tf.maximum(damping * scale, flat * tf.reduce_mean(scale))
    reg = jjt + (lam + 1e-12) * tf.eye(dim, batch_shape=[tf.shape(jjt)[0]])
    return tf.linalg.solve(reg, err[:, :, None])[:, :, 0]


def uniform_inputs(
    gen: tf.random.Generator, n: int, low: tf.Tensor, high: tf.Tensor, envelope: IQEnvelope | None = None
) -> tf.Tensor:
    """n inputs uniform over the safe region, in the graph: the box, or for the complex pairs of
    an I/Q envelope the disc |x| <= peak (so targets sampled through F_hat are ones the meter
    lets M reach)."""
    u = low + gen.uniform((n, low.shape[0]), dtype=tf.float32) * (high - low)
    if envelope is None:
        return u
    cols = tf.unstack(u, axis=1)
    for i, q in envelope.pairs:
        r = envelope.peak * tf.sqrt(gen.uniform((n,), dtype=tf.float32))
        phi = gen.uniform((n,), -np.pi, np.pi, dtype=tf.float32)
        cols[i], cols[q] = r * tf.cos(phi), r * tf.sin(phi)
    return tf.clip_by_value(tf.stack(cols, axis=1), low, high)


def range_penalty(x: tf.Tensor, low: tf.Tensor, high: tf.Tensor, weight: float) -> tf.Tensor:
    """weight * mean over rows of the squared excursion outside [low, high], in units of the span."""
    excess = (tf.nn.relu(x - high) + tf.nn.relu(low - x)) / (high - low)
    return weight * tf.reduce_mean(tf.reduce_sum(excess**2, axis=1))
