"""What an export costs, measured in closed loop on the device: ``hwloop eval --run --exported``.

The issue's bars: a GMP predistorter at 16 bits within 0.5 dB of float in
ACPR and EVM on both PA simulators; an MLP inverse with 8-bit weights and
activations within 3 dB of float in closed-loop NMSE. The export is scored
by the same evaluation as the float inverse (same seed, same budget), on a
signal the predistorter was not trained on.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from export_fixtures import GAIN, HELDOUT, cli_json, trained

DPD_BAR_DB = 0.5
INT8_BAR_DB = 3.0


def _eval(run: Path, device: str, export: Path, *extra: str) -> dict:
    return cli_json("eval", "--run", str(run), "--device", device, "--exported", str(export), *extra)


@pytest.mark.parametrize("pa", ["pa_gmp", "pa_wh"])
def test_gmp_at_16_bits_keeps_acpr_and_evm_within_half_a_db(
    pa: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    run = trained(f"gmp_{pa}", tmp_path_factory)
    out = tmp_path / "c16"
    cli_json("export", "--run", str(run), "--format", "c", "--bits", "16", "--out", str(out))
    signal = ["--signal", HELDOUT, "--gain", str(GAIN), "--fs", "800e6", "--bw", "200e6"]
    m = _eval(run, f"sim:{pa}?seed=1", out, *signal)
    print(
        f"{pa} float vs c16: ACPR {m['acpr_dbc']} / {m['exported_acpr_dbc']}, EVM {m['evm_db']} / "
        f"{m['exported_evm_db']}, NMSE {m['nmse_db']} / {m['exported_nmse_db']}"
    )
    assert m["exported"] == "c/gmp/16-bit"
    assert m["acpr_dbc"] < m["acpr_dbc_no_dpd"] - 5  # the float predistorter works on this signal
    assert m["exported_acpr_dbc"] - m["acpr_dbc"] <= DPD_BAR_DB
    assert m["exported_evm_db"] - m["evm_db"] <= DPD_BAR_DB
    assert m["exported_nmse_db"] - m["nmse_db"] <= DPD_BAR_DB


@pytest.mark.parametrize(("bits", "bar"), [(16, 0.5), (8, INT8_BAR_DB)])
def test_mlp_exported_closed_loop_nmse_stays_near_float(
    tmp_path_factory: pytest.TempPathFactory,
    tmp_path: Path,
    bits: int,
    bar: float,
) -> None:
    mlp_run = trained("mlp", tmp_path_factory)
    out = tmp_path / f"c{bits}"
    cli_json("export", "--run", str(mlp_run), "--format", "c", "--bits", str(bits), "--out", str(out))
    m = _eval(mlp_run, "sim:rapp?noise=1e-3&seed=0", out, "--eval-targets", "2000")
    print(
        f"mlp float vs c{bits}: {m['closed_loop_nmse_db']} / {m['exported_closed_loop_nmse_db']} "
        f"(clean {m['closed_loop_nmse_clean_db']} / {m['exported_closed_loop_nmse_clean_db']})"
    )
    assert m["closed_loop_nmse_db"] < -40
    assert m["exported_closed_loop_nmse_db"] - m["closed_loop_nmse_db"] <= bar
    assert m["exported_closed_loop_nmse_clean_db"] - m["closed_loop_nmse_clean_db"] <= bar


def test_a_pure_8_bit_datapath_is_worse_and_says_so(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """--io-bits 8 puts the drive itself in 8-bit words: a real loss, recorded, not hidden."""
    mlp_run = trained("mlp", tmp_path_factory)
    out = tmp_path / "c8io8"
    cli_json(
        "export", "--run", str(mlp_run), "--format", "c", "--bits", "8", "--io-bits", "8", "--out", str(out)
    )
    m = _eval(mlp_run, "sim:rapp?noise=1e-3&seed=0", out, "--eval-targets", "2000")
    assert m["exported_closed_loop_nmse_db"] > m["closed_loop_nmse_db"] + 3  # 8-bit drive words: ~-36 dB
    assert m["exported_closed_loop_nmse_db"] < -30


@pytest.mark.parametrize(("bits", "bar"), [(16, 0.5), (8, INT8_BAR_DB)])
def test_tapped_exported_closed_loop_nmse_stays_near_float(
    tmp_path_factory: pytest.TempPathFactory,
    tmp_path: Path,
    bits: int,
    bar: float,
) -> None:
    tapped_run = trained("tapped", tmp_path_factory)
    out = tmp_path / f"c{bits}"
    cli_json("export", "--run", str(tapped_run), "--format", "c", "--bits", str(bits), "--out", str(out))
    m = _eval(tapped_run, "sim:wh?noise=1e-3&seed=0", out, "--eval-targets", "2000")
    assert m["closed_loop_nmse_db"] < -30
    assert m["exported_closed_loop_nmse_db"] - m["closed_loop_nmse_db"] <= bar
