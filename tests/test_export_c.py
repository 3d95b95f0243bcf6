"""The C export is bit-exact: gcc compiles it strictly, it reproduces its golden vectors, so does numpy.

For each family (MLP, tapped MLP, GMP) and word width, a real trained run
is exported through the CLI; the generated C99 is compiled with the host
compiler (-std=c99 -pedantic -Werror) together with its check program,
which must report no differing output; the numpy reference rebuilt from
params.json must give the same words; and a golden vector changed by one
LSB must make the check program fail (so the check can fail at all).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from export_fixtures import cli_json, compile_and_check, trained
from serial_fixtures import require_toolchain

from hwloop.export.gmp import QuantGMP
from hwloop.export.golden import read_csv, sha256, verify
from hwloop.export.mlp import QuantMLP, tap_words

CASES = [
    ("mlp", 16),
    ("mlp", 12),
    ("mlp", 8),
    ("tapped", 16),
    ("tapped", 8),
    ("gmp", 16),
    ("gmp", 12),
    ("gmp", 8),
]


def _run(factory: pytest.TempPathFactory, family: str) -> Path:
    return trained({"mlp": "mlp", "tapped": "tapped", "gmp": "gmp_pa_gmp"}[family], factory)


def _reference_words(export: Path) -> tuple[np.ndarray, np.ndarray]:
    params = json.loads((export / "params.json").read_text())
    t, x = read_csv(export / "golden.csv")
    if params["family"] == "gmp":
        return QuantGMP.from_dict(params["quant"]).run(t), x
    q = QuantMLP.from_dict(params["quant"])
    rows = tap_words(t, q.extra["depth"], q.extra["lookahead"]) if params["family"] == "tapped" else t
    return q.run(rows), x


@pytest.mark.parametrize(("family", "bits"), CASES)
def test_generated_c_and_numpy_reproduce_the_golden_vectors(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, family: str, bits: int
) -> None:
    run = _run(tmp_path_factory, family)
    out = tmp_path / "export"
    m = cli_json("export", "--run", str(run), "--format", "c", "--bits", str(bits), "--out", str(out))
    assert m["family"] == family and m["bits"] == bits and len(m["hash8"]) == 8
    res = compile_and_check(out)
    t, x = read_csv(out / "golden.csv")
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.strip() == f"0 of {x.size} golden outputs differ"
    ref, golden = _reference_words(out)
    np.testing.assert_array_equal(ref, golden)
    # The golden set is not trivial: it spans the input words and reaches saturation and the clip.
    manifest = json.loads((out / "manifest.json").read_text())
    t_frac = manifest["interface"]["t_frac"]
    assert len(np.unique(x)) > 50 and t.min() == -(1 << 15) and t.max() == (1 << 15) - 1
    assert t_frac == manifest["q_formats"]["t" if family != "gmp" else "z"]["frac"]
    # One golden word off by one LSB, and the compiled check says so.
    rows = (out / "hwl_inv_golden.h").read_text().splitlines()
    x_start = next(i for i, ln in enumerate(rows) if "_GOLDEN_X" in ln)
    first = rows[x_start + 1]
    val = int(first.strip(" {},").split(",")[0])
    rows[x_start + 1] = first.replace(str(val), str(val + 1), 1)
    (out / "hwl_inv_golden.h").write_text("\n".join(rows) + "\n")
    bad = compile_and_check(out)
    assert bad.returncode == 1 and bad.stdout.startswith("1 of"), bad.stdout


def test_manifest_names_the_run_and_hashes_every_file(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    mlp_run = trained("mlp", tmp_path_factory)
    out = tmp_path / "export"
    cli_json("export", "--run", str(mlp_run), "--format", "c", "--out", str(out))
    m = json.loads((out / "manifest.json").read_text())
    listed = set(m["files"])
    assert listed == {p.name for p in out.iterdir()} - {"manifest.json"}
    assert {
        "hwl_inv.c",
        "hwl_inv.h",
        "hwl_inv_check.c",
        "hwl_inv_golden.h",
        "golden.csv",
        "params.json",
    } <= listed
    assert all(m["files"][n] == sha256(out / n) for n in listed)
    assert m["hash8"] == sha256(out / "hwl_inv.c")[:8]
    assert f'"{m["hash8"]}"' in (out / "hwl_inv.h").read_text()
    assert m["source"]["run"] == str(mlp_run.resolve())
    assert m["source"]["inverse_sha256"] == sha256(mlp_run / "inverse.keras")
    assert m["source"]["metrics"]["closed_loop_nmse_db"] < -40
    assert m["format"] == "c" and m["family"] == "mlp" and m["bits"] == 16 and m["io_bits"] == 16
    assert m["q_formats"]["x"] == {"bits": 16, "frac": 14, "q": "Q1.14"}  # sim:rapp's range is +-1.2
    assert verify(out / "manifest.json")["files"] == m["files"]
    # The header documents the words' formats.
    head = (out / "hwl_inv.h").read_text()
    assert "#define HWL_INV_X_FRAC 14" in head and "Q1.14" in head


def test_the_c_is_also_plain_c99_for_other_compilers_flags(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """-O0 and -O3 -fwrapv give the same words: nothing in the C relies on undefined behaviour."""
    gmp_run = trained("gmp_pa_gmp", tmp_path_factory)
    out = tmp_path / "export"
    cli_json("export", "--run", str(gmp_run), "--format", "c", "--bits", "12", "--out", str(out))
    import subprocess

    require_toolchain("cc")
    for flags in (["-O0"], ["-O3", "-fwrapv"], ["-O2", "-fsanitize=undefined", "-fno-sanitize-recover"]):
        res = subprocess.run(
            ["cc", "-std=c99", *flags, "-o", "chk", "hwl_inv.c", "hwl_inv_check.c"],
            cwd=out,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert res.returncode == 0, res.stderr
        run = subprocess.run(["./chk"], cwd=out, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0 and run.stderr == "", (flags, run.stdout, run.stderr)
