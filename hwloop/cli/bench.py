"""``hwloop serve-bench``: a fake RF bench behind an amplifier: two SCPI instruments, or (``--radio``) a
transceiver speaking libiio's network protocol."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import click

from hwloop.errors import UsageError

VISA_ONLY = ("dialect", "generator_port", "analyser_port", "gain_db")
RADIO_ONLY = ("device_class", "port", "cfo_hz")


@click.command("serve-bench")
@click.option(
    "--radio",
    is_flag=True,
    help="Serve a fake transceiver (AD936x over libiio's network protocol, docs/radio.md) instead.",
)
@click.option(
    "--pa",
    default="sim:pa_wh?seed=3",
    show_default=True,
    help="The amplifier: an I/Q device URI (a sim: one; with --radio any scheme, plugins included).",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of delay, gain, phase and noise.")
@click.option(
    "--dialect",
    type=click.Choice(["generic", "rs"]),
    default="generic",
    show_default=True,
    help="generic: the generic SCPI set (docs/scpi.md); rs: R&S SMW + FSW forms.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--generator-port", default=5025, show_default=True, type=click.IntRange(0, 65535))
@click.option("--analyser-port", default=5026, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--fs",
    default=800e6,
    show_default=True,
    type=float,
    help="Sample rate written to the file, Hz (--radio: 30.72e6 unless given).",
)
@click.option("--delay", default=None, type=float, help="Path delay in samples (default: drawn from --seed).")
@click.option("--gain-db", default=None, type=float, help="Path gain after the PA, dB (default: drawn).")
@click.option("--phase", default=None, type=float, help="Path phase, rad (default: drawn).")
@click.option(
    "--timeout",
    "timeout_s",
    default=0.5,
    show_default=True,
    type=float,
    help="timeout_s in the file (--radio: 2 unless given).",
)
@click.option(
    "--write", "write", default=None, type=click.Path(dir_okay=False), help="Also save the file here."
)
@click.option(
    "--device-class",
    type=click.Choice(["pluto", "ad9364", "ad9361"]),
    default="pluto",
    show_default=True,
    help="--radio: the transceiver the context looks like (pyadi-iio's Pluto, ad9364, ad9361).",
)
@click.option(
    "--port", default=30431, show_default=True, type=click.IntRange(0, 65535), help="--radio: iiod's port."
)
@click.option("--cfo-hz", default=None, type=float, help="--radio: residual carrier offset (default: drawn).")
@click.pass_context
def serve_bench(
    ctx: click.Context,
    radio: bool,
    pa: str,
    seed: int,
    dialect: str,
    host: str,
    generator_port: int,
    analyser_port: int,
    fs: float,
    delay: float | None,
    gain_db: float | None,
    phase: float | None,
    timeout_s: float,
    write: str | None,
    device_class: str,
    port: int,
    cfo_hz: float | None,
) -> None:
    """Serve a fake bench and print the bench file for it (save it, then use --device bench:FILE)."""
    given = {k for k in ctx.params if ctx.get_parameter_source(k) is click.core.ParameterSource.COMMANDLINE}
    wrong = sorted(given & set(RADIO_ONLY if not radio else VISA_ONLY))
    if wrong:
        opt = "--" + wrong[0].replace("_", "-")
        raise UsageError(f"serve-bench: {opt} {'needs' if not radio else 'is not for'} --radio")
    if radio:
        rate = fs if "fs" in given else 30.72e6
        timeout = timeout_s if "timeout_s" in given else 2.0
        _serve_radio(pa, seed, host, port, device_class, delay, phase, cfo_hz, rate, timeout, write)
        return
    from hwloop.simulators.fake_bench.bench import FakeBench

    try:
        bench = FakeBench(
            pa,
            seed=seed,
            dialect=dialect,
            fs=fs,
            host=host,
            ports=(generator_port, analyser_port),
            delay=delay,
            gain_db=gain_db,
            phase=phase,
        )
    except OSError as exc:
        raise UsageError(f"serve-bench: cannot listen on {host}: {exc}") from None
    except ValueError as exc:
        raise UsageError(f"serve-bench: {exc}") from None
    what = (
        f"a fake bench ({pa}, dialect {dialect}): generator {bench.generator.resource}, "
        f"analyser {bench.analyser.resource}"
    )
    _serve(bench, bench.toml(timeout_s=timeout_s), what, write)


def _serve_radio(
    pa: str,
    seed: int,
    host: str,
    port: int,
    device_class: str,
    delay: float | None,
    phase: float | None,
    cfo_hz: float | None,
    sample_rate: float,
    timeout_s: float,
    write: str | None,
) -> None:
    """A fake radio (simulators/fake_radio) with the device ``pa`` between its TX and RX."""
    if not 520833 <= sample_rate <= 61.44e6:
        raise UsageError(f"serve-bench: --fs {sample_rate:g} is outside a radio's 520833 .. 61.44e6 S/s")
    from hwloop.registry import open_device
    from hwloop.simulators.fake_radio.radio import FakeRadio

    amp = open_device(pa)
    try:
        fake = FakeRadio(
            amp,
            device_class=device_class,
            seed=seed,
            host=host,
            port=port,
            delay=delay,
            phase=phase,
            cfo_hz=cfo_hz,
        )
    except OSError as exc:
        amp.close()
        raise UsageError(f"serve-bench: cannot listen on {host}:{port}: {exc}") from None
    except ValueError as exc:
        amp.close()
        raise UsageError(f"serve-bench: {exc}") from None
    what = f"a fake radio ({device_class}, amplifier {pa}) at {fake.uri}"
    try:
        _serve(fake, fake.toml(timeout_s=timeout_s, sample_rate=sample_rate), what, write)
    finally:
        amp.close()


def _serve(fake: Any, text: str, what: str, write: str | None) -> None:
    """Print (and save) the bench file, then serve until Ctrl-C or SIGTERM."""
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        if write:
            Path(write).write_text(text)
            click.echo(f"wrote {write}", err=True)
        click.echo(text, nl=False)
        click.echo(f"serving {what}; Ctrl-C to stop", err=True)
        try:
            while not stop.wait(0.2):
                pass
        except KeyboardInterrupt:
            pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        fake.close()
