"""Surrogate-VJP training: the device forward, a learned surrogate backward.

A differentiable surrogate F_hat is fitted on the whole query log and keeps
learning from every new query. The inverse M is trained in closed loop: for
targets t, x = M(t) goes to the real device, and the gradient reaches M's
weights through F_hat's vector-Jacobian product, fed the upstream gradient
through ``output_gradients``. Following the numerical recipe:

- one device query per gradient step starves the method, so each batch of
  device answers serves many steps: after the query, the device's answer is
  kept as a correction ``y = stop_gradient(y_dev - F_hat(x_q)) + F_hat(x)``
  while M moves (``x_q`` the queried input);
- the upstream gradient is Gauss-Newton scaled, ``(J J^T + lambda I)^-1 (y - t)``
  with J = dF_hat/dx, so flat stretches of the device are not under-weighted;
- every step is joint: the surrogate loss (on log minibatches) updates only
  surrogate variables and the inverse loss only inverse variables, with
  separate var_lists and optimizers.

`train_surrogate` starts from an ILA fit on exploration queries, trains M
through the surrogate alone, then refines through the device. `refine` is
the refinement alone; `auto` (in run.py) calls it after an ILA warm start
and keeps the checkpoint with the best measured closed-loop error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import keras
import numpy as np
import tensorflow as tf

from hwloop.metered import MeteredDevice
from hwloop.methods.ila import inverse_mask
from hwloop.metrics import nmse_db
from hwloop.models import FitConfig, build_regressor, fit_regression

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SurrogateConfig:
    """Budget split and step counts; defaults measured on the simulators."""

    explore_fraction: float = 0.4  # uniform exploration before closed-loop rounds
    rounds: int = 6  # device-in-the-loop rounds
    surrogate_fit: FitConfig = field(default_factory=FitConfig)
    pretrain_steps: int = 3000  # M through the surrogate alone
    round_steps: int = 800  # joint steps per round of device answers
    batch: int = 256
    inverse_lr: float = 3e-4
    surrogate_lr: float = 1e-3
    damping: float = 1e-3  # Gauss-Newton damping, relative to |J|^2
    range_penalty: float = 10.0  # keeps M's proposals inside the safe range


@dataclass
class RoundScore:
    """Closed-loop error of one checkpoint, measured by a round's device queries."""

    round: int
    nmse_db: float
    weights: list[np.ndarray] = field(repr=False)
    n: int = 0


@dataclass
class SurrogateResult:
    inverse: keras.Model
    surrogate: keras.Model
    scores: list[RoundScore]
    curve: list[float]


def fit_surrogate(
    x: np.ndarray,
    y: np.ndarray,
    cfg: FitConfig,
    *,
    seed: int,
    mask: np.ndarray | None = None,
    on_step: Callable | None = None,
) -> tuple[keras.Model, list[float]]:
    """F_hat: x -> y, fitted on every logged pair (noise on y does not bias it).

    ``mask`` (in_dim, out_dim): connections the device physically lacks stay zero.
    """
    model = build_regressor(x, y, seed=seed + 17, name="surrogate", mask=mask)
    curve = fit_regression(model, x, y, cfg, seed=seed + 17, on_step=on_step)
    return model, curve


class JointTrainer:
    """One `step` updates the surrogate on the log and the inverse through it.

    The two losses have separate var_lists and optimizers: the surrogate loss
    never moves inverse weights and the inverse loss never moves surrogate
    weights, though the inverse's gradient flows through the surrogate.
    """

    def __init__(
        self,
        inverse: keras.Model,
        surrogate: keras.Model,
        low: np.ndarray,
        high: np.ndarray,
        *,
        inverse_lr: float | keras.optimizers.schedules.LearningRateSchedule = 1e-3,
        surrogate_lr: float | keras.optimizers.schedules.LearningRateSchedule = 1e-3,
        damping: float = 1e-3,
        range_penalty: float = 10.0,
        seed: int = 0,
    ) -> None:
        self.inverse, self.surrogate = inverse, surrogate
        self.low = tf.constant(np.asarray(low, np.float32))
        self.high = tf.constant(np.asarray(high, np.float32))
        self.span = self.high - self.low
        self.opt_inverse = keras.optimizers.Adam(inverse_lr)
        self.opt_surrogate = keras.optimizers.Adam(surrogate_lr)
        # Build the optimizers' slots now: each traced variant of `step`
        # (surrogate on or off) must not create variables of its own.
        self.opt_inverse.build(inverse.trainable_variables)
        self.opt_surrogate.build(surrogate.trainable_variables)
        self.damping = damping
        self.range_penalty = range_penalty
        self.gen = tf.random.Generator.from_seed(seed)
        y_std = np.asarray(surrogate.get_layer("destandardize").std, np.float32)
        self.y_std = tf.constant(y_std)
        self.step = tf.function(self._step, jit_compile=False, reduce_retracing=True)

    def sample_targets(self, n: int) -> tf.Tensor:
        """Reachable, noise-free targets: the surrogate's answers to uniform inputs."""
        u = self.gen.uniform((n, self.low.shape[0]), dtype=tf.float32)
        return tf.stop_gradient(self.surrogate(self.low + u * self.span))

    def gauss_newton(self, x: tf.Tensor, err: tf.Tensor) -> tf.Tensor:
        """(J J^T + lambda I)^-1 err per row, J = dF_hat/dx at x (held constant)."""
        xs = tf.stop_gradient(x)
        with tf.GradientTape() as tape:
            tape.watch(xs)
            ys = self.surrogate(xs)
        jac = tape.batch_jacobian(ys, xs)  # (n, out, in)
        jjt = tf.matmul(jac, jac, transpose_b=True)
        scale = tf.linalg.trace(jjt)[:, None, None] / tf.cast(tf.shape(jjt)[1], tf.float32)
        eye = tf.eye(tf.shape(jjt)[1], batch_shape=[tf.shape(jjt)[0]])
        reg = jjt + (self.damping * scale + 1e-12) * eye
        return tf.linalg.solve(reg, err[:, :, None])[:, :, 0]

    def _step(
        self,
        t_dev: tf.Tensor,
        x_dev: tf.Tensor,
        y_dev: tf.Tensor,
        x_log: tf.Tensor,
        y_log: tf.Tensor,
        n_sur: int,
        surrogate_on: bool = True,
        corr_weight: float | tf.Tensor = 1.0,
    ) -> tuple[tf.Tensor, tf.Tensor]:
        inv_vars = self.inverse.trainable_variables
        sur_vars = self.surrogate.trainable_variables
        t_sur = self.sample_targets(n_sur)
        # Device correction for the queried targets: what the device said
        # beyond what the surrogate expects there (0 for surrogate-only targets).
        corr = corr_weight * tf.stop_gradient(y_dev - self.surrogate(x_dev))
        t = tf.concat([t_sur, t_dev], axis=0)
        r = tf.concat([tf.zeros_like(t_sur), corr], axis=0)
        with tf.GradientTape(persistent=True) as tape:
            x = self.inverse(t, training=True)
            y = self.surrogate(x) + r
            excess = (tf.nn.relu(x - self.high) + tf.nn.relu(self.low - x)) / self.span
            penalty = self.range_penalty * tf.reduce_mean(tf.reduce_sum(excess**2, axis=1))
            sur_err = (self.surrogate(x_log, training=True) - y_log) / self.y_std
            loss_sur = tf.reduce_mean(tf.square(sur_err))
        err = (y - t) / self.y_std
        upstream = self.gauss_newton(x, (y - t)) / tf.cast(tf.shape(t)[0], tf.float32)
        g_inv = tape.gradient([y, penalty], inv_vars, output_gradients=[upstream, tf.ones_like(penalty)])
        self.opt_inverse.apply_gradients(zip(g_inv, inv_vars, strict=True))
        if surrogate_on:
            g_sur = tape.gradient(loss_sur, sur_vars)
            self.opt_surrogate.apply_gradients(zip(g_sur, sur_vars, strict=True))
        del tape
        return tf.reduce_mean(tf.square(err)), loss_sur


def _minibatch(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    return rng.integers(0, n, size=min(size, n) if n else 0)


def correction_weight(surrogate: keras.Model, old: tuple, new: tuple) -> float:
    """How much of the device correction is signal rather than noise.

    The surrogate's mean squared residual on the data it was fitted on is
    about the noise variance; on the new round's answers (not yet learned)
    it is noise plus the surrogate's bias there. Only the excess is worth
    correcting for: w = max(0, 1 - old/new), a shrinkage factor that turns
    the correction off on a noisy device and on where the surrogate is wrong.
    """

    def msr(x: np.ndarray, y: np.ndarray) -> float:
        return float(np.mean((np.asarray(surrogate(x)) - y) ** 2)) if len(x) else 0.0

    res_old, res_new = msr(*old), msr(*new)
    return 0.0 if res_new <= 0 else max(0.0, 1.0 - res_old / res_new)


def run_rounds(
    dev: MeteredDevice,
    trainer: JointTrainer,
    cfg: SurrogateConfig,
    data: tuple[np.ndarray, np.ndarray],
    *,
    seed: int,
    train_last: bool = False,
    on_step: Callable[[int, float], None] | None = None,
) -> tuple[list[RoundScore], list[float]]:
    """Spend the remaining budget in rounds of device queries at M(t).

    ``data`` holds every (x, y) pair measured so far. Each round first
    measures the current inverse on fresh reachable targets (that
    measurement is the round's checkpoint score), then trains jointly on
    those answers and the whole log; after the first measurement M is also
    trained through the surrogate alone. The last round only measures
    unless ``train_last``.
    """
    rng = np.random.default_rng(seed + 31)
    scores: list[RoundScore] = []
    curve: list[float] = []
    x_log, y_log = data
    rounds = max(1, cfg.rounds)
    for r in range(rounds):
        n = dev.remaining // (rounds - r)
        if n < 8:
            break
        t_r = np.asarray(trainer.sample_targets(n), np.float32)
        x_r = dev.safe(np.asarray(trainer.inverse(t_r), np.float32))
        y_r = dev.query(x_r, "train")
        score = nmse_db(y_r, t_r)
        scores.append(RoundScore(r, score, [w.copy() for w in trainer.inverse.get_weights()], n))
        weight = correction_weight(trainer.surrogate, (x_log, y_log), (x_r, y_r))
        log.info(
            "round %d: %d queries at M(t), closed-loop %.2f dB, correction weight %.2f", r, n, score, weight
        )
        x_log, y_log = np.concatenate([x_log, x_r]), np.concatenate([y_log, y_r])
        if r == rounds - 1 and not train_last:
            break
        if r == 0 and cfg.pretrain_steps:
            curve += pretrain_through_surrogate(trainer, cfg.pretrain_steps, cfg.batch, on_step)
        curve += _train_round(trainer, (t_r, x_r, y_r), (x_log, y_log), weight, cfg, rng, on_step)
    return scores, curve


def _train_round(
    trainer: JointTrainer,
    dev_data: tuple[np.ndarray, np.ndarray, np.ndarray],
    log_data: tuple[np.ndarray, np.ndarray],
    weight: float,
    cfg: SurrogateConfig,
    rng: np.random.Generator,
    on_step: Callable[[int, float], None] | None,
) -> list[float]:
    t_r, x_r, y_r = (tf.constant(a) for a in dev_data)
    x_log, y_log = (tf.constant(a) for a in log_data)
    w = tf.constant(weight, tf.float32)
    half = cfg.batch // 2
    curve = []
    for i in range(cfg.round_steps):
        di = tf.constant(_minibatch(rng, int(t_r.shape[0]), half))
        li = tf.constant(_minibatch(rng, int(x_log.shape[0]), cfg.batch))
        loss_inv, _ = trainer.step(
            tf.gather(t_r, di),
            tf.gather(x_r, di),
            tf.gather(y_r, di),
            tf.gather(x_log, li),
            tf.gather(y_log, li),
            half,
            True,
            w,
        )
        if i % 100 == 0:
            curve.append(float(loss_inv))
            if on_step is not None:
                on_step(i, curve[-1])
    return curve


def pretrain_through_surrogate(
    trainer: JointTrainer, steps: int, batch: int, on_step: Callable[[int, float], None] | None = None
) -> list[float]:
    """Train M through the surrogate alone (no device, surrogate frozen).

    The device slot of the joint step gets one more surrogate target with a
    zero correction weight (an empty batch would trip Keras' Add layer).
    """
    out_dim = int(trainer.y_std.shape[0])
    curve = []
    for i in range(steps):
        t1 = trainer.sample_targets(1)
        x1 = trainer.inverse(t1)
        y1 = tf.zeros((1, out_dim))
        loss_inv, _ = trainer.step(t1, x1, y1, x1, y1, batch - 1, False, tf.constant(0.0))
        if i % 100 == 0:
            curve.append(float(loss_inv))
            if on_step is not None:
                on_step(i, curve[-1])
    return curve


def best_checkpoint(inverse: keras.Model, scores: list[RoundScore]) -> RoundScore | None:
    """Load the best-scoring round's weights into ``inverse``.

    Scores are noisy estimates from n answers each: among checkpoints within
    the estimate's uncertainty of the best, the latest (most trained) wins.
    """
    if not scores:
        return None
    best = min(s.nmse_db for s in scores)
    tie = [s for s in scores if s.nmse_db <= best + 10 * np.log10(1 + 2 / np.sqrt(max(s.n, 1)))]
    chosen = tie[-1]
    inverse.set_weights(chosen.weights)
    return chosen


def make_trainer(
    inverse: keras.Model, surrogate: keras.Model, dev: MeteredDevice, cfg: SurrogateConfig, seed: int
) -> JointTrainer:
    return JointTrainer(
        inverse,
        surrogate,
        dev.info.low_array,
        dev.info.high_array,
        inverse_lr=cfg.inverse_lr,
        surrogate_lr=cfg.surrogate_lr,
        damping=cfg.damping,
        range_penalty=cfg.range_penalty,
        seed=seed,
    )


def train_surrogate(
    dev: MeteredDevice,
    cfg: SurrogateConfig,
    *,
    seed: int,
    ila_fit: FitConfig,
    prior: tuple[np.ndarray, np.ndarray] | None = None,
    mask: np.ndarray | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> SurrogateResult:
    """Explore, fit F_hat, ILA-initialise M, train M through F_hat, refine on the device."""
    rng = np.random.default_rng(seed)
    n0 = max(16, int(dev.remaining * cfg.explore_fraction))
    x = dev.info.uniform(rng, n0)
    y = dev.query(x, "train")
    if prior is not None:
        x, y = np.concatenate([prior[0], x]), np.concatenate([prior[1], y])
    surrogate, curve = fit_surrogate(x, y, cfg.surrogate_fit, seed=seed, mask=mask, on_step=on_step)
    inverse = build_regressor(y, x, seed=seed, name="inverse", mask=inverse_mask(mask))
    curve += fit_regression(inverse, y, x, ila_fit, seed=seed, on_step=on_step)
    trainer = make_trainer(inverse, surrogate, dev, cfg, seed)
    scores, more = run_rounds(dev, trainer, cfg, (x, y), seed=seed, train_last=True, on_step=on_step)
    return SurrogateResult(inverse, surrogate, scores, curve + more)
