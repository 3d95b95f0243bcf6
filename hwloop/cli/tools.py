"""The ``hwloop`` commands that inspect, serve and export: devices, probe, apply, log, report, serve."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from hwloop.cli.checks import check_device_uri, check_trained_run
from hwloop.cli.common import (
    config_option,
    device_option,
    emit_json,
    json_option,
    load_npy,
    run_option,
)
from hwloop.errors import UsageError


@click.command()
@config_option
@json_option
def devices(as_json: bool) -> None:
    """List device schemes, simulators with their parameters, and detected serial ports (on stdout)."""
    from hwloop.registry import device_schemes

    schemes = device_schemes()
    listed: list[dict[str, Any]] = []
    seen: set[int] = set()
    for scheme, ep in sorted(schemes.items()):
        try:
            factory = ep.load()
        except Exception as exc:  # a broken plugin is reported, not fatal
            listed.append({"uri": f"{scheme}:", "description": f"(cannot load: {exc})"})
            continue
        if id(factory) in seen:  # one factory behind several schemes describes them all once
            continue
        seen.add(id(factory))
        describe = getattr(factory, "describe", None)
        entries = describe() if callable(describe) else [(f"{scheme}:", ep.value)]
        for uri, line in entries:
            item: dict[str, Any] = {"uri": uri, "description": line, "group": scheme}
            params = _parameters(factory, uri)
            if params:
                item["parameters"] = params
            listed.append(item)
    ports = _serial_ports()
    if as_json:
        shown = [{k: v for k, v in item.items() if k != "group"} for item in listed]
        emit_json({"schemes": sorted(schemes), "devices": shown, "serial_ports": ports})
        return
    click.echo(_device_listing(listed))
    click.echo("Serial ports:" if ports else "Serial ports: none detected")
    for p in ports:
        click.echo(f"  {p['device']:<22} {p['description']}")


def _parameters(factory: Any, uri: str) -> dict[str, Any]:
    """A URI's parameters and defaults, where its scheme's factory can say (``parameters(uri)``)."""
    get = getattr(factory, "parameters", None)
    if not callable(get):
        return {}
    try:
        return {k: p.default for k, p in get(uri).items()}
    except Exception:  # a listing never fails on one entry
        return {}


def _device_listing(listed: list[dict[str, Any]]) -> str:
    """Devices, one a line, each followed by its own parameters; parameters every device of a
    scheme shares (same default) are said once, at the top."""
    by_scheme: dict[str, list[dict[str, Any]]] = {}
    for item in listed:
        by_scheme.setdefault(item.get("group") or item["uri"].split(":")[0], []).append(item)
    lines = ["Devices (URI, what it is; parameters: name=default):"]
    for items in by_scheme.values():
        params = [i.get("parameters") or {} for i in items]
        shared = {k: v for k, v in params[0].items() if all(p.get(k, object()) == v for p in params)}
        if len(items) > 1 and shared:
            label = "/".join(dict.fromkeys(i["uri"].split(":")[0] for i in items))
            lines.append(f"  every {label}: URI takes " + _params_text(shared))
        for item, own in zip(items, params, strict=True):
            lines.append(f"  {item['uri']:<22} {item['description']}")
            rest = own if len(items) == 1 else {k: v for k, v in own.items() if k not in shared}
            if rest:
                lines.append(" " * 25 + _params_text(rest))
    return "\n".join(lines)


def _params_text(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def _serial_ports() -> list[dict[str, str]]:
    try:
        from serial.tools import list_ports
    except ImportError:  # pragma: no cover - pyserial is a dependency
        return []
    return [{"device": p.device, "description": p.description or ""} for p in list_ports.comports()]


@click.command()
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
@json_option
def probe(device: str, points: int, repeats: int, seed: int, as_json: bool) -> None:
    """Show a device's info, a sweep of each input and a noise estimate (on stdout)."""
    check_device_uri(device)
    from hwloop.evaluate import probe_device
    from hwloop.registry import open_device

    dev = open_device(device)
    try:
        report = probe_device(dev, points=points, repeats=repeats, seed=seed)
    finally:
        dev.close()
    if as_json:
        emit_json(report)
        return
    info = report["info"]
    click.echo(
        f"{info['name']}: {info['in_dim']} in -> {info['out_dim']} out, max_batch {info['max_batch']}, "
        f"safe range {info['low']} .. {info['high']}{', stateful' if info['stateful'] else ''}"
    )
    for sweep in report["sweeps"]:
        click.echo(f"sweep of input {sweep['input']}:")
        for xv, yv in zip(sweep["x"], sweep["y"], strict=True):
            click.echo(f"  {xv:+.4f} -> {', '.join(f'{v:+.5f}' for v in yv)}")
    click.echo(f"noise std per output: {', '.join(f'{v:.3g}' for v in report['noise_std'])}")
    for key, value in report.items():  # what the device itself measured (probe_report)
        if key not in ("info", "sweeps", "noise_std"):
            click.echo(f"{key}: {value}")


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


@click.command()
@config_option
@run_option("inverse.keras")
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

    from hwloop.inverses.store import load_inverse

    check_trained_run(run_dir)  # before TensorFlow, as the targets file is
    targets = load_npy(in_path, "targets file")
    inverse = load_inverse(run_dir)
    x = inverse.apply(targets)
    np.save(out_path, x)
    click.echo(f"wrote {x.shape[0]} input row(s) to {out_path}", err=True)


@click.command("log")
@config_option
@run_option("queries.sqlite")
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

    suffix = Path(export).suffix.lower()
    if suffix not in (".npz", ".csv"):
        raise UsageError(f"--export writes FILE.npz or FILE.csv, not {export!r}")
    qlog = open_run_log(run_dir)
    try:
        which = None if kind == "all" else kind
        n = qlog.export_csv(export, which) if suffix == ".csv" else qlog.export_npz(export, which)
    finally:
        qlog.close()
    click.echo(f"exported {n} logged queries to {export}", err=True)


@click.command()
@config_option
@run_option()
@click.option(
    "--out", type=click.Path(dir_okay=False), default=None, help="PNG path [default: RUN/report.png]."
)
def report(run_dir: str, out: str | None) -> None:
    """Draw a run's report.png (transfer, closed loop, error, fits, rounds; I/Q: AM/AM, AM/PM, spectrum)."""
    from hwloop.report.figure import write_report

    click.echo(f"wrote {write_report(run_dir, out=out)}", err=True)


@click.command()
@config_option
@device_option()
@click.option("--pty", "use_pty", is_flag=True, help="Serve on a new pseudo-terminal (prints its path).")
@click.option("--listen", default=None, help="Serve on a TCP address, e.g. tcp://127.0.0.1:7000.")
@click.option(
    "--allow-remote",
    is_flag=True,
    help="Allow a non-loopback --listen address (the link has no authentication).",
)
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
    allow_remote: bool,
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
    check_device_uri(device)
    faults = FaultConfig(
        drop=drop, garble=garble, duplicate=duplicate, reboot_after=reboot_after, baud=baud, seed=fault_seed
    )
    dev = open_device(device)

    def announce(address: str) -> None:
        click.echo(address)
        sys.stdout.flush()
        click.echo(f"serving {device} on {address} (window {window}); Ctrl-C to stop", err=True)

    try:
        run_server(
            dev,
            pty=use_pty,
            listen=listen,
            window=window,
            faults=faults,
            on_ready=announce,
            allow_remote=allow_remote,
        )
    finally:
        dev.close()
