"""One training run: open the device, log, train, evaluate, save the run directory.

Run directory (CONTRACT): ``config.toml`` (everything needed to repeat the
run), ``queries.sqlite`` (the query log), ``inverse.keras`` (the trained
inverse), ``metrics.json``; ``report.png`` comes from ``hwloop report``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwloop.config import write_toml
from hwloop.device import Device
from hwloop.errors import UsageError
from hwloop.metered import MeteredDevice, ProgressFn
from hwloop.methods import STRATEGIES
from hwloop.metrics import db_or_none
from hwloop.querylog import QueryLog
from hwloop.registry import open_device

log = logging.getLogger(__name__)

DEFAULT_QUERIES = 10_000


@dataclass
class TrainOptions:
    """Settings of a run beyond device, strategy, budget and seed."""

    eval_targets: int = 2000
    noise_repeats: int = 256
    fit_steps: int = 8000
    strict_bounds: bool = False
    memory_depth: int = 5  # taps of the inverse for a stateful device


@dataclass
class TrainResult:
    """What `train` returns: metrics, where the run lives, and the inverse."""

    metrics: dict[str, Any]
    run_dir: Path
    inverse: Any = field(repr=False)


def default_run_dir(device_name: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{stamp}-{device_name}"


def train(
    device: str | Device,
    strategy: str = "auto",
    queries: int = DEFAULT_QUERIES,
    seed: int = 0,
    run_dir: str | Path | None = None,
    *,
    options: TrainOptions | None = None,
    progress: ProgressFn | None = None,
    on_fit_step: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Train an inverse of ``device`` with at most ``queries`` training queries."""
    opts = options or TrainOptions()
    if strategy not in STRATEGIES:
        raise UsageError(f"unknown strategy {strategy!r} (choose from {', '.join(STRATEGIES)})")
    if queries < 16:
        raise UsageError(f"--queries must be at least 16, got {queries}")
    owned = isinstance(device, str)
    uri = device if isinstance(device, str) else f"<{type(device).__name__}>"
    dev = open_device(device)
    try:
        return _train_on(dev, uri, strategy, queries, seed, run_dir, opts, progress, on_fit_step)
    finally:
        if owned:
            dev.close()


def _train_on(
    dev: Device,
    uri: str,
    strategy: str,
    queries: int,
    seed: int,
    run_dir: str | Path | None,
    opts: TrainOptions,
    progress: ProgressFn | None,
    on_fit_step: Callable[[int, float], None] | None,
) -> TrainResult:
    import keras

    from hwloop.evaluate import evaluate
    from hwloop.inverse import Inverse
    from hwloop.methods import run_strategy
    from hwloop.models import with_clip

    t_start = time.perf_counter()
    run = Path(run_dir) if run_dir is not None else default_run_dir(dev.info.name)
    run.mkdir(parents=True, exist_ok=True)
    config = {
        "device": uri,
        "strategy": strategy,
        "queries": queries,
        "seed": seed,
        "options": vars(opts),
        "device_info": dev.info.to_dict(),
    }
    write_toml(run / "config.toml", config)
    keras.utils.set_random_seed(seed)
    qlog = QueryLog(run / "queries.sqlite", dev.info.in_dim, dev.info.out_dim)
    try:
        metered = MeteredDevice(
            dev, qlog, budget=queries, strict_bounds=opts.strict_bounds, progress=progress
        )
        log.info("training %s on %s with %d queries", strategy, dev.info.name, queries)
        if dev.info.stateful:
            outcome, inverse, scores = _train_with_memory(metered, strategy, opts, seed, run, on_fit_step)
        else:
            outcome = run_strategy(
                strategy, metered, fit_steps=opts.fit_steps, seed=seed, on_step=on_fit_step
            )
            inverse = Inverse(with_clip(outcome.inverse, dev.info.low, dev.info.high), dev.info.to_dict())
            inverse.save(run)
            scores = evaluate(
                metered, inverse.apply, n_targets=opts.eval_targets, n_noise=opts.noise_repeats, seed=seed
            )
        if outcome.surrogate is not None and not dev.info.stateful:
            from hwloop.diagnostics import grad_cosine

            scores["grad_cosine"] = round(grad_cosine(metered, outcome.surrogate, seed=seed), 4)
    finally:
        qlog.close()
    metrics = {
        "device": uri,
        "strategy": strategy,
        "queries_used": metered.used["train"],
        "eval_queries": metered.used["eval"] + metered.used["noise"],
        **{k: db_or_none(v) if k.endswith("_db") else v for k, v in scores.items()},
        "clipped_values": metered.clipped_values,
        "device_s": round(metered.device_s, 3),
        "wall_s": round(time.perf_counter() - t_start, 3),
        **outcome.details,
        "train_curve": [round(v, 8) for v in outcome.curve],
        "run_dir": str(run),
        "seed": seed,
    }
    (run / "metrics.json").write_text(json.dumps(metrics, indent=2))
    log.info(
        "closed-loop NMSE %.1f dB, noise floor %.1f dB",
        scores["closed_loop_nmse_db"],
        scores["noise_floor_db"],
    )
    return TrainResult(metrics, run, inverse)


def _train_with_memory(
    metered: MeteredDevice,
    strategy: str,
    opts: TrainOptions,
    seed: int,
    run: Path,
    on_fit_step: Callable[[int, float], None] | None,
) -> tuple[Any, Any, dict]:
    """A device with memory: a tapped-delay inverse trained by ILA on sequences,
    evaluated in closed loop on a reachable target sequence."""
    from hwloop.inverse import save_model
    from hwloop.memory import SequenceILAConfig, evaluate_sequence, train_sequence_ila
    from hwloop.methods import Outcome
    from hwloop.models import FitConfig

    if strategy not in ("auto", "ila", "iila"):
        raise UsageError(
            f"strategy {strategy!r} does not handle devices with memory yet: use auto, ila or iila"
        )
    cfg = SequenceILAConfig(
        depth=opts.memory_depth,
        rounds=1 if strategy == "ila" else 2,
        fit=FitConfig(steps=2 * opts.fit_steps),
        refit_steps=max(1, opts.fit_steps // 2),
    )
    res = train_sequence_ila(metered, metered.remaining, cfg, seed=seed, on_step=on_fit_step)
    memory = {"depth": cfg.depth, "lookahead": cfg.lookahead}
    save_model(run, res.inverse.model, metered.info.to_dict(), memory)
    scores = evaluate_sequence(metered, res.inverse.apply, n=opts.eval_targets, seed=seed)
    scores.pop("eval_queries", None)
    return Outcome(res.inverse.model, res.curve, details={"memory_depth": cfg.depth}), res.inverse, scores
