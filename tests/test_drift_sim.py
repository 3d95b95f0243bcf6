"""Operating conditions of the I/Q amplifier simulators: what temp and vdd move, and the slow drift."""

from __future__ import annotations

import numpy as np
import pytest

import hwloop
from hwloop.dpd.metrics import acpr_db
from hwloop.dpd.signals import cplx, load_signal
from hwloop.errors import BadDeviceParameterError
from hwloop.simulators.catalog import make_sim
from hwloop.simulators.conditions import (
    GAIN_DB_PER_K,
    PM_DEG_PER_K,
    Condition,
    ConditionedPA,
    Drift,
    Effect,
    initial_state,
    run_at,
)
from hwloop.simulators.pa import IQMemorySimDevice

SIGNAL = load_signal("ofdm:n=4096,papr=8,seed=1")


def cw(dev, a: float) -> complex:
    """The complex gain at a constant drive of magnitude a, once the memory has settled."""
    x = np.zeros((200, 2), np.float32)
    x[:, 0] = a
    dev.reset()
    y = dev.query(x)
    return complex(y[-1, 0], y[-1, 1]) / a


@pytest.mark.parametrize("name", ["pa_wh", "pa_gmp"])
def test_temperature_moves_gain_compression_and_am_pm_as_documented(name: str) -> None:
    figs = {}
    for temp in (25, 65):
        dev = hwloop.open_device(f"sim:{name}?noise=0&temp={temp}")
        small, peak = cw(dev, 0.01), cw(dev, 1.0)
        figs[temp] = (
            20 * np.log10(abs(small)),
            20 * np.log10(abs(peak / small)),
            np.degrees(np.angle(peak / small)),
        )
    gain_slope = (figs[65][0] - figs[25][0]) / 40
    assert gain_slope == pytest.approx(GAIN_DB_PER_K, abs=0.002)  # -0.015 dB/K, small signal
    assert figs[65][1] < figs[25][1] - 0.1  # compresses more at the peak drive (0.13 dB on pa_wh)
    assert figs[65][2] - figs[25][2] > 0.8 * PM_DEG_PER_K * 40  # AM/PM grows with temperature


def test_supply_moves_the_compression_point() -> None:
    comp = {}
    for vdd in (4.5, 5.0, 5.5):
        dev = hwloop.open_device(f"sim:pa_wh?noise=0&vdd={vdd}")
        comp[vdd] = 20 * np.log10(abs(cw(dev, 1.0) / cw(dev, 0.01)))
    assert comp[4.5] < comp[5.0] < comp[5.5]  # a lower supply compresses earlier


def test_a_hotter_amplifier_spreads_more_power_into_the_adjacent_channels() -> None:
    acpr = []
    for temp in (25, 65):
        dev = hwloop.open_device(f"sim:pa_wh?noise=0&temp={temp}")
        acpr.append(acpr_db(dev.clean_sequence(SIGNAL)))
    assert acpr[1] > acpr[0] + 1.0


def test_the_reference_condition_is_the_catalogue_amplifier() -> None:
    plain = make_sim("pa_wh", noise=0.0)
    explicit = hwloop.open_device("sim:pa_wh?noise=0&temp=25&vdd=5&drift=none")
    assert type(plain) is IQMemorySimDevice and type(explicit) is IQMemorySimDevice
    np.testing.assert_array_equal(plain.query(SIGNAL), explicit.query(SIGNAL))
    assert explicit.info.firmware == "hwloop-sim/pa_wh?noise=0.0"
    # a condition as close to the reference as floats allow gives the same answer through the transform
    near = hwloop.open_device("sim:pa_wh?noise=0&temp=25.000001")
    assert isinstance(near, ConditionedPA)
    np.testing.assert_allclose(near.query(SIGNAL), plain.clean_sequence(SIGNAL), atol=1e-5)


def test_the_condition_is_in_the_firmware_after_a_hash() -> None:
    dev = hwloop.open_device("sim:pa_wh?seed=1&temp=60&vdd=4.5")
    assert dev.info.firmware == "hwloop-sim/pa_wh?seed=1#temp=60.0&vdd=4.5"
    assert dev.info.firmware.partition("#")[0] == make_sim("pa_wh", seed=1).info.firmware


def test_duty_drift_heats_with_the_drive_and_survives_a_reset() -> None:
    dev = hwloop.open_device("sim:pa_wh?noise=0&drift=duty&drift_tau=1&heat=40&rate=1e4")
    assert dev.condition.temp == 25.0
    for _ in range(10):
        dev.reset()
        dev.query(SIGNAL)
    hot = dev.condition.temp
    # 40,960 samples at the signal's power (|x|^2 about 0.16 = duty 1.6) over tau = 10,000 samples
    assert 25 + 40 * 1.6 * (1 - np.exp(-4.096)) * 0.9 < hot < 25 + 40 * 1.7
    dev.reset()  # clears the delay lines, not the die temperature
    assert dev.condition.temp == hot
    dev.query(0.1 * SIGNAL)  # a light drive: it cools towards 25 + 40 * 0.016
    assert dev.condition.temp < hot
    # the clean answer is the one at the current condition and moves nothing
    before = dev.condition
    np.testing.assert_array_equal(dev.clean_sequence(SIGNAL), dev.clean_sequence(SIGNAL))
    assert dev.condition == before


def test_script_drift_follows_its_trajectory_on_the_sample_clock() -> None:
    dev = hwloop.open_device("sim:pa_wh?noise=0&drift=script:0:25,1:65,2:65:4.5&rate=4096")
    temps, vdds = [], []
    for _ in range(3):
        temps.append(dev.condition.temp)
        vdds.append(dev.condition.vdd)
        dev.query(SIGNAL)  # 4096 samples: one second
    assert temps == pytest.approx([25.0, 65.0, 65.0]) and vdds == pytest.approx([5.0, 5.0, 4.5])
    again = hwloop.open_device("sim:pa_wh?noise=0&drift=script:0:25,1:65,2:65:4.5&rate=4096")
    np.testing.assert_array_equal(again.query(SIGNAL), make_answers(SIGNAL))


def make_answers(x: np.ndarray) -> np.ndarray:
    dev = hwloop.open_device("sim:pa_wh?noise=0&drift=script:0:25,1:65,2:65:4.5&rate=4096")
    return dev.query(x)


def test_wall_clock_drift_goes_on_between_queries() -> None:
    dev = hwloop.open_device("sim:pa_wh?noise=0&drift=duty&clock=wall&drift_tau=0.05&heat=40&max_batch=8192")
    dev.query(SIGNAL)
    assert dev.condition.temp == 25.0  # no time has passed at the signal's power yet
    import time

    time.sleep(0.3)  # six time constants transmitting at the last query's power
    dev.query(SIGNAL[:16])
    assert dev.condition.temp == pytest.approx(
        25 + 40 * float(np.mean(np.abs(cplx(SIGNAL)) ** 2)) / 0.1, rel=0.02
    )


@pytest.mark.parametrize(
    "query",
    [
        "temp=200",
        "vdd=1",
        "drift=hot",
        "drift=script:",
        "drift=script:1:25,0:30",
        "drift=script:0:25:9",
        "clock=moon",
        "drift_tau=0",
        "heat=-1",
        "drift=script:a:b",
    ],
)
def test_bad_conditions_are_refused_with_one_line(query: str) -> None:
    with pytest.raises(BadDeviceParameterError, match="sim:pa_wh"):
        hwloop.open_device(f"sim:pa_wh?{query}")


def test_any_amplifier_with_state_takes_a_condition() -> None:
    """The transform wraps an amplifier it knows only by ``initial_state`` and ``run``."""

    class Linear:
        def initial_state(self) -> tuple:
            return (np.zeros(1, complex),)

        def run(self, z: np.ndarray, state: tuple) -> tuple[np.ndarray, tuple]:
            ext = np.concatenate([state[0], z])
            return ext[1:] + 0.5 * ext[:-1], (ext[-1:].copy(),)

    z = cplx(SIGNAL)
    hot = Effect.of(Condition(temp=65))
    y, _ = run_at(Linear(), hot, z, initial_state(Linear()))
    y_ref, _ = Linear().run(z, Linear().initial_state())
    # a linear amplifier: the gain moves, the compression scale cancels; AM/PM and memory remain
    assert 20 * np.log10(np.linalg.norm(y) / np.linalg.norm(y_ref)) == pytest.approx(
        40 * GAIN_DB_PER_K, abs=0.05
    )
    first, state = run_at(Linear(), hot, z[:1000], initial_state(Linear()))
    rest, _ = run_at(Linear(), hot, z[1000:], state)
    np.testing.assert_allclose(np.concatenate([first, rest]), y, atol=1e-12)  # state carried across calls
    assert Drift(Condition()).now() == Condition()
