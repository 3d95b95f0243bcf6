"""Quantisation-aware fine-tuning in the loop: the export's arithmetic trained with the device answering.

Post-training quantisation (`hwloop.export.ptq`) chooses words that copy the
float inverse layer by layer; at 8-bit weights and activations that still
costs several dB of closed loop. Here the words are trained for the closed
loop itself, through `hwloop.export.qat_model.FixedPointMLP` (the exported
arithmetic, bit for bit, with straight-through gradients), starting from the
post-training words:

1. A surrogate F_hat of the device is fitted on the run's query log (no
   query), as the ``surrogate`` strategy fits one.
2. Distillation, offline: the quantised inverse M_q is trained so that
   F_hat(M_q(t)) matches F_hat(M(t)) of the float inverse M on reachable
   targets t (F_hat's answers to inputs spread over the safe range): the
   closed-loop difference the float inverse would see, without a query.
   The straight-through steps jump between neighbouring word sets (the
   loss of words is piecewise constant), so the whole target set scores
   the words every few steps and the best set seen is kept, the
   post-training words among the candidates.
3. Rounds with the device in the loop, exactly as training runs them
   (`hwloop.strategies.rounds.run_rounds`): each round asks the device at
   M_q(t), the export's own drive, for fresh reachable targets (the round's
   score), then trains M_q jointly with F_hat on those answers, the device's
   answer in the forward pass and F_hat's VJP in the backward pass
   (`hwloop.device_op.straight_through`), the device's share per round
   (``device_weight``) chosen as training chooses it. One difference: the
   Gauss-Newton step has no batch floor on its damping (``flat=0``; training
   keeps one to guard folds, and a one-to-one inverse being fine-tuned has
   none, while the floor damped the steps where the amplifier compresses). Every query goes
   through the metered device into the run's own query log (kind
   ``train``), within the budget the user gives.
4. The checkpoint kept is chosen by the device (`reselect`: the finalists
   re-measured on fresh targets, 10 % of the budget), the post-training
   and distilled words among the candidates.

Only the memoryless MLP is tuned this way (its targets are independent
rows); the record (`QATRecord`) goes into the manifest and the run's
metrics.json.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from hwloop.errors import UsageError
from hwloop.export.mlp import QuantMLP
from hwloop.export.qat_model import FixedPointMLP
from hwloop.inverses.models import FitConfig
from hwloop.metered import MeteredDevice
from hwloop.querylog import QueryLog
from hwloop.rundir import RunDir
from hwloop.strategies.joint import JointTrainer, SurrogateConfig, fit_surrogate
from hwloop.strategies.rounds import reselect, round_details, run_rounds

log = logging.getLogger(__name__)

MIN_QUERIES = 200  # below this the rounds cannot score a checkpoint to better than its noise
SCORE_EVERY = 25  # distillation steps between scores of the whole target set
DISTILL_TARGETS = 16384


@dataclass(frozen=True)
class QATConfig:
    """Step counts and rates; defaults measured on held-out I/Q amplifiers (benchmarks/export.py)."""

    surrogate_steps: int = 8000
    distill_steps: int = 3000
    distill_lr: float = 1e-4
    rounds: int = 4
    round_steps: int = 200
    lr: float = 2e-5
    batch: int = 1024
    selection_share: float = 0.1  # of the budget, to re-measure the finalists


@dataclass
class QATRecord:
    """What the fine-tuning did, for the manifest and metrics.json."""

    queries: int
    queries_used: int
    device: str
    log_rows: list[int]  # the run's training rows before and after (its query log)
    surrogate_fit_db: float  # F_hat's residual on the log, dB of the answers' power
    distill_steps: int
    distill_before_db: (
        float  # |F_hat(M_q(t)) - F_hat(M(t))|^2 over |t|^2 on its targets: the post-training words
    )
    distill_after_db: float  # the same for the words distillation kept
    rounds: dict = field(default_factory=dict)  # round_details: scores, weights, best round
    chosen_nmse_db: float | None = None
    first_nmse_db: float | None = None  # the distilled words' score, the first round's measurement
    config: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _sampler(surrogate: keras.Model, dev_info, seed: int) -> Callable[[int], tf.Tensor]:
    from hwloop.strategies.gauss_newton import uniform_inputs

    gen = tf.random.Generator.from_seed(seed)
    low = tf.constant(dev_info.low_array, tf.float32)
    high = tf.constant(dev_info.high_array, tf.float32)
    return lambda n: tf.stop_gradient(surrogate(uniform_inputs(gen, n, low, high, dev_info.envelope)))


def distill(
    model: FixedPointMLP,
    float_model: keras.Model,
    surrogate: keras.Model,
    targets: np.ndarray,
    cfg: QATConfig,
    on_step: Callable[[int, float], None] | None = None,
) -> tuple[float, float]:
    """Train the words so that F_hat(M_q(t)) matches F_hat(M(t)) on ``targets``; no device query.

    The loss of quantised words is piecewise constant and its straight-through steps jump
    between neighbouring word sets: the whole set is scored every `SCORE_EVERY` steps and the
    best words seen are kept (the starting words among them). Returns that loss before and
    after, in dB of the answers' power.
    """
    t_all = tf.constant(np.asarray(targets, np.float32))
    y_ref = tf.constant(np.asarray(surrogate(float_model(t_all)), np.float32))
    y_std = tf.constant(np.asarray(surrogate.get_layer("destandardize").std, np.float32))
    power = float(np.mean(np.sum(np.asarray(t_all) ** 2, axis=1)))
    sched = keras.optimizers.schedules.CosineDecay(cfg.distill_lr, max(cfg.distill_steps, 1), alpha=0.0)
    opt = keras.optimizers.Adam(sched)
    variables = model.trainable_variables
    gen = tf.random.Generator.from_seed(7)
    n = int(t_all.shape[0])

    @tf.function(jit_compile=False, reduce_retracing=True)
    def step() -> tf.Tensor:
        idx = gen.uniform((cfg.batch,), 0, n, dtype=tf.int32)
        with tf.GradientTape() as tape:
            err = (surrogate(model(tf.gather(t_all, idx), training=True)) - tf.gather(y_ref, idx)) / y_std
            loss = tf.reduce_mean(tf.square(err))
        opt.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return loss

    @tf.function(jit_compile=False)
    def score() -> tf.Tensor:
        return tf.reduce_mean(tf.reduce_sum(tf.square(surrogate(model(t_all)) - y_ref), axis=1))

    first = float(score())
    best, kept = first, [v.numpy() for v in variables]
    for i in range(cfg.distill_steps):
        loss = step()
        if (i + 1) % SCORE_EVERY == 0 or i == cfg.distill_steps - 1:
            now = float(score())
            if now < best:
                best, kept = now, [v.numpy() for v in variables]
        if on_step is not None and i % 100 == 0:
            on_step(i, float(loss))
    for v, w in zip(variables, kept, strict=True):
        v.assign(w)
    return _db(first / power), _db(best / power)


def _db(ratio: float) -> float:
    return round(float(10 * np.log10(max(ratio, 1e-30))), 3)


def finetune(
    run: Any,
    q: QuantMLP,
    float_model: keras.Model,
    device: Any,
    queries: int,
    *,
    masks: list[np.ndarray | None] | None = None,
    seed: int = 0,
    cfg: QATConfig = QATConfig(),
    on_step: Callable[[int, float], None] | None = None,
    on_query: Callable[[str, int, int], None] | None = None,
) -> tuple[QuantMLP, QATRecord]:
    """``q`` fine-tuned on ``device`` (the run's own) within ``queries`` queries; the words and the record."""
    if queries < MIN_QUERIES:
        raise UsageError(f"--qat needs at least {MIN_QUERIES} queries to score its rounds, got {queries}")
    rd = RunDir(run)
    info = device.info
    if info.stateful:
        raise UsageError("--qat tunes a memoryless inverse; this device has memory")
    rd.check_device(info)  # the run's own device, before anything is sent
    qlog = QueryLog(rd.log_path, info.in_dim, info.out_dim)
    try:
        x_log, y_log = qlog.arrays("train")
        before = len(x_log)
        dev = MeteredDevice(device, qlog, budget=before + queries, progress=on_query)
        dev.used["train"] = before  # the log's rows count against the budget; `remaining` is the QAT's
        surrogate, _ = fit_surrogate(x_log, y_log, FitConfig(steps=cfg.surrogate_steps), seed=seed)
        fit = np.asarray(surrogate.predict_on_batch(x_log.astype(np.float32)), np.float64) - y_log
        fit_db = float(10 * np.log10(np.mean(fit**2) / np.mean(y_log.astype(np.float64) ** 2)))
        model = FixedPointMLP(q, masks)
        targets = np.asarray(_sampler(surrogate, info, seed + 5)(DISTILL_TARGETS), np.float32)
        model(targets[:4])  # build
        d_before, d_after = distill(model, float_model, surrogate, targets, cfg, on_step)
        scfg = SurrogateConfig(
            rounds=cfg.rounds,
            pretrain_steps=0,
            round_steps=cfg.round_steps,
            batch=cfg.batch,
            inverse_lr=cfg.lr,
        )
        trainer = JointTrainer(
            model,
            surrogate,
            info.low_array,
            info.high_array,
            inverse_lr=cfg.lr,
            surrogate_lr=scfg.surrogate_lr,
            damping=scfg.damping,
            range_penalty=scfg.range_penalty,
            seed=seed,
            envelope=info.envelope,
            # No batch floor on the damping: these rounds fine-tune a one-to-one inverse, with no
            # fold to guard, and the floor damped them where the amplifier compresses (c8+qat on
            # heldout_ghorbani/0: +1.9 dB behind float with it in benchmarks/export.py; +0.66
            # without it, in a run of that benchmark on that cell alone).
            flat=0.0,
        )
        reserve = int(queries * cfg.selection_share)
        scores, _, _, _ = run_rounds(
            dev, trainer, scfg, (x_log, y_log), seed=seed, train_last=True, reserve=reserve, on_step=on_step
        )
        best = reselect(dev, trainer, scores, reserve)
        used = dev.used["train"] - before
        after = qlog.count("train")
    finally:
        qlog.close()
    record = QATRecord(
        queries=int(queries),
        queries_used=int(used),
        device=info.name,
        log_rows=[int(before), int(after)],
        surrogate_fit_db=round(fit_db, 3),
        distill_steps=cfg.distill_steps,
        distill_before_db=d_before,
        distill_after_db=d_after,
        rounds=round_details(scores, best),
        chosen_nmse_db=None if best is None else round(float(best.nmse_db), 3),
        first_nmse_db=round(float(scores[0].nmse_db), 3) if scores else None,
        config=asdict(cfg),
    )
    log.info("QAT: %d queries, rounds %s dB, kept round %s", used, record.rounds["round_nmse_db"], best.round)
    return model.to_quant(), record
