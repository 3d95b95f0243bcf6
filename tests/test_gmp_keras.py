"""The GMP predistorter as a Keras model: equality with numpy, gradients, inverse.keras round trip."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from hwloop.dpd.gmp import GMP, GMPConfig, GMPInverse
from hwloop.dpd.signals import OFDMSpec, cplx, ofdm
from hwloop.errors import RunDirError
from hwloop.inverses.gmp import (
    GMPFeatures,
    build_keras,
    complex_to_kernel,
    kernel_to_complex,
    save_gmp_inverse,
)
from hwloop.inverses.tapped import SequenceInverse, tapped

INFO = {
    "name": "pa_wh",
    "in_dim": 2,
    "out_dim": 2,
    "max_batch": 1024,
    "low": [-1, -1],
    "high": [1, 1],
    "stateful": True,
}


def _inverse(peak: float = 0.9, seed: int = 3) -> GMPInverse:
    cfg = GMPConfig()
    rng = np.random.default_rng(seed)
    c = 0.05 * (rng.normal(size=len(cfg.terms())) + 1j * rng.normal(size=len(cfg.terms())))
    c[0] = 1.2 - 0.1j
    return GMPInverse(GMP(cfg, c), peak=peak, gain=2.5 + 0.1j)


def test_kernel_is_the_complex_product() -> None:
    rng = np.random.default_rng(0)
    c = rng.normal(size=7) + 1j * rng.normal(size=7)
    phi = rng.normal(size=(5, 7)) + 1j * rng.normal(size=(5, 7))
    out = np.concatenate([phi.real, phi.imag], axis=1) @ complex_to_kernel(c)
    np.testing.assert_allclose(out[:, 0] + 1j * out[:, 1], phi @ c, atol=1e-12)
    np.testing.assert_array_equal(kernel_to_complex(complex_to_kernel(c)), c)


def test_keras_model_equals_the_numpy_predistorter() -> None:
    inv = _inverse()
    t = ofdm(OFDMSpec(n=4000, seed=1))
    model = build_keras(inv)
    out = np.asarray(model.predict_on_batch(tapped(t, inv.model.cfg.depth)))
    want = inv.apply(t)
    np.testing.assert_allclose(out, want, atol=2e-5)
    assert np.abs(cplx(out)).max() <= 0.9 + 1e-5


def test_feature_gradients_match_finite_differences() -> None:
    import tensorflow as tf

    cfg = GMPConfig(order=4, memory=2, cross_order=3, cross_memory=2, lag=2)
    layer = GMPFeatures(cfg.to_dict(), dtype="float64")
    rng = np.random.default_rng(7)
    x = rng.normal(scale=0.5, size=(6, 2 * (cfg.depth + 1)))
    x[0, :2] = 0.0  # a sample at exactly zero: |x| has no derivative there, the gradient must stay finite
    w = rng.normal(size=(6, 2 * len(cfg.terms())))
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        loss = tf.reduce_sum(layer(xt) * w)
    grad = tape.gradient(loss, xt).numpy()
    assert np.all(np.isfinite(grad))

    def f(v: np.ndarray) -> float:
        return float(np.sum(layer(tf.constant(v)).numpy() * w))

    eps = 1e-6
    num = np.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        if idx[0] == 0 and idx[1] < 2:
            continue  # not differentiable at zero
        d = np.zeros_like(x)
        d[idx] = eps
        num[idx] = (f(x + d) - f(x - d)) / (2 * eps)
    mask = np.ones_like(x, bool)
    mask[0, :2] = False
    np.testing.assert_allclose(grad[mask], num[mask], rtol=1e-5, atol=1e-6)


def test_save_and_load_through_the_run_directory(tmp_path: Path) -> None:
    from hwloop.inverses.store import load_inverse

    inv = _inverse()
    save_gmp_inverse(tmp_path, inv, INFO)
    info = json.loads((tmp_path / "device.json").read_text())
    assert info["inverse_memory"]["kind"] == "gmp" and info["inverse_memory"]["depth"] == 11
    back = load_inverse(tmp_path)
    assert isinstance(back, GMPInverse)
    np.testing.assert_allclose(back.model.coeffs, inv.model.coeffs, atol=1e-7)
    assert back.peak == pytest.approx(0.9) and back.gain == pytest.approx(2.5 + 0.1j)
    t = ofdm(OFDMSpec(n=2000, seed=4))
    np.testing.assert_allclose(back.apply(t), inv.apply(t), atol=1e-5)
    # the Keras form is a per-row map on tapped targets: a tapped SequenceInverse runs it unchanged
    model = keras.models.load_model(tmp_path / "inverse.keras", compile=False)
    seq = SequenceInverse(model, 11, 0, np.full(2, -1.5, np.float32), np.full(2, 1.5, np.float32))
    np.testing.assert_allclose(seq.apply(t), inv.apply(t), atol=2e-5)
    (tmp_path / "device.json").write_text(json.dumps({**INFO, "inverse_memory": {"kind": "nonesuch"}}))
    with pytest.raises(RunDirError, match="unknown inverse family"):
        load_inverse(tmp_path)
    with pytest.raises(RunDirError):
        load_inverse(tmp_path / "missing")


def test_saved_inverse_loads_in_a_fresh_interpreter(tmp_path: Path) -> None:
    inv = _inverse(peak=1.0)
    save_gmp_inverse(tmp_path, inv, INFO)
    t = ofdm(OFDMSpec(n=1500, seed=6))
    np.save(tmp_path / "t.npy", t)
    code = (
        "import sys, numpy as np\n"
        "import hwloop\n"
        "inv = hwloop.load_inverse(sys.argv[1])\n"
        "np.save(sys.argv[1] + '/x.npy', inv.apply(np.load(sys.argv[1] + '/t.npy')))\n"
    )
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, env=env, timeout=300)
    np.testing.assert_allclose(np.load(tmp_path / "x.npy"), inv.apply(t), atol=1e-5)


def test_a_predistorter_with_leading_taps_saves_loads_and_runs_as_keras(tmp_path: Path) -> None:
    from hwloop.inverses.store import load_inverse

    cfg = GMPConfig(lookahead=3)
    rng = np.random.default_rng(5)
    c = 0.05 * (rng.normal(size=len(cfg.terms())) + 1j * rng.normal(size=len(cfg.terms())))
    c[0] = 1.0
    inv = GMPInverse(GMP(cfg, c), peak=0.9, gain=1.5)
    t = ofdm(OFDMSpec(n=2500, seed=8))
    want = inv.apply(t)
    out = np.asarray(build_keras(inv).predict_on_batch(tapped(t, cfg.depth, 3)))
    np.testing.assert_allclose(out, want, atol=2e-5)
    save_gmp_inverse(tmp_path, inv, INFO)
    memory = json.loads((tmp_path / "device.json").read_text())["inverse_memory"]
    assert memory["lookahead"] == 3 and memory["depth"] == cfg.depth
    back = load_inverse(tmp_path)
    assert back.model.cfg.lookahead == 3 and back.latency == 3
    np.testing.assert_allclose(back.apply(t), want, atol=1e-5)


def test_exports_of_a_predistorter_with_leading_taps(tmp_path: Path) -> None:
    """The coefficient export carries the leading taps (and says what they mean); the fixed-point
    C export, which streams causally, refuses them in one line."""
    from hwloop.errors import UsageError
    from hwloop.export.coeffs import basis_text, read_coeffs, write_coeffs
    from hwloop.export.gmp import quantize_gmp

    cfg = GMPConfig(lookahead=2)
    c = np.zeros(len(cfg.terms()), complex)
    c[0], c[1] = 0.9, 0.1j
    inv = GMPInverse(GMP(cfg, c), peak=0.9)
    write_coeffs(inv, tmp_path)
    back = read_coeffs(tmp_path / "gmp_coeffs.csv", peak=0.9, cfg=cfg.to_dict())
    t = ofdm(OFDMSpec(n=500, seed=2))
    np.testing.assert_allclose(back.apply(t), inv.apply(t), atol=1e-12)
    assert "lookahead = 2" in basis_text(inv) and "x[n + 2 - m]" in basis_text(inv)
    with pytest.raises(UsageError, match="leading taps"):
        quantize_gmp(inv, t, 16, 16)
