"""The device contract: shapes, finiteness, bounds, chunking, counting."""

from __future__ import annotations

import numpy as np
import pytest

from hwloop import BaseDevice, Device, DeviceInfo
from hwloop.errors import DeviceError, OutOfRangeError, ShapeError


class Recorder(BaseDevice):
    """y = 2x per row, remembering every batch that reached it."""

    def __init__(self, max_batch: int = 7, answer=None) -> None:
        super().__init__(DeviceInfo("rec", 2, 1, max_batch, (-1.0, 0.0), (1.0, 2.0)))
        self.batches: list[np.ndarray] = []
        self.answer = answer

    def _query_batch(self, x: np.ndarray) -> np.ndarray:
        self.batches.append(x.copy())
        if self.answer is not None:
            return self.answer(x)
        return 2 * x[:, :1]


def test_base_device_satisfies_protocol() -> None:
    assert isinstance(Recorder(), Device)
    assert not isinstance(object(), Device)


def test_chunking_by_max_batch_and_counting() -> None:
    dev = Recorder(max_batch=7)
    x = np.column_stack([np.linspace(-1, 1, 20), np.linspace(0, 2, 20)]).astype(np.float32)
    y = dev.query(x)
    assert [len(b) for b in dev.batches] == [7, 7, 6]
    np.testing.assert_array_equal(np.concatenate(dev.batches), x)
    np.testing.assert_allclose(y[:, 0], 2 * x[:, 0])
    assert y.dtype == np.float32 and y.shape == (20, 1)
    assert dev.stats.queries == 20 and dev.stats.calls == 3


@pytest.mark.parametrize(
    "bad",
    [
        [[1.5, 1.0]],  # first input above its high
        [[0.0, -0.01]],  # second input below its low
        [[np.nan, 1.0]],
        [[0.0, np.inf]],
    ],
)
def test_unsafe_inputs_never_reach_the_device(bad: list) -> None:
    dev = Recorder()
    x = np.array([[0.0, 1.0]] * 3 + bad, np.float32)
    with pytest.raises(OutOfRangeError, match="nothing sent"):
        dev.query(x)
    assert dev.batches == [] and dev.stats.queries == 0


def test_bounds_are_inclusive() -> None:
    dev = Recorder()
    dev.query(np.array([[-1.0, 0.0], [1.0, 2.0]], np.float32))
    assert dev.stats.queries == 2


@pytest.mark.parametrize("shape", [(3,), (3, 3), (3, 1), (2, 2, 1)])
def test_wrong_shapes_are_refused(shape: tuple) -> None:
    with pytest.raises(ShapeError, match=r"shape \(n, 2\)"):
        Recorder().query(np.zeros(shape, np.float32))


def test_one_dimensional_input_accepted_for_siso() -> None:
    class Siso(BaseDevice):
        def _query_batch(self, x: np.ndarray) -> np.ndarray:
            return x

    dev = Siso(DeviceInfo("s", 1, 1, 4, (-1,), (1,)))
    assert dev.query(np.array([0.1, 0.2])).shape == (2, 1)


def test_bad_answers_from_a_device_are_errors() -> None:
    with pytest.raises(DeviceError, match="answered shape"):
        Recorder(answer=lambda x: np.zeros((len(x), 3))).query(np.array([[0.0, 1.0]] * 2))
    with pytest.raises(DeviceError, match="non-finite"):
        Recorder(answer=lambda x: np.full((len(x), 1), np.nan)).query(np.array([[0.0, 1.0]] * 2))


def test_closed_device_refuses_queries() -> None:
    dev = Recorder()
    dev.close()
    with pytest.raises(DeviceError, match="closed"):
        dev.query(np.array([[0.0, 1.0]]))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"in_dim": 0},
        {"max_batch": 0},
        {"low": (0.0,)},
        {"low": (1.0, 0.0), "high": (0.0, 1.0)},
        {"high": (1.0, np.inf)},
    ],
)
def test_device_info_validation(kwargs: dict) -> None:
    base = {"name": "d", "in_dim": 2, "out_dim": 1, "max_batch": 4, "low": (0.0, 0.0), "high": (1.0, 1.0)}
    with pytest.raises(ShapeError):
        DeviceInfo(**{**base, **kwargs})
