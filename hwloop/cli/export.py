"""``hwloop export``: a deployable form of a trained inverse, with golden vectors and a manifest."""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from hwloop.cli.checks import check_trained_run
from hwloop.cli.common import config_option, emit_json, json_option, run_option
from hwloop.cli.display import Display

FORMATS = ("c", "tflite", "coeffs")


def _width(name: str, text: str):
    return click.option(name, type=int, default=None, help=text)


@click.command("export")
@config_option
@run_option("inverse.keras")
@click.option(
    "--format",
    "fmt",
    required=True,
    type=click.Choice(FORMATS),
    help="c: fixed-point C99 (mlp, tapped, gru, gmp); tflite: float16, 16x8, int8 (mlp, tapped); "
    "coeffs: GMP CSV.",
)
@_width(
    "--bits",
    "c: width of weights and activations both, 4..16 [default: 16]; tflite: 16 (float16) or 8 (full int8) "
    "[default: every model].",
)
@_width(
    "--weight-bits", "c: width of the weights (GMP: its gain tables), 4..16 [default: --bits]; tflite: 8."
)
@_width("--act-bits", "c: width of the hidden activations (GRU: state and gates), 4..16 [default: --bits].")
@_width("--io-bits", "c: width of the target and drive words, 4..16 [default: 16].")
@click.option("--prefix", default="hwl_inv", show_default=True, help="c: prefix of file and symbol names.")
@click.option(
    "--qat",
    type=click.IntRange(min=1),
    default=None,
    metavar="QUERIES",
    help="Fine-tune the words for the closed loop first, with --device answering, within QUERIES queries "
    "(logged in the run's query log; mlp inverses; --format c, or --format tflite --bits 8 from words "
    "tuned at 8 bits throughout).",
)
@click.option("--device", default=None, help="With --qat: the run's device, as a URI.")
@click.option(
    "--seed", default=0, show_default=True, type=int, help="With --qat: seed of its targets and steps."
)
@click.option("--out", "out", required=True, type=click.Path(), help="Directory to write the export into.")
@click.option("--force", is_flag=True, help="Replace the files of an earlier export in --out.")
@json_option
def export_cmd(
    run_dir: str,
    fmt: str,
    bits: int | None,
    weight_bits: int | None,
    act_bits: int | None,
    io_bits: int | None,
    prefix: str,
    qat: int | None,
    device: str | None,
    seed: int,
    out: str,
    force: bool,
    as_json: bool,
) -> None:
    """Export a run's inverse as fixed-point C, TFLite or GMP coefficients into --out."""
    if io_bits is not None and fmt != "c":
        raise click.BadParameter("--io-bits applies to --format c only", param_hint="--io-bits")
    if (qat is None) != (device is None):
        given, missing = ("--qat", "--device") if device is None else ("--device", "--qat")
        raise click.BadParameter(f"{given} needs {missing}", param_hint=given)
    check_trained_run(run_dir)  # before TensorFlow
    from hwloop.export.build import QAT, export_run

    created = not Path(out).exists()
    try:
        with Display.open("export"):  # QAT's device queries count into its "collect" row
            manifest = export_run(
                run_dir,
                fmt,
                out,
                bits=bits,
                weight_bits=weight_bits,
                act_bits=act_bits,
                io_bits=io_bits,
                prefix=prefix,
                force=force,
                qat=None if qat is None else QAT(qat, device, seed),
            )
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
        **{k: manifest[k] for k in ("weight_bits", "act_bits", "io_bits") if k in manifest},
        "files": sorted([*manifest["files"], "manifest.json"]),
        **({"hash8": manifest["hash8"]} if "hash8" in manifest else {}),
    }
    if "qat" in manifest:
        q = manifest["qat"]
        summary["qat"] = {k: q[k] for k in ("queries_used", "first_nmse_db", "chosen_nmse_db")}
    if as_json:
        emit_json(summary)
        return
    what = f"{manifest['family']} inverse as {fmt}"
    if "weight_bits" in manifest:
        what += f" ({manifest['weight_bits']}-bit weights, {manifest['act_bits']}-bit activations)"
    click.echo(f"exported the {what} of {run_dir} -> {out} ({len(summary['files'])} files)", err=True)
    if "qat" in summary:
        s = summary["qat"]
        click.echo(
            f"fine-tuned with {s['queries_used']} device queries: closed loop {s['first_nmse_db']} dB "
            f"before the device rounds, {s['chosen_nmse_db']} dB kept",
            err=True,
        )
