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
SIGNAL_EVAL_MIN = 8192  # samples of a signal scored at least (4 Welch segments of 2048)


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
    of the training budget, at least 1,024 and at most two `SIGNAL_EVAL_MIN` stretches and the
    noise repeats."""
    if asked is not None:
        return int(asked)
    return int(np.clip(train_budget // 10, 1024, 2 * SIGNAL_EVAL_MIN + 256))


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
    prior: dict | None = None,
    origin: tuple[Any, int] | None = None,
) -> Evaluation:
    """DPD figures on a stretch of the target signal: the drive M(t) after a reset, and,
    for comparison, the signal sent without predistortion at the same average drive power.

    ``acpr_dbc`` (worse adjacent channel), ``evm_db`` and ``nmse_db`` score the
    output against the targets themselves (gain 1: the targets are in output
    units), ``drive_peak`` and ``drive_gain_max`` the drive; ``*_no_dpd``
    score the undistorted drive against the least-squares gain, as a DPD
    engineer compares. Without ``limit`` it spends ``2 n`` queries for a
    stretch of n = min(len(targets), max(queries / 2, SIGNAL_EVAL_MIN))
    samples, plus the noise repeats. With ``limit`` (a run's, `signal_eval_limit`)
    everything together stays within it: the no-DPD reference is then measured
    only if both stretches fit, else taken from ``prior`` (figures measured
    during training) when given; ``reference="skip"`` never measures it.
    ``origin`` (an `OFDMSpec` and the sample of that generated signal the
    targets start at) adds EVM by demodulation (`hwloop.dpd.demod`):
    ``evm_demod_db`` of the output against the targets' subcarriers, and
    ``signal_evm_demod_db``, the targets' own against the QAM data.
    """
    from hwloop.dpd.metrics import aclr_db, dpd_report
    from hwloop.dpd.signals import cplx

    t_all = np.asarray(targets, np.float32)
    if limit is None:
        n = min(len(t_all), max(SIGNAL_EVAL_MIN, budget.queries // 2))
        k, measure_ref = min(n, budget.noise_repeats), reference != "skip"
    else:
        k = int(min(budget.noise_repeats, max(16, limit // 20)))
        both = reference == "measure" and (prior is None or limit - k >= 2 * SIGNAL_EVAL_MIN)
        measure_ref = both
        n = min(len(t_all), (limit - k) // (2 if both else 1))
    k = min(k, n)
    start = int(np.random.default_rng(seed + 7919).integers(0, len(t_all) - n + 1))
    t = t_all[start : start + n]
    dev.reset()
    x = dev.safe(np.asarray(inverse(t), np.float32))
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
    with_dpd = dpd_report(y, t, fs=fs, bw=bw, gain=1.0)
    xc, tc = cplx(x), cplx(t)
    big = np.abs(tc) >= 0.05 * np.abs(tc).max()
    scores: dict[str, float | None] = {
        "closed_loop_nmse_db": nmse_db(y, t),
        "noise_floor_db": noise_floor_db(variance, t),
        "noise_std": float(np.sqrt(np.mean(variance))),
        **with_dpd,
        "aclr_db": round(aclr_db(y, fs, bw), 3),
        "drive_peak": round(float(np.abs(xc).max()), 4),
        "drive_gain_max": round(float(np.max(np.abs(xc[big]) / np.abs(tc[big]))), 4),
    }
    if origin is not None:
        from hwloop.dpd.demod import demod_evm_db

        spec, at = origin[0], origin[1] + start
        for key, got in (
            ("evm_demod_db", demod_evm_db(y, spec, at, t)),
            ("signal_evm_demod_db", demod_evm_db(t, spec, at)),
            ("evm_demod_db_no_dpd", None if y_none is None else demod_evm_db(y_none, spec, at, t)),
        ):
            if got is not None:
                scores[key] = round(got[0], 3)
    if y_none is not None:
        without = dpd_report(y_none, t, fs=fs, bw=bw)
        scores.update({f"{key}_no_dpd": v for key, v in without.items()})
        source = "measured"
    elif prior is not None and reference != "skip":
        keys = ("acpr_dbc", "evm_db", "nmse_db")
        scores.update({f"{key}_no_dpd": prior[key] for key in keys if key in prior})
        source = "training round 1"
    else:
        source = "skipped"
    details = {
        "signal_stretch": [start, start + n],
        "eval_samples": n,
        "fs": fs,
        "bw": bw,
        "no_dpd_reference": source,
        "no_dpd_drive_scale": round(float(scale), 6),
    }
    return Evaluation(scores, t, x, y, {**details, "outputs_no_dpd": y_none})
