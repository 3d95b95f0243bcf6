"""The query log: every device answer, committed to SQLite before it is used.

One row per measured input. The database runs in WAL mode with full sync so
that a run killed at any moment keeps every answer it was given; the schema
is versioned through ``PRAGMA user_version``.
"""

from __future__ import annotations

import csv
import logging
import sqlite3
import time
from pathlib import Path

import numpy as np

from hwloop.errors import RunDirError, ShapeError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
KINDS = ("train", "eval", "noise")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS queries (
    id    INTEGER PRIMARY KEY,          -- arrival order, from 1
    call  INTEGER NOT NULL,             -- which device call answered it
    kind  TEXT NOT NULL CHECK (kind IN ('train', 'eval', 'noise')),
    x     BLOB NOT NULL,                -- float32 little-endian, in_dim values
    y     BLOB NOT NULL,                -- float32 little-endian, out_dim values
    t     REAL NOT NULL                 -- unix time the answer arrived
);
CREATE INDEX IF NOT EXISTS queries_kind ON queries (kind, id);
CREATE TABLE IF NOT EXISTS resets (
    after_id INTEGER NOT NULL,          -- the device was reset after this query id (0: before any)
    t        REAL NOT NULL
);
"""


class QueryLog:
    """Append-only log of (x, y) measurements for one run."""

    def __init__(self, path: str | Path, in_dim: int, out_dim: int) -> None:
        self.path = Path(path)
        self.in_dim, self.out_dim = int(in_dim), int(out_dim)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise RunDirError(
                    f"{self.path}: query log schema v{version}, this hwloop reads v{SCHEMA_VERSION}"
                )
            if version == 0:
                self._db.executescript(
                    f"BEGIN IMMEDIATE; {_SCHEMA} PRAGMA user_version={SCHEMA_VERSION}; COMMIT;"
                )
            self._check_dims()
        except sqlite3.DatabaseError as exc:
            raise RunDirError(f"{self.path}: not a readable query log ({exc})") from exc
        self._call = self._scalar("SELECT COALESCE(MAX(call), 0) FROM queries")

    def _transaction(self) -> _Tx:
        return _Tx(self._db)

    def _scalar(self, sql: str, *args: object) -> int:
        return int(self._db.execute(sql, args).fetchone()[0])

    def _check_dims(self) -> None:
        rows = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        if not rows:
            with self._transaction():
                self._db.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    [
                        ("in_dim", str(self.in_dim)),
                        ("out_dim", str(self.out_dim)),
                        ("created", str(time.time())),
                    ],
                )
            return
        if (int(rows["in_dim"]), int(rows["out_dim"])) != (self.in_dim, self.out_dim):
            raise RunDirError(
                f"{self.path}: log holds a {rows['in_dim']}->{rows['out_dim']} device, "
                f"this one is {self.in_dim}->{self.out_dim}"
            )

    def append(self, x: np.ndarray, y: np.ndarray, kind: str = "train") -> None:
        """Commit one device call's answers; returns only once they are on disk."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}")
        x = np.ascontiguousarray(x, dtype="<f4")
        y = np.ascontiguousarray(y, dtype="<f4")
        if x.ndim != 2 or y.ndim != 2 or x.shape != (y.shape[0], self.in_dim) or y.shape[1] != self.out_dim:
            raise ShapeError(
                f"log append: shapes {x.shape} and {y.shape} do not fit {self.in_dim}->{self.out_dim}"
            )
        now = time.time()
        call = self._call + 1
        rows = [(call, kind, x[i].tobytes(), y[i].tobytes(), now) for i in range(x.shape[0])]
        with self._transaction():
            self._db.executemany("INSERT INTO queries (call, kind, x, y, t) VALUES (?, ?, ?, ?, ?)", rows)
        self._call = call

    def mark_reset(self) -> None:
        """Record that the device's state was cleared here (sequence boundary)."""
        with self._transaction():
            self._db.execute(
                "INSERT INTO resets (after_id, t) VALUES ((SELECT COALESCE(MAX(id), 0) FROM queries), ?)",
                (time.time(),),
            )

    def resets(self) -> list[int]:
        """Query ids after which the device was reset, in order."""
        return [r[0] for r in self._db.execute("SELECT after_id FROM resets ORDER BY rowid")]

    def calls(self) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """Every logged device call as (kind, x, y), in order: what a resumed run replays."""
        rows = self._db.execute("SELECT call, kind, x, y FROM queries ORDER BY id").fetchall()
        out: list[tuple[str, np.ndarray, np.ndarray]] = []
        start = 0
        for i in range(1, len(rows) + 1):
            if i == len(rows) or rows[i][0] != rows[start][0]:
                group = rows[start:i]
                x = np.frombuffer(b"".join(r[2] for r in group), "<f4").reshape(-1, self.in_dim)
                y = np.frombuffer(b"".join(r[3] for r in group), "<f4").reshape(-1, self.out_dim)
                out.append((group[0][1], x.astype(np.float32), y.astype(np.float32)))
                start = i
        return out

    def sequences(self, kind: str = "train") -> list[tuple[np.ndarray, np.ndarray]]:
        """The rows between resets, as (x, y) per sequence: what a stateful device answered from
        rest. Only sequences whose every row is of ``kind`` are returned."""
        rows = self._db.execute("SELECT id, kind, x, y FROM queries ORDER BY id").fetchall()
        cuts = np.searchsorted([r[0] for r in rows], sorted(set(self.resets())), side="right")
        out = []
        for part in np.split(np.arange(len(rows)), cuts):
            group = [rows[i] for i in part]
            if group and all(r[1] == kind for r in group):
                x = np.frombuffer(b"".join(r[2] for r in group), "<f4").reshape(-1, self.in_dim)
                y = np.frombuffer(b"".join(r[3] for r in group), "<f4").reshape(-1, self.out_dim)
                out.append((x.astype(np.float32), y.astype(np.float32)))
        return out

    def count(self, kind: str | None = None) -> int:
        if kind is None:
            return self._scalar("SELECT COUNT(*) FROM queries")
        return self._scalar("SELECT COUNT(*) FROM queries WHERE kind = ?", kind)

    def arrays(self, kind: str | None = "train") -> tuple[np.ndarray, np.ndarray]:
        """All logged (x, y) of one kind (or every kind), in arrival order."""
        sql = "SELECT x, y FROM queries" + (" WHERE kind = ?" if kind else "") + " ORDER BY id"
        rows = self._db.execute(sql, (kind,) if kind else ()).fetchall()
        x = np.frombuffer(b"".join(r[0] for r in rows), dtype="<f4").reshape(-1, self.in_dim)
        y = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(-1, self.out_dim)
        return x.astype(np.float32), y.astype(np.float32)

    def export_npz(self, path: str | Path, kind: str | None = None) -> int:
        x, y = self.arrays(kind)
        kinds = np.array([r[0] for r in self._kinds(kind)])
        np.savez(path, x=x, y=y, kind=kinds)
        return x.shape[0]

    def export_csv(self, path: str | Path, kind: str | None = None) -> int:
        x, y = self.arrays(kind)
        kinds = [r[0] for r in self._kinds(kind)]
        with open(path, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(
                ["kind"] + [f"x{i}" for i in range(self.in_dim)] + [f"y{j}" for j in range(self.out_dim)]
            )
            for k, xr, yr in zip(kinds, x, y, strict=True):
                w.writerow([k, *(repr(float(v)) for v in xr), *(repr(float(v)) for v in yr)])
        return x.shape[0]

    def _kinds(self, kind: str | None) -> list[tuple[str]]:
        sql = "SELECT kind FROM queries" + (" WHERE kind = ?" if kind else "") + " ORDER BY id"
        return self._db.execute(sql, (kind,) if kind else ()).fetchall()

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> QueryLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Tx:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on error."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")


def open_run_log(run_dir: str | Path) -> QueryLog:
    """Open an existing run's log, taking the device's dimensions from it."""
    path = Path(run_dir) / "queries.sqlite"
    if not Path(run_dir).is_dir():
        raise RunDirError(f"run directory {run_dir} does not exist")
    if not path.is_file():
        raise RunDirError(f"{run_dir} holds no query log (queries.sqlite)")
    try:
        # as_uri() percent-encodes the path, so `?`, `#` and `%` in it stay part of it
        with sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True) as db:
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        in_dim, out_dim = int(meta["in_dim"]), int(meta["out_dim"])
    except (sqlite3.DatabaseError, KeyError, ValueError) as exc:
        raise RunDirError(f"{path}: not a readable query log ({exc})") from None
    return QueryLog(path, in_dim, out_dim)


def read_rows(
    path: Path, kind: str | None = None
) -> tuple[int, int, list[tuple[str, np.ndarray, np.ndarray]]]:
    """(in_dim, out_dim, calls) of a log, each call as (kind, x, y), never writing to it.

    The connection is read-write but ``query_only``: a WAL database's last
    read-write connection removes the ``-wal``/``-shm`` files it needed on
    close, where a ``mode=ro`` one would leave them behind in the run
    directory. A log we may not write to is read through ``mode=ro``.
    """
    uri = Path(path).resolve().as_uri()
    try:
        db = sqlite3.connect(f"{uri}?mode=rw", uri=True)
        try:
            db.execute("PRAGMA query_only=1")
            db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        except sqlite3.OperationalError:
            db.close()
            db = sqlite3.connect(f"{uri}?mode=ro", uri=True)
        except sqlite3.Error:
            db.close()
            raise
        try:
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            in_dim, out_dim = int(meta["in_dim"]), int(meta["out_dim"])
            where, args = ("WHERE kind = ?", (kind,)) if kind else ("", ())
            rows = db.execute(f"SELECT call, kind, x, y FROM queries {where} ORDER BY id", args).fetchall()
        finally:
            db.close()
    except (sqlite3.Error, KeyError, ValueError) as exc:
        raise RunDirError(f"{path}: not a readable query log ({type(exc).__name__}: {exc})") from None
    if in_dim < 1 or out_dim < 1:
        raise RunDirError(f"{path}: query log records a {in_dim}->{out_dim} device")
    calls: list[tuple[str, np.ndarray, np.ndarray]] = []
    start = 0
    for i in range(1, len(rows) + 1):
        if i == len(rows) or rows[i][0] != rows[start][0]:
            group = rows[start:i]
            if any(len(r[2]) != 4 * in_dim or len(r[3]) != 4 * out_dim for r in group):
                raise RunDirError(f"{path}: a logged row does not hold {in_dim}+{out_dim} float32 values")
            x = np.frombuffer(b"".join(r[2] for r in group), "<f4").reshape(-1, in_dim)
            y = np.frombuffer(b"".join(r[3] for r in group), "<f4").reshape(-1, out_dim)
            calls.append((group[0][1], x.astype(np.float64), y.astype(np.float64)))
            start = i
    return in_dim, out_dim, calls
