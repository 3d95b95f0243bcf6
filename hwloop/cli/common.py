"""What every ``hwloop`` command shares: error handling, config files, logging, JSON output.

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
from collections.abc import Callable, Iterable
from typing import Any

import click
from click.core import ParameterSource

from hwloop.cli.console import StderrHandler, interrupted_message
from hwloop.errors import HwloopError, UsageError

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
            click.echo(f"hwloop: error: {exc.cli_message()}", err=True)
            ctx.exit(exc.exit_code)
        except BrokenPipeError:  # `hwloop devices | head`: the reader left; nothing to say
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            ctx.exit(1)
        except KeyboardInterrupt as exc:
            click.echo(interrupted_message(exc), err=True)
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
    ctx.meta[CONFIG_META] = value
    return value


CONFIG_META = "hwloop.config_file"


def given_options(ctx: click.Context, names: Iterable[str]) -> dict[str, str]:
    """The options of ``names`` the user gave, each with where: "given on the command line",
    "given in HWLOOP_TRAIN_GAIN", "given in config file c.toml" (a config file's values reach
    click as its default map); options left at their defaults are absent."""
    params = {p.name: p for p in ctx.command.params}
    found: dict[str, str] = {}
    for name in names:
        source = ctx.get_parameter_source(name)
        if source == ParameterSource.COMMANDLINE:
            found[name] = "given on the command line"
        elif source == ParameterSource.ENVIRONMENT:
            param = params.get(name)
            envvar = getattr(param, "envvar", None) or f"{ctx.auto_envvar_prefix}_{name.upper()}"
            found[name] = f"given in {envvar if isinstance(envvar, str) else ' or '.join(envvar)}"
        elif source == ParameterSource.DEFAULT_MAP:
            found[name] = f"given in config file {ctx.meta.get(CONFIG_META, '(--config)')}"
    return found


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


def run_option(holding: str = "") -> Callable:
    """``--run DIR``: the run directory a command reads (``holding``: the file it needs there)."""
    text = f"Run directory holding {holding}." if holding else "Run directory."
    return click.option("--run", "run_dir", required=True, type=click.Path(), help=text)


def emit_json(obj: dict) -> None:
    click.echo(json.dumps(obj, default=str))


def setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = StderrHandler()  # follows sys.stderr: above a live progress display, past hidden native logs
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("hwloop")
    root.handlers[:] = [handler]
    root.setLevel(level)


def load_npy(path: str, what: str) -> Any:
    """A user's .npy file, or one clear line saying why not."""
    import numpy as np

    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise UsageError(f"{what} {path} does not exist") from None
    except ValueError as exc:
        raise UsageError(f"{what} {path} is not a .npy array: {exc}") from None


def fmt_db(v: float | None) -> str:
    return "exact (-inf dB)" if v is None else f"{v:.1f} dB"


def json_option(f: Callable) -> Callable:
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")(f)
