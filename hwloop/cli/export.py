"""``hwloop export``: a deployable form of a trained inverse, with golden vectors and a manifest."""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from hwloop.cli.checks import check_trained_run
from hwloop.cli.common import config_option, emit_json, json_option, run_option
from hwloop.cli.display import Display

FORMATS = ("c", "tflite", "coeffs")


@click.command("export")
@config_option
@run_option("inverse.keras")
@click.option(
    "--format",
    "fmt",
    required=True,
    type=click.Choice(FORMATS),
    help="c: fixed-point C99 (mlp, tapped, gmp); tflite: float16/int8 (mlp, tapped); coeffs: GMP CSV.",
)
@click.option(
    "--bits",
    type=int,
    default=None,
    help="c: word width of weights and activations, 4..16 [default: 16]; tflite: 16 (float16) or 8 (int8) "
    "[default: both].",
)
@click.option(
    "--io-bits",
    type=int,
    default=None,
    help="c: width of the target and drive words, 4..16 [default: 16]; equal to --bits for a pure datapath.",
)
@click.option("--prefix", default="hwl_inv", show_default=True, help="c: prefix of file and symbol names.")
@click.option("--out", "out", required=True, type=click.Path(), help="Directory to write the export into.")
@click.option("--force", is_flag=True, help="Replace the files of an earlier export in --out.")
@json_option
def export_cmd(
    run_dir: str,
    fmt: str,
    bits: int | None,
    io_bits: int | None,
    prefix: str,
    out: str,
    force: bool,
    as_json: bool,
) -> None:
    """Export a run's inverse as fixed-point C, TFLite or GMP coefficients into --out."""
    if io_bits is not None and fmt != "c":
        raise click.BadParameter("--io-bits applies to --format c only", param_hint="--io-bits")
    check_trained_run(run_dir)  # before TensorFlow
    from hwloop.export.build import export_run

    created = not Path(out).exists()
    try:
        with Display.open("export"):
            manifest = export_run(run_dir, fmt, out, bits=bits, io_bits=io_bits, prefix=prefix, force=force)
    except BaseException:
        if created and Path(out).is_dir():  # a refused or failed export leaves nothing behind
            shutil.rmtree(out, ignore_errors=True)
        raise
    summary = {
        "run_dir": run_dir,
        "out": out,
        "format": fmt,
        "family": manifest["family"],
        "bits": manifest.get("bits"),
        "files": sorted([*manifest["files"], "manifest.json"]),
        **({"hash8": manifest["hash8"]} if "hash8" in manifest else {}),
    }
    if as_json:
        emit_json(summary)
        return
    what = f"{manifest['family']} inverse as {fmt}" + (
        f" ({manifest['bits']}-bit)" if manifest.get("bits") else ""
    )
    click.echo(f"exported the {what} of {run_dir} -> {out} ({len(summary['files'])} files)", err=True)
