"""Golden vectors, the C program that checks them, and the manifest of an export.

Golden vectors are integer input words and the output words the numpy
reference computes from them: representative targets from the run's log,
then words at the edges of the input format (saturation, the clip). For a
stateful inverse (tapped, GMP) they are one stream from a reset, row n the
sample fed at step n. They are written three ways: ``golden.csv`` for any
tool, ``PREFIX_golden.h`` for ``PREFIX_check.c`` (compile it beside
``PREFIX.c`` and run it: it prints how many outputs differ and exits 1 if
any does), and inside ``params.json`` the reference itself can replay.

The manifest (``manifest.json``) names the family, the widths and Q
formats, the run the export came from (path, SHA-256 of its inverse.keras,
its recorded figures) and the SHA-256 of every other file in the export;
`verify` checks those hashes before anything reads an export back.
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
from pathlib import Path

import numpy as np

from hwloop.errors import RunDirError
from hwloop.export.cgen_common import banner

MANIFEST = "manifest.json"
GOLDEN_CSV = "golden.csv"
PARAMS = "params.json"
FORMAT_VERSION = 1


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def edge_rows(lo: int, hi: int, dim: int) -> np.ndarray:
    """Words that exercise saturation: all-low, all-high, zero, one LSB, and alternating extremes."""
    rows = [np.full(dim, lo), np.full(dim, hi), np.zeros(dim), np.ones(dim), -np.ones(dim)]
    rows += [np.where(np.arange(dim) % 2 == 0, lo, hi), np.where(np.arange(dim) % 2 == 0, hi, lo)]
    return np.asarray(rows, np.int64)


def write_csv(path: Path, t: np.ndarray, x: np.ndarray, h: np.ndarray | None = None) -> None:
    """Columns t0.., x0.. and, for an inverse with a state, h0.. (the state after the row's step)."""
    h = np.zeros((len(t), 0), np.int64) if h is None else h
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        head = [f"t{i}" for i in range(t.shape[1])] + [f"x{j}" for j in range(x.shape[1])]
        w.writerow(head + [f"h{k}" for k in range(h.shape[1])])
        for a, b, c in zip(t, x, h, strict=True):
            w.writerow([int(v) for v in a] + [int(v) for v in b] + [int(v) for v in c])


def read_golden(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(t, x, h) integer arrays of a golden.csv; h has no columns for an inverse without a state."""
    try:
        with open(path, newline="") as fh:
            rows = list(csv.reader(fh))
        head = rows[0]
        n_t = sum(1 for h in head if h.startswith("t"))
        n_x = sum(1 for h in head if h.startswith("x"))
        data = np.asarray([[int(v) for v in r] for r in rows[1:]], np.int64).reshape(-1, len(head))
    except (OSError, ValueError, IndexError) as exc:
        raise RunDirError(f"{path}: not a golden-vector file ({type(exc).__name__}: {exc})") from None
    return data[:, :n_t], data[:, n_t : n_t + n_x], data[:, n_t + n_x :]


def read_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(t, x) integer arrays of a golden.csv."""
    t, x, _ = read_golden(path)
    return t, x


def c_golden(prefix: str, t: np.ndarray, x: np.ndarray, h: np.ndarray | None = None) -> str:
    """``PREFIX_golden.h``: the golden words as C arrays (and the state after each step, if any)."""
    up = prefix.upper()

    def rows(a: np.ndarray) -> str:
        return ",\n".join("    {" + ", ".join(str(int(v)) for v in r) + "}" for r in a)

    text = (
        banner([f"Golden vectors of {prefix}.c: inputs and the outputs the numpy reference computes."])
        + f"#define {up}_GOLDEN_N {len(t)}\n"
        + f"static const int16_t {up}_GOLDEN_T[{len(t)}][{t.shape[1]}] = {{\n{rows(t)}\n}};\n"
        + f"static const int16_t {up}_GOLDEN_X[{len(x)}][{x.shape[1]}] = {{\n{rows(x)}\n}};\n"
    )
    if h is not None and h.shape[1]:
        text += (
            f"#define {up}_GOLDEN_STATE {h.shape[1]}  /* state words after each step */\n"
            + f"static const int16_t {up}_GOLDEN_H[{len(h)}][{h.shape[1]}] = {{\n{rows(h)}\n}};\n"
        )
    return text


def c_check(prefix: str) -> str:
    """``PREFIX_check.c``: runs the golden inputs through ``PREFIX.c`` and counts differing outputs."""
    up = prefix.upper()
    return (
        banner(
            [
                f"Checks {prefix}.c against its golden vectors; exit status 0 when every output matches.",
                f"cc -std=c99 -O2 -Wall -Wextra -pedantic -o {prefix}_check {prefix}.c {prefix}_check.c",
            ]
        )
        + f'#include <stdio.h>\n#include "{prefix}.h"\n#include "{prefix}_golden.h"\n\n'
        + "int main(void) {\n    long bad = 0, bad_state = 0;\n"
        + f"#if {up}_STATEFUL\n    {prefix}_state s;\n    {prefix}_reset(&s);\n#endif\n"
        + f"    for (int n = 0; n < {up}_GOLDEN_N; n++) {{\n        int16_t x[{up}_OUT_DIM];\n"
        + f"#if {up}_STATEFUL\n        {prefix}_step(&s, {up}_GOLDEN_T[n], x);\n"
        + f"#else\n        {prefix}_apply({up}_GOLDEN_T[n], x);\n#endif\n"
        + f"        for (int j = 0; j < {up}_OUT_DIM; j++) {{\n"
        + f"            if (x[j] != {up}_GOLDEN_X[n][j]) {{\n"
        + "                if (bad < 5)\n"
        + '                    fprintf(stderr, "row %d output %d: got %d, golden %d\\n", n, j, x[j],\n'
        + f"                            {up}_GOLDEN_X[n][j]);\n"
        + "                bad++;\n            }\n        }\n"
        + f"#ifdef {up}_GOLDEN_STATE\n"
        + f"        for (int k = 0; k < {up}_GOLDEN_STATE; k++) {{\n"
        + f"            if (s.h[k] != {up}_GOLDEN_H[n][k]) {{\n"
        + "                if (bad_state < 5)\n"
        + '                    fprintf(stderr, "row %d state %d: got %d, golden %d\\n", n, k, s.h[k],\n'
        + f"                            {up}_GOLDEN_H[n][k]);\n"
        + "                bad_state++;\n            }\n        }\n#endif\n    }\n"
        + f'    printf("%ld of %d golden outputs differ\\n", bad, {up}_GOLDEN_N * {up}_OUT_DIM);\n'
        + f"#ifdef {up}_GOLDEN_STATE\n"
        + '    printf("%ld of %d golden state words differ\\n", bad_state,\n'
        + f"           {up}_GOLDEN_N * {up}_GOLDEN_STATE);\n"
        + "#endif\n"
        + "    return bad != 0 || bad_state != 0;\n}\n"
    )


def source_record(run: Path, metrics: dict) -> dict:
    """Where an export came from: the run, its inverse's hash, what it was and what it scored."""
    inv = run / "inverse.keras"
    keep = (
        "device",
        "strategy",
        "strategy_run",
        "seed",
        "queries_used",
        "closed_loop_nmse_db",
        "noise_floor_db",
        "acpr_dbc",
        "evm_db",
        "nmse_db",
        "inverse_kind",
    )
    return {
        "run": str(run.resolve()),
        "inverse_sha256": sha256(inv) if inv.is_file() else None,
        "metrics": {k: metrics[k] for k in keep if k in metrics},
    }


def write_manifest(out: Path, record: dict) -> dict:
    """``manifest.json``: ``record`` plus the SHA-256 of every file in ``out`` but itself."""
    files = {p.name: sha256(p) for p in sorted(out.iterdir()) if p.is_file() and p.name != MANIFEST}
    from importlib.metadata import PackageNotFoundError, version

    try:
        hv = version("hwloop")
    except PackageNotFoundError:  # pragma: no cover - a source tree without metadata
        hv = "unknown"
    manifest = {
        "format_version": FORMAT_VERSION,
        **record,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "hwloop_version": hv,
        "files": files,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return manifest


def find_manifest(path: str | Path) -> Path:
    """The manifest of the export that holds ``path`` (the manifest, a file beside it, or the directory)."""
    p = Path(path)
    if not p.exists():
        raise RunDirError(f"{p} does not exist")
    cand = p / MANIFEST if p.is_dir() else p if p.name == MANIFEST else p.parent / MANIFEST
    if not cand.is_file():
        raise RunDirError(f"{p} is not part of an hwloop export (no {MANIFEST} beside it)")
    return cand


def verify(manifest_path: Path) -> dict:
    """The manifest, after checking every file it lists against its SHA-256."""
    try:
        m = json.loads(manifest_path.read_text())
        files = dict(m["files"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RunDirError(f"{manifest_path}: not an hwloop export manifest ({type(exc).__name__})") from None
    if m.get("format_version") != FORMAT_VERSION:
        raise RunDirError(f"{manifest_path}: export format v{m.get('format_version')}, this hwloop reads v1")
    for name, digest in files.items():
        f = manifest_path.parent / name
        if not f.is_file():
            raise RunDirError(f"{manifest_path.parent}: {name} is listed in the manifest but missing")
        if sha256(f) != digest:
            raise RunDirError(f"{f}: SHA-256 differs from the manifest (the export was changed)")
    return m
