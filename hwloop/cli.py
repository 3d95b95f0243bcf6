"""The ``hwloop`` command line: a click group; only this module prints.

Human output and progress bars go to stderr; ``--json`` prints one JSON
object on stdout. Options also come from a TOML file (``--config``: top-level
keys, or a ``[train]``-style table per command) and from ``HWLOOP_*``
environment variables (``HWLOOP_DEVICE``, ``HWLOOP_TRAIN_QUERIES``, ...).
Precedence: command line, environment, config file, built-in default.
TensorFlow is imported only by the commands that need it.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from hwloop.errors import HwloopError, UsageError
from hwloop.farm_cli import farm_command

log = logging.getLogger("hwloop")


class HwloopGroup(click.Group):
    """Turns every error into one line on stderr and an exit code.

    hwloop's typed errors exit 1 (runtime) or 2 (usage); click's own usage
    errors, normally a usage block plus a hint, become one line too.
    """

    def main(
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.ClickException as exc:
            hint = ""
            if isinstance(exc, click.UsageError) and exc.ctx is not None:
                hint = f" (see '{exc.ctx.command_path} --help')"
            click.echo(f"hwloop: error: {exc.format_message()}{hint}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("hwloop: aborted", err=True)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HwloopError as exc:
            click.echo(f"hwloop: error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("hwloop: interrupted", err=True)
            ctx.exit(130)
        except OSError as exc:
            click.echo(f"hwloop: error: {exc}", err=True)
            ctx.exit(1)


def _load_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """Eager: read the TOML before other options so it can feed their defaults."""
    if value is None:
        return None
    from hwloop.config import read_toml

    try:
        data = read_toml(value)
    except UsageError as exc:
        raise click.BadParameter(str(exc)) from None
    name = ctx.info_name or ""
    section = data.get(name, {})
    flat = {k.replace("-", "_"): v for k, v in data.items() if not isinstance(v, dict)}
    flat.update({k.replace("-", "_"): v for k, v in section.items()} if isinstance(section, dict) else {})
    known = {p.name for p in ctx.command.params}
    unknown = sorted(set(flat) - known)
    if unknown and isinstance(section, dict) and section:
        raise click.BadParameter(f"unknown option(s) for {name}: {', '.join(unknown)}")
    ctx.default_map = {**(ctx.default_map or {}), **{k: v for k, v in flat.items() if k in known}}
    return value


def config_option(f: Callable) -> Callable:
    return click.option(
        "--config",
        type=click.Path(dir_okay=False),
        is_eager=True,
        expose_value=False,
        callback=_load_config,
        help="TOML file with option values (a table named after the command, or top-level keys).",
    )(f)


def device_option(required: bool = True) -> Callable:
    return click.option(
        "--device",
        "device",
        envvar="HWLOOP_DEVICE",
        required=required,
        help="Device URI: sim, sim:NAME?noise=1e-3&seed=0, serial:///dev/ttyUSB0, socket://host:port, ...",
    )


def _emit_json(obj: dict) -> None:
    click.echo(json.dumps(obj, default=str))


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("hwloop")
    root.handlers[:] = [handler]
    root.setLevel(level)


def _quiet_tensorflow(verbose: int) -> None:
    """Import TensorFlow with its C++ start-up chatter (oneDNN, CUDA probes)
    kept off stderr; those lines are printed before any log level applies."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if verbose or "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


@click.group(
    cls=HwloopGroup, context_settings={"auto_envvar_prefix": "HWLOOP", "help_option_names": ["-h", "--help"]}
)
@click.option("-v", "--verbose", count=True, help="More log lines on stderr (-v info, -vv debug).")
@click.version_option(package_name="hwloop")
def cli(verbose: int) -> None:
    """Train a neural network to be the inverse of a device you can only query."""
    _setup_logging(verbose)
    click.get_current_context().obj = {"verbose": verbose}


def _needs_tensorflow() -> None:
    ctx = click.get_current_context()
    _quiet_tensorflow((ctx.find_root().obj or {}).get("verbose", 0))


@cli.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
def devices(as_json: bool) -> None:
    """List device schemes, simulators and detected serial ports."""
    from hwloop.registry import device_schemes

    schemes = device_schemes()
    listed: list[dict[str, str]] = []
    for scheme, ep in sorted(schemes.items()):
        try:
            factory = ep.load()
        except Exception as exc:  # a broken plugin is reported, not fatal
            listed.append({"uri": f"{scheme}:", "description": f"(cannot load: {exc})"})
            continue
        describe = getattr(factory, "describe", None)
        if callable(describe):
            listed += [{"uri": u, "description": d} for u, d in describe()]
        else:
            listed.append({"uri": f"{scheme}:", "description": ep.value})
    ports = _serial_ports()
    if as_json:
        _emit_json({"schemes": sorted(schemes), "devices": listed, "serial_ports": ports})
        return
    click.echo("Devices:", err=True)
    for item in listed:
        click.echo(f"  {item['uri']:<22} {item['description']}", err=True)
    click.echo("Serial ports:" if ports else "Serial ports: none detected", err=True)
    for p in ports:
        click.echo(f"  {p['device']:<22} {p['description']}", err=True)


def _serial_ports() -> list[dict[str, str]]:
    try:
        from serial.tools import list_ports
    except ImportError:  # pragma: no cover - pyserial is a dependency
        return []
    return [{"device": p.device, "description": p.description or ""} for p in list_ports.comports()]


@cli.command()
@config_option
@device_option()
@click.option(
    "--points", default=11, show_default=True, type=click.IntRange(2, 10_000), help="Sweep points per input."
)
@click.option(
    "--repeats",
    default=64,
    show_default=True,
    type=click.IntRange(2, 100_000),
    help="Inputs asked twice for the noise estimate.",
)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
def probe(device: str, points: int, repeats: int, seed: int, as_json: bool) -> None:
    """Show a device's info, a sweep of each input and a noise estimate."""
    from hwloop.probe import probe_device
    from hwloop.registry import open_device

    dev = open_device(device)
    try:
        report = probe_device(dev, points=points, repeats=repeats, seed=seed)
    finally:
        dev.close()
    if as_json:
        _emit_json(report)
        return
    info = report["info"]
    click.echo(
        f"{info['name']}: {info['in_dim']} in -> {info['out_dim']} out, max_batch {info['max_batch']}, "
        f"safe range {info['low']} .. {info['high']}{', stateful' if info['stateful'] else ''}",
        err=True,
    )
    for sweep in report["sweeps"]:
        click.echo(f"sweep of input {sweep['input']}:", err=True)
        for xv, yv in zip(sweep["x"], sweep["y"], strict=True):
            click.echo(f"  {xv:+.4f} -> {', '.join(f'{v:+.5f}' for v in yv)}", err=True)
    click.echo(f"noise std per output: {', '.join(f'{v:.3g}' for v in report['noise_std'])}", err=True)


TRAIN_PLAN_OPTIONS = (
    "strategy",
    "queries",
    "seed",
    "fit_steps",
    "eval_targets",
    "strict_bounds",
    "memory_depth",
    "max_rate",
    "from_log",
    "from_data",
)


@cli.command()
@config_option
@device_option(required=False)
@click.option(
    "--strategy",
    type=click.Choice(["auto", "ila", "iila", "surrogate", "spsa"]),
    default="auto",
    show_default=True,
    help="auto: ILA warm start, then surrogate-VJP refinement through the device; ila/iila: inverse "
    "modelling (plain/iterative); surrogate: closed loop through a learned surrogate; spsa: baseline.",
)
@click.option(
    "--queries",
    default=10_000,
    show_default=True,
    type=click.IntRange(16),
    help="Hard cap on training queries.",
)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False),
    default=None,
    help="Run directory [default: runs/DATE-DEVICE].",
)
@click.option("--resume", is_flag=True, help="Continue the interrupted run in --out with its own settings.")
@click.option(
    "--fit-steps", default=8000, show_default=True, type=click.IntRange(1), help="Optimizer steps per fit."
)
@click.option(
    "--eval-targets",
    default=2000,
    show_default=True,
    type=click.IntRange(16),
    help="Held-out targets for evaluation.",
)
@click.option(
    "--strict-bounds", is_flag=True, help="Refuse, rather than clip, proposals outside the safe range."
)
@click.option(
    "--memory-depth",
    default=5,
    show_default=True,
    type=click.IntRange(0, 64),
    help="Past target samples the inverse sees, for a device with memory.",
)
@click.option(
    "--max-rate",
    default=None,
    type=click.FloatRange(min=0, min_open=True),
    help="At most this many device queries per second (fragile hardware).",
)
@click.option(
    "--from-log",
    default=None,
    type=click.Path(file_okay=False),
    help="Also learn from an earlier run's logged pairs; without --device, train offline.",
)
@click.option(
    "--from-data",
    default=None,
    type=click.Path(dir_okay=False),
    help="Also learn from measured pairs (NPZ arrays x, y or CSV x0..,y0..); without --device, offline.",
)
@click.option(
    "--mask",
    "mask_file",
    default=None,
    type=click.Path(dir_okay=False),
    help=".npy (in_dim, out_dim) of 0/1: which device inputs can affect which outputs.",
)
@click.option("--hold", default=None, help="Inverse outputs to keep exactly as in --init-from, e.g. 0,2.")
@click.option(
    "--hold-mechanism",
    type=click.Choice(["masked_loss", "heads"]),
    default="masked_loss",
    show_default=True,
    help="How held outputs are kept: a masked loss, or per-output heads.",
)
@click.option(
    "--init-from",
    default=None,
    type=click.Path(file_okay=False),
    help="Run whose inverse is recalibrated (with --hold).",
)
@click.option(
    "--tensorboard",
    default=None,
    type=click.Path(file_okay=False),
    help="Write training scalars (fit loss, queries) as TensorBoard logs to this directory.",
)
@click.option("--print-config", is_flag=True, help="Print the effective settings as TOML and exit.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
def train(
    device: str | None,
    strategy: str,
    queries: int,
    seed: int,
    out: str | None,
    resume: bool,
    fit_steps: int,
    eval_targets: int,
    strict_bounds: bool,
    memory_depth: int,
    max_rate: float | None,
    from_log: str | None,
    from_data: str | None,
    mask_file: str | None,
    hold: str | None,
    hold_mechanism: str,
    init_from: str | None,
    tensorboard: str | None,
    print_config: bool,
    as_json: bool,
) -> None:
    """Train an inverse of DEVICE and save it in a run directory."""
    ctx = click.get_current_context()
    values = {
        "device": device,
        "strategy": strategy,
        "queries": queries,
        "seed": seed,
        "out": out,
        "fit_steps": fit_steps,
        "eval_targets": eval_targets,
        "strict_bounds": strict_bounds,
        "memory_depth": memory_depth,
        "max_rate": max_rate,
        "from_log": from_log,
        "from_data": from_data,
        "mask": mask_file,
        "hold": hold,
        "hold_mechanism": hold_mechanism,
        "init_from": init_from,
    }
    if print_config:
        from hwloop.config import dumps_toml

        click.echo(dumps_toml({"train": {k: v for k, v in values.items() if v is not None}}), nl=False)
        return
    if resume:
        _check_resume_options(ctx, out, values)
    elif device is None and not (from_log or from_data):
        raise UsageError("give --device URI (or --from-log/--from-data to train without a device)")
    _needs_tensorflow()
    from hwloop.run import TrainOptions
    from hwloop.run import train as run_train

    opts = TrainOptions(
        eval_targets=eval_targets,
        fit_steps=fit_steps,
        strict_bounds=strict_bounds,
        memory_depth=memory_depth,
        max_rate=max_rate,
        from_log=from_log,
        from_data=from_data,
        mask=_read_mask(mask_file),
        hold=_parse_hold(hold),
        hold_mechanism=hold_mechanism,
        init_from=init_from,
    )
    with _Progress(queries, tensorboard) as bar:
        result = run_train(
            device,
            strategy=strategy,
            queries=queries,
            seed=seed,
            run_dir=out,
            options=opts,
            progress=bar.on_query,
            on_fit_step=bar.on_fit_step,
            resume=resume,
        )
    m = {k: v for k, v in result.metrics.items() if k != "train_curve"}
    if as_json:
        _emit_json(m)
        return
    click.echo(_summary(m), err=True)


def _load_npy(path: str, what: str) -> Any:
    """A user's .npy file, or one clear line saying why not."""
    import numpy as np

    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise UsageError(f"{what} {path} does not exist") from None
    except ValueError as exc:
        raise UsageError(f"{what} {path} is not a .npy array: {exc}") from None


def _read_mask(path: str | None) -> list | None:
    return None if path is None else _load_npy(path, "mask file").astype(int).tolist()


def _parse_hold(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"--hold takes output indices like 0,2, got {text!r}") from None


def _check_resume_options(ctx: click.Context, out: str | None, values: dict) -> None:
    """--resume takes the run's own settings; a different explicit value is a mistake."""
    from click.core import ParameterSource

    from hwloop.run import read_plan

    if out is None:
        raise UsageError("--resume needs the run directory: --out DIR")
    plan = read_plan(Path(out))
    recorded = {
        "strategy": plan.strategy,
        "queries": plan.queries,
        "seed": plan.seed,
        **{k: getattr(plan.options, k) for k in TRAIN_PLAN_OPTIONS[3:]},
    }
    for name, was in recorded.items():
        source = ctx.get_parameter_source(name)
        if source in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT) and values[name] != was:
            opt = "--" + name.replace("_", "-")
            raise UsageError(
                f"{out} was started with {opt} {was}; drop {opt} or give the same value to resume"
            )


def _fmt_db(v: float | None) -> str:
    return "exact (-inf dB)" if v is None else f"{v:.1f} dB"


def _summary(m: dict) -> str:
    return (
        f"{m['strategy']} on {m['device']}: closed-loop NMSE {_fmt_db(m['closed_loop_nmse_db'])}, "
        f"noise floor {_fmt_db(m['noise_floor_db'])}, {m['queries_used']} training + "
        f"{m['eval_queries']} evaluation queries, {m['wall_s']:.1f} s -> {m['run_dir']}"
    )


class _Progress:
    """tqdm bar for training queries with the fit loss as a postfix (stderr, TTY only),
    and, with ``tensorboard``, the same scalars as TensorBoard summaries."""

    def __init__(self, total: int, tensorboard: str | None = None) -> None:
        from tqdm import tqdm

        self.bar = tqdm(
            total=total, unit="q", desc="train queries", file=sys.stderr, disable=None, leave=False
        )
        self.writer = None
        self.fit_step = 0  # across fits: the curve of the whole run
        if tensorboard:
            import tensorflow as tf

            try:
                import tensorboard as _tb  # noqa: F401 - tf.summary needs it
            except ImportError:
                raise UsageError(
                    "--tensorboard needs TensorBoard: pip install 'hwloop[tensorboard]'"
                ) from None
            self.writer = tf.summary.create_file_writer(tensorboard)

    def _scalar(self, name: str, value: float, step: int) -> None:
        if self.writer is not None:
            import tensorflow as tf

            with self.writer.as_default():
                tf.summary.scalar(name, value, step=step)

    def on_query(self, kind: str, n: int, used: int) -> None:
        if kind == "train":
            self.bar.update(n)
        else:
            self.bar.set_postfix_str(f"evaluating: {used} {kind} queries")
        self._scalar(f"queries/{kind}", used, self.fit_step)

    def on_fit_step(self, step: int, loss: float) -> None:
        self.bar.set_postfix_str(f"fit step {step} loss {loss:.2e}")
        self.fit_step += 100
        self._scalar("fit/loss", loss, self.fit_step)

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()


@cli.command("eval")
@config_option
@click.option(
    "--run", "run_dir", required=True, type=click.Path(), help="Run directory holding inverse.keras."
)
@device_option()
@click.option("--eval-targets", default=2000, show_default=True, type=click.IntRange(16))
@click.option("--seed", default=1, show_default=True, type=int)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
def eval_cmd(run_dir: str, device: str, eval_targets: int, seed: int, as_json: bool) -> None:
    """Measure a trained inverse's closed-loop error on a device."""
    import time

    from hwloop.evaluate import evaluate
    from hwloop.inverse import load_inverse
    from hwloop.metered import MeteredDevice
    from hwloop.metrics import db_or_none
    from hwloop.registry import open_device

    _needs_tensorflow()
    t0 = time.perf_counter()
    inverse = load_inverse(run_dir)
    dev = open_device(device)
    try:
        if (dev.info.in_dim, dev.info.out_dim) != (inverse.in_dim, inverse.out_dim):
            raise UsageError(
                f"{run_dir} inverts a {inverse.in_dim}->{inverse.out_dim} device, "
                f"{device} is {dev.info.in_dim}->{dev.info.out_dim}"
            )
        metered = MeteredDevice(dev, None, budget=0)
        if dev.info.stateful:
            from hwloop.memory import evaluate_sequence

            scores = evaluate_sequence(metered, inverse.apply, n=eval_targets, seed=seed)
        else:
            scores = evaluate(metered, inverse.apply, n_targets=eval_targets, n_noise=256, seed=seed)
    finally:
        dev.close()
    m = {
        "device": device,
        "run_dir": run_dir,
        "closed_loop_nmse_db": db_or_none(scores["closed_loop_nmse_db"]),
        "noise_floor_db": db_or_none(scores["noise_floor_db"]),
        "eval_queries": metered.used["eval"] + metered.used["noise"],
        "wall_s": round(time.perf_counter() - t0, 3),
    }
    if as_json:
        _emit_json(m)
        return
    click.echo(
        f"{device}: closed-loop NMSE {_fmt_db(m['closed_loop_nmse_db'])}, "
        f"noise floor {_fmt_db(m['noise_floor_db'])} ({m['eval_queries']} queries)",
        err=True,
    )


@cli.command()
@config_option
@click.option(
    "--run", "run_dir", required=True, type=click.Path(), help="Run directory holding inverse.keras."
)
@click.option(
    "--in",
    "in_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Targets, .npy of shape (n, out_dim).",
)
@click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Where to write the inputs (.npy).",
)
def apply(run_dir: str, in_path: str, out_path: str) -> None:
    """Map targets to device inputs with a trained inverse."""
    import numpy as np

    from hwloop.inverse import load_inverse

    targets = _load_npy(in_path, "targets file")
    _needs_tensorflow()
    inverse = load_inverse(run_dir)
    x = inverse.apply(targets)
    np.save(out_path, x)
    click.echo(f"wrote {x.shape[0]} input row(s) to {out_path}", err=True)


@cli.command("log")
@config_option
@click.option(
    "--run", "run_dir", required=True, type=click.Path(), help="Run directory holding queries.sqlite."
)
@click.option(
    "--export",
    "export",
    required=True,
    type=click.Path(dir_okay=False),
    help="FILE.npz (arrays x, y, kind) or FILE.csv.",
)
@click.option(
    "--kind", type=click.Choice(["all", "train", "eval", "noise"]), default="all", show_default=True
)
def log_cmd(run_dir: str, export: str, kind: str) -> None:
    """Export every logged query of a run."""
    from hwloop.querylog import open_run_log

    qlog = open_run_log(run_dir)
    try:
        which = None if kind == "all" else kind
        n = (
            qlog.export_csv(export, which)
            if export.lower().endswith(".csv")
            else qlog.export_npz(export, which)
        )
    finally:
        qlog.close()
    click.echo(f"exported {n} logged queries to {export}", err=True)


@cli.command()
@config_option
@click.option("--run", "run_dir", required=True, type=click.Path(), help="Run directory.")
@click.option(
    "--out", type=click.Path(dir_okay=False), default=None, help="PNG path [default: RUN/report.png]."
)
def report(run_dir: str, out: str | None) -> None:
    """Draw a run's report.png (transfer, closed loop, error, training curves) from its directory."""
    from hwloop.report import write_report

    click.echo(f"wrote {write_report(run_dir, out=out)}", err=True)


@cli.command()
@config_option
@device_option()
@click.option("--pty", "use_pty", is_flag=True, help="Serve on a new pseudo-terminal (prints its path).")
@click.option("--listen", default=None, help="Serve on a TCP address, e.g. tcp://127.0.0.1:7000.")
@click.option(
    "--window",
    default=4,
    show_default=True,
    type=click.IntRange(1, 255),
    help="Requests a host may have outstanding.",
)
@click.option(
    "--drop", default=0.0, type=click.FloatRange(0, 1), help="Fault: probability a response is dropped."
)
@click.option(
    "--garble",
    default=0.0,
    type=click.FloatRange(0, 1),
    help="Fault: probability a response has a byte flipped.",
)
@click.option(
    "--duplicate",
    default=0.0,
    type=click.FloatRange(0, 1),
    help="Fault: probability a response is sent twice.",
)
@click.option(
    "--reboot-after",
    default=None,
    type=click.IntRange(1),
    help="Fault: reboot once after this many requests.",
)
@click.option(
    "--baud", default=None, type=click.IntRange(1), help="Throttle both directions to this 8N1 line rate."
)
@click.option("--fault-seed", default=0, show_default=True, type=int, help="Seed of the fault injector.")
def serve(
    device: str,
    use_pty: bool,
    listen: str | None,
    window: int,
    drop: float,
    garble: float,
    duplicate: float,
    reboot_after: int | None,
    baud: int | None,
    fault_seed: int,
) -> None:
    """Serve DEVICE over the hwloop wire protocol, on a pty or a TCP port.

    Prints the pty path or the address on stdout, then serves until Ctrl-C.
    """
    from hwloop.drivers.serve import FaultConfig
    from hwloop.drivers.serve import serve as run_server
    from hwloop.registry import open_device

    if use_pty == (listen is not None):
        raise UsageError("serve needs exactly one of --pty or --listen tcp://HOST:PORT")
    faults = FaultConfig(
        drop=drop, garble=garble, duplicate=duplicate, reboot_after=reboot_after, baud=baud, seed=fault_seed
    )
    dev = open_device(device)

    def announce(address: str) -> None:
        click.echo(address)
        sys.stdout.flush()
        click.echo(f"serving {device} on {address} (window {window}); Ctrl-C to stop", err=True)

    try:
        run_server(dev, pty=use_pty, listen=listen, window=window, faults=faults, on_ready=announce)
    finally:
        dev.close()


cli.add_command(farm_command)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="hwloop")


if __name__ == "__main__":  # pragma: no cover
    main()
