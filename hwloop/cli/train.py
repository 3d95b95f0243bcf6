"""``hwloop train`` and ``hwloop eval``: the commands that spend device queries.

The train options are generated from `hwloop.rundir.TrainOptions`, the one
spelling of a run's settings; a resumed run compares what was given again
with what its config.toml recorded.
"""

from __future__ import annotations

import dataclasses
import time
import types
import typing
from collections.abc import Callable
from typing import Any

import click

from hwloop import progress
from hwloop.cli.checks import check_device_uri, check_exists, check_trained_run, resume_command
from hwloop.cli.common import (
    config_option,
    device_option,
    emit_json,
    fmt_db,
    given_options,
    json_option,
    load_npy,
    run_option,
)
from hwloop.cli.display import Display, quiet_option
from hwloop.cli.summary import run_summary as _summary
from hwloop.cli.summary import signal_summary
from hwloop.config import quick_cap
from hwloop.errors import UsageError
from hwloop.rundir import DEFAULT_QUERIES, TrainOptions, option_fields
from hwloop.strategies.registry import STRATEGIES, USER_CHOICES, check_eval_options


def _click_type(f: dataclasses.Field) -> Any:
    meta, base = f.metadata, _base_type(f.type)
    if "choices" in meta:
        return click.Choice(meta["choices"])
    if "path" in meta:
        return click.Path(file_okay=meta["path"] == "file", dir_okay=meta["path"] == "dir")
    if base is int:
        return click.IntRange(meta.get("min"), meta.get("max"))
    if base is float:
        low = meta.get("min_open", meta.get("min"))
        high = meta.get("max_open", meta.get("max"))
        if low is None and high is None:
            return click.FLOAT  # no range to show (a FloatRange without bounds reads "x<=None")
        return click.FloatRange(low, high, min_open="min_open" in meta, max_open="max_open" in meta)
    return str


def _base_type(annotation: Any) -> Any:
    hint = eval(annotation, {"list": list}) if isinstance(annotation, str) else annotation
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if isinstance(hint, types.UnionType) and args:
        return args[0]
    return hint


def plan_options(f: Callable, only: tuple[str, ...] | None = None) -> Callable:
    """One click option per `TrainOptions` field (or per field named in ``only``), in declaration order."""
    for fld in reversed(option_fields()):
        if only is not None and fld.name not in only:
            continue
        name = "--" + fld.name.replace("_", "-")
        if fld.metadata.get("flag"):
            f = click.option(name, fld.name, is_flag=True, help=fld.metadata["help"])(f)
            continue
        f = click.option(
            name,
            fld.name,
            type=_click_type(fld),
            default=fld.default,
            show_default=fld.default is not None,
            help=fld.metadata["help"],
        )(f)
    return f


EVAL_SETTINGS = ("eval_queries", "noise_repeats", "eval_targets", "signal", "gain", "fs", "bw")


def eval_options(f: Callable) -> Callable:
    """The plan's evaluation settings, spelled once in `TrainOptions`, for ``hwloop eval``."""
    return plan_options(f, only=EVAL_SETTINGS)


def options_from(values: dict[str, Any]) -> TrainOptions:
    """The CLI's strings and paths as plan values: a mask file read, a hold list parsed."""
    raw = {f.name: values[f.name] for f in option_fields()}
    if raw["mask"] is not None:
        raw["mask"] = load_npy(raw["mask"], "mask file").tolist()
    if raw["hold"] is not None:
        text = raw["hold"]
        try:
            raw["hold"] = [int(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise UsageError(f"--hold takes output indices like 0,2, got {text!r}") from None
        if not raw["hold"]:
            raise UsageError(f"--hold takes output indices like 0,2, got {text!r}")
    return TrainOptions(**raw)


def run_options(f: Callable) -> Callable:
    """--strategy, --queries and --seed: what every training command takes besides the plan."""
    f = click.option("--seed", default=0, show_default=True, type=int)(f)
    f = click.option(
        "--queries",
        default=DEFAULT_QUERIES,
        show_default=True,
        type=click.IntRange(16),
        help="Hard cap on training queries (per device).",
    )(f)
    return click.option(
        "--strategy",
        type=click.Choice(USER_CHOICES),
        default="auto",
        show_default=True,
        help="; ".join(f"{n}: {STRATEGIES[n].summary}" for n in USER_CHOICES) + ".",
    )(f)


@click.command()
@config_option
@device_option(required=False)
@run_options
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False),
    default=None,
    help="Run directory [default: runs/DATE-DEVICE].",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the run in --out with its own settings (start it if --out holds no run yet).",
)
@plan_options
@click.option(
    "--tensorboard",
    default=None,
    type=click.Path(file_okay=False),
    help="Write training scalars (fit loss, queries) as TensorBoard logs to this directory.",
)
@click.option("--print-config", is_flag=True, help="Print the effective settings as TOML and exit.")
@quiet_option
@json_option
def train(**values: Any) -> None:
    """Train an inverse of DEVICE and save it in a run directory."""
    ctx = click.get_current_context()
    device, out, resume = values["device"], values["out"], values["resume"]
    if values["print_config"]:
        from hwloop.config import dumps_toml

        shown = {
            k: v
            for k, v in values.items()
            if v is not None and k not in ("print_config", "as_json", "resume", "quiet")
        }
        click.echo(dumps_toml({"train": shown}), nl=False)
        return
    opts = options_from(values)
    if resume and out is None:
        raise UsageError("--resume needs the run directory: --out DIR")
    if device is None and not (opts.from_log or opts.from_data) and not resume:
        raise UsageError("give --device URI (or --from-log/--from-data to train without a device)")
    check_device_uri(device)  # before TensorFlow: a bad URI is refused at once
    given_from = given_options(ctx, ("strategy", "queries", "seed", *(f.name for f in option_fields())))
    given = {name: (getattr(opts, name) if hasattr(opts, name) else values[name]) for name in given_from}
    board = _TensorBoard(values["tensorboard"]) if values["tensorboard"] else None
    from hwloop.run import train as run_train

    with Display.open("train", values["quiet"], safe_interrupt=True) as shown:
        try:
            result = run_train(
                device,
                strategy=values["strategy"],
                queries=values["queries"],
                seed=values["seed"],
                run_dir=out,
                options=opts,
                progress=board.on_query if board else None,
                on_fit_step=board.fanout(shown.on_fit_step) if board else shown.on_fit_step,
                resume=resume,
                given=given,
                given_from=given_from,
            )
        except KeyboardInterrupt as exc:
            run_dir = getattr(exc, "run_dir", None) or out
            if run_dir is not None:
                exc.kept = f"every answer so far is in {run_dir}/queries.sqlite"  # type: ignore[attr-defined]
                exc.resume_command = resume_command("train", run_dir, device=device)  # type: ignore[attr-defined]
            raise
        finally:
            if board is not None:
                board.close()
    m = {k: v for k, v in result.metrics.items() if k != "train_curve"}
    if values["as_json"]:
        emit_json(m)
        return
    click.echo(_summary(m), err=True)


class _TensorBoard:
    """Training scalars (fit loss, queries per kind) as TensorBoard summaries, for --tensorboard.

    TensorFlow is imported at the first scalar, after the run has checked its
    inputs and opened the device."""

    def __init__(self, logdir: str) -> None:
        import importlib.util

        if importlib.util.find_spec("tensorboard") is None:  # tf.summary needs it
            raise UsageError("--tensorboard needs TensorBoard: pip install 'hwloop[tensorboard]'")
        self.logdir = logdir
        self.writer: Any = None
        self.fit_step = 0  # across fits: the curve of the whole run

    def _scalar(self, name: str, value: float, step: int) -> None:
        import tensorflow as tf

        if self.writer is None:
            self.writer = tf.summary.create_file_writer(self.logdir)
        with self.writer.as_default():
            tf.summary.scalar(name, value, step=step)

    def on_query(self, kind: str, n: int, used: int) -> None:
        self._scalar(f"queries/{kind}", used, self.fit_step)

    def fanout(self, shown: Callable[[int, float], None]) -> Callable[[int, float], None]:
        def on_fit_step(step: int, loss: float) -> None:
            shown(step, loss)
            self.fit_step += 100
            self._scalar("fit/loss", loss, self.fit_step)

        return on_fit_step

    def close(self) -> None:
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()


@click.command("eval")
@config_option
@run_option("inverse.keras")
@device_option()
@eval_options
@click.option("--seed", default=1, show_default=True, type=int)
@click.option(
    "--exported",
    type=click.Path(),
    default=None,
    help="An export of the run (hwloop export): measured the same way, reported beside it as exported_*.",
)
@quiet_option
@json_option
def eval_cmd(
    run_dir: str,
    device: str,
    eval_queries: int | None,
    noise_repeats: int | None,
    eval_targets: int | None,
    signal: str | None,
    gain: float,
    fs: float,
    bw: float,
    seed: int,
    exported: str | None,
    quiet: bool,
    as_json: bool,
) -> None:
    """Measure a trained inverse's closed-loop error on a device; with --signal, ACPR, EVM and NMSE."""
    given = given_options(click.get_current_context(), EVAL_SETTINGS)
    check_eval_options(given, signal=signal is not None)  # an option that would not act: refused
    TrainOptions(eval_queries=eval_queries, eval_targets=eval_targets)  # the plan's own checks
    fill = signal is None and eval_targets is None  # HWLOOP_DOCS_QUICK: the budget capped
    eval_queries = quick_cap("eval_queries", eval_queries, fill=fill)
    eval_targets = quick_cap("eval_targets", eval_targets)
    check_device_uri(device)  # everything that needs no TensorFlow, first
    check_trained_run(run_dir)
    check_exists(exported, "export")
    from hwloop.dpd.signals import load_signal, resolve_fs
    from hwloop.evaluate import EvalBudget, evaluate
    from hwloop.metered import MeteredDevice
    from hwloop.metrics import db_or_none
    from hwloop.registry import open_device
    from hwloop.rundir import RunDir

    t0 = time.perf_counter()
    recorded = RunDir(run_dir).read_metrics() or {}
    budget = EvalBudget.for_run(
        int(recorded.get("queries_used") or 4000), eval_queries, noise_repeats, eval_targets
    )
    fs = resolve_fs(fs, signal)  # the signal's own sample rate unless --fs is given
    if signal is not None:
        load_signal(signal)  # a bad signal is refused before TensorFlow, too
    click.get_current_context().with_resource(Display.open("eval", quiet))
    if signal is None:
        progress.expect("evaluate", budget.queries + 2 * budget.noise_repeats, unit="queries")
    from hwloop.inverses.store import load_inverse

    inverse = load_inverse(run_dir)
    if exported is not None:
        from hwloop.export.loaded import evaluate_exported, load_exported

        exp_inv = load_exported(exported, inverse, run=run_dir)  # before any query: provenance
    dev = open_device(device)
    try:
        if (dev.info.in_dim, dev.info.out_dim) != (inverse.in_dim, inverse.out_dim):
            raise UsageError(
                f"{run_dir} inverts a {inverse.in_dim}->{inverse.out_dim} device, "
                f"{device} is {dev.info.in_dim}->{dev.info.out_dim}"
            )
        metered = MeteredDevice(dev, None, budget=0)
        if signal is not None:
            from hwloop.dpd.signals import load_signal
            from hwloop.evaluate import evaluate_signal

            targets = gain * load_signal(signal)
            if recorded and recorded.get("strategy_run") != "dpd" and not recorded.get("sequence_signal"):
                click.echo(
                    f"hwloop: warning: {run_dir} was not trained on a signal (no --signal); an inverse "
                    "fitted to random sequences may predistort this one poorly",
                    err=True,
                )
            ev = evaluate_signal(metered, inverse.apply, targets, budget, fs=fs, bw=bw, seed=seed)
            ev.details.pop("outputs_no_dpd", None)
        else:
            ev = evaluate(metered, inverse.apply, budget, seed=seed)
        if exported is not None:
            t_sig = targets if signal is not None else None
            m_exp = evaluate_exported(metered, exp_inv, budget, seed=seed, targets=t_sig, fs=fs, bw=bw)
    finally:
        dev.close()
    m = {
        "device": device,
        "run_dir": run_dir,
        **{k: db_or_none(v) if k.endswith("_db") and v is not None else v for k, v in ev.scores.items()},
        "eval_queries": metered.used["eval"] + metered.used["noise"],
        "wall_s": round(time.perf_counter() - t0, 3),
    }
    if signal is not None:
        m |= {"signal": signal, "gain": gain, **ev.details}
    if exported is not None:
        m |= m_exp
    RunDir(run_dir).write_eval(m)  # eval.json and metrics.json's "eval": training's figures stay as they are
    if as_json:
        emit_json(m)
        return
    if signal is not None:
        click.echo(f"{device}: {signal_summary(m)}, {m['eval_queries']} queries", err=True)
        if m.get("evm_demod_note"):
            click.echo(f"hwloop: EVM by demodulation {m['evm_demod_note']}", err=True)
    else:
        click.echo(
            f"{device}: closed-loop NMSE {fmt_db(m['closed_loop_nmse_db'])}, "
            f"noise floor {fmt_db(m['noise_floor_db'])} ({m['eval_queries']} queries)",
            err=True,
        )
    if exported is not None:
        click.echo(f"{m['exported']}: closed-loop NMSE {fmt_db(m['exported_closed_loop_nmse_db'])}", err=True)
