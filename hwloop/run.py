"""One training run: open the device, log, train, evaluate, save the run directory.

Run directory (CONTRACT): ``config.toml`` (everything needed to repeat the
run), ``queries.sqlite`` (the query log), ``inverse.keras`` (the trained
inverse), ``metrics.json``; ``report.png`` comes from ``hwloop report``.

A run killed at any moment resumes with ``resume=True``: the strategy runs
again from the same seed, which makes it propose the same inputs, and the
`MeteredDevice` answers them from the log until the log is exhausted, so no
logged measurement is paid for twice.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from hwloop.config import read_toml, write_toml
from hwloop.data import Pairs, load_pairs
from hwloop.device import Device
from hwloop.errors import RunDirError, UsageError
from hwloop.metered import MeteredDevice, ProgressFn
from hwloop.methods import STRATEGIES
from hwloop.metrics import db_or_none
from hwloop.querylog import QueryLog
from hwloop.registry import open_device

log = logging.getLogger(__name__)

DEFAULT_QUERIES = 10_000
StepFn = Callable[[int, float], None]


@dataclass
class TrainOptions:
    """Settings of a run beyond device, strategy, budget and seed."""

    eval_targets: int = 2000
    noise_repeats: int = 256
    fit_steps: int = 8000
    strict_bounds: bool = False
    memory_depth: int = 5  # taps of the inverse for a stateful device
    max_rate: float | None = None  # device rows per second, None: as fast as it answers
    from_log: str | None = None  # earlier run whose logged pairs join the training
    from_data: str | None = None  # NPZ/CSV file of measured pairs that join the training
    mask: list[list[int]] | None = None  # device connections (in_dim, out_dim); 0: none, stays 0
    hold: list[int] | None = None  # inverse outputs (device inputs) to keep exactly as they are
    hold_mechanism: str = "masked_loss"  # or "heads" for an inverse built with per-output heads
    init_from: str | None = None  # run whose inverse is recalibrated (needed by hold)


@dataclass
class TrainResult:
    """What `train` returns: metrics, where the run lives, and the inverse."""

    metrics: dict[str, Any]
    run_dir: Path
    inverse: Any = field(repr=False)


@dataclass(frozen=True)
class RunPlan:
    """Everything that determines a run; written to config.toml, read back on resume."""

    device: str
    strategy: str
    queries: int
    seed: int
    options: TrainOptions


def default_run_dir(name: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{stamp}-{name}"


def read_plan(run: Path) -> RunPlan:
    """The plan a run directory was started with (for --resume)."""
    path = run / "config.toml"
    if not run.is_dir():
        raise RunDirError(f"run directory {run} does not exist")
    if not path.is_file():
        raise RunDirError(f"{run} holds no config.toml: not a run directory, nothing to resume")
    cfg = read_toml(path)
    try:
        known = {f.name for f in fields(TrainOptions)}
        opts = TrainOptions(**{k: v for k, v in cfg.get("options", {}).items() if k in known})
        return RunPlan(str(cfg["device"]), str(cfg["strategy"]), int(cfg["queries"]), int(cfg["seed"]), opts)
    except (KeyError, TypeError, ValueError) as exc:
        raise RunDirError(f"{path}: incomplete or corrupted ({exc})") from None


def _write_plan(run: Path, plan: RunPlan, info: dict) -> None:
    opts = {k: v for k, v in asdict(plan.options).items() if v is not None}
    write_toml(
        run / "config.toml",
        {
            "device": plan.device,
            "strategy": plan.strategy,
            "queries": plan.queries,
            "seed": plan.seed,
            "options": opts,
            "device_info": info,
        },
    )


def train(
    device: str | Device | None,
    strategy: str = "auto",
    queries: int = DEFAULT_QUERIES,
    seed: int = 0,
    run_dir: str | Path | None = None,
    *,
    options: TrainOptions | None = None,
    progress: ProgressFn | None = None,
    on_fit_step: StepFn | None = None,
    resume: bool = False,
    mask: Any = None,
    hold: list[int] | tuple[int, ...] | None = None,
    init_from: str | Path | None = None,
) -> TrainResult:
    """Train an inverse of ``device`` with at most ``queries`` training queries.

    ``resume=True`` continues the run in ``run_dir`` with the plan in its
    config.toml (``device`` may name a new URI for the same device, e.g. a
    new pty). ``device=None`` trains offline from ``options.from_log`` or
    ``options.from_data``. ``mask`` (in_dim, out_dim) of 0/1 marks the
    connections the device has (the surrogate keeps the others exactly zero,
    the inverse reads the mask backwards); ``hold`` keeps the listed outputs
    of the inverse from ``init_from`` exactly as they were while the others
    are recalibrated.
    """
    if resume:
        if run_dir is None:
            raise UsageError("--resume needs the run directory (--out DIR)")
        plan = read_plan(Path(run_dir))
        if device is not None:
            plan = RunPlan(
                device if isinstance(device, str) else plan.device,
                plan.strategy,
                plan.queries,
                plan.seed,
                plan.options,
            )
            dev_obj = device
        else:
            dev_obj = plan.device
        if not dev_obj:
            raise UsageError(f"{run_dir} was trained offline: nothing to resume (start a new --out)")
    else:
        opts = options or TrainOptions()
        if mask is not None or hold is not None or init_from is not None:
            import numpy as np

            opts = TrainOptions(
                **{
                    **asdict(opts),
                    **({"mask": np.asarray(mask).astype(int).tolist()} if mask is not None else {}),
                    **({"hold": [int(h) for h in hold]} if hold is not None else {}),
                    **({"init_from": str(init_from)} if init_from is not None else {}),
                }
            )
        if strategy not in STRATEGIES:
            raise UsageError(f"unknown strategy {strategy!r} (choose from {', '.join(STRATEGIES)})")
        if queries < 16:
            raise UsageError(f"--queries must be at least 16, got {queries}")
        if opts.max_rate is not None and opts.max_rate <= 0:
            raise UsageError(f"--max-rate must be positive, got {opts.max_rate}")
        if run_dir is not None and (Path(run_dir) / "queries.sqlite").exists():
            raise UsageError(f"{run_dir} already holds a run; choose another --out or add --resume")
        named = getattr(device, "uri", None)  # a device object may name its URI (e.g. a farm unit)
        uri = device if isinstance(device, str) or device is None else named or f"<{type(device).__name__}>"
        plan = RunPlan(uri or "", strategy, queries, seed, opts)
        dev_obj = device
    prior = load_pairs(plan.options.from_log, plan.options.from_data)
    if dev_obj is None or dev_obj == "":
        if prior is None:
            raise UsageError("give --device, or --from-log/--from-data to train without one")
        return _train_offline(plan, prior, run_dir, on_fit_step)
    if isinstance(dev_obj, str) and dev_obj.startswith("<"):
        raise UsageError(f"this run used a Python device object ({dev_obj}); pass the device to resume it")
    dev = open_device(dev_obj)
    try:
        return _train_on(dev, plan, prior, run_dir, progress, on_fit_step, resume)
    finally:
        if isinstance(dev_obj, str):
            dev.close()


def _check_prior(prior: Pairs | None, dev: Device) -> tuple | None:
    if prior is None:
        return None
    if (prior.in_dim, prior.out_dim) != (dev.info.in_dim, dev.info.out_dim):
        raise UsageError(
            f"{prior.source} holds {prior.in_dim}->{prior.out_dim} pairs, "
            f"the device is {dev.info.in_dim}->{dev.info.out_dim}"
        )
    lo, hi = dev.info.low_array, dev.info.high_array
    inside = ((prior.x >= lo) & (prior.x <= hi)).all(axis=1)
    if not inside.all():
        log.warning(
            "%d prior pairs lie outside the device's safe range and are left out", int((~inside).sum())
        )
    return prior.x[inside], prior.y[inside]


def _train_on(
    dev: Device,
    plan: RunPlan,
    prior: Pairs | None,
    run_dir: str | Path | None,
    progress: ProgressFn | None,
    on_fit_step: StepFn | None,
    resume: bool,
) -> TrainResult:
    import keras

    from hwloop.evaluate import evaluate
    from hwloop.inverse import Inverse
    from hwloop.methods import run_strategy
    from hwloop.models import with_clip

    opts = plan.options
    t_start = time.perf_counter()
    run = Path(run_dir) if run_dir is not None else default_run_dir(dev.info.name)
    run.mkdir(parents=True, exist_ok=True)
    prior_xy = _check_prior(prior, dev)
    _write_plan(run, plan, dev.info.to_dict())
    keras.utils.set_random_seed(plan.seed)
    qlog = QueryLog(run / "queries.sqlite", dev.info.in_dim, dev.info.out_dim)
    try:
        metered = MeteredDevice(
            dev,
            qlog,
            budget=plan.queries,
            strict_bounds=opts.strict_bounds,
            progress=progress,
            max_rate=opts.max_rate,
            replay=resume,
        )
        log.info(
            "training %s on %s with %d queries%s",
            plan.strategy,
            dev.info.name,
            plan.queries,
            " (resuming)" if resume else "",
        )
        if dev.info.stateful:
            outcome, inverse, scores = _train_with_memory(
                metered, plan.strategy, opts, plan.seed, run, on_fit_step
            )
        else:
            mask = _check_mask(opts.mask, dev.info)
            if opts.hold:
                outcome = _recalibrate(metered, plan, on_fit_step)
            else:
                outcome = run_strategy(
                    plan.strategy,
                    metered,
                    fit_steps=opts.fit_steps,
                    seed=plan.seed,
                    prior=prior_xy,
                    mask=mask,
                    on_step=on_fit_step,
                )
            inverse = Inverse(with_clip(outcome.inverse, dev.info.low, dev.info.high), dev.info.to_dict())
            inverse.save(run)
            scores = evaluate(
                metered,
                inverse.apply,
                n_targets=opts.eval_targets,
                n_noise=opts.noise_repeats,
                seed=plan.seed,
            )
        if outcome.surrogate is not None and not dev.info.stateful:
            from hwloop.diagnostics import grad_cosine

            scores["grad_cosine"] = round(grad_cosine(metered, outcome.surrogate, seed=plan.seed), 4)
        if outcome.surrogate is not None:
            outcome.surrogate.save(run / "surrogate.keras")
    finally:
        qlog.close()
    metrics = {
        "device": plan.device,
        "strategy": plan.strategy,
        "queries_used": metered.used["train"],
        "eval_queries": metered.used["eval"] + metered.used["noise"],
        **{k: db_or_none(v) if k.endswith("_db") else v for k, v in scores.items()},
        "clipped_values": metered.clipped_values,
        "device_s": round(metered.device_s, 3),
        "device_rows": metered.device_rows,
        "replayed_rows": metered.replayed_rows,
        "prior_pairs": 0 if prior_xy is None else len(prior_xy[0]),
        "wall_s": round(time.perf_counter() - t_start, 3),
        **outcome.details,
        "train_curve": [round(v, 8) for v in outcome.curve],
        "run_dir": str(run),
        "seed": plan.seed,
    }
    (run / "metrics.json").write_text(json.dumps(metrics, indent=2))
    log.info(
        "closed-loop NMSE %.1f dB, noise floor %.1f dB",
        scores["closed_loop_nmse_db"],
        scores["noise_floor_db"],
    )
    return TrainResult(metrics, run, inverse)


def _check_mask(mask: list | None, info: Any) -> Any:
    if mask is None:
        return None
    import numpy as np

    arr = np.asarray(mask, dtype=np.float32)
    if arr.shape != (info.in_dim, info.out_dim) or not np.isin(arr, (0.0, 1.0)).all():
        raise UsageError(
            f"a connection mask for this device is a ({info.in_dim}, {info.out_dim}) array of 0/1, "
            f"got shape {arr.shape}"
        )
    return arr


def _recalibrate(metered: MeteredDevice, plan: RunPlan, on_fit_step: StepFn | None) -> Any:
    """Refit a calibrated inverse on fresh queries while its held outputs stay exactly put."""
    import keras
    import numpy as np

    from hwloop.hold import retrain_with_hold
    from hwloop.inverse import load_inverse
    from hwloop.methods import Outcome
    from hwloop.models import FitConfig

    opts = plan.options
    if not opts.init_from:
        raise UsageError(
            "--hold needs --init-from RUN: the calibrated inverse whose held outputs must not move"
        )
    if plan.strategy not in ("auto", "ila", "iila"):
        raise UsageError(f"--hold recalibrates by inverse modelling; strategy {plan.strategy!r} cannot hold")
    base = load_inverse(opts.init_from)
    if (base.in_dim, base.out_dim) != (metered.info.in_dim, metered.info.out_dim):
        raise UsageError(
            f"{opts.init_from} inverts a {base.in_dim}->{base.out_dim} device, "
            f"this one is {metered.info.in_dim}->{metered.info.out_dim}"
        )
    inner = next(layer for layer in base.model.layers if isinstance(layer, keras.Model))
    rng = np.random.default_rng(plan.seed)
    x = metered.info.uniform(rng, metered.remaining)
    y = metered.query(x, "train")
    res = retrain_with_hold(
        inner,
        y,
        x,
        opts.hold,
        mechanism=opts.hold_mechanism,
        cfg=FitConfig(steps=opts.fit_steps),
        seed=plan.seed,
    )
    return Outcome(
        inner,
        res.curve,
        details={
            "held_outputs": list(res.held),
            "max_held_change": res.max_held_change,
            "init_from": opts.init_from,
        },
    )


def _train_offline(
    plan: RunPlan, prior: Pairs, run_dir: str | Path | None, on_fit_step: StepFn | None
) -> TrainResult:
    """No device: fit a surrogate and an inverse on measured pairs, the inverse
    by ILA and then (unless the strategy is plain ILA) through the surrogate.
    Closed-loop error can only be predicted, by the surrogate, on held-out pairs."""
    import keras
    import numpy as np

    from hwloop.device import DeviceInfo
    from hwloop.inverse import Inverse
    from hwloop.methods.surrogate import JointTrainer, fit_surrogate, pretrain_through_surrogate
    from hwloop.metrics import nmse_db
    from hwloop.models import FitConfig, build_regressor, fit_regression, with_clip

    t_start = time.perf_counter()
    opts = plan.options
    low, high = prior.range()
    info = DeviceInfo(f"offline:{prior.name}", prior.in_dim, prior.out_dim, 1024, low, high)
    run = Path(run_dir) if run_dir is not None else default_run_dir(f"offline-{prior.name}")
    run.mkdir(parents=True, exist_ok=True)
    _write_plan(run, RunPlan("", plan.strategy, 0, plan.seed, opts), info.to_dict())
    keras.utils.set_random_seed(plan.seed)
    rng = np.random.default_rng(plan.seed)
    order = rng.permutation(len(prior.x))
    n_hold = max(8, len(order) // 10)
    hold, fit_idx = order[:n_hold], order[n_hold:]
    x, y = prior.x[fit_idx], prior.y[fit_idx]
    fit = FitConfig(steps=opts.fit_steps)
    model = build_regressor(y, x, seed=plan.seed, name="inverse")
    curve = fit_regression(model, y, x, fit, seed=plan.seed, on_step=on_fit_step)
    surrogate, sur_curve = fit_surrogate(x, y, fit, seed=plan.seed, on_step=on_fit_step)
    if plan.strategy != "ila":
        trainer = JointTrainer(
            model, surrogate, info.low_array, info.high_array, inverse_lr=3e-4, seed=plan.seed
        )
        curve += pretrain_through_surrogate(trainer, opts.fit_steps // 2, 256, on_fit_step)
    inverse = Inverse(with_clip(model, low, high), info.to_dict())
    inverse.save(run)
    surrogate.save(run / "surrogate.keras")
    with QueryLog(run / "queries.sqlite", info.in_dim, info.out_dim) as qlog:
        for start in range(0, len(prior.x), 1024):  # the pairs this run learned from, for --from-log
            qlog.append(prior.x[start : start + 1024], prior.y[start : start + 1024], "train")
    t_hold = prior.y[hold]
    predicted = np.asarray(surrogate(inverse.apply(t_hold)))
    metrics = {
        "device": None,
        "strategy": plan.strategy,
        "queries_used": 0,
        "eval_queries": 0,
        "closed_loop_nmse_db": None,
        "noise_floor_db": None,
        "surrogate_closed_loop_nmse_db": db_or_none(nmse_db(predicted, t_hold)),
        "surrogate_holdout_nmse_db": db_or_none(nmse_db(np.asarray(surrogate(prior.x[hold])), t_hold)),
        "prior_pairs": len(prior.x),
        "prior_source": prior.source,
        "wall_s": round(time.perf_counter() - t_start, 3),
        "train_curve": [round(v, 8) for v in curve + sur_curve],
        "run_dir": str(run),
        "seed": plan.seed,
    }
    (run / "metrics.json").write_text(json.dumps(metrics, indent=2))
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
