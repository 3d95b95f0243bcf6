"""report.png from a run directory alone: drawn, sized, not blank; bad run directories are one clear error."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import matplotlib.image as matplotlib_image
import numpy as np
import pytest

import hwloop
from hwloop.errors import RunDirError
from hwloop.report.figure import DPI, FIGSIZE, load_run, write_report
from hwloop.run import TrainOptions

EXPECTED_SIZE = (round(FIGSIZE[1] * DPI), round(FIGSIZE[0] * DPI))  # (rows, columns)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("report") / "run"
    hwloop.train(
        "sim:rapp?seed=0",
        strategy="ila",
        queries=1000,
        seed=0,
        run_dir=run,
        options=TrainOptions(fit_steps=200, eval_targets=200),
    )
    return run


@pytest.fixture
def run_copy(small_run: Path, tmp_path: Path) -> Path:
    """A private copy to damage or to add a report to."""
    dst = tmp_path / "run"
    shutil.copytree(small_run, dst)
    return dst


def _assert_drawn(path: Path) -> None:
    img = matplotlib_image.imread(path)
    assert img.shape[:2] == EXPECTED_SIZE, img.shape
    colours = np.unique((img[..., :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 50, f"only {len(colours)} distinct colours: blank picture?"
    assert np.mean(img[..., :3] < 0.9) > 0.02  # a fair share of the picture is not white


def test_report_is_written_next_to_the_run(run_copy: Path) -> None:
    path = write_report(run_copy)
    assert path == run_copy / "report.png"
    _assert_drawn(path)
    assert not list(run_copy.glob(".*tmp*")), "temporary file left behind"


def test_report_to_another_path_leaves_the_run_alone(small_run: Path, tmp_path: Path) -> None:
    before = {p.name: p.stat().st_mtime_ns for p in small_run.iterdir()}
    out = write_report(small_run, out=tmp_path / "elsewhere.png")
    assert out == tmp_path / "elsewhere.png"
    _assert_drawn(out)
    assert {p.name: p.stat().st_mtime_ns for p in small_run.iterdir()} == before


def test_closed_loop_pairs_reproduce_the_recorded_nmse(small_run: Path) -> None:
    """The (t, y) pairs the report draws are the ones closed_loop_nmse_db was computed on."""
    data = load_run(small_run)
    assert data.eval_t is not None and data.eval_y is not None
    assert data.eval_t.shape == data.eval_y.shape == (200, 1)
    err = np.sum((data.eval_y - data.eval_t) ** 2) / np.sum(data.eval_t**2)
    recorded = json.loads((small_run / "metrics.json").read_text())["closed_loop_nmse_db"]
    assert 10 * np.log10(err) == pytest.approx(recorded, abs=0.01)
    assert data.train_x.shape == (1000, 1)


def test_extra_eval_queries_do_not_shift_the_pairing(run_copy: Path) -> None:
    """Diagnostics may log more 'eval' rows after the evaluation: pairing goes by call, not halves."""
    before = load_run(run_copy)
    db = sqlite3.connect(run_copy / "queries.sqlite")
    with db:
        call = db.execute("SELECT MAX(call) FROM queries").fetchone()[0] + 1
        blob = np.zeros(1, "<f4").tobytes()
        db.executemany(
            "INSERT INTO queries (call, kind, x, y, t) VALUES (?, 'eval', ?, ?, 0)", [(call, blob, blob)] * 64
        )
    db.close()
    after = load_run(run_copy)
    assert after.eval_t is not None and before.eval_t is not None
    np.testing.assert_array_equal(after.eval_t, before.eval_t)
    np.testing.assert_array_equal(after.eval_y, before.eval_y)


def test_missing_metrics_keys_still_draw(run_copy: Path) -> None:
    (run_copy / "metrics.json").write_text(json.dumps({"device": "sim:rapp"}))
    _assert_drawn(write_report(run_copy))


def test_metrics_with_rounds_draw(run_copy: Path) -> None:
    m = json.loads((run_copy / "metrics.json").read_text())
    m.update(round_nmse_db=[-30.0, -35.5, None, -38.0], best_round=3, closed_loop_nmse_db=None)
    (run_copy / "metrics.json").write_text(json.dumps(m))
    _assert_drawn(write_report(run_copy))


def test_missing_run_dir(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match="does not exist"):
        write_report(tmp_path / "nope")


def test_directory_without_a_log(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match="no query log"):
        write_report(tmp_path)


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("queries.sqlite", b"this is not a database" * 100, "not a readable query log"),
        ("metrics.json", b"{not json", "not valid JSON"),
        ("metrics.json", b"[1, 2]", "expected a JSON object"),
        ("config.toml", b"queries = = 3", "not valid TOML"),
    ],
)
def test_corrupt_run_dir(run_copy: Path, name: str, content: bytes, match: str) -> None:
    (run_copy / name).write_bytes(content)
    with pytest.raises(RunDirError, match=match) as info:
        write_report(run_copy)
    assert "\n" not in str(info.value).strip()
    assert not (run_copy / "report.png").exists()


def test_log_without_meta_is_a_run_dir_error(run_copy: Path) -> None:
    db = sqlite3.connect(run_copy / "queries.sqlite")
    with db:
        db.execute("DROP TABLE meta")
    db.close()
    with pytest.raises(RunDirError, match="not a readable query log"):
        write_report(run_copy)


def test_importing_hwloop_and_the_report_module_stays_light() -> None:
    code = (
        "import sys, hwloop, hwloop.report.figure, hwloop.pytest_plugin\n"
        "heavy = [m for m in ('matplotlib', 'tensorflow', 'keras') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------- rounds, I/Q runs


def test_rounds_are_read_as_metrics_json_numbers_them() -> None:
    from hwloop.report.rounds import read_rounds

    dpd = read_rounds(
        {
            "dpd_rounds": [{"round": r, "nmse_db": -10.0 * r, "acpr_dbc": -30.0 - r} for r in (1, 2, 3)],
            "dpd_direct_rounds": [
                {"round": r, "nmse_db": -40.0, "judge_nmse_db": -52.0 - r, "judge_se_db": 0.2} for r in (0, 1)
            ],
            "dpd_kept_round": 1,
            "dpd_stretch": [[0, 1000], [2000, 3000]],
            "dpd_direct_stretch": [[0, 500]],
            "queries_used": 7000,
        }
    )
    assert [r.label for r in dpd.rounds] == ["indirect 1", "indirect 2", "indirect 3", "direct 0", "direct 1"]
    assert dpd.kept_index == 4 and dpd.kept_text == "direct round 1 (dpd_kept_round 1)"
    assert [r.queries for r in dpd.rounds] == [2000, 4000, 6000, 6500, 7000]
    assert dpd.rounds[4].judged_db == -53.0 and dpd.rounds[0].acpr_dbc == -31.0
    numbered = read_rounds(  # rounds numbered across indirect and direct learning, as written today
        {
            "dpd_rounds": [{"round": 1, "nmse_db": -20.0, "acpr_dbc": -33.0}],
            "dpd_direct_rounds": [
                {"round": r, "nmse_db": -40.0, "judge_nmse_db": -50.0, "judge_acpr_dbc": -50.0 - r}
                for r in (2, 3, 4)
            ],
            "dpd_kept_round": 3,
        }
    )
    assert [r.label for r in numbered.rounds] == [
        "round 1 (indirect)",
        "round 2 (direct)",
        "round 3 (direct)",
        "round 4 (direct)",
    ]
    assert numbered.kept_index == 2 and numbered.kept_text == "round 3 (direct); dpd_kept_round 3"
    assert numbered.rounds[2].acpr_dbc == -53.0  # the judged window's ACPR, the figure rounds are kept by
    cal = read_rounds(
        {
            "rounds": [
                {"round": r, "queries": q, "measured_nmse_db": v} for r, q, v in ((0, 80, -20), (1, 60, -50))
            ],
            "kept": "final",
            "final_predicted_nmse_db": -51.8,
            "queries_used": 140,
        }
    )
    assert [(r.label, r.queries, r.kept) for r in cal.rounds] == [("0", 80, False), ("1", 140, False),
                                                                   ("final", 140, True)]  # fmt: skip
    kept_checkpoint = read_rounds({"rounds": [{"round": 0, "queries": 5}], "kept": "round 0 checkpoint"})
    assert kept_checkpoint.kept_index == 0
    auto = read_rounds({"round_nmse_db": [-30.0, None, -40.0], "best_round": 2, "round_spent": [10, 20, 30]})
    assert auto.kept_index == 2 and [r.queries for r in auto.rounds] == [10, 20, 30]
    # stretches that do not add up to what was spent: no query axis rather than a wrong one
    odd = read_rounds({"dpd_rounds": [{"round": 1}], "dpd_stretch": [0, 900], "queries_used": 100})
    assert odd.rounds[0].queries is None
    assert read_rounds({}).rounds == []


FS, BW = 800e6, 200e6


def _pa(x: np.ndarray) -> np.ndarray:
    """A memoryless I/Q amplifier with compression and a few degrees of AM/PM."""
    z = x[:, 0] + 1j * x[:, 1]
    y = 2.5 * z * (1 - 0.15 * np.abs(z) ** 2) * np.exp(1j * 0.2 * np.abs(z) ** 2)
    return np.stack([y.real, y.imag], axis=1).astype(np.float32)


def _iq_run(tmp: Path, metrics: dict, *, signal: bool) -> Path:
    """A run directory as a 2->2 run leaves it, written through hwloop's own writers."""
    from hwloop.config import write_toml
    from hwloop.dpd.signals import load_signal
    from hwloop.querylog import QueryLog
    from hwloop.rundir import RunDir

    run = tmp / "run"
    run.mkdir()
    rng = np.random.default_rng(0)
    t = (
        0.8 * load_signal("ofdm:bw=200e6,fs=800e6,n=4096,papr=8,seed=1")
        if signal
        else rng.uniform(-0.5, 0.5, (4096, 2))
    )
    log = QueryLog(run / "queries.sqlite", 2, 2)
    scale = 0.35
    log.append(scale * t[:3000], _pa(scale * t[:3000]))  # training round 1: the bare signal
    x = (t / 2.5 * (1 + 0.15 * np.abs(t[:, :1] / 2.5) ** 2 * 6.25)).astype(np.float32)  # a fair predistorter
    log.append(x, _pa(x))
    log.close()
    info = {
        "name": "pa",
        "in_dim": 2,
        "out_dim": 2,
        "max_batch": 1024,
        "low": [-1.0, -1.0],
        "high": [1.0, 1.0],
    }
    (run / "device.json").write_text(json.dumps(info))
    options = {"signal": "ofdm:bw=200e6,fs=800e6,n=4096,papr=8,seed=1"} if signal else {}
    write_toml(
        run / "config.toml", {"device": "sim:pa", "strategy": "auto", "queries": 7096, "options": options}
    )
    RunDir(run).save_evaluation(t[3000:], x[3000:], _pa(x[3000:]))
    (run / "metrics.json").write_text(json.dumps({"device": "sim:pa", "strategy": "auto", **metrics}))
    return run


def _axes(fig: object) -> dict[str, object]:
    return {ax.get_title(): ax for ax in fig.get_axes()}  # type: ignore[attr-defined]


def test_a_dpd_report_shows_the_rounds_the_spectrum_and_zoomed_am_pm(tmp_path: Path) -> None:
    from hwloop.report.figure import draw_report

    metrics = {
        "dpd_rounds": [
            {"round": r, "nmse_db": v, "acpr_dbc": a} for r, v, a in ((1, -5, -32), (2, -38, -44))
        ],
        "dpd_direct_rounds": [
            {
                "round": r,
                "nmse_db": -40.0 - r,
                "judge_nmse_db": -45.0 - r,
                "judge_se_db": 0.3,
                "acpr_dbc": -46.0,
            }
            for r in (0, 1)
        ],
        "dpd_kept_round": 1,
        "dpd_stretch": [[0, 1500], [2000, 3500]],
        "dpd_direct_stretch": [[0, 1000]],
        "no_dpd_reference": "training round 1",
        "queries_used": 8000,
        "closed_loop_nmse_db": -44.0,
        "acpr_dbc": -45.5,
        "acpr_dbc_no_dpd": -31.5,
        "fs": FS,
        "bw": BW,
    }
    run = _iq_run(tmp_path, metrics, signal=True)
    axes = _axes(draw_report(load_run(run)))
    rounds = axes["closed-loop NMSE per training round (measured on the device)"]
    labels = [t.get_text() for t in rounds.get_xticklabels()]
    assert labels == ["indirect 1", "indirect 2", "direct 0", "direct 1"]
    legend = [t.get_text() for t in rounds.get_legend().get_texts()]
    assert "kept: direct round 1 (dpd_kept_round 1)" in legend
    star = next(line for line in rounds.get_lines() if line.get_marker() == "*")
    assert list(star.get_xdata()) == [3] and list(star.get_ydata()) == [-46.0]  # judged, as kept
    queries = axes["closed-loop NMSE vs training queries spent"]
    per_round = next(
        line for line in queries.get_lines() if line.get_label() == "each round, on its own answers"
    )
    assert list(per_round.get_xdata()) == [3000, 6000, 7000, 8000]
    spectrum = axes["output spectrum (Welch, Hann), relative to the channel"]
    names = [line.get_label() for line in spectrum.get_lines() if not line.get_label().startswith("_")]
    assert names[0].startswith("no predistortion (ACPR -31.5") and names[1].startswith("with predistortion")
    assert names[2].startswith("target (the signal's own ACPR")
    low, high = spectrum.get_ylim()
    assert -200 < low < -40 and 0 < high < 20  # from the outputs' floor to the peak, not -300 dB
    am_pm = axes["AM/PM (where |input| > 0.1 of its peak)"]
    assert np.ptp(am_pm.get_ylim()) < 60  # zoomed to the data: a few degrees, not -150..150
    e0, e1 = (axes[t] for t in axes if t.startswith("closed-loop error, output"))
    assert e0.get_ylim() == e1.get_ylim()  # I and Q on one scale


def test_a_calibration_report_shows_its_rounds_and_no_signal_panels(tmp_path: Path) -> None:
    from hwloop.report.figure import draw_report

    metrics = {
        "strategy_run": "calibrate",
        "parent_run": "runs/golden",
        "rounds": [
            {"round": r, "queries": q, "measured_nmse_db": v, "measured_uncertainty_db": 0.5}
            for r, q, v in ((0, 80, -19.6), (1, 60, -50.4), (2, 60, -50.9))
        ],
        "kept": "final",
        "final_predicted_nmse_db": -51.8,
        "queries_used": 200,
        "closed_loop_nmse_db": -51.6,
    }
    run = _iq_run(tmp_path, metrics, signal=False)
    fig = draw_report(load_run(run))
    axes = _axes(fig)
    rounds = axes["closed-loop NMSE per training round (measured on the device)"]
    assert [t.get_text() for t in rounds.get_xticklabels()] == ["0", "1", "2", "final"]
    assert not any("spectrum" in t or "ACPR" in t for t in axes)
    assert "AM/AM" in axes
    top = fig.subfigs[0]  # type: ignore[attr-defined]  # an I/Q run: rows above, I/Q panels below
    assert "calibrated from runs/golden: 3 rounds on this unit" in top._suptitle.get_text()
