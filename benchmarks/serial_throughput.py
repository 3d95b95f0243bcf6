"""Samples/s over a pty to `serve` throttled to 115200 baud 8N1: window 1 vs >= 2.

Measured twice per window: calling the serial driver directly, and through
`MeteredDevice` with a real query log, the way training sends queries (each
chunk's answer committed to SQLite as it lands, while the driver keeps its
window full).

The line is full duplex, so the ceiling is set by the busier direction:
``ceiling = (baud / 10) / max(request_bytes, response_bytes) * rows`` per
request. The table reports measured samples/s and that fraction; the figures
also go to benchmarks/results/serial.json for docs/BENCHMARKS.md.

    python benchmarks/serial_throughput.py [--rows 3000] [--batch 32]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from hwloop.device import BaseDevice, DeviceInfo
from hwloop.drivers import protocol as p
from hwloop.drivers.serial_device import open_serial
from hwloop.drivers.serve import FaultConfig, serve_in_thread
from hwloop.metered import MeteredDevice
from hwloop.querylog import QueryLog

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, save, stamp

NAME = "serial"

BAUD = 115200


class Tanh(BaseDevice):
    """An instant device, so the line, not the device, limits the rate."""

    def __init__(self, batch: int) -> None:
        super().__init__(DeviceInfo("tanh", 1, 1, batch, (-1.0,), (1.0,)))

    def _query_batch(self, x: np.ndarray) -> np.ndarray:
        return np.tanh(x)


def frame_len(msg: p.Message) -> int:
    """Bytes on the wire for one message, framing and CRC included."""
    return len(p.encode_message(msg))


def measure(window: int, rows: int, batch: int, metered: bool = False) -> tuple[float, float]:
    """Samples/s through ``window`` requests in flight, and that as a fraction of the ceiling."""
    with (
        serve_in_thread(Tanh(batch), pty=True, window=window, faults=FaultConfig(baud=BAUD)) as srv,
        open_serial(srv.url + "?timeout=2") as dev,
        tempfile.TemporaryDirectory() as tmp,
    ):
        x = np.random.default_rng(0).uniform(-1, 1, (rows, 1)).astype(np.float32)
        dev.query(x[:batch])  # warm up
        qlog = QueryLog(Path(tmp) / "queries.sqlite", 1, 1)
        target = MeteredDevice(dev, qlog, budget=rows) if metered else dev
        t0 = time.perf_counter()
        target.query(x)
        dt = time.perf_counter() - t0
        assert qlog.count() == (rows if metered else 0)
        qlog.close()
    v = np.zeros(batch, np.float32)
    per_req = max(frame_len(p.Query(1000, batch, v)), frame_len(p.QueryOk(1000, batch, v)))
    ceiling = BAUD / 10 / per_req * batch
    return rows / dt, rows / dt / ceiling


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()
    print(
        f"| window | driver rows/s | fraction | metered + logged rows/s | fraction | (batch {args.batch}) |"
    )
    print("|---:|---:|---:|---:|---:|")
    rows = []
    for window in (1, 2, 4):
        rate, frac = measure(window, args.rows, args.batch)
        m_rate, m_frac = measure(window, args.rows, args.batch, metered=True)
        print(f"| {window} | {rate:.0f} | {frac:.1%} | {m_rate:.0f} | {m_frac:.1%} |")
        rows.append(
            {
                "window": window,
                "samples_per_s": round(rate, 1),
                "fraction": round(frac, 4),
                "metered_samples_per_s": round(m_rate, 1),
                "metered_fraction": round(m_frac, 4),
            }
        )
    save(
        NAME,
        {
            "machine": machine(),
            **stamp(["hwloop.drivers.serial_device", "hwloop.drivers.serve", "hwloop.metered"]),
            "command": f"python benchmarks/serial_throughput.py --rows {args.rows} --batch {args.batch}",
            "baud": BAUD,
            "rows": args.rows,
            "batch": args.batch,
            "results": rows,
        },
    )


if __name__ == "__main__":
    main()
