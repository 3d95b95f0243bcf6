"""Measurement: closed-loop error, noise floor, a first probe, gradient diagnostics.

Shared by ``train``, ``eval`` and ``probe``. Evaluation queries are counted
apart from the training budget (kinds ``eval`` and ``noise`` in the query
log) and are themselves budgeted (`EvalBudget`): by default evaluation and
the noise floor together spend at most the training budget, capped at
`EVAL_CAP` queries. What evaluation asked and got is returned as an
`Evaluation` record, which the run directory keeps for the report.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hwloop.device import Device
from hwloop.errors import UsageError
from hwloop.metered import MeteredDevice
from hwloop.metrics import nmse_db, noise_floor_db, noise_variance

log = logging.getLogger(__name__)

InverseFn = Callable[[np.ndarray], np.ndarray]
EVAL_CAP = 4000  # default ceiling on evaluation + noise-floor queries
GRAD_PROBE_REPEATS = 4  # finite differences averaged per probe point
SIGNAL_EVAL_MIN = 8192  # samples of a signal scored at least (4 Welch segments of 2048)...
MIN_SCORED = 64  # ...when the evaluation budget allows; never fewer than this


@dataclass(frozen=True)
class EvalBudget:
    """Device queries evaluation may spend: ``queries`` for the closed loop
    (half fresh reachable targets, half answers to M(t)) and the gradient
    check, ``noise_repeats`` inputs asked twice for the noise floor."""

    queries: int
    noise_repeats: int
    targets: int | None = None  # exactly this many closed-loop targets (the gradient check on top)

    @classmethod
    def for_run(
        cls,
        train_budget: int,
        eval_queries: int | None = None,
        noise_repeats: int | None = None,
        targets: int | None = None,
    ) -> EvalBudget:
        """Defaults: together at most ``min(train_budget, EVAL_CAP)``, a quarter of it for the noise floor.

        ``targets`` (``--eval-targets``) asks for exactly that many closed-loop
        targets instead, with the gradient check's probes spent on top.
        """
        total = min(max(train_budget, 64), EVAL_CAP)
        repeats = noise_repeats if noise_repeats is not None else max(16, min(256, total // 8))
        if repeats < 2:
            raise UsageError(f"--noise-repeats must be at least 2, got {repeats}")
        if targets is not None:
            return cls(2 * int(targets) + 2 * 32 * GRAD_PROBE_REPEATS, int(repeats), int(targets))
        queries = eval_queries if eval_queries is not None else max(32, total - 2 * repeats)
        if queries < 32:
            raise UsageError(f"--eval-queries must be at least 32 (16 targets), got {queries}")
        return cls(int(queries), int(repeats))


@dataclass
class Evaluation:
    """Scores and the closed loop they came from: targets t, inputs M(t), answers F(M(t))."""

    scores: dict[str, float | None]
    targets: np.ndarray
    inputs: np.ndarray
    outputs: np.ndarray
    details: dict = field(default_factory=dict)


def evaluate(
    dev: MeteredDevice,
    inverse: InverseFn,
    budget: EvalBudget,
    *,
    seed: int,
    surrogate: Callable | None = None,
) -> Evaluation:
    """Closed loop on fresh reachable targets and the noise floor; for a
    memoryless device with a surrogate, also the gradient check (`grad_cosine`)."""
    if dev.info.stateful:
        return evaluate_sequence(dev, inverse, budget, seed=seed)
    rng = np.random.default_rng(seed + 7919)
    spent_on_grad, scores = 0, {}
    if surrogate is not None:
        per_point = 2 * dev.info.in_dim * GRAD_PROBE_REPEATS
        points = 32 if budget.targets is not None else min(32, (budget.queries // 5) // per_point)
        if points >= 4:
            scores["grad_cosine"] = round(grad_cosine(dev, surrogate, points=points, seed=seed), 4)
            spent_on_grad = points * per_point
        else:
            scores["grad_cosine"] = None
            log.info("evaluation budget too small for the gradient check: grad_cosine not measured")
    n = budget.targets or max(16, (budget.queries - spent_on_grad) // 2)
    x0 = dev.info.uniform(rng, n)
    t = dev.query(x0, "eval")
    variance = estimate_noise(dev, budget.noise_repeats, rng)
    x = np.asarray(inverse(t), np.float32)
    y = dev.query(x, "eval")
    scores.update(
        closed_loop_nmse_db=nmse_db(y, t),
        noise_floor_db=noise_floor_db(variance, t),
        noise_std=float(np.sqrt(np.mean(variance))),
    )
    clean = getattr(dev.device, "clean", None)
    if callable(clean):
        # Scored against a simulator's noise-free answer: every target reachable, no query spent.
        t_clean = clean(x0)
        scores["closed_loop_nmse_clean_db"] = nmse_db(clean(inverse(t_clean)), t_clean)
    return Evaluation(scores, t, x, y, {"eval_targets": n})


def estimate_noise(dev: MeteredDevice, n: int, rng: np.random.Generator) -> np.ndarray:
    """Per-output noise variance from asking the same n inputs twice."""
    x = dev.info.uniform(rng, n)
    return noise_variance(dev.query(x, "noise"), dev.query(x, "noise"))


def evaluate_sequence(dev: MeteredDevice, inverse: InverseFn, budget: EvalBudget, *, seed: int) -> Evaluation:
    """A device with memory: closed loop on a reachable target sequence.

    Targets are the device's answer t = F(x) to a fresh random input sequence
    after a reset; then the device is reset and driven with M(t). The noise
    floor comes from sending the first ``noise_repeats`` inputs of that
    sequence again after a reset. With ``clean_sequence`` (a simulator), the
    same is scored against noise-free answers too, spending nothing.
    """
    rng = np.random.default_rng(seed + 7919)
    info = dev.info
    n = budget.targets or max(16, budget.queries // 2)
    x0 = info.uniform(rng, n)
    dev.reset()
    t = dev.query(x0, "eval")
    dev.reset()
    x = np.asarray(inverse(t), np.float32)
    y = dev.query(x, "eval")
    dev.reset()
    k = min(n, budget.noise_repeats)
    variance = noise_variance(t[:k], dev.query(x0[:k], "noise"))
    dev.reset()
    scores = {
        "closed_loop_nmse_db": nmse_db(y, t),
        "noise_floor_db": noise_floor_db(variance, t),
        "noise_std": float(np.sqrt(np.mean(variance))),
    }
    clean = getattr(dev.device, "clean_sequence", None)
    if callable(clean):
        t_clean = clean(x0)
        scores["closed_loop_nmse_clean_db"] = nmse_db(clean(inverse(t_clean)), t_clean)
    return Evaluation(scores, t, x, y, {"eval_targets": n})


# ---------------------------------------------------------------- gradient check


def surrogate_vjp(surrogate: Callable, x: np.ndarray, upstream: np.ndarray) -> np.ndarray:
    """u^T dF_hat/dx at each row of x, via ``output_gradients``."""
    import tensorflow as tf

    xt = tf.constant(x, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = surrogate(xt)
    return np.asarray(tape.gradient(y, xt, output_gradients=tf.constant(upstream, tf.float32)))


def device_vjp_fd(
    dev: MeteredDevice, x: np.ndarray, upstream: np.ndarray, *, step: float, repeats: int = GRAD_PROBE_REPEATS
) -> np.ndarray:
    """u^T dF/dx by central differences on the device (2 * in_dim * repeats queries a point)."""
    n, d = x.shape
    rows = []
    for i in range(d):
        e = np.zeros(d, np.float32)
        e[i] = step
        rows += [x + e, x - e]
    probe = np.tile(np.concatenate(rows), (repeats, 1))
    y = dev.query(probe, "eval").reshape(repeats, 2 * d, n, -1).mean(axis=0)
    out = np.empty((n, d), np.float64)
    for i in range(d):
        diff = (y[2 * i].astype(np.float64) - y[2 * i + 1]) / (2 * step)
        out[:, i] = np.sum(diff * upstream, axis=1)
    return out


def grad_cosine(
    dev: MeteredDevice,
    surrogate: Callable,
    *,
    points: int = 32,
    rel_step: float = 0.02,
    repeats: int = GRAD_PROBE_REPEATS,
    seed: int = 0,
) -> float:
    """Is the borrowed gradient any good? Cosine between the surrogate's VJP
    and the device's, estimated by central finite differences of real queries
    at random points (1: the same direction, 0: unrelated).

    Probe points keep one step away from the range edges (and, for I/Q
    pairs, two steps inside the peak circle) so every finite difference stays
    inside the safe region. The queries count as evaluation.
    """
    rng = np.random.default_rng(seed + 4242)
    lo, hi = dev.info.low_array, dev.info.high_array
    step = float(rel_step * np.min(hi - lo))
    x = rng.uniform(lo + step, hi - step, size=(points, dev.info.in_dim)).astype(np.float32)
    env = dev.info.envelope
    if env is not None:  # inside the disc by more than a step, so x +- step stays under the peak
        x = env.sample(rng, x)
        for i, q in env.pairs:
            x[:, [i, q]] *= max(0.0, 1.0 - 2.0 * step / env.peak)
        x = np.clip(x, lo + step, hi - step)
    u = rng.normal(size=(points, dev.info.out_dim)).astype(np.float32)
    g_hat = surrogate_vjp(surrogate, x, u).ravel().astype(np.float64)
    g_dev = device_vjp_fd(dev, x, u, step=step, repeats=repeats).ravel()
    denom = np.linalg.norm(g_hat) * np.linalg.norm(g_dev)
    return float(np.dot(g_hat, g_dev) / denom) if denom > 0 else 0.0


# ---------------------------------------------------------------- first look


def probe_device(dev: Device, *, points: int = 11, repeats: int = 64, seed: int = 0) -> dict:
    """Sweep each input across its safe range (others at mid-range), then
    ask ``repeats`` random inputs twice to estimate the noise per output."""
    info = dev.info
    lo, hi = info.low_array, info.high_array
    mid = (lo + hi) / 2
    sweeps = []
    for i in range(info.in_dim):
        x = np.tile(mid, (points, 1)).astype(np.float32)
        x[:, i] = np.linspace(lo[i], hi[i], points, dtype=np.float32)
        x = np.clip(x, lo, hi)
        if info.envelope is not None:  # an I/Q input is swept up to its peak magnitude, no further
            x, _ = info.envelope.clip(x)
            if info.envelope.rms is not None and info.envelope.rms_of(x) > info.envelope.rms:
                x = (x * (info.envelope.rms / info.envelope.rms_of(x) * (1 - 1e-6))).astype(np.float32)
        if info.stateful:
            dev.reset()
        y = dev.query(x)
        sweeps.append({"input": i, "x": x[:, i].tolist(), "y": y.tolist()})
    rng = np.random.default_rng(seed)
    xr = info.uniform(rng, repeats)
    var = noise_variance(dev.query(xr), dev.query(xr))
    report = {"info": info.to_dict(), "sweeps": sweeps, "noise_std": np.sqrt(var).tolist()}
    extra = getattr(dev, "probe_report", None)  # a device's own measurements (a bench: delay, gain, ...)
    return {**report, **extra()} if callable(extra) else report


# ---------------------------------------------------------------- a signal to linearise


def signal_eval_limit(train_budget: int, asked: int | None = None) -> int:
    """Queries a run's signal evaluation may spend: ``asked`` (``--eval-queries``), else a tenth
    of the training budget (at every budget), at most two `SIGNAL_EVAL_MIN` stretches and the
    noise repeats. A short stretch is scored, its figures' standard errors saying how short."""
    if asked is not None:
        return int(asked)
    return int(min(train_budget // 10, 2 * SIGNAL_EVAL_MIN + 256))


def _latency(inverse: InverseFn) -> int:
    """Leading taps of a predistorter (``apply`` of an object with ``latency``), else 0."""
    return int(getattr(getattr(inverse, "__self__", inverse), "latency", 0) or 0)


def evaluate_signal(
    dev: MeteredDevice,
    inverse: InverseFn,
    targets: np.ndarray,
    budget: EvalBudget,
    *,
    fs: float,
    bw: float,
    seed: int,
    limit: int | None = None,
    reference: str = "measure",
    origin: tuple[Any, int] | None = None,
) -> Evaluation:
    """DPD figures on a stretch of the target signal: the drive M(t) after a reset, and, for
    comparison, the bare signal sent at the same average drive power (the one no-DPD reference).

    The figures are `hwloop.dpd.scoring.signal_scores`'s: ``acpr_dbc`` (worse
    adjacent channel, read through the error against the targets plus the
    targets' own share, ``acpr_floor_dbc``, read on all of ``targets``),
    ``aclr_db``, ``evm_db``, ``nmse_steady_db`` (without the
    cold start after the reset) and ``nmse_db`` (with it), each with its
    standard error, against the targets themselves (gain 1: the targets are in
    output units); ``drive_peak`` and ``drive_gain_max`` of the drive;
    ``*_no_dpd`` of the bare signal, against the least-squares gain, as a DPD
    engineer compares. Without ``limit`` it spends ``2 n`` queries for a
    stretch of n = min(len(targets), max(queries / 2, SIGNAL_EVAL_MIN))
    samples, plus the noise repeats. With ``limit`` (a run's,
    `signal_eval_limit`) everything together stays within it, the two
    stretches and the noise repeats alike; a limit too small for two
    stretches of `MIN_SCORED` samples scores the predistorter alone (said in
    ``no_dpd_reference``), and ``reference="skip"`` never measures the
    reference. A predistorter with leading taps gets the targets after the
    stretch too, as it would deployed. ``origin`` (an `OFDMSpec` and the
    sample of that generated signal the targets start at) adds EVM by
    demodulation (`hwloop.dpd.demod`).
    """
    from hwloop.dpd.scoring import signal_scores

    t_all = np.asarray(targets, np.float32)
    measure_ref = reference != "skip"
    source = "measured: the bare signal at the drive's average power" if measure_ref else "skipped"
    if limit is None:
        n = min(len(t_all), max(SIGNAL_EVAL_MIN, budget.queries // 2))
        k = min(n, budget.noise_repeats)
    else:
        k = int(min(budget.noise_repeats, max(16, limit // 20)))
        if measure_ref and (limit - k) // 2 < MIN_SCORED:
            measure_ref = False
            source = f"skipped: {limit} evaluation queries cannot hold two stretches of {MIN_SCORED} samples"
        n = min(len(t_all), (limit - k) // (2 if measure_ref else 1))
        if n < MIN_SCORED:
            raise UsageError(
                f"signal scoring has {limit} queries (a tenth of the training budget); it needs at least "
                f"{MIN_SCORED + k}: give --eval-queries"
            )
    k = min(k, n)
    start = int(np.random.default_rng(seed + 7919).integers(0, len(t_all) - n + 1))
    t = t_all[start : start + n]
    look = _latency(inverse)
    dev.reset()
    x = dev.safe(np.asarray(inverse(t_all[start : start + n + look]), np.float32)[:n])
    y = dev.query(x, "eval")
    scale = np.sqrt(
        np.mean(np.sum(x.astype(np.float64) ** 2, 1))
        / max(np.mean(np.sum(t.astype(np.float64) ** 2, 1)), 1e-30)
    )
    y_none = None
    if measure_ref:
        dev.reset()
        y_none = dev.query(dev.safe((t * scale).astype(np.float32)), "eval")
    dev.reset()
    variance = noise_variance(y[:k], dev.query(x[:k], "noise"))
    dev.reset()
    at = None if origin is None else (origin[0], origin[1] + start)
    figures, details = signal_scores(t, x, y, y_none, fs=fs, bw=bw, origin=at, signal=t_all)
    scores: dict[str, float | None] = {
        "closed_loop_nmse_db": nmse_db(y, t),
        "noise_floor_db": noise_floor_db(variance, t),
        "noise_std": float(np.sqrt(np.mean(variance))),
        **figures,
    }
    details.update(
        signal_stretch=[start, start + n],
        eval_samples=n,
        fs=fs,
        bw=bw,
        no_dpd_reference=source,
        no_dpd_drive_scale=round(float(scale), 6),
        eval_latency_samples=look,
    )
    return Evaluation(scores, t, x, y, {**details, "outputs_no_dpd": y_none})
