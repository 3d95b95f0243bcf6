"""``hwloop track``: watch a run's predistorter on its amplifier and recalibrate it when it degrades."""

from __future__ import annotations

from typing import Any

import click
from click.core import ParameterSource

from hwloop import progress
from hwloop.cli.checks import check_device_uri, check_trained_run
from hwloop.cli.common import config_option, device_option, emit_json, json_option, run_option
from hwloop.cli.display import Display, quiet_option

GIVEN = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
SETTINGS = (
    "budget",
    "check_every",
    "threshold_db",
    "signal",
    "check_queries",
    "adapt_queries",
    "watch",
    "max_checks",
)


@click.command("track")
@config_option
@run_option("a predistorter trained with --signal")
@device_option()
@click.option(
    "--budget",
    type=click.IntRange(1),
    default=None,
    help="Device queries this session may spend, checks and recalibrations together "
    "[default: the run's training queries].",
)
@click.option(
    "--check-every",
    type=click.FloatRange(0.0),
    default=0.0,
    show_default=True,
    help="Seconds from the start of one check to the next (0: one after the other).",
)
@click.option(
    "--threshold-db",
    type=click.FloatRange(0.0, min_open=True),
    default=1.0,
    show_default=True,
    help="Recalibrate when a watched figure is this many dB worse than the version's first check.",
)
@click.option(
    "--signal",
    default=None,
    help="Track on this signal (FILE, ofdm:..., dpa200:SPLIT) at the run's gain [default: the run's own].",
)
@click.option(
    "--check-queries",
    type=click.IntRange(256),
    default=None,
    help="Samples one check sends through the predistorter [default: 2 % of the run's training "
    "queries, 512 to 2048].",
)
@click.option(
    "--adapt-queries",
    type=click.IntRange(512),
    default=None,
    help="Queries one recalibration may spend [default: 5 % of the run's training queries, at least 1024].",
)
@click.option(
    "--watch",
    default="acpr,evm",
    show_default=True,
    help="The figures whose degradation starts a recalibration: acpr, evm, nmse (comma separated).",
)
@click.option("--max-checks", type=click.IntRange(1), default=None, help="Stop after this many checks.")
@json_option
@quiet_option
def track(run_dir: str, device: str, as_json: bool, quiet: bool, **values: Any) -> None:
    """Watch RUN's predistorter on DEVICE a few queries at a time; recalibrate it when it degrades.

    Every version is kept in RUN/track/ with its figures and what it cost; the
    one in service is RUN's inverse. Run the same command again after a kill:
    the session resumes without paying for a logged query twice.
    """
    ctx = click.get_current_context()
    given = {k for k in SETTINGS if ctx.get_parameter_source(k) in GIVEN}
    watch = tuple(w.strip() for w in values["watch"].split(",") if w.strip())
    check_trained_run(run_dir)  # a bad run or URI refused before TensorFlow is imported
    check_device_uri(device)
    from hwloop.tracking import track as run_track

    def counted(kind: str, n: int, used: int) -> None:  # the session's queries, on the display
        progress.count("track", n, total=values["budget"], unit="queries", label="track queries")
        progress.count("recalibrating" if kind == "train" else "checking", n, unit="queries")

    with Display.open("track", quiet):
        result = run_track(
            run_dir,
            device,
            budget=values["budget"],
            check_every=values["check_every"],
            threshold_db=values["threshold_db"],
            signal=values["signal"],
            check_queries=values["check_queries"],
            adapt_queries=values["adapt_queries"],
            watch=watch,
            max_checks=values["max_checks"],
            progress=counted,
            given=given,
        )
    m = result.metrics
    if as_json:
        emit_json(m)
        return
    last = m["last_check"] or {}
    figures = (
        f"last check ACPR {last['acpr_dbc']:.1f} dBc, EVM {last['evm_db']:.1f} dB, " if last else "no check, "
    )
    click.echo(
        f"tracked {m['run_dir']} on {m['device']} (session {m['session']}"
        f"{', resumed' if m['resumed'] else ''}): {m['checks']} checks, {m['adaptations']} recalibrations, "
        f"{figures}version {m['current_version']} in service of {m['versions']}, {m['queries_used']} of "
        f"{m['budget']} queries ({m['check_queries_used']} checking, "
        f"{m['adapt_queries_used']} recalibrating), "
        f"stopped: {m['stopped']} -> {m['history']}",
        err=True,
    )
