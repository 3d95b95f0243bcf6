"""A CRC-valid but unusable answer (wrong n, NaN) from `hwloop serve`'s fault injector.

A stateless device is simply asked again under a fresh seq. A stateful one
may already have applied the input, so the driver raises `UnusableAnswer`
instead: the device must see every input row exactly once, and after a
reset it answers like a fresh device again.
"""

from __future__ import annotations

import numpy as np
import pytest

from hwloop import open_device
from hwloop.device import NonFiniteAnswer, UnusableAnswer
from hwloop.drivers.serial_device import open_serial
from hwloop.drivers.serve import FaultConfig, serve_in_thread

WH = "sim:wh?noise=0&seed=0&max_batch=8"
TANH = "sim:tanh?noise=0&max_batch=8"
BAD_AT = 4  # INFO is request 1: the third QUERY gets the unusable answer


class Counting:
    """Wraps a simulator; records every input row it applied."""

    def __init__(self, uri: str) -> None:
        self.dev = open_device(uri)
        self.info = self.dev.info
        self.applied: list[np.ndarray] = []

    def query(self, x: np.ndarray) -> np.ndarray:
        self.applied.append(np.array(x, copy=True))
        return self.dev.query(x)

    def reset(self) -> None:
        self.dev.reset()

    def close(self) -> None:
        self.dev.close()

    def rows(self) -> np.ndarray:
        return np.concatenate(self.applied)


def fresh(uri: str, x: np.ndarray) -> np.ndarray:
    ref = open_device(uri)
    try:
        return ref.query(x)
    finally:
        ref.close()


def distinct_inputs(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).permutation(np.linspace(-0.9, 0.9, n, dtype=np.float32))[:, None]
    assert len(np.unique(x)) == n
    return x


@pytest.mark.parametrize(("kind", "error"), [("n", UnusableAnswer), ("nan", NonFiniteAnswer)])
def test_stateful_device_never_gets_an_input_twice(kind: str, error: type[Exception]) -> None:
    dev = Counting(WH)
    x = distinct_inputs(48, 1)  # 6 chunks of 8
    faults = FaultConfig(bad_answer_after=BAD_AT, bad_answer=kind)
    with serve_in_thread(dev, pty=True, faults=faults) as srv, open_serial(srv.url) as d:
        assert d.info.stateful and d.info.max_batch == 8
        with pytest.raises(error, match=r"stateful device .* not asked again") as ei:
            d.query(x)
        assert srv.stats.bad_answers == 1
        assert "reset() it and re-warm it" in str(ei.value)
        seen = dev.rows()
        # every row applied once, in order: a prefix of x (the window had later chunks in flight)
        assert len(seen) >= 8 * (BAD_AT - 1) and len(np.unique(seen)) == len(seen)
        assert seen.tobytes() == x[: len(seen)].tobytes()
        d.reset()  # what the caller does: reset, then re-warm from its log
        y = d.query(x)
    assert y.tobytes() == fresh(WH, x).tobytes()


@pytest.mark.parametrize("kind", ["n", "nan"])
def test_stateless_device_is_asked_again(kind: str) -> None:
    dev = Counting(TANH)
    x = distinct_inputs(48, 2)
    faults = FaultConfig(bad_answer_after=BAD_AT, bad_answer=kind)
    with serve_in_thread(dev, pty=True, faults=faults) as srv, open_serial(srv.url) as d:
        y = d.query(x)
        assert srv.stats.bad_answers == 1 and d.link.rejected == 1
    assert y.tobytes() == fresh(TANH, x).tobytes()
    seen = dev.rows()
    assert len(seen) == len(x) + 8  # the spoiled chunk was measured again under a fresh seq
