"""auto's two measurements before it picks a path: where the noise enters (a surrogate's residuals
against its slope) and whether the device is one-to-one (the sign of that surrogate's Jacobian)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import hwloop
from hwloop.inverses.models import FitConfig
from hwloop.querylog import open_run_log
from hwloop.run import TrainOptions
from hwloop.simulators.catalog import make_sim
from hwloop.strategies.auto import PLAIN_ILA_NOISE_OF_JITTER
from hwloop.strategies.fold import FOLD_SHARE, check_fold, jacobian_det, share_with_minority_sign
from hwloop.strategies.joint import fit_surrogate
from hwloop.strategies.noise import split_noise


def _split(noise: float, input_noise: float, name: str = "tanh"):
    dev = make_sim(name, noise=noise, input_noise=input_noise, seed=1)
    rng = np.random.default_rng(0)
    x = dev.info.uniform(rng, 2000)
    y = dev.query(x)
    sur, _ = fit_surrogate(x, y, FitConfig(steps=800), seed=0)
    return split_noise(x, y, sur)


def test_input_noise_is_told_from_output_noise() -> None:
    inp = _split(noise=1e-3, input_noise=0.02)
    assert inp.input_referred and inp.input_share > 0.8
    assert inp.input_var == pytest.approx(0.02**2, rel=0.3)  # the declared input noise, per input
    assert inp.pairs == 2000
    out = _split(noise=0.02, input_noise=0.0)
    assert not out.input_referred and abs(out.input_share) < 0.3
    assert out.output_var == pytest.approx(0.02**2, rel=0.3)


def test_a_noise_free_device_is_not_flagged() -> None:
    split = _split(noise=0.0, input_noise=0.0, name="cubic")
    assert not split.input_referred


def test_a_split_too_small_to_fit_writes_standard_json() -> None:
    """Fewer than 8 pairs: no fit, never input-referred, and its record holds no NaN or Infinity
    (metrics.json is read by tools that reject them); the slope is still the pairs' mean."""
    dev = make_sim("tanh", noise=0.01, seed=1)
    x = dev.info.uniform(np.random.default_rng(0), 5)
    y = dev.query(x)
    sur, _ = fit_surrogate(x, y, FitConfig(steps=10), seed=0)
    split = split_noise(x, y, sur)
    assert not split.input_referred
    record = split.to_dict()
    assert record["input_var_se"] is None and record["slope2"] > 0
    json.dumps(record, allow_nan=False)


@pytest.mark.parametrize(
    ("name", "noise", "input_noise", "referred"),
    [("mimo3", 0.0, 0.005, True), ("mimo3", 0.005, 0.0, False), ("saleh_iq", 0.0, 0.005, True)],
)
def test_auto_splits_the_noise_at_its_own_settings_up_to_three_outputs(
    name: str, noise: float, input_noise: float, referred: bool
) -> None:
    """As auto measures it in a 5,000-query run (1,024 uniform pairs, its quick surrogate's
    `SPLIT_STEPS`), at the robustness matrix's noise (0.005): where the surrogate is fitted too
    briefly its misfit reads as output noise (2,000 steps on the three-output sim:mimo3: input
    share 0.22 with the noise all at the input), and auto refines where iterative ILA is best."""
    from hwloop.strategies.auto import SPLIT_STEPS

    dev = make_sim(name, noise=noise, input_noise=input_noise, seed=0)
    x = dev.info.uniform(np.random.default_rng(0), 1024)
    y = dev.query(x)
    sur, _ = fit_surrogate(x, y, FitConfig(steps=SPLIT_STEPS), seed=3)
    split = split_noise(x, y, sur)
    assert split.input_referred is referred, split


def test_output_noise_is_referred_to_the_input_through_the_slope() -> None:
    """With noise at the output only, ``referred_sd`` is that noise over the device's rms slope
    (sim:tanh, y = tanh(1.5 x): slope 1.5 (1 - y^2) on the same inputs); with input noise added,
    it grows by it."""
    out = _split(0.02, 0.0)
    x = make_sim("tanh").info.uniform(np.random.default_rng(0), 2000).astype(np.float64)
    rms_slope = float(np.sqrt(np.mean((1.5 * (1 - np.tanh(1.5 * x) ** 2)) ** 2)))
    assert out.referred_sd == pytest.approx(0.02 / rms_slope, rel=0.25), out
    both = _split(0.02, 0.02)
    assert both.referred_sd == pytest.approx(np.hypot(0.02, 0.02 / rms_slope), rel=0.25), both


@pytest.mark.parametrize(
    ("uri", "fixed"),
    [("sim:rapp?input_noise=0.02", "ila"), ("sim:rapp?input_noise=0.004", "iila"), ("sim:rapp", "iila")],
)
def test_auto_on_a_one_to_one_device_is_an_ila_query_for_query(uri: str, fixed: str, tmp_path: Path) -> None:
    """On a one-to-one device auto asks what `ila` or `iila` asks, in the same chunks, so it gets
    the same answers and fits the same inverse. Input-referred noise: `ila` to the end where the
    noise is heavy against iterative ILA's jitter (0.02 of the range 2.4 here: sd 0.048; the input
    noise 0.02 is 0.42 of it), `iila` to the end where it is light (0.004: 0.08); no input noise:
    `iila` up to the headroom check after the first refinement."""
    opts = TrainOptions(fit_steps=400, eval_targets=200, noise_repeats=64)
    m = hwloop.train(uri, strategy="auto", queries=4000, run_dir=tmp_path, options=opts).metrics
    ref = hwloop.train(uri, strategy=fixed, queries=4000, run_dir=tmp_path / fixed, options=opts).metrics
    (mx, my), (ix, iy) = (open_run_log(p).arrays("train") for p in (tmp_path, tmp_path / fixed))
    assert m["one_to_one"]["one_to_one"] is True
    assert m["noise_split"]["input_referred"] is ("input_noise" in uri)
    if "input_noise" in uri:
        ratio = m["noise_of_jitter"]
        assert (ratio >= PLAIN_ILA_NOISE_OF_JITTER) is (fixed == "ila"), ratio
        assert m["auto_path"] == fixed and "headroom" not in m and "round_nmse_db" not in m
        assert m["queries_used"] == 4000
        np.testing.assert_array_equal(mx, ix)
        np.testing.assert_array_equal(my, iy)
        assert m["closed_loop_nmse_clean_db"] == pytest.approx(ref["closed_loop_nmse_clean_db"], abs=0.05)
    else:  # the uniform half and the first refinement are iila's; then the headroom decides
        np.testing.assert_array_equal(mx[:3000], ix[:3000])
        np.testing.assert_array_equal(my[:3000], iy[:3000])
        room = m["headroom"]
        assert room["pairs"] == 1000 and room["significant"] is (room["mean"] > 2 * room["se"])
        assert m["auto_path"] == ("refine" if room["significant"] else "iila")
        assert ("round_nmse_db" in m) is room["significant"]


def test_headroom_sees_a_biased_inverse_through_the_noise() -> None:
    """The headroom of `hwloop.strategies.room` against a device known exactly: zero for the
    exact inverse, whatever the noise; the closed-loop error a biased inverse leaves, within its
    standard error, however noisy the answers."""
    from hwloop.device import DeviceInfo
    from hwloop.strategies.room import headroom

    info = DeviceInfo(name="t", in_dim=1, out_dim=1, max_batch=64, low=(-1.0,), high=(1.0,))
    rng = np.random.default_rng(0)
    x = rng.uniform(-0.9, 0.9, (4000, 1)).astype(np.float32)

    def device(u):
        return np.tanh(1.5 * np.asarray(u, np.float64))

    def exact(t):
        return np.arctanh(np.clip(np.asarray(t, np.float64), -0.999, 0.999)) / 1.5

    def biased(t):
        return 0.97 * exact(t)

    for noise in (0.0, 0.05):
        y = device(x) + rng.normal(0, noise, x.shape)
        assert abs(headroom(x, y, exact, device, info).mean) < 1e-6
        room = headroom(x, y, biased, device, info)
        t = device(x)
        truth = float(np.mean((device(biased(t)) - t) ** 2) / np.mean(t**2))
        assert room.significant and abs(room.mean - truth) < 3 * room.se + 1e-9, (noise, room, truth)
    assert not headroom(x, device(x) + rng.normal(0, 0.05, x.shape), exact, device, info).significant


# Whether ILA can work: the fold check (hwloop.strategies.fold) that gates auto's ILA path.


def _fold(name: str, n: int = 1000, **params: float):
    dev = make_sim(name, seed=1, **params)
    x = dev.info.uniform(np.random.default_rng(0), n)
    sur, _ = fit_surrogate(x, dev.query(x), FitConfig(steps=1000), seed=0)
    return check_fold(x, sur), dev, x


def _true_share(dev, x: np.ndarray) -> float:
    """The fold share of the noise-free device itself, its Jacobian by central differences."""
    eps = 1e-4
    cols = [
        (dev.transfer(x.astype(np.float64) + eps * e) - dev.transfer(x.astype(np.float64) - eps * e))
        / (2 * eps)
        for e in np.eye(dev.info.in_dim)
    ]
    return share_with_minority_sign(np.linalg.det(np.stack(cols, axis=-1)))[0]


@pytest.mark.parametrize("name", ["saleh_folded", "saleh_iq_folded", "mimo3_folded"])
def test_folded_devices_are_measured_not_one_to_one(name: str) -> None:
    fold, dev, x = _fold(name, input_noise=0.005)
    truth = _true_share(dev, x)
    assert truth > 0.1  # the device itself folds: a sizeable share of its image is covered twice
    assert fold.one_to_one is False
    assert fold.fold_share == pytest.approx(truth, abs=0.05)
    assert fold.to_dict()["one_to_one"] is False and fold.to_dict()["pairs"] == 1000


@pytest.mark.parametrize("name", ["rapp", "cubic", "saleh_iq", "mimo3", "quantised"])
def test_one_to_one_devices_are_not_flagged(name: str) -> None:
    for params in ({}, {"input_noise": 0.01}, {"noise": 0.02}):
        fold, dev, x = _fold(name, **params)
        assert _true_share(dev, x) == 0.0
        assert fold.one_to_one is True and fold.fold_share < FOLD_SHARE, (name, params, fold)


def test_the_minority_share_weights_rows_by_their_determinant() -> None:
    det = np.array([1.0, 2.0, 3.0, -1.0, -0.5] * 4)
    share, se = share_with_minority_sign(det)
    assert share == pytest.approx(1.5 / 7.5) and 0 < se < share
    assert share_with_minority_sign(-det)[0] == pytest.approx(share)  # the minority, whichever sign
    assert share_with_minority_sign(np.abs(det)) == (0.0, 0.0)
    # a tiny negative wiggle on a flat stretch is not a fold
    wiggle = np.concatenate([np.ones(990), -1e-4 * np.ones(10)])
    assert share_with_minority_sign(wiggle)[0] < 1e-5


def test_the_determinant_is_the_surrogates_own_against_finite_differences() -> None:
    dev = make_sim("saleh_iq_folded", seed=1)
    x = dev.info.uniform(np.random.default_rng(0), 400)
    sur, _ = fit_surrogate(x, dev.query(x), FitConfig(steps=200), seed=0)
    pts = x[:20].astype(np.float64)
    eps = 1e-3

    def f(z: np.ndarray) -> np.ndarray:
        return np.asarray(sur(z.astype(np.float32)), np.float64)

    fd = np.stack([(f(pts + eps * e) - f(pts - eps * e)) / (2 * eps) for e in np.eye(2)], axis=-1)
    np.testing.assert_allclose(jacobian_det(sur, pts), np.linalg.det(fd), rtol=0.02, atol=1e-3)


def test_shapes_the_determinant_cannot_judge_say_so() -> None:
    import keras

    x = np.random.default_rng(0).uniform(size=(50, 2)).astype(np.float32)
    wide = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    tall = keras.Sequential([keras.Input((1,)), keras.layers.Dense(2)])
    assert check_fold(x, wide).one_to_one is False  # more inputs than outputs: continua of preimages
    unknown = check_fold(x[:, :1], tall)
    assert unknown.one_to_one is None and "more outputs" in unknown.to_dict()["reason"]


@pytest.mark.parametrize(
    ("uri", "path"),
    [("sim:saleh_folded?input_noise=0.005", "surrogate"), ("sim:saleh_iq_folded", "surrogate")],
)
def test_auto_does_not_take_the_ila_path_on_a_device_that_is_not_one_to_one(
    uri: str, path: str, tmp_path: Path
) -> None:
    """The issue's case: input-referred noise on a folded device. The noise rule alone took the
    ILA path (and ILA's -26 dB); the fold check sends auto the way `surrogate` spends a budget."""
    opts = TrainOptions(fit_steps=300, eval_targets=200, noise_repeats=64)
    m = hwloop.train(uri, strategy="auto", queries=3000, run_dir=tmp_path, options=opts).metrics
    assert m["auto_path"] == path and m["one_to_one"]["one_to_one"] is False
    assert m["one_to_one"]["fold_share"] > FOLD_SHARE and "noise_split" in m
    assert len(m["round_nmse_db"]) >= 2 and m["queries_used"] + m["unspent"] == 3000
    # the inputs `surrogate` draws, in the same order: its uniform exploration first
    hwloop.train(uri, strategy="surrogate", queries=3000, run_dir=tmp_path / "s", options=opts)
    mine, theirs = (open_run_log(p).arrays("train")[0] for p in (tmp_path, tmp_path / "s"))
    explored = int(0.4 * 3000)
    np.testing.assert_array_equal(mine[:explored], theirs[:explored])
