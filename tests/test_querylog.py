"""The query log: exact round trips, WAL, versioned schema, exports, clear errors."""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from hwloop.errors import RunDirError, ShapeError
from hwloop.querylog import SCHEMA_VERSION, QueryLog, open_run_log


def test_round_trip_is_bit_exact_and_ordered(tmp_path: Path, rng: np.random.Generator) -> None:
    path = tmp_path / "queries.sqlite"
    xs, ys = [], []
    with QueryLog(path, 2, 3) as log:
        for kind in ["train", "eval", "train", "noise"]:
            x = rng.normal(size=(17, 2)).astype(np.float32)
            y = rng.normal(size=(17, 3)).astype(np.float32)
            log.append(x, y, kind)
            xs.append((kind, x))
            ys.append((kind, y))
    with QueryLog(path, 2, 3) as log:
        x_all, y_all = log.arrays(None)
        np.testing.assert_array_equal(x_all, np.concatenate([x for _, x in xs]))
        np.testing.assert_array_equal(y_all, np.concatenate([y for _, y in ys]))
        x_tr, _ = log.arrays("train")
        np.testing.assert_array_equal(x_tr, np.concatenate([x for k, x in xs if k == "train"]))
        assert log.count() == 68 and log.count("train") == 34 and log.count("noise") == 17


def test_wal_mode_and_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite"
    QueryLog(path, 1, 1).close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_each_append_is_committed_for_other_readers(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite"
    log = QueryLog(path, 1, 1)
    log.append(np.ones((3, 1)), np.ones((3, 1)))
    reader = sqlite3.connect(path)
    assert reader.execute("SELECT COUNT(*) FROM queries").fetchone()[0] == 3
    log.close()


def test_dimension_mismatch_and_shape_errors(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite"
    QueryLog(path, 2, 1).close()
    with pytest.raises(RunDirError, match="2->1 device"):
        QueryLog(path, 1, 1)
    with QueryLog(path, 2, 1) as log, pytest.raises(ShapeError):
        log.append(np.zeros((3, 1)), np.zeros((3, 1)))


def test_corrupted_or_foreign_file_is_a_run_dir_error(tmp_path: Path) -> None:
    bad = tmp_path / "queries.sqlite"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(RunDirError, match="not a readable query log"):
        QueryLog(bad, 1, 1)
    with pytest.raises(RunDirError, match="not a readable query log"):
        open_run_log(tmp_path)
    with pytest.raises(RunDirError, match="does not exist"):
        open_run_log(tmp_path / "missing")


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite"
    QueryLog(path, 1, 1).close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version=99")
    with pytest.raises(RunDirError, match="schema v99"):
        QueryLog(path, 1, 1)


def test_exports(tmp_path: Path, rng: np.random.Generator) -> None:
    x = rng.normal(size=(5, 2)).astype(np.float32)
    y = rng.normal(size=(5, 1)).astype(np.float32)
    with QueryLog(tmp_path / "queries.sqlite", 2, 1) as log:
        log.append(x, y, "train")
        log.append(x[:2], y[:2], "eval")
    log = open_run_log(tmp_path)
    assert log.export_npz(tmp_path / "all.npz") == 7
    data = np.load(tmp_path / "all.npz")
    np.testing.assert_array_equal(data["x"][:5], x)
    assert list(data["kind"]) == ["train"] * 5 + ["eval"] * 2
    assert log.export_csv(tmp_path / "train.csv", "train") == 5
    with open(tmp_path / "train.csv") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["kind", "x0", "x1", "y0"]
    np.testing.assert_array_equal(
        np.array([[float(v) for v in r[1:]] for r in rows[1:]], np.float32), np.hstack([x, y])
    )


@pytest.mark.parametrize("name", ["run?a=1", "run#2", "r%3Fun ?#&%"])
def test_run_directory_with_uri_characters(tmp_path: Path, rng: np.random.Generator, name: str) -> None:
    """`?`, `#` and `%` in a run directory's path are part of the path, not of a URI."""
    run = tmp_path / name
    run.mkdir()
    x, y = rng.normal(size=(5, 2)).astype(np.float32), rng.normal(size=(5, 1)).astype(np.float32)
    with QueryLog(run / "queries.sqlite", 2, 1) as log:
        log.append(x, y, "train")
    with open_run_log(run) as log:  # reopens through the read-only check
        log.append(x, y, "eval")
        x_all, y_all = log.arrays(None)
    np.testing.assert_array_equal(x_all, np.concatenate([x, x]))
    np.testing.assert_array_equal(y_all, np.concatenate([y, y]))
    assert sorted(p.name for p in tmp_path.iterdir()) == [name], "a stray database appeared beside the run"
