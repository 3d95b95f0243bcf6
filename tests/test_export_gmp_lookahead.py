"""A GMP predistorter with leading taps (lookahead) in fixed point: the C streams it with a latency.

An amplifier that is not minimum phase has no causal inverse, so training
gives its GMP predistorter L leading taps (`hwloop.dpd.gmp`). The C export
keeps the same gain tables with delays counted from the newest target and a
delay line L samples longer: the drive out of step n is sample n - L's. The
golden vectors (the stream, then L zero samples to flush it) must match the
C bit for bit, and the drive, realigned, must be the float predistorter's.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from export_fixtures import GAIN, HELDOUT, SIGNAL, cli_json, compile_and_check

import hwloop
from hwloop.dpd.gmp import GMP, GMPConfig, GMPInverse
from hwloop.dpd.signals import OFDMSpec, ofdm
from hwloop.export import cgen_gmp
from hwloop.export.gmp import QuantGMP, quantize_gmp
from hwloop.export.golden import c_check, c_golden, read_csv
from hwloop.rundir import TrainOptions

NMP = "sim:pa_wh?seed=1&frac_delay=0.5&nmp_zero=1.5"  # a fractional delay and a zero outside the circle


def _inverse(lookahead: int) -> tuple[GMPInverse, np.ndarray]:
    """A predistorter whose leading taps matter: the aligned terms at delays 0..3 all weigh."""
    cfg = GMPConfig(order=3, memory=4, cross_order=2, cross_memory=2, lag=1, lookahead=lookahead)
    rng = np.random.default_rng(3)
    c = 0.02 * (rng.standard_normal(len(cfg.terms())) + 1j * rng.standard_normal(len(cfg.terms())))
    c[cfg.terms().index((1, lookahead, 0))] += 0.9  # the tap that reads sample n itself
    c[cfg.terms().index((1, 0, 0))] += 0.2j  # and one that reads n + lookahead
    t = 0.3 * ofdm(OFDMSpec(n=3000, seed=4))
    return GMPInverse(GMP(cfg, c), peak=0.9), t


@pytest.mark.parametrize("bits", [16, 12])
@pytest.mark.parametrize("lookahead", [0, 2])
def test_leading_taps_stream_with_their_latency(tmp_path: Path, lookahead: int, bits: int) -> None:
    inv, t = _inverse(lookahead)
    q = quantize_gmp(inv, t, bits, 16, calls=[t])
    assert q.lookahead == lookahead and q.depth == inv.model.cfg.depth + lookahead
    words = q.fmt_z.quantize(t)
    drive = q.fmt_x.value(q.drive(words))
    want = inv.apply(t)
    err = np.sqrt(np.mean(np.sum((drive - want) ** 2, axis=1)) / np.mean(np.sum(want**2, axis=1)))
    assert err < (1e-3 if bits == 16 else 4e-3), err  # realigned, the float predistorter's drive
    # the stream itself: step n answers sample n - L; the first L steps precede the signal
    assert np.array_equal(q.run(words)[lookahead:], q.drive(words)[: len(words) - lookahead])
    if lookahead:
        shifted = np.sqrt(np.mean(np.sum((q.fmt_x.value(q.run(words)) - want) ** 2, axis=1)))
        assert shifted > 10 * err * np.sqrt(np.mean(np.sum(want**2, axis=1)))  # unaligned it is wrong

    # the C: the same words, bit for bit, through its own check program
    stream = np.concatenate([words, np.zeros((lookahead, 2), np.int64)])
    x = q.run(stream)
    comment = ["test"]
    (tmp_path / "hwl_inv.c").write_text(cgen_gmp.source(q, "hwl_inv", "hwl_inv.h", comment))
    header = cgen_gmp.header(q, "hwl_inv", "00000000", comment)
    assert f"#define HWL_INV_LOOKAHEAD {lookahead} " in header
    (tmp_path / "hwl_inv.h").write_text(header)
    (tmp_path / "hwl_inv_golden.h").write_text(c_golden("hwl_inv", stream, x, None))
    (tmp_path / "hwl_inv_check.c").write_text(c_check("hwl_inv"))
    res = compile_and_check(tmp_path)
    assert res.returncode == 0 and f"0 of {x.size} golden outputs differ" in res.stdout, res.stdout


@pytest.fixture(scope="module")
def nmp_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run_nmp") / "run"
    opts = TrainOptions(signal=SIGNAL, gain=GAIN, fs=800e6, bw=200e6)
    hwloop.train(NMP, strategy="ila", queries=24000, seed=0, run_dir=out, options=opts)
    return out


@pytest.mark.slow
@pytest.mark.parametrize(("bits", "bar"), [(16, 0.2), (12, 0.5)])
def test_an_exported_predistorter_with_leading_taps_is_bit_exact_and_keeps_acpr(
    nmp_run: Path, tmp_path: Path, bits: int, bar: float
) -> None:
    """Trained on a non-minimum-phase amplifier (ILA chooses leading taps), exported through the
    CLI: bit-exact C with its latency in header and manifest, ACPR and EVM of float on a held-out
    signal (noise-free device); the coefficient export states the same latency."""
    metrics = json.loads((nmp_run / "metrics.json").read_text())
    look = metrics["dpd_lookahead"]
    assert look >= 1  # else this amplifier does not test leading taps
    out = tmp_path / f"c{bits}"
    cli_json("export", "--run", str(nmp_run), "--format", "c", "--bits", str(bits), "--out", str(out))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["interface"]["lookahead"] == look
    assert f"#define HWL_INV_LOOKAHEAD {look} " in (out / "hwl_inv.h").read_text()
    res = compile_and_check(out)
    assert res.returncode == 0 and res.stdout.startswith("0 of "), res.stdout
    t, x = read_csv(out / "golden.csv")
    q = QuantGMP.from_dict(json.loads((out / "params.json").read_text())["quant"])
    assert np.array_equal(q.run(t), x) and not np.any(t[-look:])  # the stream ends with its flush
    signal = ["--signal", HELDOUT, "--gain", str(GAIN), "--fs", "800e6", "--bw", "200e6"]
    clean = NMP + "&noise=0"  # the arithmetic's loss, not two noise draws' difference
    m = cli_json("eval", "--run", str(nmp_run), "--device", clean, "--exported", str(out), *signal)
    print(f"nmp lookahead {look}, {bits} bits: {m}")
    for key in ("acpr_dbc", "evm_db"):
        assert abs(m[f"exported_{key}"] - m[key]) <= bar, (key, m[f"exported_{key}"], m[key])
    assert m["acpr_dbc"] < m["acpr_dbc_no_dpd"] - 5  # the float predistorter works here


@pytest.mark.slow
def test_the_coefficient_export_read_back_has_the_same_latency(nmp_run: Path, tmp_path: Path) -> None:
    from hwloop.export.loaded import load_exported

    look = json.loads((nmp_run / "metrics.json").read_text())["dpd_lookahead"]
    out = tmp_path / "coeffs"
    cli_json("export", "--run", str(nmp_run), "--format", "coeffs", "--out", str(out))
    exp = load_exported(out, run=nmp_run)
    assert exp.latency == look >= 1
    assert load_exported(_c16(nmp_run, tmp_path), run=nmp_run).latency == look


def _c16(run: Path, tmp_path: Path) -> Path:
    out = tmp_path / "c16"
    cli_json("export", "--run", str(run), "--format", "c", "--out", str(out))
    return out
