"""Devices with memory, the device in the forward pass: direct learning on sequences.

A warm start by sequence ILA (`hwloop.strategies.sequence`) on part of the
budget; then a surrogate with memory, F_hat(x[n], ..., x[n-K]) -> y[n], a
tapped-delay MLP fitted on every logged sequence. Each round takes a
reachable target sequence (a stretch of an earlier answer of the device),
drives the reset device with the inverse's whole drive x = M(t) and trains M
on the answers: for a position n the forward value is the device's answer
y_dev[n], carried along the surrogate to where M has moved since the query
(`hwloop.device_op.straight_through`), and the backward pass is F_hat's
vector-Jacobian product through the K + 1 drive samples that produced it,
each of them M applied to its own target window. The surrogate keeps
learning from every answer. The checkpoint kept follows the one selection
rule (`hwloop.metrics.keep_index`) with the warm start preferred: a trained
round replaces it only when it is better by more than twice the two scores'
combined standard error (then the latest such round is kept); otherwise the
warm start is kept and every sequence measured (the rounds' drives
included) refits it by ILA, as iterative ILA would.
"""

from __future__ import annotations

import logging

import keras
import numpy as np
import tensorflow as tf

from hwloop.device_op import straight_through
from hwloop.inverses.models import FitConfig, build_regressor, fit_regression
from hwloop.inverses.tapped import tapped
from hwloop.metrics import nmse_db, nmse_uncertainty_db
from hwloop.strategies.base import Context, Outcome
from hwloop.strategies.rounds import RoundScore, best_checkpoint, correction_weight
from hwloop.strategies.sequence import (
    SequenceILAConfig,
    send_each_after_reset,
    tapped_pairs,
    train_sequence_ila,
)

log = logging.getLogger(__name__)

WARM_FRACTION = 0.5
ROUNDS = 4
BATCH = 256


class SequenceTrainer:
    """One step: M's drive for K + 1 consecutive positions, F_hat on them, the device forward."""

    def __init__(
        self, inverse: keras.Model, surrogate: keras.Model, depth: int, sur_depth: int, lr: float
    ) -> None:
        self.inverse, self.surrogate = inverse, surrogate
        self.depth, self.sur_depth = depth, sur_depth
        self.opt = keras.optimizers.Adam(lr)
        self.opt.build(inverse.trainable_variables)
        self.y_std = tf.constant(np.asarray(surrogate.get_layer("destandardize").std, np.float32))
        self.step = tf.function(self._step, jit_compile=False, reduce_retracing=True)

    def _step(
        self, t_win: tf.Tensor, valid: tf.Tensor, t_now: tf.Tensor, y_mix: tf.Tensor, y_anchor: tf.Tensor
    ):
        """t_win (B, K+1, taps): target windows of positions n, n-1, ..., n-K; valid (B, K+1, 1)."""
        b, k1 = tf.shape(t_win)[0], self.sur_depth + 1
        with tf.GradientTape() as tape:
            x = self.inverse(tf.reshape(t_win, (b * k1, -1)), training=True)
            x = tf.reshape(x, (b, k1, -1)) * valid  # before the sequence start the drive was 0
            y_hat = self.surrogate(tf.reshape(x, (b, -1)))
            y = straight_through(y_mix, y_hat, y_anchor)
            loss = tf.reduce_mean(tf.square((y - t_now) / self.y_std))
        grads = tape.gradient(loss, self.inverse.trainable_variables)
        self.opt.apply_gradients(zip(grads, self.inverse.trainable_variables, strict=True))
        return loss


def _windows(
    taps: np.ndarray, starts: np.ndarray, positions: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Rows n, n-1, ..., n-k of ``taps`` for each position, and whether each lies in the position's
    own sequence (``starts[n]`` is where that sequence begins: before it the drive was 0)."""
    idx = positions[:, None] - np.arange(k + 1)[None, :]
    valid = idx >= starts[positions][:, None]
    return taps[np.where(valid, idx, positions[:, None])], valid.astype(np.float32)[:, :, None]


def train(ctx: Context) -> Outcome:
    dev = ctx.dev
    assert dev is not None
    depth = ctx.settings.memory_depth
    cfg = SequenceILAConfig(
        depth=depth,
        rounds=1,
        fit=FitConfig(steps=2 * ctx.settings.fit_steps),
        refit_steps=max(1, ctx.settings.fit_steps // 2),
    )
    warm = train_sequence_ila(
        dev, int(dev.remaining * WARM_FRACTION), cfg, seed=ctx.settings.seed, on_step=ctx.on_step
    )
    inv = warm.inverse
    xs, ys = list(warm.x), list(warm.y)
    sur_depth = depth
    feats = np.concatenate([tapped(x, sur_depth) for x in xs])
    surrogate = build_regressor(
        feats, np.concatenate(ys), seed=ctx.settings.seed + 17, name="sequence_surrogate"
    )
    curve = warm.curve + fit_regression(
        surrogate,
        feats,
        np.concatenate(ys),
        FitConfig(steps=ctx.settings.fit_steps),
        seed=ctx.settings.seed + 17,
        on_step=ctx.on_step,
    )
    trainer = SequenceTrainer(inv.model, surrogate, depth, sur_depth, lr=3e-4)
    rng = np.random.default_rng(ctx.settings.seed + 31)
    scores: list[RoundScore] = []
    steps = max(1, ctx.settings.fit_steps // 10)
    # Every answered sequence is device-forward data: the warm start's (its own answers as
    # targets, weight 1) keep M where ILA put it while the rounds' answers move it.
    answered = [(y, tapped(x, sur_depth), y, 1.0) for x, y in zip(warm.x, warm.y, strict=True)]
    for r in range(ROUNDS):
        n = dev.remaining // (ROUNDS - r)
        if n < 64:
            break
        sent = _send_round(dev, inv, warm.y, n, rng)
        t = np.concatenate([ts for ts, _, _ in sent])
        y_dev = np.concatenate([y for _, _, y in sent])
        scores.append(
            RoundScore(
                r,
                nmse_db(y_dev, t),
                [w.copy() for w in inv.model.get_weights()],
                len(t),
                nmse_uncertainty_db(y_dev, t),
            )
        )
        old = (np.concatenate([tapped(x, sur_depth) for x in xs]), np.concatenate(ys))
        q_feats = [tapped(x, sur_depth) for _, x, _ in sent]  # taps never cross a reset
        scores[-1].weight = correction_weight(surrogate, old, (np.concatenate(q_feats), y_dev))
        log.info(
            "sequence round %d: %d samples in %d sequences, closed loop %.2f dB, device weight %.2f",
            r,
            len(t),
            len(sent),
            scores[-1].nmse_db,
            scores[-1].weight,
        )
        xs += [x for _, x, _ in sent]
        ys += [y for _, _, y in sent]
        if r == ROUNDS - 1:
            break
        answered += [(ts, f, ys_, scores[-1].weight) for (ts, _, ys_), f in zip(sent, q_feats, strict=True)]
        curve += _train_round(trainer, inv, answered, steps, rng)
        all_feats = np.concatenate([tapped(x, sur_depth) for x in xs])
        curve += fit_regression(
            surrogate,
            all_feats,
            np.concatenate(ys),
            FitConfig(steps // 2, lr=1e-3),
            seed=ctx.settings.seed + r,
        )
    # The warm start is the incumbent: a trained round replaces it only when it is clearly better.
    best = best_checkpoint(inv.model, scores, prefer=[0])
    refit = best is None or best.round == scores[0].round
    if refit:
        feats, targets = tapped_pairs(xs, ys, inv.depth, inv.lookahead)
        fit = cfg.fit
        log.info("direct learning did not beat the warm start; refitting ILA on %d pairs", len(feats))
        curve += fit_regression(
            inv.model,
            feats,
            targets,
            FitConfig(cfg.refit_steps, fit.batch, fit.lr * 0.25, fit.lr_final),
            seed=ctx.settings.seed + 7,
            on_step=ctx.on_step,
        )
    details = {
        "memory_depth": depth,
        "surrogate_depth": sur_depth,
        "round_nmse_db": [round(s.nmse_db, 3) for s in scores],
        "round_uncertainty_db": [round(s.uncertainty_db, 3) for s in scores],
        "device_weight": [None if s.weight is None else round(s.weight, 4) for s in scores],
        "best_round": None if best is None else best.round,
        "ila_refit": refit,
    }
    return Outcome(
        inv.model, curve, surrogate, details, memory={"depth": inv.depth, "lookahead": inv.lookahead}
    )


def _send_round(
    dev, inv, pool_ys: list[np.ndarray], n: int, rng: np.random.Generator
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """A round's n queries: reachable target sequences (stretches of the warm start's answers, as
    long as the longest of them), each driven by M after a reset. Returns (target, drive, answer)s."""
    longest = max(len(y) for y in pool_ys)
    ts, xs = [], []
    while n >= 64:
        m = min(n, longest)
        pool = [y for y in pool_ys if len(y) >= m]
        src = pool[int(rng.integers(len(pool)))]
        start = int(rng.integers(0, len(src) - m + 1))
        ts.append(np.asarray(src[start : start + m], np.float32))
        xs.append(dev.safe(inv.apply(ts[-1])))
        n -= m
    _, ys = send_each_after_reset(dev, xs)
    return list(zip(ts, xs, ys, strict=True))


def _train_round(trainer, inv, answered, steps, rng) -> list[float]:
    """Steps on random positions of every answered sequence: (targets, drive features, answers, weight)."""
    t_all = np.concatenate([t for t, _, _, _ in answered]).astype(np.float32)
    taps = np.concatenate([tapped(t, inv.depth, inv.lookahead) for t, _, _, _ in answered])
    starts = np.concatenate(
        [
            np.full(len(t), off)
            for (t, _, _, _), off in zip(
                answered, np.cumsum([0] + [len(a[0]) for a in answered[:-1]]), strict=True
            )
        ]
    )
    y_q = np.concatenate([np.asarray(trainer.surrogate(f), np.float32) for _, f, _, _ in answered])
    y_dev = np.concatenate([y for _, _, y, _ in answered]).astype(np.float32)
    w = np.concatenate([np.full((len(t), 1), wt, np.float32) for t, _, _, wt in answered])
    y_mix = y_q + w * (y_dev - y_q)
    curve = []
    for i in range(steps):
        pos = rng.integers(0, len(t_all), size=min(BATCH, len(t_all)))
        win, valid = _windows(taps, starts, pos, trainer.sur_depth)
        loss = trainer.step(
            tf.constant(win),
            tf.constant(valid),
            tf.constant(t_all[pos]),
            tf.constant(y_mix[pos]),
            tf.constant(y_q[pos]),
        )
        if i % 100 == 0:
            curve.append(float(loss))
    return curve
