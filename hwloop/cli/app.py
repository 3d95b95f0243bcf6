"""The ``hwloop`` command line: a click group; only the CLI modules print.

Human output and progress bars go to stderr; ``--json`` prints one JSON
object on stdout. Options also come from a TOML file (``--config``: top-level
keys, or a ``[train]``-style table per command) and from ``HWLOOP_*``
environment variables (``HWLOOP_DEVICE``, ``HWLOOP_TRAIN_QUERIES``, ...).
Precedence: command line, environment, config file, built-in default.
TensorFlow is imported only by the commands that need it.
"""

from __future__ import annotations

import click

from hwloop.cli.bench import serve_bench
from hwloop.cli.common import HwloopGroup, setup_logging
from hwloop.cli.console import native_stderr_hidden
from hwloop.cli.export import export_cmd
from hwloop.cli.farm import farm_command
from hwloop.cli.tools import apply, devices, log_cmd, probe, report, serve
from hwloop.cli.train import eval_cmd, train


@click.group(
    cls=HwloopGroup, context_settings={"auto_envvar_prefix": "HWLOOP", "help_option_names": ["-h", "--help"]}
)
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="More log lines on stderr (-v info, -vv debug and TensorFlow's own logs).",
)
@click.version_option(package_name="hwloop")
def cli(verbose: int) -> None:
    """Train a neural network to be the inverse of a device you can only query."""
    setup_logging(verbose)
    ctx = click.get_current_context()
    ctx.obj = {"verbose": verbose}
    ctx.with_resource(native_stderr_hidden(show=verbose >= 2))  # TensorFlow's C++ logs: only with -vv


for command in (devices, probe, train, eval_cmd, apply, log_cmd, report, serve, farm_command, serve_bench):
    cli.add_command(command)
cli.add_command(export_cmd)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="hwloop")


if __name__ == "__main__":  # pragma: no cover
    main()
