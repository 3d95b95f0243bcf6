"""One export of one run, by format: ``c``, ``tflite`` or ``coeffs`` (what ``hwloop export`` runs).

Each writes its files into the output directory, then the manifest with
their hashes. Which family each format takes:

- ``c``: mlp, tapped, gru, gmp (fixed point, golden vectors, a check program);
- ``tflite``: mlp, tapped (float16, int8 weights with int16 activations, full int8; full int8
  from the quantisation-aware fine-tuned words with ``qat``);
- ``coeffs``: gmp (CSV and the basis definition).

Word widths (`Widths`): ``weight`` for weights (GMP: its gain tables),
``act`` for hidden activations (GRU: its state and gates; a GMP has none),
``io`` for the target and drive words. ``--bits N`` sets weight and act.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hwloop.errors import UsageError
from hwloop.export import cgen_gmp, cgen_gru, cgen_mlp
from hwloop.export.fixed import check_bits
from hwloop.export.gmp import QuantGMP, quantize_gmp
from hwloop.export.golden import (
    GOLDEN_CSV,
    PARAMS,
    c_check,
    c_golden,
    edge_rows,
    sha256,
    source_record,
    write_csv,
    write_manifest,
)
from hwloop.export.gru import QuantGRU, extract_gru, quantize_gru
from hwloop.export.mlp import QuantMLP, quantize, tap_words
from hwloop.export.mlp_float import extract
from hwloop.export.ptq import reconstruct
from hwloop.export.source import RunSource, read_run

log = logging.getLogger(__name__)

FORMATS = ("c", "tflite", "coeffs")
SUPPORTS = {"c": ("mlp", "tapped", "gru", "gmp"), "tflite": ("mlp", "tapped"), "coeffs": ("gmp",)}
GOLDEN_ROWS = 256  # memoryless: representative rows (plus edge rows)
GOLDEN_STREAM = 512  # stateful: samples of one stream from a reset (plus edge samples)
PTQ_ABOVE = 16  # MLP weights at fewer bits than this are chosen by `hwloop.export.ptq`
Quant = QuantMLP | QuantGMP | QuantGRU


@dataclass(frozen=True)
class Widths:
    """Word widths of a C export: weights, activations, target and drive words."""

    weight: int = 16
    act: int = 16
    io: int = 16

    @classmethod
    def of(
        cls,
        family: str,
        bits: int | None = None,
        weight_bits: int | None = None,
        act_bits: int | None = None,
        io_bits: int | None = None,
    ) -> Widths:
        """``--weight-bits``/``--act-bits`` where given, else ``--bits``, else 16; checked for the family."""
        if family == "gmp" and act_bits is not None:
            raise UsageError(
                "--act-bits does not apply to a GMP: its words are the gain tables (--weight-bits, --bits) "
                "and the I/Q samples (--io-bits)"
            )
        w = check_bits(weight_bits, "--weight-bits") if weight_bits is not None else check_bits(bits or 16)
        a = check_bits(act_bits, "--act-bits") if act_bits is not None else check_bits(bits or 16)
        return cls(w, w if family == "gmp" else a, check_bits(io_bits or 16, "--io-bits"))

    def to_dict(self) -> dict:
        return {"weight_bits": self.weight, "act_bits": self.act, "io_bits": self.io}


@dataclass
class QAT:
    """Quantisation-aware fine-tuning asked for: ``queries`` on ``device`` (a URI or a Device)."""

    queries: int
    device: Any
    seed: int = 0
    on_step: Callable[[int, float], None] | None = None
    on_query: Callable[[str, int, int], None] | None = None


def check_supported(fmt: str, family: str) -> None:
    if fmt not in SUPPORTS:
        raise UsageError(f"unknown export format {fmt!r}; choose from {', '.join(FORMATS)}")
    if family not in SUPPORTS[fmt]:
        raise UsageError(
            f"--format {fmt} exports {', '.join(SUPPORTS[fmt])} inverses; this run holds a {family} inverse"
        )


QAT_INT8 = Widths(8, 8, 8)  # full int8 TFLite is fine-tuned in the C arithmetic with 8-bit words throughout


def _quantized(src: RunSource, w: Widths, qat: QAT | None) -> tuple[Quant, dict]:
    """The run's inverse in words, and what was done to choose them (for the manifest)."""
    inv = src.inverse
    if src.family == "gmp":
        q = quantize_gmp(inv, src.targets(), w.weight, w.io, src.calls)
        return q, {"rounding": "nearest" if w.weight >= 16 else "error feedback (gptq) on the logged signal"}
    if src.family == "gru":
        f = extract_gru(inv, src.stretch(GOLDEN_STREAM))
        return quantize_gru(f, src.targets(), w.weight, w.act, w.io), {"rounding": "nearest"}
    feats = src.features()
    mlp = extract(inv.model, inv.low, inv.high, feats[:256])
    low_bits = min(w.weight, w.act) < PTQ_ABOVE
    # Nearest rounding is as good as anything at 16 bits; below, layer-wise reconstruction wins dB.
    env = src.info.get("envelope")  # the device's I/Q envelope, kept by the datapath
    if low_bits:
        q = reconstruct(mlp, feats, w.weight, w.act, w.io, env)
    else:
        q = quantize(mlp, feats, w.weight, w.act, w.io, env)
    q.extra = {"depth": src.depth, "lookahead": src.lookahead, "dim": int(src.info["out_dim"])}
    done: dict[str, Any] = {"rounding": "refit+gptq" if low_bits else "nearest"}
    done["act_rounding"] = "feedback" if q.shaped else "nearest"  # hwloop.export.shaping
    if qat is not None:
        from hwloop.export.qat import finetune
        from hwloop.registry import open_device

        dev = open_device(qat.device)
        try:
            masks = [None if not np.any(wf == 0.0) else (wf != 0.0) for wf, _ in mlp.hidden]
            masks += [None if not np.any(mlp.skip[0] == 0.0) else (mlp.skip[0] != 0.0)]
            masks += (
                [None]
                if mlp.out is None
                else [None if not np.any(mlp.out[0] == 0.0) else (mlp.out[0] != 0.0)]
            )
            tuned, record = finetune(
                src.run,
                q,
                inv.model,
                dev,
                qat.queries,
                masks=masks,
                seed=qat.seed,
                on_step=qat.on_step,
                on_query=qat.on_query,
            )
        finally:
            dev.close()
        tuned.extra = q.extra
        q = tuned
        done |= {"rounding": "refit+gptq, then quantisation-aware fine-tuning", "qat": record.to_dict()}
    return q, done


def golden_words(src: RunSource, q: Quant) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Golden input words, the reference's output words for them, and the states (a GRU's)."""
    rng = np.random.default_rng(0)
    if isinstance(q, QuantGMP):
        flush = np.zeros((q.lookahead, 2), np.int64)  # leading taps: the last drives flushed out
        t = np.concatenate(
            [q.fmt_z.quantize(src.stretch(GOLDEN_STREAM)), edge_rows(q.fmt_z.lo, q.fmt_z.hi, 2), flush]
        )
        return t, q.run(t), None
    edges = edge_rows(q.fmt_t.lo, q.fmt_t.hi, q.in_dim if isinstance(q, QuantGRU) else q.extra["dim"])
    if isinstance(q, QuantGRU):
        t = np.concatenate([q.fmt_t.quantize(src.stretch(GOLDEN_STREAM)), edges])
        x, h = q.run(t)
        return t, x, h
    depth, look = q.extra["depth"], q.extra["lookahead"]
    if src.family == "tapped":
        t = np.concatenate([q.fmt_t.quantize(src.stretch(GOLDEN_STREAM)), edges])
        return t, q.run(tap_words(t, depth, look)), None
    targets = src.targets()
    pick = rng.choice(len(targets), size=min(GOLDEN_ROWS, len(targets)), replace=False)
    t = np.concatenate([q.fmt_t.quantize(targets[np.sort(pick)]), edges])
    return t, q.run(t), None


def _comment(src: RunSource, w: Widths, prefix: str) -> list[str]:
    return [
        f"{prefix}: a {src.family} inverse in fixed point, generated by `hwloop export --format c`.",
        f"From run {src.run.resolve()} (device {src.metrics.get('device', src.info.get('name'))}).",
        f"Words: {w.weight}-bit weights, {w.act}-bit activations, {w.io}-bit inputs and outputs;",
        "round half up, saturate, never wrap (docs/deploy.md). Generated: do not edit.",
    ]


def _interface(src: RunSource, q: Quant) -> dict:
    if isinstance(q, QuantGMP):
        look = q.lookahead  # the drive of step n is sample n - look's: the latency in samples
        return {"in_dim": 2, "out_dim": 2, "stateful": True, "depth": q.depth - look, "lookahead": look}
    if isinstance(q, QuantGRU):
        return {"in_dim": q.in_dim, "out_dim": q.out_dim, "stateful": True, "depth": 0, "lookahead": 0}
    ex = q.extra
    return {
        "in_dim": ex["dim"],
        "out_dim": q.out_dim,
        "stateful": src.family == "tapped",
        "depth": ex["depth"],
        "lookahead": ex["lookahead"],
    }


def export_c(src: RunSource, out: Path, w: Widths, prefix: str, qat: QAT | None = None) -> dict:
    """The C export: PREFIX.c/.h, golden vectors, the check program, params.json, manifest.json."""
    q, done = _quantized(src, w, qat)
    comment = _comment(src, w, prefix)
    if isinstance(q, QuantGMP):
        c_text = cgen_gmp.source(q, prefix, f"{prefix}.h", comment)
    elif isinstance(q, QuantGRU):
        c_text = cgen_gru.source(q, prefix, f"{prefix}.h", comment)
    else:
        taps = q.extra["depth"] + 1 + q.extra["lookahead"]
        c_text = cgen_mlp.source(q, prefix, f"{prefix}.h", taps, q.extra["dim"], comment)
    (out / f"{prefix}.c").write_text(c_text)
    hash8 = sha256(out / f"{prefix}.c")[:8]
    if isinstance(q, QuantGMP):
        h_text = cgen_gmp.header(q, prefix, hash8, comment)
    elif isinstance(q, QuantGRU):
        h_text = cgen_gru.header(q, prefix, hash8, comment)
    else:
        ex = q.extra
        taps = ex["depth"] + 1 + ex["lookahead"]
        h_text = cgen_mlp.header(q, prefix, src.family, taps, ex["dim"], ex["lookahead"], hash8, comment)
    (out / f"{prefix}.h").write_text(h_text)
    interface = _interface(src, q)
    fmt_in = q.fmt_z if isinstance(q, QuantGMP) else q.fmt_t
    interface |= {"t_frac": fmt_in.frac, "x_frac": q.fmt_x.frac}
    t, x, h = golden_words(src, q)
    write_csv(out / GOLDEN_CSV, t, x, h)
    (out / f"{prefix}_golden.h").write_text(c_golden(prefix, t, x, h))
    (out / f"{prefix}_check.c").write_text(c_check(prefix))
    (out / PARAMS).write_text(json.dumps({"family": src.family, "quant": q.to_dict()}))
    golden = {"file": GOLDEN_CSV, "rows": len(t), "stream": interface["stateful"]}
    golden |= {"state_words": int(h.shape[1])} if h is not None else {}
    return {
        "hash8": hash8,
        **w.to_dict(),
        **done,
        "q_formats": q.formats(),
        "interface": interface,
        "golden": golden,
        "files_of": {
            "source": f"{prefix}.c",
            "header": f"{prefix}.h",
            "check": f"{prefix}_check.c",
            "golden_header": f"{prefix}_golden.h",
            "params": PARAMS,
        },
    }


def export_run(
    run_dir: str | Path,
    fmt: str,
    out_dir: str | Path,
    *,
    bits: int | None = None,
    weight_bits: int | None = None,
    act_bits: int | None = None,
    io_bits: int | None = None,
    prefix: str = "hwl_inv",
    force: bool = False,
    qat: QAT | None = None,
) -> dict[str, Any]:
    """Export the inverse of ``run_dir`` as ``fmt`` into ``out_dir``; returns the manifest.

    ``qat`` fine-tunes the words with the run's device in the loop first (`hwloop.export.qat`):
    its queries go into the run's query log, and its record into the manifest and the run's
    metrics.json (key ``qat``, one entry per export).
    """
    if fmt not in FORMATS:
        raise UsageError(f"unknown export format {fmt!r}; choose from {', '.join(FORMATS)}")
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,30}", prefix):
        raise UsageError(f"--prefix must be a lower-case C identifier, got {prefix!r}")
    src = read_run(run_dir)
    check_supported(fmt, src.family)
    if fmt != "c" and io_bits is not None:
        raise UsageError("--io-bits applies to --format c only")
    if qat is not None:
        from hwloop.export.qat import MIN_QUERIES
        from hwloop.export.tflite import kinds_for

        if fmt == "coeffs" or (fmt == "tflite" and kinds_for(bits, weight_bits, act_bits) != ["int8"]):
            raise UsageError(
                "--qat tunes the words of --format c, or of full int8 --format tflite (--bits 8); "
                + ("--format coeffs has none" if fmt == "coeffs" else "these widths ask for another model")
            )
        if src.family != "mlp":
            raise UsageError(f"--qat tunes a memoryless MLP inverse; this run holds a {src.family} inverse")
        if qat.queries < MIN_QUERIES:
            raise UsageError(f"--qat needs at least {MIN_QUERIES} queries to score rounds, got {qat.queries}")
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not force)):
        raise UsageError(f"{out} exists and is not an empty directory (--force replaces an export)")
    widths = None
    if fmt == "c":
        widths = Widths.of(src.family, bits, weight_bits, act_bits, io_bits)  # refused before anything runs
    out.mkdir(parents=True, exist_ok=True)
    for old in out.iterdir():
        if old.is_file():
            old.unlink()
    record: dict[str, Any] = {
        "format": fmt,
        "family": src.family,
        "device": src.info,
        "source": source_record(src.run, src.metrics),
    }
    if fmt == "c":
        record |= {"bits": widths.weight, "prefix": prefix, **export_c(src, out, widths, prefix, qat)}
    elif fmt == "tflite":
        from hwloop.export.tflite import export_tflite

        tuned = None
        if qat is not None:  # fine-tuned in the C arithmetic nearest full int8's: 8-bit words throughout
            from hwloop.export.tflite_graph import float_of

            q, done = _quantized(src, QAT_INT8, qat)
            tuned = float_of(q)
            record |= {"qat": done["qat"], "qat_widths": QAT_INT8.to_dict()}
        record |= export_tflite(src, out, bits, weight_bits, act_bits, tuned)
    else:
        from hwloop.export.coeffs import export_coeffs

        if any(b is not None for b in (bits, weight_bits, act_bits)):
            raise UsageError("--format coeffs writes the float coefficients; no word width applies")
        record |= export_coeffs(src, out)
    manifest = write_manifest(out, record)
    if "qat" in record:
        note_qat(src.run, out, manifest)
    log.info("exported %s as %s into %s", src.run, fmt, out)
    return manifest


def note_qat(run: Path, out: Path, manifest: dict) -> None:
    """Append the fine-tuning's record to the run's metrics.json (key ``qat``): it spent its queries."""
    from hwloop.rundir import RunDir

    rd = RunDir(run)
    metrics = rd.read_metrics() or {}
    entry = {"out": str(out.resolve()), "hash8": manifest.get("hash8"), "created": manifest["created"]}
    metrics["qat"] = [*metrics.get("qat", []), {**entry, **manifest["qat"]}]
    rd.write_metrics(metrics)
