"""Quantisation-aware fine-tuning: the Keras graph is the export's arithmetic, its gradients are honest.

- `FixedPointMLP` computes exactly the words `QuantMLP.run` computes (the
  drive the device answers during fine-tuning is the export's), for several
  widths, on targets inside and far outside the input format;
- `to_quant` gives back the words it was built from, and moved weights give
  the words the graph computed with;
- the straight-through backward pass: a rounding passes the gradient on, a
  saturation stops it, the tanh table passes tanh' (checked against finite
  differences of the unrounded function);
- end to end (slow): ``hwloop export --qat`` spends its queries through the
  metered device into the run's log, within the budget, records itself in
  the manifest and metrics.json, and its words reproduce its golden vectors.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from export_fixtures import cli_json, compile_and_check, trained

from hwloop.export.fixed import TANH_IN_FRAC, QFormat, tanh_input, tanh_q
from hwloop.export.mlp import quantize
from hwloop.export.mlp_float import FloatMLP
from hwloop.export.qat_model import FixedPointMLP, round_sat, tanh_fixed


def random_mlp(seed: int, d_in: int = 2, d_out: int = 2, width: int = 16) -> FloatMLP:
    rng = np.random.default_rng(seed)
    hidden = [
        (rng.normal(0, 1.2, (d_in, width)), rng.uniform(-1, 1, width)),
        (rng.normal(0, 0.4, (width, width)), rng.normal(0, 0.1, width)),
    ]
    return FloatMLP(
        in_mean=rng.normal(0, 0.05, d_in),
        in_std=rng.uniform(0.3, 0.6, d_in),
        hidden=hidden,
        skip=(rng.normal(0, 0.7, (d_in, d_out)), rng.normal(0, 0.05, d_out)),
        out=(rng.normal(0, 0.2, (width, d_out)), rng.normal(0, 0.05, d_out)),
        out_mean=rng.normal(0, 0.05, d_out),
        out_std=rng.uniform(0.3, 0.6, d_out),
        low=-np.ones(d_out),
        high=np.ones(d_out),
    )


@pytest.mark.parametrize(
    ("wbits", "abits", "io", "peak"),
    [(8, 8, 16, None), (16, 16, 16, 0.6), (6, 10, 12, None), (12, 8, 8, 0.7)],
)
def test_the_graph_computes_the_exports_words(wbits: int, abits: int, io: int, peak: float | None) -> None:
    mlp = random_mlp(wbits + abits)
    rng = np.random.default_rng(1)
    t = np.concatenate([rng.normal(0, 0.5, (3000, 2)), rng.uniform(-4, 4, (500, 2))]).astype(np.float32)
    envelope = None if peak is None else {"pairs": [[0, 1]], "peak": peak}
    q = quantize(mlp, t[:3000], wbits, abits, io, envelope)
    model = FixedPointMLP(q)
    x_graph = np.asarray(model(t), np.float64)
    x_ref = q.fmt_x.value(q.run(q.fmt_t.quantize(t)))
    np.testing.assert_array_equal(x_graph, x_ref)
    if peak is not None:  # the envelope held, and acted
        mag = np.hypot(x_ref[:, 0], x_ref[:, 1])
        assert mag.max() <= peak and np.mean(mag > peak - 0.02) > 0.01
    assert len(np.unique(x_ref[:, 0])) > 50  # a real function of t, not a constant
    back = model.to_quant()
    for a, b in zip([*q.hidden, q.skip, q.out], [*back.hidden, back.skip, back.out], strict=True):
        np.testing.assert_array_equal(a.w, b.w)
        np.testing.assert_array_equal(a.bias, b.bias)


def test_moved_weights_round_to_the_words_the_graph_used() -> None:
    mlp = random_mlp(3)
    t = np.random.default_rng(2).normal(0, 0.5, (2000, 2)).astype(np.float32)
    q = quantize(mlp, t, 8, 8, 16)
    model = FixedPointMLP(q)
    model(t[:4])
    rng = np.random.default_rng(4)
    for v in model.trainable_variables:
        v.assign(v + rng.normal(0, 0.02, v.shape))
    moved = model.to_quant()
    assert any(not np.array_equal(a.w, b.w) for a, b in zip(q.hidden, moved.hidden, strict=True))
    np.testing.assert_array_equal(
        np.asarray(model(t), np.float64), moved.fmt_x.value(moved.run(moved.fmt_t.quantize(t)))
    )


def test_a_masked_connection_stays_zero() -> None:
    mlp = random_mlp(5)
    w0 = mlp.hidden[0][0].copy()
    w0[0, ::2] = 0.0
    mlp.hidden[0] = (w0, mlp.hidden[0][1])
    t = np.random.default_rng(2).normal(0, 0.5, (500, 2)).astype(np.float32)
    q = quantize(mlp, t, 8, 8, 16)
    model = FixedPointMLP(q, [w0 != 0, None, None, None])
    model(t[:4])
    model.kernels[0].assign(model.kernels[0] + 1.0)
    assert np.all(model.to_quant().hidden[0].w[0, ::2] == 0)


def test_straight_through_roundings_and_saturations() -> None:
    v = tf.constant([-5.4, -0.5, 0.49, 3.7, 126.6, 200.0], tf.float64)
    lo, hi = tf.constant(-128.0, tf.float64), tf.constant(127.0, tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(v)
        out = round_sat(v, lo, hi)
    np.testing.assert_array_equal(out.numpy(), [-5, 0, 0, 4, 127, 127])  # half up, saturated
    np.testing.assert_array_equal(tape.gradient(out, v).numpy(), [1, 1, 1, 1, 1, 0])


@pytest.mark.parametrize(("shift", "abits"), [(0, 8), (4, 16), (-2, 12)])
def test_the_tanh_table_passes_the_derivative_of_tanh(shift: int, abits: int) -> None:
    fmt = QFormat(abits, abits - 1)
    scale = 2.0 ** (TANH_IN_FRAC + shift)  # accumulator units per unit of tanh's argument
    acc = tf.constant(np.round(np.array([-2.5, -0.7, 0.0, 0.3, 1.1, 3.0, 9.0]) * scale), tf.float64)  # words
    with tf.GradientTape() as tape:
        tape.watch(acc)
        words = tanh_fixed(acc, np.int64(shift), fmt)
    np.testing.assert_array_equal(
        words.numpy(), tanh_q(tanh_input(np.asarray(acc.numpy(), np.int64), shift), fmt)
    )
    grad = tape.gradient(words, acc).numpy()

    def smooth(a: np.ndarray) -> np.ndarray:  # the same map before its rounding
        return np.tanh(a / scale) * 2.0**fmt.frac

    h = 1e-3 * scale
    fd = (smooth(acc.numpy() + h) - smooth(acc.numpy() - h)) / (2 * h)
    inside = np.abs(acc.numpy() / scale) < 8
    np.testing.assert_allclose(grad[inside], fd[inside], rtol=1e-5)
    assert grad[~inside].tolist() == [0.0]  # clamped at +-8: no gradient


@pytest.mark.slow
def test_export_qat_spends_its_queries_through_the_log_and_records_them(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hwloop.export.qat as qat_module

    floors: list[float] = []  # QAT's rounds fine-tune a one-to-one inverse: no batch floor on the damping

    class Recording(qat_module.JointTrainer):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)
            floors.append(self.flat)

    monkeypatch.setattr(qat_module, "JointTrainer", Recording)
    run = trained("iq", tmp_path_factory)
    device = "sim:saleh_iq?noise=1e-3&seed=0"
    log = run / "queries.sqlite"

    def train_rows() -> int:
        with sqlite3.connect(log) as db:
            return db.execute("SELECT COUNT(*) FROM queries WHERE kind = 'train'").fetchone()[0]

    before = train_rows()
    out = tmp_path / "c8qat"
    # 12-bit activations: nearest words, a far cheaper graph than 8 bits' error feedback (whose
    # words the tests above and tests/test_export_c.py's golden vectors check bit for bit); this
    # test is about the queries and the records.
    m = cli_json(
        "export",
        "--run",
        str(run),
        "--format",
        "c",
        "--weight-bits",
        "8",
        "--act-bits",
        "12",
        "--qat",
        "600",
        "--device",
        device,
        "--out",
        str(out),
    )
    after = train_rows()
    assert floors == [0.0]
    assert 0 < after - before <= 600 and m["qat"]["queries_used"] == after - before
    manifest = json.loads((out / "manifest.json").read_text())
    rec = manifest["qat"]
    assert rec["log_rows"] == [before, after] and rec["device"] == "saleh_iq"
    assert len(rec["rounds"]["round_nmse_db"]) >= 2 and rec["rounds"]["best_round"] is not None
    assert manifest["weight_bits"] == 8 and manifest["act_bits"] == 12 and manifest["io_bits"] == 16
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["qat"][-1]["hash8"] == manifest["hash8"]
    assert metrics["qat"][-1]["log_rows"] == [before, after]
    res = compile_and_check(out)
    assert res.returncode == 0, res.stdout + res.stderr
    # Another device than the run's is refused before anything is sent.
    rows = train_rows()
    res = cli_json_error(
        "export",
        "--run",
        str(run),
        "--format",
        "c",
        "--bits",
        "8",
        "--qat",
        "600",
        "--device",
        "sim:mimo3",
        "--out",
        str(tmp_path / "other"),
    )
    assert res[0] == 2 and "another device" in res[1] and train_rows() == rows


def cli_json_error(*args: str) -> tuple[int, str]:
    from click.testing import CliRunner

    from hwloop.cli import cli as group

    res = CliRunner().invoke(group, list(args))
    return res.exit_code, res.stderr
