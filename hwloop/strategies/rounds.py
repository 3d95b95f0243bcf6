"""Rounds of device queries at M(t): measure the checkpoint, decide, train with the device forward.

Each round asks the device at x = M(t) for fresh reachable targets t. The
answers score the current checkpoint (with the score's standard error and
the surrogate's mismatch at those inputs) and then drive a round of joint
steps in which they enter the forward pass through `hwloop.device_op`
(see `JointTrainer`). `cannot_improve` is the stopping rule; `reselect`
picks the checkpoint to keep without the winner's curse.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import keras
import numpy as np
import tensorflow as tf

from hwloop import progress
from hwloop.metered import MeteredDevice
from hwloop.metrics import keep_index, nmse_db, nmse_uncertainty_db, paired_difference_se_db, tied
from hwloop.strategies.joint import JointTrainer, SurrogateConfig, pretrain_through_surrogate

log = logging.getLogger(__name__)


@dataclass
class RoundScore:
    """Closed-loop error of one checkpoint, measured by a round's device queries.

    ``uncertainty_db`` is the standard error of ``nmse_db`` (from the spread of
    the per-target errors); ``mismatch_db`` is how far the device's answers
    sat from the surrogate's at the queried inputs, on the same scale: what
    training through the surrogate alone cannot go below. ``weight`` is the
    share of the device's correction the round's training used.
    """

    round: int
    nmse_db: float
    weights: list[np.ndarray] = field(repr=False)
    n: int = 0
    uncertainty_db: float = 0.0
    mismatch_db: float = float("-inf")
    weight: float | None = None
    headroom: float = 0.0  # mean(|y - t|^2 - |y - F_hat(x)|^2) / mean(|t|^2): what training can still remove
    headroom_se: float = 0.0  # its standard error (paired, on the same answers)
    remeasured: list[tuple[int, float, float, float]] | None = None  # finalists' (round, fresh score, its
    # SE, the SE of its difference from the best fresh score, paired on the shared targets)
    spent: int = 0  # training queries spent once this round's answers were in


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


def measure(
    dev: MeteredDevice, trainer: JointTrainer, n: int, r: int
) -> tuple[RoundScore, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Ask the device at M(t) for n fresh reachable targets: the checkpoint's score and the answers."""
    t_r = np.asarray(trainer.sample_targets(n), np.float32)
    x_r = dev.safe(np.asarray(trainer.inverse(t_r), np.float32))
    y_r = dev.query(x_r, "train")
    t64, y64 = np.asarray(t_r, np.float64), np.asarray(y_r, np.float64)
    power = float(np.sum(t64**2))
    miss_rows = np.sum((np.asarray(trainer.surrogate(x_r), np.float64) - y64) ** 2, axis=1)
    miss = float(np.sum(miss_rows))
    # Paired per target: closed-loop error minus the surrogate's own mismatch there. The noise
    # common to both largely cancels, so this is far more precise than either score alone.
    room = (np.sum((y64 - t64) ** 2, axis=1) - miss_rows) / (power / len(t64))
    score = RoundScore(
        r,
        nmse_db(y_r, t_r),
        [w.copy() for w in trainer.inverse.get_weights()],
        n,
        nmse_uncertainty_db(y_r, t_r),
        10 * np.log10(miss / power) if miss > 0 else float("-inf"),
        headroom=float(np.mean(room)),
        headroom_se=float(np.std(room) / np.sqrt(len(room))) if len(room) > 1 else 0.0,
        spent=dev.used["train"],
    )
    return score, (t_r, x_r, y_r)


def cannot_improve(scores: list[RoundScore]) -> str:
    """Why refinement should not start after the warm start's measurement ("" to go on).

    Training M through the surrogate can remove at most the part of the
    closed-loop error that is not the surrogate's own mismatch with the
    device at the queried inputs: the headroom, estimated per target on the
    same answers (noise common to both cancels). When the headroom is not
    larger than twice its standard error, no round can improve the measured
    closed loop by more than that measurement's own uncertainty: stop.

    Only the first measurement decides. Later rounds also improve the
    surrogate itself (on a noisy device that is where the gain is), which
    this estimate cannot see; their checkpoints are compared at the end by
    re-measurement instead (`reselect`).
    """
    last = scores[-1]
    if last.headroom <= 2 * last.headroom_se:
        return (
            f"round {last.round}: headroom {last.headroom:.2e} of target power is within twice its "
            f"standard error ({last.headroom_se:.2e}); closed loop {last.nmse_db:.2f} dB, "
            f"surrogate mismatch {last.mismatch_db:.2f} dB"
        )
    return ""


def run_rounds(
    dev: MeteredDevice,
    trainer: JointTrainer,
    cfg: SurrogateConfig,
    data: tuple[np.ndarray, np.ndarray],
    *,
    seed: int,
    train_last: bool = False,
    stop_early: bool = False,
    reserve: int = 0,
    on_step: Callable[[int, float], None] | None = None,
) -> tuple[list[RoundScore], list[float], str, tuple[np.ndarray, np.ndarray]]:
    """Spend the budget (less ``reserve``) in rounds of device queries at M(t).

    ``data`` holds every (x, y) pair measured so far. Each round first
    measures the current inverse on fresh reachable targets (that
    measurement is the round's checkpoint score), then trains jointly on
    those answers and the whole log; after the first measurement M is also
    trained through the surrogate alone. The last round only measures
    unless ``train_last``. With ``stop_early``, no round is trained when the
    first measurement shows no room for it (`cannot_improve`); the reason is
    returned ("" if the rounds ran), and every pair measured so far.
    """
    rng = np.random.default_rng(seed + 31)
    scores: list[RoundScore] = []
    curve: list[float] = []
    x_log, y_log = data
    rounds = max(1, cfg.rounds)
    stopped = ""
    for r in range(rounds):
        n = (dev.remaining - reserve) // (rounds - r)
        if n < 8:
            break
        score, (t_r, x_r, y_r) = measure(dev, trainer, n, r)
        scores.append(score)
        x_log, y_log = np.concatenate([x_log, x_r]), np.concatenate([y_log, y_r])
        log.info("round %d: %d queries at M(t), closed loop %.2f dB", r, n, score.nmse_db)
        if stop_early and r == 0 and (stopped := cannot_improve(scores)):
            log.info("refinement stops: %s", stopped)
            break
        if r == rounds - 1 and not train_last:
            break
        if cfg.device_weight is not None:  # fixed (an ablation, or a device the surrogate cannot fit)
            score.weight = float(cfg.device_weight)
        else:
            score.weight = correction_weight(
                trainer.surrogate, (x_log[: -len(x_r)], y_log[: -len(x_r)]), (x_r, y_r)
            )
        log.info("round %d trains with device correction weight %.2f", r, score.weight)
        if r == 0 and cfg.pretrain_steps:
            curve += pretrain_through_surrogate(trainer, cfg.pretrain_steps, cfg.batch, on_step)
        curve += _train_round(trainer, (t_r, x_r, y_r), (x_log, y_log), score.weight, cfg, rng, on_step)
    return scores, curve, stopped, (x_log, y_log)


BASELINE_ROUND = -1  # the ``round`` of a baseline checkpoint `reselect` is given (never measured by a round)


def reselect(
    dev: MeteredDevice,
    trainer: JointTrainer,
    scores: list[RoundScore],
    reserve: int,
    most: int = 3,
    baseline: list[np.ndarray] | None = None,
) -> RoundScore | None:
    """Load the checkpoint to keep into the inverse, free of the winner's curse.

    The best of several noisy scores is biased low. With a single finalist
    the reserve is not spent (the strategy reports it as ``unspent``). The finalists (up to
    ``most`` checkpoints tied with the best, `hwloop.metrics.tied`) are
    measured again, each on the same fresh targets, ``reserve`` queries
    shared among them, and `hwloop.metrics.keep_index` picks among the fresh
    scores (the latest of those tied with the best), each compared with the
    best paired, target by target (`hwloop.metrics.paired_difference_se_db`;
    unpaired, a finalist 1.8 dB better on mimo3_folded was tied at 125
    targets each). With one finalist, or no queries to spare, the same rule
    picks among the round scores.

    ``baseline``: the weights of an inverse no round measured (ILA on every
    pair, beside a start fitted on one branch of a fold), always a finalist,
    placed first so that a round tied with it is kept; kept, it comes back as
    round `BASELINE_ROUND`.
    """
    if not scores:
        return None
    best = min(scores, key=lambda s: s.nmse_db)
    finalists = sorted((s for s in scores if tied(_score(s), _score(best))), key=lambda s: s.nmse_db)[:most]
    finalists.sort(key=lambda s: s.round)
    if baseline is not None:
        finalists.insert(0, RoundScore(BASELINE_ROUND, float("nan"), baseline))
    n = reserve // max(1, len(finalists))
    if len(finalists) < 2 or n < 8 or dev.remaining < n * len(finalists):
        return best_checkpoint(trainer.inverse, scores)
    t = np.asarray(trainer.sample_targets(n), np.float32)
    fresh, errors = [], []
    for s in finalists:
        trainer.inverse.set_weights(s.weights)
        y = dev.query(dev.safe(np.asarray(trainer.inverse(t), np.float32)), "train")
        fresh.append((nmse_db(y, t), nmse_uncertainty_db(y, t)))
        errors.append(np.sum((np.asarray(y, np.float64) - t) ** 2, axis=1))
    lead = min(range(len(fresh)), key=lambda i: fresh[i][0])
    paired = [paired_difference_se_db(e, errors[lead]) for e in errors]
    chosen = finalists[keep_index([(f, p) for (f, _), p in zip(fresh, paired, strict=True)])]
    log.info(
        "re-measured rounds %s on %d fresh targets: %s dB; keeping round %d",
        [s.round for s in finalists],
        n,
        [round(f, 2) for f, _ in fresh],
        chosen.round,
    )
    trainer.inverse.set_weights(chosen.weights)
    chosen.remeasured = [
        (s.round, round(f, 3), round(u, 3), round(p, 3))
        for s, (f, u), p in zip(finalists, fresh, paired, strict=True)
    ]
    return chosen


def round_details(scores: list[RoundScore], best: RoundScore | None, stopped: str = "") -> dict:
    """Per-round figures for metrics.json, the mixing weights among them."""
    return {
        "round_nmse_db": [round(s.nmse_db, 3) for s in scores],
        "round_uncertainty_db": [round(s.uncertainty_db, 3) for s in scores],
        "round_mismatch_db": [
            round(s.mismatch_db, 3) if np.isfinite(s.mismatch_db) else None for s in scores
        ],
        "round_queries": [s.n for s in scores],
        "round_spent": [s.spent for s in scores],
        "round_headroom": [round(s.headroom, 8) for s in scores],
        "round_headroom_se": [round(s.headroom_se, 8) for s in scores],
        "device_weight": [None if s.weight is None else round(s.weight, 4) for s in scores],
        "best_round": None if best is None else best.round,
        **_finalists(best),
        "refinement_stopped": stopped or None,
    }


def _finalists(best: RoundScore | None) -> dict:
    """The re-selection's figures: each finalist's round, fresh score, its standard error, and the
    standard error of its difference from the best fresh score, paired (what the tie test used)."""
    rows = None if best is None or not best.remeasured else best.remeasured
    names = (
        "finalists_rounds",
        "finalists_remeasured_db",
        "finalists_uncertainty_db",
        "finalists_paired_se_db",
    )
    return {name: None if rows is None else [row[i] for row in rows] for i, name in enumerate(names)}


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
    for i in progress.steps(cfg.round_steps, label="fit through the device"):
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


def best_checkpoint(
    inverse: keras.Model, scores: list[RoundScore], prefer: list[int] | None = None
) -> RoundScore | None:
    """Load the weights of the round `hwloop.metrics.keep_index` keeps into ``inverse``.

    Scores are noisy estimates from n answers each: among checkpoints tied
    with the best, the latest (most trained) wins; ``prefer`` puts an
    incumbent first (it is kept unless a round beats it by more than the
    uncertainty).
    """
    if not scores:
        return None
    chosen = scores[keep_index([_score(s) for s in scores], prefer)]
    inverse.set_weights(chosen.weights)
    return chosen


def _score(s: RoundScore) -> tuple[float, float]:
    return (s.nmse_db, s.uncertainty_db)
