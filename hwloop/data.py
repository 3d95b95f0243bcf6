"""Measured (x, y) pairs from elsewhere: an earlier run's log or a data file.

``--from-log DIR`` and ``--from-data FILE`` (NPZ with arrays ``x`` and ``y``,
or CSV with columns ``x0.. y0..`` as ``hwloop log --export`` writes them,
like published power-amplifier measurement files) let hwloop train a
surrogate and an inverse without the device, to refine on it later.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hwloop.device import DeviceInfo
from hwloop.errors import RunDirError, ShapeError, UsageError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pairs:
    """Measured inputs and outputs, and the safe range they came with (if known)."""

    x: np.ndarray
    y: np.ndarray
    source: str
    low: tuple[float, ...] | None = None
    high: tuple[float, ...] | None = None
    name: str = "data"

    @property
    def in_dim(self) -> int:
        return int(self.x.shape[1])

    @property
    def out_dim(self) -> int:
        return int(self.y.shape[1])

    def inside(self, info: DeviceInfo) -> tuple[np.ndarray, np.ndarray]:
        """The pairs a device described by ``info`` could have answered: same shape, inputs in range."""
        if (self.in_dim, self.out_dim) != (info.in_dim, info.out_dim):
            raise UsageError(
                f"{self.source} holds {self.in_dim}->{self.out_dim} pairs, "
                f"the device is {info.in_dim}->{info.out_dim}"
            )
        keep = ((self.x >= info.low_array) & (self.x <= info.high_array)).all(axis=1)
        if not keep.all():
            log.warning("%d prior pairs lie outside the safe range and are left out", int((~keep).sum()))
        return self.x[keep], self.y[keep]

    def range(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """The declared safe range, else the range the data covers."""
        if self.low is not None and self.high is not None:
            return self.low, self.high
        lo, hi = self.x.min(axis=0), self.x.max(axis=0)
        hi = np.where(hi > lo, hi, lo + 1e-6)
        return tuple(float(v) for v in lo), tuple(float(v) for v in hi)


def _checked(x: np.ndarray, y: np.ndarray, source: str) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, np.float32)
    y = np.asarray(y, np.float32)
    if x.ndim == 1:
        x = x[:, None]
    if y.ndim == 1:
        y = y[:, None]
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ShapeError(
            f"{source}: x and y must be (n, d) arrays with the same n, got {x.shape} and {y.shape}"
        )
    if x.shape[0] < 16:
        raise ShapeError(f"{source}: {x.shape[0]} pairs is too few to train on (need 16 or more)")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ShapeError(f"{source}: x and y must be finite")
    return x, y


def load_data_file(path: str | Path) -> Pairs:
    """Read an NPZ (arrays x, y) or CSV (columns x0.., y0..) file of measured pairs, or a
    directory of I/Q pairs as OpenDPD ships them (``train_input.csv``/``train_output.csv``)."""
    p = Path(path)
    if p.is_dir() and (p / "train_input.csv").is_file():
        from hwloop.dpd.signals import read_pairs

        x, y = _checked(*read_pairs(p), str(p))
        return Pairs(x, y, str(p), name=p.name)
    if not p.is_file():
        raise UsageError(f"data file {p} does not exist")
    if p.suffix.lower() == ".npz":
        try:
            with np.load(p, allow_pickle=False) as data:
                if "x" not in data or "y" not in data:
                    raise ShapeError(
                        f"{p}: an NPZ data file needs arrays named 'x' and 'y', has {list(data)}"
                    )
                x, y = data["x"], data["y"]
        except (OSError, ValueError) as exc:
            raise UsageError(f"{p}: not a readable NPZ file ({exc})") from None
    elif p.suffix.lower() == ".csv":
        x, y = _read_csv(p)
    else:
        raise UsageError(f"{p}: data files are .npz (arrays x, y) or .csv (columns x0.., y0..)")
    x, y = _checked(x, y, str(p))
    return Pairs(x, y, str(p), name=p.stem)


def _read_csv(p: Path) -> tuple[np.ndarray, np.ndarray]:
    with p.open(newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        raise ShapeError(f"{p}: empty CSV file")
    header = [h.strip() for h in rows[0]]
    xi = [i for i, h in enumerate(header) if h.startswith("x")]
    yi = [i for i, h in enumerate(header) if h.startswith("y")]
    if not xi or not yi:
        raise ShapeError(f"{p}: the CSV header needs columns named x0.. and y0.., got {header}")
    try:
        body = [r for r in rows[1:] if r]
        x = np.array([[float(r[i]) for i in xi] for r in body])
        y = np.array([[float(r[i]) for i in yi] for r in body])
    except (ValueError, IndexError) as exc:
        raise ShapeError(f"{p}: a CSV row is malformed ({exc})") from None
    return x, y


def load_run_pairs(run_dir: str | Path) -> Pairs:
    """Every training pair an earlier run logged, with its device's safe range."""
    from hwloop.querylog import open_run_log

    run = Path(run_dir)
    qlog = open_run_log(run)
    try:
        x, y = qlog.arrays("train")
    finally:
        qlog.close()
    info = _device_info(run)
    x, y = _checked(x, y, f"log of {run}")
    return Pairs(
        x,
        y,
        str(run),
        tuple(info["low"]) if info else None,
        tuple(info["high"]) if info else None,
        name=(info or {}).get("name", run.name),
    )


def load_run_sequences(run_dir: str | Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every training sequence an earlier run of a stateful device logged, each (x, y) from a reset."""
    from hwloop.querylog import open_run_log

    qlog = open_run_log(run_dir)
    try:
        return qlog.sequences("train")
    finally:
        qlog.close()


def _device_info(run: Path) -> dict | None:
    path = run / "device.json"
    if path.is_file():
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise RunDirError(f"{path}: corrupted ({exc})") from None
    from hwloop.config import read_toml

    cfg = run / "config.toml"
    return read_toml(cfg).get("device_info") if cfg.is_file() else None


def load_pairs(from_log: str | Path | None = None, from_data: str | Path | None = None) -> Pairs | None:
    if from_log and from_data:
        raise UsageError("give --from-log or --from-data, not both")
    if from_log:
        return load_run_pairs(from_log)
    if from_data:
        return load_data_file(from_data)
    return None
