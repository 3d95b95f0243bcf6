"""``hwloop serve-bench``: a fake RF bench (generator + analyser SCPI servers) behind a PA simulator."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import click

from hwloop.errors import UsageError


@click.command("serve-bench")
@click.option("--pa", default="sim:pa_wh?seed=3", show_default=True, help="The amplifier: a sim: I/Q URI.")
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
    "--fs", default=800e6, show_default=True, type=float, help="Sample rate written to the file, Hz."
)
@click.option("--delay", default=None, type=float, help="Path delay in samples (default: drawn from --seed).")
@click.option("--gain-db", default=None, type=float, help="Path gain after the PA, dB (default: drawn).")
@click.option("--phase", default=None, type=float, help="Path phase, rad (default: drawn).")
@click.option(
    "--timeout", "timeout_s", default=0.5, show_default=True, type=float, help="timeout_s in the file."
)
@click.option(
    "--write", "write", default=None, type=click.Path(dir_okay=False), help="Also save the file here."
)
def serve_bench(
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
) -> None:
    """Serve a fake bench and print the bench file for it (save it, then use --device bench:FILE)."""
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
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        text = bench.toml(timeout_s=timeout_s)
        if write:
            Path(write).write_text(text)
            click.echo(f"wrote {write}", err=True)
        click.echo(text, nl=False)
        click.echo(
            f"serving a fake bench ({pa}, dialect {dialect}): generator {bench.generator.resource}, "
            f"analyser {bench.analyser.resource}; Ctrl-C to stop",
            err=True,
        )
        try:
            while not stop.wait(0.2):
                pass
        except KeyboardInterrupt:
            pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        bench.close()
