"""Samples/s over a pty to `serve` throttled to 115200 baud 8N1: window 1 vs >= 2.

The line is full duplex, so the ceiling is set by the busier direction:
``ceiling = (baud / 10) / max(request_bytes, response_bytes) * rows`` per
request. The table reports measured samples/s and that fraction.

    python benchmarks/serial_throughput.py [--rows 3000] [--batch 32]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from hwloop.device import BaseDevice, DeviceInfo
from hwloop.drivers import protocol as p
from hwloop.drivers.serial_device import open_serial
from hwloop.drivers.serve import FaultConfig, serve_in_thread

BAUD = 115200


class Tanh(BaseDevice):
    def __init__(self, batch: int) -> None:
        super().__init__(DeviceInfo("tanh", 1, 1, batch, (-1.0,), (1.0,)))

    def _query_batch(self, x: np.ndarray) -> np.ndarray:
        return np.tanh(x)


def frame_len(msg: p.Message) -> int:
    return len(p.encode_message(msg))


def measure(window: int, rows: int, batch: int) -> tuple[float, float]:
    with (
        serve_in_thread(Tanh(batch), pty=True, window=window, faults=FaultConfig(baud=BAUD)) as srv,
        open_serial(srv.url + "?timeout=2") as dev,
    ):
        x = np.random.default_rng(0).uniform(-1, 1, (rows, 1)).astype(np.float32)
        dev.query(x[:batch])  # warm up
        t0 = time.perf_counter()
        dev.query(x)
        dt = time.perf_counter() - t0
    v = np.zeros(batch, np.float32)
    per_req = max(frame_len(p.Query(1000, batch, v)), frame_len(p.QueryOk(1000, batch, v)))
    ceiling = BAUD / 10 / per_req * batch
    return rows / dt, rows / dt / ceiling


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()
    print(f"| window | samples/s | fraction of line rate (115200 8N1, batch {args.batch}) |")
    print("|---:|---:|---:|")
    for window in (1, 2, 4):
        rate, frac = measure(window, args.rows, args.batch)
        print(f"| {window} | {rate:.0f} | {frac:.1%} |")


if __name__ == "__main__":
    main()
