"""TFLite exports: the real converter, read back through the TFLite interpreter, scored in closed loop.

float16 keeps the float inverse's figures; int16x8 (the converter's 16x8
mode: int8 weights, int16 activations, int16 input and output) and full
integer int8 (int8 input, output and every kernel) are real integer models,
calibrated on the run's logged targets, whose loss the closed loop measures
(docs/deploy.md says where it comes from).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from export_fixtures import cli_json, own_copy, trained

import hwloop
from hwloop.errors import RunDirError
from hwloop.export.loaded import load_exported
from hwloop.export.tflite import BLOCKED, TFLiteModel, _convert, representative


@pytest.fixture(scope="module")
def mlp_tflite(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    run = trained("mlp", tmp_path_factory)
    out = tmp_path_factory.mktemp("tfl") / "export"
    m = cli_json("export", "--run", str(run), "--format", "tflite", "--out", str(out))
    assert m["files"] == sorted(
        [
            "golden_float16.npz",
            "golden_int16x8.npz",
            "golden_int8.npz",
            "inverse_float16.tflite",
            "inverse_int16x8.tflite",
            "inverse_int8.tflite",
            "manifest.json",
        ]
    )
    return run, out


def test_round_trip_through_the_interpreter_matches_keras(mlp_tflite: tuple[Path, Path]) -> None:
    run, out = mlp_tflite
    inv = hwloop.load_inverse(run)
    t = np.linspace(-0.8, 0.8, 401, dtype=np.float32)[:, None]
    x_keras = inv.apply(t)
    f16 = load_exported(out / "inverse_float16.tflite", inv)
    assert np.max(np.abs(f16.apply(t) - x_keras)) < 2e-3  # float16 weights
    model = TFLiteModel((out / "inverse_int8.tflite").read_bytes())
    assert model.integer and model.out["dtype"] == np.int8  # full-integer: int8 in and out
    types = {d["dtype"] for d in model.interp.get_tensor_details() if d["name"].endswith("MatMul")}
    assert types <= {np.int8}, types
    scale = model.out["quantization"][0]
    err = load_exported(out / "inverse_int8.tflite", inv).apply(t) - x_keras
    assert np.sqrt(np.mean(err**2)) < 1.5 * scale and np.max(np.abs(err)) < 8 * scale, (err, scale)
    manifest = json.loads((out / "manifest.json").read_text())
    assert 500 < manifest["representative_rows"] <= 503 and manifest["models"]["int8"]["bytes"] > 1000
    for kind in ("int16x8", "int8"):  # the graph kept is named, with its error against float
        spec = manifest["models"][kind]
        assert spec["graph"] in ("as trained", "skip and output joined", BLOCKED)
        assert 0 < spec["rms_error_vs_float"] < 0.05
    m16 = TFLiteModel((out / "inverse_int16x8.tflite").read_bytes())
    assert m16.inp["dtype"] == np.int16 and m16.out["dtype"] == np.int16  # 16-bit words in and out
    kernels = [d for d in m16.interp.get_tensor_details() if d["dtype"] == np.int8]
    assert kernels and all(len(d["shape"]) == 2 for d in kernels)  # the weights, and only they, in int8
    acts = {d["dtype"] for d in m16.interp.get_tensor_details() if d["name"].endswith("Tanh")}
    assert acts == {np.int16}, acts
    err16 = load_exported(out / "inverse_int16x8.tflite", inv).apply(t) - x_keras
    assert np.sqrt(np.mean(err16**2)) < np.sqrt(np.mean(err**2))  # int16 activations: closer than int8


def test_closed_loop_float16_keeps_the_float_figures_and_int8_is_measured(
    mlp_tflite: tuple[Path, Path],
) -> None:
    run, out = mlp_tflite
    dev = "sim:rapp?noise=1e-3&seed=0"
    f16 = cli_json(
        "eval", "--run", str(run), "--device", dev, "--exported", str(out / "inverse_float16.tflite")
    )
    assert f16["exported"] == "tflite/mlp/float16"
    assert abs(f16["exported_closed_loop_nmse_db"] - f16["closed_loop_nmse_db"]) <= 0.5
    i8 = cli_json("eval", "--run", str(run), "--device", dev, "--exported", str(out / "inverse_int8.tflite"))
    print(f"tflite int8: {i8['exported_closed_loop_nmse_db']} dB against float {i8['closed_loop_nmse_db']}")
    assert i8["closed_loop_nmse_db"] < i8["exported_closed_loop_nmse_db"] < -30  # int8 words: about -37 dB
    i16 = cli_json(
        "eval", "--run", str(run), "--device", dev, "--exported", str(out / "inverse_int16x8.tflite")
    )
    print(
        f"tflite int16x8: {i16['exported_closed_loop_nmse_db']} dB "
        f"(clean {i16['exported_closed_loop_nmse_clean_db']})"
    )
    assert i16["exported"] == "tflite/mlp/int16x8"
    assert (
        i16["exported_closed_loop_nmse_db"] < i8["exported_closed_loop_nmse_db"] - 3
    )  # 16-bit words pay off


def test_tapped_inverse_exports_and_evaluates_as_a_sequence(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    run = trained("tapped", tmp_path_factory)
    out = tmp_path / "export"
    cli_json("export", "--run", str(run), "--format", "tflite", "--bits", "16", "--out", str(out))
    m = cli_json("eval", "--run", str(run), "--device", "sim:wh?noise=1e-3&seed=0", "--exported", str(out))
    assert m["exported"] == "tflite/tapped/float16"
    assert abs(m["exported_closed_loop_nmse_db"] - m["closed_loop_nmse_db"]) <= 0.5


def test_a_tflite_file_that_does_not_match_its_golden_rows_is_refused(mlp_tflite: tuple[Path, Path]) -> None:
    _, out = mlp_tflite
    broken = out.parent / "broken"
    broken.mkdir()
    for f in out.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    g = dict(np.load(broken / "golden_float16.npz"))
    g["x"] = g["x"] + 0.01
    np.savez(broken / "golden_float16.npz", **g)
    with pytest.raises(RunDirError, match="SHA-256"):  # the manifest catches it first
        load_exported(broken / "inverse_float16.tflite")


def test_words_on_the_converters_int8_grid_beat_its_nearest_rounding() -> None:
    """`on_int8_grid`: in each block of inputs, each channel's values are integer multiples of the
    block's largest |weight| / 127, that weight's word is +-127 (so the converter, which picks that
    scale, rounds nothing), and the layer's output error over its inputs is smaller than the
    converter's own nearest rounding gives."""
    from hwloop.export.tflite_graph import block_starts, on_int8_grid, spans

    rng = np.random.default_rng(5)
    a = np.tanh(rng.standard_normal((3000, 24)) @ rng.standard_normal((24, 24)) * 0.5)
    w = rng.standard_normal((24, 6)) * np.linspace(0.05, 1.0, 24)[:, None]
    starts = block_starts(24)
    assert starts == [0, 8, 16]
    got = on_int8_grid(w, a, starts).astype(np.float64)
    nearest = np.zeros_like(w)
    for s, e in spans(starts, 24):
        step = np.max(np.abs(w[s:e]), axis=0) / 127.0
        words = got[s:e] / step
        assert np.allclose(words, np.round(words), atol=1e-3)
        assert np.allclose(np.max(np.abs(words), axis=0), 127.0, atol=1e-3)
        nearest[s:e] = np.round(w[s:e] / step) * step
    err = np.mean((a @ (got - w)) ** 2)
    assert err < 0.8 * np.mean((a @ (nearest - w)) ** 2), (err, np.mean((a @ (nearest - w)) ** 2))


def test_the_blocked_graph_is_what_the_16x8_converter_runs(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """`blocked_model` on an I/Q inverse: the converter keeps every weight as the graph holds it (its
    int8 words times its scales equal the Keras weights), the integer model computes what the
    graph computes in float within a few int16 steps, and both stay near the float inverse."""
    from hwloop.export.mlp_float import extract
    from hwloop.export.source import read_run
    from hwloop.export.tflite_graph import blocked_model

    src = read_run(trained("iq", tmp_path_factory))
    feats = src.features()
    mlp = extract(src.inverse.model, src.inverse.low, src.inverse.high, feats[:256])
    graph = blocked_model(mlp, feats)
    kernels = {
        layer.name: layer.get_weights()[0]
        for layer in graph.layers
        if isinstance(layer, __import__("keras").layers.Dense)
    }
    assert "skip" in kernels and any(name.startswith("out_block") for name in kernels)
    model = TFLiteModel(_convert(graph, "int16x8", representative(feats, np.random.default_rng(0))))
    details = model.interp.get_tensor_details()
    words = [d for d in details if d["dtype"] == np.int8]
    assert len(words) == len(kernels)
    for d in words:  # (out, in) int8 words, one scale per output channel
        scales = np.asarray(d["quantization_parameters"]["scales"])
        held = model.interp.get_tensor(d["index"]).astype(np.float64) * scales[:, None]
        match = [k for k in kernels.values() if k.shape == held.T.shape and np.allclose(k, held.T, atol=1e-6)]
        assert match, d["name"]
    t = feats[:2000].astype(np.float32)
    x_graph = graph.predict_on_batch(t)
    x_int = model.run(t)
    step = model.out["quantization"][0]
    assert np.sqrt(np.mean((x_int - x_graph) ** 2)) < 8 * step
    x_float = src.inverse.model.predict_on_batch(t)
    assert np.sqrt(np.mean((x_graph - x_float) ** 2)) < 1e-3


@pytest.mark.parametrize(("wbits", "abits", "io"), [(8, 8, 8), (12, 12, 16), (16, 16, 16)])
def test_words_read_back_as_float_are_the_weights_they_round(wbits: int, abits: int, io: int) -> None:
    """`float_of` (how a fine-tuned export's words reach the converter) scales every word back to
    within half a step of the weight it rounds, and its graph is the export's at 16 bits."""
    from test_export_qat import random_mlp

    from hwloop.export.mlp import quantize, weight_scale
    from hwloop.export.tflite_graph import float_of

    mlp = random_mlp(wbits, width=12)
    t = np.random.default_rng(3).uniform(-0.8, 0.8, (500, 2))
    q = quantize(mlp, t, wbits, abits, io)
    back = float_of(q)
    layers = [(q.hidden[0], mlp.hidden[0], back.hidden[0], q.fmt_z.frac)]
    layers += [(q.hidden[1], mlp.hidden[1], back.hidden[1], q.fmt_h.frac)]
    layers += [(q.skip, mlp.skip, back.skip, q.fmt_z.frac), (q.out, mlp.out, back.out, q.fmt_h.frac)]
    for ql, (w, b), (wb, bb), in_frac in layers:
        step = 1.0 / weight_scale(ql.wfrac, ql.up, w.shape)
        inside = np.abs(ql.w) < (1 << (wbits - 1)) - 1  # saturated words stand for less than the weight
        assert np.all(np.abs(wb - w)[inside] <= 0.5 * step[inside] + 1e-12)
        assert np.all(np.abs(bb - b) <= 0.5 * 2.0 ** -(ql.wfrac + in_frac) + 1e-12)
    for name in ("in_mean", "out_mean", "low", "high"):
        np.testing.assert_allclose(getattr(back, name), getattr(mlp, name), atol=2.0 ** -(io - 3))
    for name in ("in_std", "out_std"):
        np.testing.assert_allclose(getattr(back, name), getattr(mlp, name), rtol=2.0 ** -(io - 4))
    if wbits == 16:
        np.testing.assert_allclose(back.forward(t), mlp.forward(t), atol=1e-3)


@pytest.mark.slow
def test_full_int8_from_the_fine_tuned_words(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """``--format tflite --bits 8 --qat``: the device's queries go into the run's log and its
    metrics, and the int8 model is converted from the fine-tuned words (the manifest's graph)."""
    run = own_copy("iq", tmp_path_factory, tmp_path / "run")  # the QAT's queries land in this copy's log
    out = tmp_path / "t8qat"
    m = cli_json(
        "export",
        "--run",
        str(run),
        "--format",
        "tflite",
        "--bits",
        "8",
        "--qat",
        "200",
        "--device",
        "sim:saleh_iq?noise=1e-3&seed=0",
        "--out",
        str(out),
    )
    assert 0 < m["qat"]["queries_used"] <= 200
    manifest = json.loads((out / "manifest.json").read_text())
    assert list(manifest["models"]) == ["int8"]
    assert manifest["models"]["int8"]["graph"].startswith("quantisation-aware fine-tuned")
    assert manifest["qat_widths"] == {"weight_bits": 8, "act_bits": 8, "io_bits": 8}
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["qat"][-1]["queries_used"] == m["qat"]["queries_used"]
    inv = hwloop.load_inverse(run)
    t = np.random.default_rng(0).uniform(-0.3, 0.3, (64, 2)).astype(np.float32)
    drive = load_exported(out).apply(t)
    assert drive.shape == (64, 2) and np.all(np.isfinite(drive))
    assert np.sqrt(np.mean((drive - inv.apply(t)) ** 2)) < 0.05  # the same inverse, in int8
