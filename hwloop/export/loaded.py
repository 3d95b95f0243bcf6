"""An export read back as an inverse with ``apply(t)``: what ``hwloop eval --exported FILE`` measures.

- ``c``: the numpy bit-exact reference rebuilt from params.json, after it
  has reproduced the export's golden vectors (so it computes what the
  compiled C computes); targets are rounded to the input words, the drive
  words scaled back to floats.
- ``tflite``: the .tflite named (or the only one in the export) through the
  TFLite interpreter, its golden rows checked first.
- ``coeffs``: the CSV read back into the float GMP predistorter.

Every file is checked against the manifest's SHA-256 before it is read; a
bad file is a one-line `RunDirError`. `evaluate_exported` scores one the
way ``hwloop eval`` scores the float inverse: same function, same seed,
same budget; its keys are prefixed ``exported_``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hwloop.errors import RunDirError, ShapeError
from hwloop.export.gmp import QuantGMP
from hwloop.export.golden import GOLDEN_CSV, PARAMS, find_manifest, read_golden, sha256, verify
from hwloop.export.gru import QuantGRU
from hwloop.export.mlp import QuantMLP, tap_words
from hwloop.inverses.base import within_device
from hwloop.inverses.tapped import tapped

log = logging.getLogger(__name__)

PREFIX = "exported_"


@dataclass
class ExportedInverse:
    """An exported inverse: ``apply(t)`` like the float one (a whole sequence for a stateful one)."""

    label: str
    manifest: dict
    run_rows: Callable[[np.ndarray], np.ndarray]
    in_dim: int  # the device's input dimension (what apply returns per row)
    out_dim: int  # the device's output dimension (what a target row holds)
    details: dict = field(default_factory=dict)
    latency: int = 0  # a GMP's leading taps: scoring gives it the targets after a stretch, as the float's

    def apply(self, t: np.ndarray) -> np.ndarray:
        arr = np.asarray(t, np.float64)
        if arr.ndim == 1 and self.out_dim == 1:
            arr = arr[:, None]
        if arr.ndim != 2 or arr.shape[1] != self.out_dim:
            raise ShapeError(f"targets must have shape (n, {self.out_dim}), got {arr.shape}")
        if len(arr) == 0:
            return np.zeros((0, self.in_dim), np.float32)
        return np.asarray(self.run_rows(arr), np.float32)

    __call__ = apply


def _c(manifest: dict, root: Path) -> Callable[[np.ndarray], np.ndarray]:
    try:
        params = json.loads((root / PARAMS).read_text())
        family = params["family"]
        kind = {"gmp": QuantGMP, "gru": QuantGRU}.get(family, QuantMLP)
        q = kind.from_dict(params["quant"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RunDirError(
            f"{root / PARAMS}: not the parameters of a C export ({type(exc).__name__}: {exc})"
        ) from None
    t_words, x_golden, h_golden = read_golden(root / GOLDEN_CSV)
    if family == "gru":
        h_got = q.run(t_words)[1]
        if h_got.shape != h_golden.shape or not np.array_equal(h_got, h_golden):
            raise RunDirError(f"{root}: the reference in {PARAMS} misses golden state words")

        def words(t: np.ndarray) -> np.ndarray:
            return q.run(t)[0]

        def run(t: np.ndarray) -> np.ndarray:
            return q.fmt_x.value(q.run(q.fmt_t.quantize(t))[0])
    elif family == "gmp":

        def words(t: np.ndarray) -> np.ndarray:
            return q.run(t)

        def run(t: np.ndarray) -> np.ndarray:  # leading taps: sample n's drive, L steps later
            return q.fmt_x.value(q.drive(q.fmt_z.quantize(t)))
    else:
        depth, look = int(q.extra["depth"]), int(q.extra["lookahead"])

        def words(t: np.ndarray) -> np.ndarray:
            return q.run(tap_words(t, depth, look)) if family == "tapped" else q.run(t)

        def run(t: np.ndarray) -> np.ndarray:
            tw = q.fmt_t.quantize(t)
            if family != "tapped":
                return q.fmt_x.value(q.run(tw))
            padded = np.concatenate([tw, np.zeros((look, tw.shape[1]), np.int64)])
            return q.fmt_x.value(q.run(tap_words(padded, depth, look))[look:])

    got = words(t_words)
    if got.shape != x_golden.shape or not np.array_equal(got, x_golden):
        bad = int(np.sum(got != x_golden)) if got.shape == x_golden.shape else x_golden.size
        raise RunDirError(f"{root}: the reference in {PARAMS} misses {bad} golden outputs")
    return run


def _tflite(manifest: dict, root: Path, picked: Path | None) -> tuple[Callable, str]:
    from hwloop.export.tflite import TFLiteModel

    models = manifest.get("models") or {}
    if picked is not None and picked.suffix == ".tflite":
        kind = next((k for k, v in models.items() if v["file"] == picked.name), None)
        if kind is None:
            raise RunDirError(f"{picked} is not listed in its export's manifest")
    elif len(models) == 1:
        kind = next(iter(models))
    else:
        raise RunDirError(
            f"{root} holds {len(models)} TFLite models: name one (e.g. {root}/inverse_int8.tflite)"
        )
    spec = models[kind]
    model = TFLiteModel((root / spec["file"]).read_bytes())
    g = np.load(root / spec["golden"])
    if not np.allclose(model.run(g["t"]), g["x"], rtol=0, atol=1e-6):
        raise RunDirError(f"{root / spec['file']}: the interpreter does not reproduce its golden rows")
    face = manifest["interface"]
    low, high = np.asarray(face["low"]), np.asarray(face["high"])
    depth, look, stateful = int(face["depth"]), int(face["lookahead"]), bool(face["stateful"])

    def run(t: np.ndarray) -> np.ndarray:  # clipped as the float inverse is: the box, the I/Q envelope
        rows = tapped(t, depth, look) if stateful else t
        return within_device(model.run(rows), low, high, manifest.get("device"))

    return run, kind


def _coeffs(manifest: dict, root: Path) -> Callable:
    from hwloop.export.coeffs import COEFFS, GOLDEN, manifest_cfg, read_coeffs, read_golden

    cfg, peak, gain = manifest_cfg(manifest)
    inv = read_coeffs(root / COEFFS, peak=peak, gain=gain, cfg=cfg)
    t, x = read_golden(root / GOLDEN)
    if not np.allclose(inv.apply(t), x, rtol=0, atol=1e-9):
        raise RunDirError(f"{root / COEFFS}: the coefficients do not reproduce {GOLDEN}")
    return inv.apply


def check_source(manifest: dict, run_dir: str | Path, where: Path) -> None:
    """Refuse an export that did not come from ``run_dir``'s inverse as it is now.

    The manifest names the run (its resolved path) and the SHA-256 of its
    inverse.keras; an export of another run, or of this run before its
    inverse changed, is a one-line `RunDirError` naming both, raised before
    anything is measured.
    """
    run = Path(run_dir)
    src = manifest.get("source") or {}
    named, digest = src.get("run"), src.get("inverse_sha256")
    here = str(run.resolve())
    inv = run / "inverse.keras"
    actual = sha256(inv) if inv.is_file() else None
    if named != here:
        raise RunDirError(f"{where} is an export of run {named}, not of {here}: export this run instead")
    if digest != actual:
        raise RunDirError(
            f"{where} was exported from inverse.keras SHA-256 {str(digest)[:16]}..., "
            f"{here} now holds {str(actual)[:16]}...: export the run again"
        )


def width_label(manifest: dict) -> str:
    """``16-bit``, or ``w8a16`` where weights and activations differ; ``/io8`` where the words are not 16."""
    w = int(manifest.get("weight_bits", manifest.get("bits", 16)))
    a = int(manifest.get("act_bits", w))
    io = int(manifest.get("io_bits", 16))
    return (f"{w}-bit" if w == a else f"w{w}a{a}") + ("" if io == 16 else f"/io{io}")


def load_exported(
    path: str | Path, expect: Any | None = None, run: str | Path | None = None
) -> ExportedInverse:
    """The export holding ``path``; ``expect`` (the float inverse) must invert the same shape of device,
    and with ``run`` the export must come from that run's inverse (`check_source`)."""
    mpath = find_manifest(path)
    manifest = verify(mpath)
    root = mpath.parent
    if run is not None:
        check_source(manifest, run, root)
    fmt, family = manifest.get("format"), manifest.get("family")
    p = Path(path)
    label = f"{fmt}/{family}"
    if fmt == "c":
        run = _c(manifest, root)
        label += "/" + width_label(manifest)
    elif fmt == "tflite":
        run, kind = _tflite(manifest, root, p if p.is_file() else None)
        label += f"/{kind}"
    elif fmt == "coeffs":
        run = _coeffs(manifest, root)
    else:
        raise RunDirError(f"{mpath}: unknown export format {fmt!r}")
    face = manifest["interface"]
    exp = ExportedInverse(label, manifest, run, int(face["out_dim"]), int(face["in_dim"]))
    if family == "gmp":
        look = face.get("lookahead") if fmt == "c" else (manifest.get("gmp") or {}).get("lookahead")
        exp.latency = int(look or 0)
    if expect is not None and (exp.in_dim, exp.out_dim) != (expect.in_dim, expect.out_dim):
        raise RunDirError(
            f"{root} inverts a {exp.in_dim}->{exp.out_dim} device, "
            f"the run a {expect.in_dim}->{expect.out_dim} one"
        )
    log.info("loaded export %s from %s", label, root)
    return exp


def evaluate_exported(
    dev: Any,
    exported: ExportedInverse,
    budget: Any,
    *,
    seed: int,
    targets: np.ndarray | None,
    fs: float,
    bw: float,
) -> dict:
    """``exported``'s figures measured as ``hwloop eval`` measures the float inverse, keys ``exported_*``."""
    from hwloop.evaluate import evaluate, evaluate_signal
    from hwloop.metrics import db_or_none

    before = dev.used["eval"] + dev.used["noise"]
    if targets is not None:
        ev = evaluate_signal(dev, exported.apply, targets, budget, fs=fs, bw=bw, seed=seed)
    else:
        ev = evaluate(dev, exported.apply, budget, seed=seed)
    scores = {k: db_or_none(v) if k.endswith("_db") and v is not None else v for k, v in ev.scores.items()}
    out = {f"{PREFIX}{k}": v for k, v in scores.items() if k != "grad_cosine"}
    used = dev.used["eval"] + dev.used["noise"] - before
    return {"exported": exported.label, **out, f"{PREFIX}eval_queries": used}
