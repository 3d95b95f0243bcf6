"""One training run, orchestrated: open, plan, meter, strategy, evaluate, save.

Everything a run holds on disk is `hwloop.rundir`'s; how the budget is spent
is a strategy's (`hwloop.strategies`); how the result is measured is
`hwloop.evaluate`'s. A run killed at any moment resumes with ``resume=True``:
the strategy runs again from the same seed, which makes it propose the same
inputs, and the `MeteredDevice` answers them from the log until the log is
exhausted, so no logged measurement is paid for twice. ``resume=True`` on a
directory that holds no run yet (missing, empty, no config.toml) starts it,
so the same command line works after a kill at any moment.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwloop import progress as phases
from hwloop.config import quick, quick_plan
from hwloop.data import Pairs, load_pairs
from hwloop.device import Device, DeviceInfo
from hwloop.dpd.path import run_signal, run_signal_path
from hwloop.errors import RunDirError, UsageError, spelled
from hwloop.inverses.package import package_inverse
from hwloop.metered import MeteredDevice, ProgressFn
from hwloop.metrics import db_or_none
from hwloop.querylog import QueryLog
from hwloop.registry import open_device
from hwloop.rundir import DEFAULT_QUERIES, SURROGATE_FILE, RunDir, RunPlan, TrainOptions, option_fields
from hwloop.strategies.base import Context, Outcome, Settings
from hwloop.strategies.registry import PYTHON, check_options, choose, run_strategy

log = logging.getLogger(__name__)

StepFn = Callable[[int, float], None]
__all__ = ["DEFAULT_QUERIES", "TrainOptions", "TrainResult", "train"]


@dataclass
class TrainResult:
    """What `train` returns: metrics, where the run lives, and the inverse."""

    metrics: dict[str, Any]
    run_dir: Path
    inverse: Any = field(repr=False)


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
    given: dict[str, Any] | None = None,
    given_from: Mapping[str, str] | None = None,
) -> TrainResult:
    """Train an inverse of ``device`` with at most ``queries`` training queries.

    ``resume=True`` continues the run in ``run_dir`` with the plan in its
    config.toml (``device`` may name a new URI for the same device, e.g. a new
    pty); settings in ``given`` (or ``mask``/``hold``/``init_from``) that
    differ from the recorded ones are a usage error. ``device=None`` trains
    offline from ``options.from_log`` or ``options.from_data``. ``mask``
    (in_dim, out_dim) of 0/1 marks the connections the device has;
    ``init_from`` calibrates a new unit from an earlier run, and with ``hold``
    keeps the listed outputs of that run's inverse exactly as they were.

    An option that would not act for the strategy that runs is a usage error
    naming it (`check_request`): from Python, every option set away from its
    default counts as asked for; the CLI passes what its user gave in
    ``given`` and, in ``given_from``, where each came from (command line,
    environment variable, config file).
    """
    opts = options or TrainOptions()
    extra = {"mask": mask, "hold": hold, "init_from": None if init_from is None else str(init_from)}
    extra = {k: v for k, v in extra.items() if v is not None}
    opts = opts.replace(**extra) if extra else opts
    if quick():  # HWLOOP_DOCS_QUICK: every budget capped, so the docs' commands run in seconds
        queries, opts, given = quick_plan(queries, opts, given)
    rd = RunDir(run_dir) if run_dir is not None else None
    if resume:
        if rd is None:
            raise UsageError(
                spelled("--resume needs the run directory (--out DIR)", "resume=True needs run_dir")
            )
        if rd.has_plan():
            # The CLI says what the user gave again; from Python, whatever options were passed.
            again = given if given is not None else ({**vars(opts)} if extra or options else {})
            return _resume(device, rd, again, progress, on_fit_step)
        if rd.log_path.exists():
            raise RunDirError(f"{rd.path} holds a query log but no config.toml: not a run hwloop can resume")
        if device is None and not (opts.from_log or opts.from_data):
            raise UsageError(
                f"{rd.path} holds no run yet: "
                + spelled("give --device to start it", "give a device to start it")
            )
        log.info("%s holds no run yet: starting it", rd.path)
    if rd is not None:
        rd.check_fresh()
    if queries < 16:
        raise UsageError(spelled("--queries", "queries") + f" must be at least 16, got {queries}")
    uri = device if isinstance(device, str) or device is None else getattr(device, "uri", None)
    plan = RunPlan(
        uri or ("" if device is None else f"<{type(device).__name__}>"), strategy, queries, seed, opts
    )
    if given is not None:
        named = {name: (given_from or {}).get(name, "") for name in given}
    else:  # from Python: every option set away from its default was asked for
        named = python_given(opts, queries)
    return _start(device, plan, rd, progress, on_fit_step, resume=False, given=named)


def python_given(opts: TrainOptions, queries: int = DEFAULT_QUERIES, where: str = PYTHON) -> dict[str, str]:
    """The options a Python caller asked for: those set away from their defaults (and ``queries``)."""
    named = {f.name: where for f in option_fields() if getattr(opts, f.name) != f.default}
    return named | ({"queries": where} if queries != DEFAULT_QUERIES else {})


def check_request(
    opts: TrainOptions,
    strategy: str,
    *,
    offline: bool,
    given: Mapping[str, str],
    stateful: bool | None = None,
) -> None:
    """Refuse the options in ``given`` (name -> where it came from) that would not act for these
    settings: before a device is opened (``stateful`` None), and again with its INFO."""
    flags = {"signal": opts.signal is not None, "inverse": opts.inverse, "hold": bool(opts.hold)}
    flags |= {"cfr": opts.cfr, "init_from": bool(opts.init_from), "requested": strategy}
    check_options(given, offline=offline, stateful=stateful, **flags)


def _resume(
    device: str | Device | None,
    rd: RunDir,
    given: dict[str, Any],
    progress: ProgressFn | None,
    on_fit_step: StepFn | None,
) -> TrainResult:
    plan = rd.read_plan()
    plan.check_same(given, rd.path)
    if not plan.device:
        raise UsageError(
            f"{rd.path} was trained offline: nothing to resume ("
            + spelled("start a new --out", "start a new run_dir")
            + ")"
        )
    if device is None and plan.device.startswith("<"):
        raise UsageError(
            f"this run used a Python device object ({plan.device}); pass the device to resume it"
        )
    if isinstance(device, str):
        plan = RunPlan(device, plan.strategy, plan.queries, plan.seed, plan.options)
    return _start(device if device is not None else plan.device, plan, rd, progress, on_fit_step, resume=True)


def _start(
    device: str | Device | None,
    plan: RunPlan,
    rd: RunDir | None,
    progress: ProgressFn | None,
    on_fit_step: StepFn | None,
    *,
    resume: bool,
    given: Mapping[str, str] | None = None,
) -> TrainResult:
    """Check everything that needs no device, open it, check what needs its INFO, then run.

    Options that would not act are refused here (``given``: what the user set;
    a resumed run was checked when it started), and the signal is read and its
    band checked, all before the device is opened or the run directory written.
    """
    opts, named = plan.options, given or {}
    check_request(opts, plan.strategy, offline=device is None, given=named)
    signal = None if opts.signal is None else run_signal(opts)
    prior = load_pairs(opts.from_log, opts.from_data)
    if device is None:
        if prior is None:
            raise UsageError("give --device, or --from-log/--from-data to train without one")
        choose(
            plan.strategy,
            stateful=False,
            offline=True,
            hold=bool(plan.options.hold),
            init_from=bool(plan.options.init_from),
            inverse=plan.options.inverse,
        )
        info = DeviceInfo(f"offline:{prior.name}", prior.in_dim, prior.out_dim, 1024, *prior.range())
        return _run(
            None, info, plan, rd or RunDir.new(f"offline-{prior.name}"), prior, None, None, on_fit_step, False
        )
    with phases.task("open", label="opening the device"):
        dev = open_device(device)
    try:
        check_request(opts, plan.strategy, offline=False, given=named, stateful=dev.info.stateful)
        return _run(
            dev, dev.info, plan, rd or RunDir.new(dev.info.name), prior, signal, progress, on_fit_step, resume
        )
    finally:
        if isinstance(device, str):
            dev.close()


def _run(
    dev: Device | None,
    info: DeviceInfo,
    plan: RunPlan,
    rd: RunDir,
    prior: Pairs | None,
    signal: Any,
    progress: ProgressFn | None,
    on_fit_step: StepFn | None,
    resume: bool,
) -> TrainResult:
    from hwloop.evaluate import EvalBudget, evaluate, evaluate_signal, signal_eval_limit

    opts = plan.options
    t_start = time.perf_counter()
    path = None if signal is None else run_signal_path(opts, signal)
    signal, held = (None, None) if path is None else (path.train, path.held)
    name = choose(
        plan.strategy,
        stateful=info.stateful,
        offline=dev is None,
        hold=bool(opts.hold),
        init_from=bool(opts.init_from),
        mask=opts.mask is not None,
        signal=opts.signal is not None,
        prior=prior is not None,
        inverse=opts.inverse,
    )
    if signal is not None and (info.in_dim, info.out_dim) != (2, 2):
        raise UsageError(
            f"--signal needs an I/Q device (2 -> 2); {info.name} is {info.in_dim} -> {info.out_dim}"
        )
    if opts.init_from:
        from hwloop.strategies.parent import check_parent

        check_parent(opts.init_from, info)
    mask = opts.mask_for(info)
    prior_xy = None if prior is None else prior.inside(info) if dev is not None else (prior.x, prior.y)
    budget = EvalBudget.for_run(plan.queries, opts.eval_queries, opts.noise_repeats, opts.eval_targets)
    if resume:
        rd.check_device(info)
    with phases.task("load", label="loading TensorFlow"):  # every check that needs none is behind us
        import keras

        from hwloop.inverses.store import save_inverse

    created = not rd.path.exists()
    rd.write_plan(plan, info.to_dict(), parent=opts.init_from)
    if callable(attach := getattr(dev, "attach_run_dir", None)):  # e.g. a bench's interlock log
        attach(rd.path)
    keras.utils.set_random_seed(plan.seed)
    qlog = QueryLog(rd.log_path, info.in_dim, info.out_dim)
    metered = None
    try:
        if dev is not None:
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
            "training %s (%s) on %s with %d queries%s",
            plan.strategy,
            name,
            info.name,
            plan.queries,
            " (resuming)" if resume else "",
        )
        ctx = Context(
            dev=metered,
            info=info,
            settings=Settings.from_plan(plan),
            prior=prior_xy,
            mask=mask,
            signal=signal,
            on_step=on_fit_step,
        )
        outcome = run_strategy(name, ctx)
        phases.finish("collect")
        inverse = package_inverse(outcome.inverse, outcome.memory, info)
        save_inverse(inverse, rd.path)
        if outcome.surrogate is not None:
            outcome.surrogate.save(rd.file(SURROGATE_FILE))
        if metered is None:
            assert prior is not None
            for start in range(0, len(prior.x), 1024):  # the pairs it learned from, for --from-log
                qlog.append(prior.x[start : start + 1024], prior.y[start : start + 1024], "train")
            scores: dict[str, Any] = {"closed_loop_nmse_db": None, "noise_floor_db": None}
        else:
            total = None if signal is not None else budget.queries + 2 * budget.noise_repeats
            phases.expect("evaluate", total, unit="queries")
            if signal is not None:
                ev = evaluate_signal(
                    metered,
                    inverse.apply,
                    signal if held is None else held,
                    budget,
                    fs=ctx.settings.fs,
                    bw=opts.bw,
                    seed=plan.seed,
                    limit=signal_eval_limit(plan.queries, opts.eval_queries),
                    reference="skip" if opts.skip_reference else "measure",
                    origin=path.origin,
                )
                ev.details.update(path.info)
                no_dpd = ev.details.pop("outputs_no_dpd")
            else:
                sur = outcome.surrogate if not info.stateful else None
                ev = evaluate(metered, inverse.apply, budget, seed=plan.seed, surrogate=sur)
                no_dpd = None
            rd.save_evaluation(ev.targets, ev.inputs, ev.outputs, no_dpd)
            scores = {**ev.scores, **ev.details}
            phases.finish("evaluate")
    except KeyboardInterrupt as exc:
        exc.run_dir = rd.path  # type: ignore[attr-defined]  # the CLI says how to resume it
        raise
    except UsageError:
        if created and (metered is None or not any(metered.used.values())):
            qlog.close()  # a refusal before any query leaves no run behind
            shutil.rmtree(rd.path, ignore_errors=True)
        raise
    finally:
        qlog.close()
    metrics = _metrics(plan, name, scores, metered, prior_xy, outcome, rd, t_start, opts)
    rd.write_train_metrics(metrics)  # hwloop eval's figures (metrics.json's eval) stay
    log.info(
        "closed-loop NMSE %s dB, noise floor %s dB", metrics["closed_loop_nmse_db"], metrics["noise_floor_db"]
    )
    return TrainResult(metrics, rd.path, inverse)


def _metrics(
    plan: RunPlan,
    name: str,
    scores: dict[str, Any],
    metered: MeteredDevice | None,
    prior_xy: tuple | None,
    outcome: Outcome,
    rd: RunDir,
    t_start: float,
    opts: TrainOptions,
) -> dict[str, Any]:
    """One schema for every run; what a strategy switched on or off is in its details."""
    m = metered
    return {
        "device": plan.device or None,
        "strategy": plan.strategy,
        "strategy_run": name,
        "queries_used": m.used["train"] if m else 0,
        "eval_queries": m.used["eval"] + m.used["noise"] if m else 0,
        **{k: db_or_none(v) if k.endswith("_db") and v is not None else v for k, v in scores.items()},
        "clipped_values": m.clipped_values if m else 0,
        "device_s": round(m.device_s, 3) if m else 0.0,
        "device_rows": m.device_rows if m else 0,
        "replayed_rows": m.replayed_rows if m else 0,
        "warmup_rows": m.warmup_rows if m else 0,
        "recoveries": m.recoveries if m else 0,
        "prior_pairs": 0 if prior_xy is None else len(prior_xy[0]),
        "parent_run": opts.init_from,
        "wall_s": round(time.perf_counter() - t_start, 3),
        **outcome.details,
        "train_curve": [round(v, 8) for v in outcome.curve],
        "run_dir": str(rd.path),
        "seed": plan.seed,
    }
