"""GMP coefficients as CSV: read back and applied, they are the float predistorter."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from export_fixtures import HELDOUT, cli_json, trained

import hwloop
from hwloop.dpd.signals import load_signal
from hwloop.errors import RunDirError
from hwloop.export.coeffs import COEFFS, read_coeffs
from hwloop.export.loaded import load_exported


@pytest.fixture(scope="module")
def coeffs_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    run = trained("gmp_pa_gmp", tmp_path_factory)
    out = tmp_path_factory.mktemp("coeffs") / "export"
    m = cli_json("export", "--run", str(run), "--format", "coeffs", "--out", str(out))
    assert m["files"] == ["gmp_basis.txt", "gmp_coeffs.csv", "golden_float.csv", "manifest.json"]
    return run, out


def test_coefficients_reread_and_reapplied_match_the_float_predistorter(
    coeffs_export: tuple[Path, Path],
) -> None:
    run, out = coeffs_export
    inv = hwloop.load_inverse(run)
    cfg = inv.model.cfg
    back = read_coeffs(out / COEFFS, peak=inv.peak, gain=inv.gain, cfg=cfg.to_dict())
    np.testing.assert_array_equal(back.model.coeffs, inv.model.coeffs)  # 17 digits: the float64 exactly
    t = 2.0 * load_signal(HELDOUT)[:4000]
    np.testing.assert_allclose(back.apply(t), inv.apply(t), rtol=0, atol=1e-12)
    np.testing.assert_allclose(load_exported(out).apply(t), inv.apply(t), rtol=0, atol=1e-6)  # float32 out
    with open(out / COEFFS, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(cfg.terms())
    assert rows[0]["term"] == "x[n-0]" and any(r["term"] == "x[n-1]*|x[n-3]|^2" for r in rows)
    basis = (out / "gmp_basis.txt").read_text()
    assert "y[n] = sum_i c_i * x[n - m_i] * |x[n - m_i - l_i]|^(k_i - 1)" in basis
    assert f"order = {cfg.order}" in basis and f"peak = {inv.peak!r}" in basis


def test_terms_out_of_order_are_refused(coeffs_export: tuple[Path, Path], tmp_path: Path) -> None:
    run, out = coeffs_export
    rows = (out / COEFFS).read_text().splitlines()
    (tmp_path / COEFFS).write_text("\n".join([rows[0], rows[2], rows[1], *rows[3:]]) + "\n")
    cfg = hwloop.load_inverse(run).model.cfg.to_dict()
    with pytest.raises(RunDirError, match="do not match"):
        read_coeffs(tmp_path / COEFFS, cfg=cfg)
