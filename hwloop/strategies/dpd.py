"""Digital predistortion of a signal: a GMP predistorter fitted by indirect learning.

The targets are the signal's samples (times ``--gain``), in the device's
output units. A stretch of them, as long as a third of the budget allows, is
sent three times, each after a reset: first the signal itself divided by the
gain (a scaled identity predistorter), then the drive of the predistorter
fitted on the previous round. Each fit is the least-squares GMP
postdistorter from the amplifier's answer to the drive that produced it
(indirect learning, `hwloop.gmp.indirect_learning`); the last one is the
inverse, which takes a whole target sequence and returns its drive from a
reset, state carried across chunks.
"""

from __future__ import annotations

import logging

import numpy as np

from hwloop.errors import UsageError
from hwloop.gmp import GMPConfig, indirect_learning
from hwloop.strategies import Context, Outcome

log = logging.getLogger(__name__)

ITERATIONS = 3


def train(ctx: Context) -> Outcome:
    dev, t = ctx.dev, ctx.signal
    if t is None or dev is None:
        raise UsageError("predistortion needs --signal and a device")
    if (dev.info.in_dim, dev.info.out_dim) != (2, 2):
        raise UsageError(
            f"--signal needs an I/Q device (2 -> 2); {dev.info.name} is "
            f"{dev.info.in_dim} -> {dev.info.out_dim}"
        )
    n = min(len(t), dev.remaining // ITERATIONS)
    if n < 256:
        raise UsageError(
            f"--queries {dev.budget} leaves {n} samples a round; predistortion needs at least 256"
        )
    start = int(np.random.default_rng(ctx.seed).integers(0, len(t) - n + 1))
    stretch = np.asarray(t[start : start + n], np.float64)
    peak = float(np.min(np.abs(np.concatenate([dev.info.low_array, dev.info.high_array]))))

    def query_sequence(x: np.ndarray) -> np.ndarray:
        dev.reset()
        return dev.query(np.asarray(x, np.float32), "train")

    cfg = GMPConfig() if dev.info.stateful else GMPConfig(memory=1, cross_memory=1, lag=0)
    gain = float(np.max(np.abs(stretch[:, 0] + 1j * stretch[:, 1]))) / peak
    res = indirect_learning(
        query_sequence, stretch, cfg, gain=1.0, start_gain=max(gain, 1e-6), iterations=ITERATIONS, peak=peak
    )
    res.inverse.info = dev.info.to_dict()
    details = {
        "dpd_rounds": res.rounds,
        "dpd_stretch": [start, start + n],
        "gmp": cfg.to_dict(),
        "inverse_kind": "gmp",
    }
    return Outcome(res.inverse, [], details=details, memory={"kind": "gmp"})
