"""``hwloop farm``: the click command; registered on the ``hwloop`` group in cli.py.

Progress (a line per unit as it finishes) and the summary table go to stderr;
``--json`` prints the farm.json content on stdout. Exit 0 when every unit is
ok, 1 when any failed, 2 for bad input (including Ray not installed).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
from typing import Any

import click

from hwloop import progress
from hwloop.cli.checks import check_device_uri, resume_command
from hwloop.cli.common import given_options
from hwloop.cli.display import Display, quiet_option
from hwloop.cli.train import options_from, plan_options, run_options
from hwloop.config import quick, quick_plan
from hwloop.errors import UsageError
from hwloop.rundir import option_fields

TRAIN_OPTIONS = ("strategy", "queries", "seed", *(f.name for f in option_fields()))


def _db(v: float | None) -> str:
    return "-inf" if v is None else f"{v:.1f}"


def unit_line(u: dict) -> str:
    """One progress line for a finished unit."""
    if u["status"] == "ok":
        return (
            f"{u['unit']}: ok, closed-loop NMSE {_db(u.get('closed_loop_nmse_db'))} dB, "
            f"{u.get('queries_used')} training + {u.get('eval_queries')} evaluation queries, "
            f"{u.get('unit_wall_s', u.get('wall_s', 0.0)):.1f} s"
            + (f", attempt {u['attempts']}" if u.get("attempts", 1) > 1 else "")
        )
    return f"{u['unit']}: FAILED after {u.get('attempts', 1)} attempt(s): {u.get('error')}"


def summary_table(farm: dict) -> str:
    """The end-of-farm table: one row per unit."""
    head = ("unit", "status", "NMSE dB", "floor dB", "queries", "wall s", "host")
    rows = [head]
    for u in farm["units"]:
        ok = u["status"] == "ok"
        rows.append(
            (
                u["unit"],
                u["status"],
                _db(u.get("closed_loop_nmse_db")) if ok else "",
                _db(u.get("noise_floor_db")) if ok else "",
                str(u.get("queries_used", "")) if ok else "",
                f"{u.get('unit_wall_s', u.get('wall_s', 0.0)):.1f}",
                str(u.get("host", "")),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.append(
        f"{farm['ok']} ok, {farm['failed']} failed, {farm['wall_s']:.1f} s -> {farm['out']}/farm.json"
    )
    return "\n".join(lines)


@click.command("farm")
@click.option("--device", "devices", multiple=True, help="Device URI of one unit; repeat for more.")
@click.option(
    "--devices-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="File with one URI per line, optionally 'URI resource=NAME' to pin it to a Ray resource.",
)
@run_options
@plan_options
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False),
    help="Farm directory: OUT/<unit>/ per unit, OUT/farm.json.",
)
@click.option(
    "--ray-address", default=None, help="Join a running Ray cluster (auto, HOST:PORT); default: a local one."
)
@click.option(
    "--unit-cpus",
    default=0.25,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="CPUs Ray books per unit's run (fractions let several latency-bound runs share a core).",
)
@click.option("--resume", is_flag=True, help="Finish the farm in --out: ok units are kept, others resume.")
@quiet_option
@click.option("--json", "as_json", is_flag=True, help="Print farm.json as one JSON object on stdout.")
def farm_command(
    devices: tuple[str, ...],
    devices_file: str | None,
    out: str,
    ray_address: str | None,
    unit_cpus: float,
    resume: bool,
    quiet: bool,
    as_json: bool,
    **train_values: Any,
) -> None:
    """Train one inverse per device, in parallel on Ray; each unit in OUT/<unit>/."""
    from click.core import ParameterSource

    from hwloop.farm.api import import_ray
    from hwloop.farm.units import UnitSpec, parse_devices_file

    ctx = click.get_current_context()
    specs: list[UnitSpec] = [UnitSpec(d) for d in devices]
    if devices_file:
        specs += parse_devices_file(devices_file)
    for spec in specs:  # scheme and parameters, before Ray starts; opening is each unit's own
        check_device_uri(spec.uri)
    import_ray()  # without Ray: one line saying how to install it
    if resume:
        given = [n for n in TRAIN_OPTIONS if ctx.get_parameter_source(n) == ParameterSource.COMMANDLINE]
        if specs or given:
            what = "devices" if specs else "--" + given[0].replace("_", "-")
            raise UsageError(f"--resume takes devices and train options from {out}/farm.json; drop {what}")
        options: dict[str, Any] = {}
    else:
        if not specs:
            raise UsageError("give at least one --device URI or a --devices-file")
        opts = options_from(train_values)  # a mask file read, --hold parsed, checked
        from hwloop.run import check_request

        given = given_options(ctx, TRAIN_OPTIONS)  # an option that would not act on any unit: refused
        check_request(opts, train_values["strategy"], offline=False, given=given)
        plan = dataclasses.asdict(opts)
        fixed = {k: train_values[k] for k in ("strategy", "queries", "seed")}
        options = {k: v for k, v in {**fixed, **plan}.items() if v is not None}
        if quick():  # HWLOOP_DOCS_QUICK: capped here, so workers need not see the environment
            from hwloop.rundir import TrainOptions

            q, opts, _ = quick_plan(options["queries"], TrainOptions(**plan), None)
            capped = {**fixed, "queries": q, **dataclasses.asdict(opts)}
            options = {k: v for k, v in capped.items() if v is not None}

    from hwloop.farm.api import run_farm

    def done(entry: dict) -> None:
        click.echo(unit_line(entry), err=True)
        progress.count("units", 1, unit="done")

    with Display.open("farm", quiet), contextlib.redirect_stdout(sys.stderr):  # Ray warns on stdout
        if specs:
            progress.expect("units", len(specs), unit="done")
        try:
            result = run_farm(
                specs,
                out=out,
                ray_address=ray_address,
                resume=resume,
                unit_cpus=unit_cpus,
                on_unit_done=done,
                **options,
            )
        except KeyboardInterrupt as exc:
            exc.kept = f"every unit's answers so far are in its query log under {out}"  # type: ignore[attr-defined]
            exc.resume_command = resume_command("farm", out, ray_address=ray_address)  # type: ignore[attr-defined]
            raise
    data = result.to_dict()
    if as_json:
        click.echo(json.dumps(data, default=str))
    else:
        click.echo(summary_table(data), err=True)
    if not result.ok:
        ctx.exit(1)
