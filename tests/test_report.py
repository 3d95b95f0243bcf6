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
