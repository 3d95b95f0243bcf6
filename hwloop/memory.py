"""Inverses for devices with memory: tapped-delay inputs, sequence ILA, sequence scoring.

A device with memory maps the input *sequence* to the output sequence, so
its inverse must see more than the current target. The tapped-delay inverse
is an ordinary `hwloop.models.build_regressor` fed, at time n, with the
target samples t[n + lookahead], ..., t[n], ..., t[n - depth] (zeros before
the start and after the end of the sequence, matching a device reset to an
idle state):

    x[n] = M(t[n + lookahead], ..., t[n - depth])

With ``lookahead = 0`` (the default) the inverse is causal. That suffices
when the device's filters are minimum phase: their inverses are causal and
decay geometrically, so ``depth`` past samples catch all but a tail.
A device with non-minimum-phase filters needs future targets: ``lookahead``
> 0 gives them, at the cost of a delay of ``lookahead`` samples when the
inverse runs in real time (offline, the whole target sequence is known).

Training is ILA on sequences: reset the device, send long random in-range
input sequences (rows consecutive in time), build the tapped features from
the device's OUTPUT sequence and regress onto the input sequence.
Iterative rounds re-query at the current inverse's proposals for reachable
target sequences and refit on everything.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import keras
import numpy as np

from hwloop.device import Device
from hwloop.errors import ShapeError, UsageError
from hwloop.metered import MeteredDevice
from hwloop.metrics import nmse_db, noise_floor_db
from hwloop.models import FitConfig, build_regressor, fit_regression

log = logging.getLogger(__name__)

AnyDevice = Device | MeteredDevice


def tapped(seq: np.ndarray, depth: int, lookahead: int = 0) -> np.ndarray:
    """(n, d) -> (n, d * (lookahead + 1 + depth)): block k holds seq[i + lookahead - k].

    Samples before the start and after the end are zeros.
    """
    arr = np.asarray(seq, np.float32)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ShapeError(f"a sequence must be (n, d), got shape {arr.shape}")
    if depth < 0 or lookahead < 0:
        raise UsageError(f"depth and lookahead must be >= 0, got {depth} and {lookahead}")
    n, d = arr.shape
    padded = np.concatenate(
        [np.zeros((depth, d), np.float32), arr, np.zeros((lookahead, d), np.float32)], axis=0
    )
    # Row i of padded sits at time i - depth; block k is the sample at time i + lookahead - k.
    blocks = [padded[depth + lookahead - k : depth + lookahead - k + n] for k in range(lookahead + 1 + depth)]
    return np.concatenate(blocks, axis=1)


@dataclass
class SequenceInverse:
    """A tapped-delay inverse: target sequence (n, out_dim) -> input sequence (n, in_dim)."""

    model: keras.Model
    depth: int
    lookahead: int
    low: np.ndarray
    high: np.ndarray

    @property
    def in_dim(self) -> int:
        """The device's input dimension (what the inverse proposes)."""
        return len(self.low)

    @property
    def out_dim(self) -> int:
        """The device's output dimension (what a target row holds)."""
        return int(self.model.input_shape[-1]) // (self.depth + 1 + self.lookahead)

    def apply(self, t: np.ndarray) -> np.ndarray:
        """Inputs for the target sequence ``t`` from a reset device, clipped to the safe range."""
        feats = tapped(t, self.depth, self.lookahead)
        expected = int(self.model.input_shape[-1])
        if feats.shape[1] != expected:
            raise ShapeError(f"targets give {feats.shape[1]} tapped features, the model takes {expected}")
        if len(feats) == 0:
            return np.zeros((0, len(self.low)), np.float32)
        x = np.asarray(self.model.predict_on_batch(feats), np.float32)
        return np.clip(x, self.low, self.high)

    __call__ = apply


def build_tapped_inverse(
    t_seq: np.ndarray,
    x_seq: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    *,
    depth: int,
    lookahead: int = 0,
    hidden: tuple[int, ...] = (64, 64),
    seed: int = 0,
) -> SequenceInverse:
    """An untrained tapped-delay inverse whose standardisation comes from example sequences."""
    feats = tapped(t_seq, depth, lookahead)
    model = build_regressor(
        feats, np.asarray(x_seq, np.float32), hidden=hidden, seed=seed, name="tapped_inverse"
    )
    return SequenceInverse(model, depth, lookahead, np.asarray(low, np.float32), np.asarray(high, np.float32))


def _query(dev: AnyDevice, x: np.ndarray, kind: str) -> np.ndarray:
    if isinstance(dev, MeteredDevice):
        return dev.query(x, kind)
    return np.asarray(dev.query(x), np.float32)


def _reset(dev: AnyDevice) -> None:
    dev.reset()  # a MeteredDevice also marks the sequence boundary in the query log


def _segments(total: int, seq_len: int) -> list[int]:
    n_full, rest = divmod(total, seq_len)
    return [seq_len] * n_full + ([rest] if rest >= 16 else [])


@dataclass(frozen=True)
class SequenceILAConfig:
    """Sequence ILA settings; ``rounds`` > 1 adds iterative refinements."""

    depth: int = 5
    lookahead: int = 0
    seq_len: int = 4000  # rows per sequence sent after a reset
    rounds: int = 1
    first_fraction: float = 0.5
    jitter: float = 0.02  # exploration noise around M(t), in units of the range
    hidden: tuple[int, ...] = (64, 64)
    # Taps widen the regression; it needs more steps than the static recipe's 3000.
    fit: FitConfig = field(default_factory=lambda: FitConfig(steps=16000))
    refit_steps: int = 4000


@dataclass
class SequenceILAResult:
    inverse: SequenceInverse
    curve: list[float]
    queries: int
    x: list[np.ndarray]  # the input sequences sent, one per reset
    y: list[np.ndarray]  # the device's answers


def _pairs(
    xs: list[np.ndarray], ys: list[np.ndarray], depth: int, lookahead: int
) -> tuple[np.ndarray, np.ndarray]:
    """Tapped features of each output sequence (taps never cross a reset) and the inputs."""
    feats = np.concatenate([tapped(y, depth, lookahead) for y in ys])
    return feats, np.concatenate(xs)


def train_sequence_ila(
    dev: AnyDevice,
    queries: int,
    cfg: SequenceILAConfig | None = None,
    *,
    seed: int = 0,
    on_step: Callable[[int, float], None] | None = None,
) -> SequenceILAResult:
    """Spend ``queries`` device rows on (iterative) ILA over sequences, each sent after a reset."""
    cfg = cfg or SequenceILAConfig()
    info = dev.info
    if queries < 64:
        raise UsageError(f"sequence ILA needs at least 64 queries, got {queries}")
    if not info.stateful:
        log.info(
            "%s is not stateful: a tapped-delay inverse still works, with taps it does not need", info.name
        )
    rng = np.random.default_rng(seed)
    lo, hi = info.low_array, info.high_array
    n_first = queries if cfg.rounds <= 1 else max(64, int(queries * cfg.first_fraction))
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    used = 0
    for n in _segments(n_first, cfg.seq_len):
        x = info.uniform(rng, n)
        _reset(dev)
        ys.append(_query(dev, x, "train"))
        xs.append(x)
        used += n
    feats, targets = _pairs(xs, ys, cfg.depth, cfg.lookahead)
    inv = build_tapped_inverse(
        np.concatenate(ys),
        targets,
        lo,
        hi,
        depth=cfg.depth,
        lookahead=cfg.lookahead,
        hidden=cfg.hidden,
        seed=seed,
    )
    log.info("sequence ILA: fitting depth %d on %d pairs", cfg.depth, len(feats))
    curve = fit_regression(inv.model, feats, targets, cfg.fit, seed=seed, on_step=on_step)
    span = hi - lo
    first_ys = list(ys)
    longest = max(len(y) for y in first_ys)
    for r in range(1, cfg.rounds):
        left = queries - used
        n_round = left // (cfg.rounds - r)
        for n in _segments(n_round, min(cfg.seq_len, longest)):
            # A reachable target sequence: (a stretch of) a device answer from the first round.
            pool = [y for y in first_ys if len(y) >= n]
            t = pool[int(rng.integers(len(pool)))]
            start = int(rng.integers(0, len(t) - n + 1))
            t = t[start : start + n]
            x = (
                inv.apply(t)
                + rng.normal(0.0, cfg.jitter, size=(len(t), info.in_dim)).astype(np.float32) * span
            )
            x = np.clip(x, lo, hi).astype(np.float32)
            _reset(dev)
            ys.append(_query(dev, x, "train"))
            xs.append(x)
            used += len(x)
        feats, targets = _pairs(xs, ys, cfg.depth, cfg.lookahead)
        log.info("iterative sequence ILA round %d: refitting on %d pairs", r, len(feats))
        refit = FitConfig(cfg.refit_steps, cfg.fit.batch, cfg.fit.lr * 0.25, cfg.fit.lr_final)
        curve += fit_regression(inv.model, feats, targets, refit, seed=seed + r, on_step=on_step)
    return SequenceILAResult(inv, curve, used, xs, ys)


def evaluate_sequence(
    dev: AnyDevice,
    inverse: Callable[[np.ndarray], np.ndarray],
    *,
    n: int = 4000,
    seed: int = 0,
) -> dict[str, float]:
    """Closed-loop NMSE on a reachable target sequence, and the noise floor.

    Targets are the device's answer t = F(x) to a fresh random input sequence
    after a reset; then the device is reset and driven with M(t). The noise
    floor comes from sending the same sequence twice (reset before each).
    Spends 3n queries (kind ``eval``/``noise`` on a `MeteredDevice`). If the
    device offers ``clean_sequence`` (a simulator), the same is scored
    against its noise-free answers too, spending nothing.
    """
    rng = np.random.default_rng(seed + 7919)
    info = dev.info
    x0 = rng.uniform(info.low_array, info.high_array, size=(n, info.in_dim)).astype(np.float32)
    _reset(dev)
    t = _query(dev, x0, "eval")
    _reset(dev)
    y = _query(dev, inverse(t), "eval")
    _reset(dev)
    again = _query(dev, x0, "noise")
    _reset(dev)
    variance = np.mean((np.asarray(t, np.float64) - again) ** 2, axis=0) / 2.0
    scores = {
        "closed_loop_nmse_db": nmse_db(y, t),
        "noise_floor_db": noise_floor_db(variance, t),
        "eval_queries": 3 * n,
        "noise_std": float(np.sqrt(np.mean(variance))),
    }
    clean = getattr(dev.device if isinstance(dev, MeteredDevice) else dev, "clean_sequence", None)
    if callable(clean):
        t_clean = clean(x0)
        scores["closed_loop_nmse_clean_db"] = nmse_db(clean(inverse(t_clean)), t_clean)
    return scores
