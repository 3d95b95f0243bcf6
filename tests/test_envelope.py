"""The I/Q envelope: a device declared by its peak magnitude never sees an input beyond it.

The per-axis box allows sqrt(2) * peak at its corners; every path to a device
(training collection, evaluation, noise floor, probe, a signal's drive, what
``apply`` returns) must stay inside the circle |x| <= peak, and the contract
itself refuses what is outside it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import hwloop
from hwloop.cli import cli
from hwloop.device import BaseDevice, DeviceInfo, IQEnvelope, check_inputs
from hwloop.errors import OutOfRangeError, ShapeError
from hwloop.evaluate import probe_device
from hwloop.metered import MeteredDevice
from hwloop.querylog import open_run_log
from hwloop.run import TrainOptions
from hwloop.simulators.catalog import make_sim

SMALL = TrainOptions(fit_steps=100, eval_targets=128, noise_repeats=32)
SIGNAL = "ofdm:bw=200e6,fs=800e6,n=8192,papr=8,seed=3"


class Held(BaseDevice):
    """A held-out I/Q device: box [-1, 1]^2, declared peak 0.8, and a record of every input's
    magnitude. It checks nothing itself (it overrides iter_query), so only hwloop stands between
    a proposal and it."""

    def __init__(self, peak: float = 0.8, stateful: bool = False) -> None:
        env = IQEnvelope(((0, 1),), peak)
        super().__init__(DeviceInfo("held_iq", 2, 2, 256, (-1.0, -1.0), (1.0, 1.0), stateful, "t", env))
        self.largest = 0.0
        self.rows = 0

    def iter_query(self, x: np.ndarray):  # no check_inputs: trust nothing upstream
        x = np.asarray(x, np.float64)
        self.largest = max(self.largest, float(np.max(np.hypot(x[:, 0], x[:, 1]), initial=0.0)))
        self.rows += len(x)
        z = x[:, 0] + 1j * x[:, 1]
        out = 1.8 * z / (1 + np.abs(z) ** 2) ** 0.5 * np.exp(0.3j * np.abs(z) ** 2)
        yield 0, np.stack([out.real, out.imag], axis=1).astype(np.float32)

    def query(self, x: np.ndarray) -> np.ndarray:
        return next(self.iter_query(x))[1]


class Recording(BaseDevice):
    """A simulator behind a recorder of the largest input magnitude it was sent."""

    def __init__(self, name: str, **params: object) -> None:
        self.inner = make_sim(name, **params)
        super().__init__(self.inner.info)
        self.largest = 0.0

    def _query_batch(self, x: np.ndarray) -> np.ndarray:
        self.largest = max(self.largest, float(np.max(np.hypot(x[:, 0], x[:, 1]))))
        return self.inner.query(x)

    def _reset(self) -> None:
        self.inner.reset()


def test_the_contract_declares_refuses_and_round_trips() -> None:
    info = Held().info
    assert DeviceInfo(**info.to_dict()) == info  # e.g. through device.json or a farm actor
    corner = np.array([[0.7, 0.7]], np.float32)  # inside the box, |x| = 0.99 > 0.8
    with pytest.raises(OutOfRangeError, match="above the peak"):
        check_inputs(info, corner)
    with pytest.raises(ShapeError):
        IQEnvelope(((0, 0),), 1.0)
    with pytest.raises(ShapeError):
        DeviceInfo("x", 2, 2, 8, (-1, -1), (1, 1), envelope=IQEnvelope(((0, 2),), 1.0))
    rms = DeviceInfo("r", 2, 2, 8, (-1, -1), (1, 1), envelope=IQEnvelope(((0, 1),), 1.0, rms=0.3))
    with pytest.raises(OutOfRangeError, match="RMS"):
        check_inputs(rms, np.full((4, 2), 0.5, np.float32))


def test_samplers_draw_inside_the_circle_and_under_the_rms_limit() -> None:
    rng = np.random.default_rng(0)
    info = DeviceInfo("r", 2, 2, 8, (-1, -1), (1, 1), envelope=IQEnvelope(((0, 1),), 0.9, rms=0.4))
    x = info.uniform(rng, 20000)
    mag = np.hypot(x[:, 0].astype(np.float64), x[:, 1])
    assert mag.max() <= 0.9 and np.sqrt(np.mean(mag**2)) <= 0.4
    free = DeviceInfo("f", 2, 2, 8, (-1, -1), (1, 1), envelope=IQEnvelope(((0, 1),), 0.9))
    mag = np.hypot(*free.uniform(rng, 20000).astype(np.float64).T)
    assert mag.max() > 0.89  # uniform over the disc: its edge is reached, not only its centre
    assert abs(np.mean(mag**2) - 0.9**2 / 2) < 0.01


def test_draws_under_an_rms_limit_go_row_by_row() -> None:
    """n rows are the first n of a larger draw, and two draws in a row are one draw of their total
    (auto's uniform stage and the rest are ila's one draw), with every batch within the limit."""
    info = DeviceInfo("b", 2, 2, 4096, (-1, -1), (1, 1), envelope=IQEnvelope(((0, 1),), 1.0, rms=0.35))
    for seed in range(40):
        whole = info.uniform(np.random.default_rng(seed), 1000)
        rng = np.random.default_rng(seed)
        first, rest = info.uniform(rng, 300), info.uniform(rng, 700)
        np.testing.assert_array_equal(whole[:300], first)
        np.testing.assert_array_equal(whole[300:], rest)
        for batch in (whole, first, rest):
            assert info.envelope.rms_of(batch) <= 0.35
    mag = np.hypot(*whole.astype(np.float64).T)
    assert mag.max() > 1.1 * 0.35  # the disc (radius 0.8 sqrt 2 rms) reaches beyond the RMS level
    # One row alone beyond the limit is scaled onto it: the batch, not the property, gives way.
    one = info.envelope.place(np.zeros((1, 2), np.float32), np.array([[1.0, 0.5]]))
    assert info.envelope.rms_of(one) <= 0.35 and info.envelope.rms_of(one) > 0.35 * 0.999


def test_the_meter_clips_by_magnitude_keeping_the_phase() -> None:
    info = Held().info
    dev = MeteredDevice(Held(), None, budget=100)
    x = np.array([[3.0, 4.0], [0.1, -0.2], [-1.0, -1.0]], np.float32)
    safe = dev.safe(x)
    mag = np.hypot(safe[:, 0].astype(np.float64), safe[:, 1])
    assert np.all(mag <= info.envelope.peak)
    assert np.isclose(mag[0], 0.8, atol=1e-6) and np.allclose(safe[1], x[1])
    assert np.isclose(np.arctan2(safe[2, 1], safe[2, 0]), np.arctan2(-1.0, -1.0), atol=1e-6)
    with pytest.raises(OutOfRangeError):
        MeteredDevice(Held(), None, budget=100, strict_bounds=True).safe(x)


@pytest.mark.parametrize("strategy", ["ila", "auto", "surrogate"])
def test_nothing_beyond_the_peak_reaches_a_held_out_device(strategy: str, tmp_path: Path) -> None:
    dev = Held()
    res = hwloop.train(dev, strategy=strategy, queries=1200, run_dir=tmp_path, options=SMALL)
    assert dev.rows > 1200 and dev.largest <= 0.8  # train, eval and noise floor
    assert dev.largest > 0.75  # the samplers do reach the edge of the envelope
    probe_device(dev, points=9, repeats=16)
    assert dev.largest <= 0.8
    t = np.random.default_rng(1).uniform(-2, 2, (500, 2)).astype(np.float32)
    x = res.inverse.apply(t)  # even for unreachable targets
    assert np.max(np.hypot(x[:, 0].astype(np.float64), x[:, 1])) <= 0.8


@pytest.mark.parametrize("name", ["saleh_iq", "iqpa"])
def test_memoryless_iq_simulators_declare_and_keep_their_envelope(name: str, tmp_path: Path) -> None:
    dev = Recording(name)
    peak = dev.info.envelope.peak
    hwloop.train(dev, strategy="auto", queries=1000, run_dir=tmp_path, options=SMALL)
    probe_device(dev, points=9, repeats=16)
    assert dev.largest <= peak and dev.largest > 0.9 * peak


@pytest.mark.parametrize("name", ["pa_gmp", "pa_wh"])
def test_pa_simulators_keep_their_envelope_with_and_without_a_signal(name: str, tmp_path: Path) -> None:
    dev = Recording(name)
    assert dev.info.envelope == IQEnvelope(((0, 1),), 1.0)
    hwloop.train(dev, strategy="ila", queries=2000, run_dir=tmp_path / "seq", options=SMALL)
    opts = TrainOptions(signal=SIGNAL, gain=2.6)  # driven hard: the predistorter asks for more than the peak
    res = hwloop.train(dev, strategy="auto", queries=12000, run_dir=tmp_path / "dpd", options=opts)
    assert res.metrics["strategy_run"] == "dpd"
    probe_device(dev, points=9, repeats=16)
    assert dev.largest <= 1.0


def test_the_command_line_run_logs_nothing_beyond_the_peak(tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = ["train", "--device", "sim:saleh_iq", "--queries", "600", "--fit-steps", "100", "--out", str(run)]
    assert CliRunner().invoke(cli, args).exit_code == 0
    x, _ = open_run_log(run).arrays(None)  # training, evaluation and noise rows
    assert len(x) > 600 and np.max(np.hypot(x[:, 0].astype(np.float64), x[:, 1])) <= 0.5
