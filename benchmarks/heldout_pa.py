"""A held-out amplifier for the DPD benchmarks: a neural memory model fitted to measured data.

No test and no default of hwloop uses it. It is not a polynomial and not a
Wiener-Hammerstein chain (the two structures `sim:pa_gmp` and `sim:pa_wh`
have, and the predistorter and its surrogate share with them), so a method
tuned to those simulators is checked on an amplifier of another kind:

    y[n] = sum_m x[n-m] (h_m + g_m(|x[n]|, |x[n-1]|, |x[n-2]|)),   m = 0..9

with complex taps h_m and an MLP g (3 envelopes -> 2 x 32 tanh -> 10 complex
gains): a time-delay neural network on the envelope history that gates each
delayed sample, so the model commutes with a phase rotation of the input as
a baseband amplifier does. Fitted with Keras (Adam, MSE) on a measured
train split, selected on its val split.

Data: OpenDPD's APA_200MHz (Apache-2.0; 983.04 MS/s, a 200 MHz LTE-like
signal of 5 x 20 MHz carriers, PAPR 10 dB, output peak near 1, mean gain
1.16), the closest open stand-in for the amplifier of issue 22, and the
bundled DPA_200MHz. ``fit`` writes ``benchmarks/data/heldout_NAME.npz``
(the weights; for APA also its input signals, which the benchmarks
predistort). The amplifier is `HeldOutPA`: 2 -> 2, stateful, |x| <= 1,
seeded output noise.

    python benchmarks/heldout_pa.py --data PATH/OpenDPD/datasets/APA_200MHz --name apa
    python benchmarks/heldout_pa.py --name dpa          # the bundled DPA_200MHz

``apa_nmp`` is the same fitted APA model between the linear filters of a
PA behind real converters, which the fit does not have: in front a 3-tap
minimum-phase FIR (a converter path's ripple, 0.5 dB over the channel),
behind a 2-tap FIR with its zero at 1.3 e^{j(pi - 0.2)}, outside the unit
circle (an output network that is not minimum phase: about 0.57 sample of
fractional delay over the channel, DC gain 1). Its inverse is not causal: a
predistorter that inverts it needs the targets after each sample. Neither
filter is one the simulators (``sim:pa_wh?frac_delay=&nmp_zero=``) use.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hwloop.device import BaseDevice, DeviceInfo, IQEnvelope

DATA = Path(__file__).resolve().parent / "data"
TAPS = 10  # delayed samples the gains multiply
ENV_TAPS = 3  # envelopes the MLP sees: few, so it cannot key on tap patterns a predistorted drive changes
HIDDEN = 32
FIR_RIDGE = 1e-3
GAIN_L2 = 1e-5


# Filtered variants of a fitted model: name -> (fitted model, front FIR, back FIR).
_FRONT = np.array([1.0, 0.1 + 0.05j, -0.04])
_BACK = np.poly([1.3 * np.exp(1j * (np.pi - 0.2))])
FILTERED = {"apa_nmp": ("apa", _FRONT / _FRONT.sum(), _BACK / _BACK.sum())}


def base_name(name: str) -> str:
    """The fitted model a (possibly filtered) held-out amplifier uses."""
    return FILTERED[name][0] if name in FILTERED else name


def model_file(name: str) -> Path:
    return DATA / f"heldout_{base_name(name)}.npz"


class NeuralPA:
    """The fitted model in numpy: complex taps, MLP weights, the envelope history as state."""

    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        self.h = weights["h"].astype(complex)
        self.w = [weights[f"w{i}"].astype(np.float64) for i in range(3)]
        self.b = [weights[f"b{i}"].astype(np.float64) for i in range(3)]
        self.m = len(self.h)

    def run(self, z: np.ndarray, past: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        m, n = self.m, len(z)
        ext = np.concatenate([past, z])
        taps = np.stack([ext[m - 1 - j : m - 1 - j + n] for j in range(m)], axis=1)  # (n, m): x[n-j]
        a = np.tanh(np.abs(taps[:, : self.w[0].shape[0]]) @ self.w[0] + self.b[0])
        a = np.tanh(a @ self.w[1] + self.b[1])
        g = a @ self.w[2] + self.b[2]
        gains = self.h[None, :] + g[:, :m] + 1j * g[:, m:]
        return np.sum(taps * gains, axis=1), ext[len(ext) - (m - 1) :].copy()


class FilteredPA:
    """A fitted model between two complex FIR filters (front, back), the filters' delay lines
    carried with the model's own state."""

    def __init__(self, model: NeuralPA, front: np.ndarray, back: np.ndarray) -> None:
        self.model, self.front, self.back = model, np.asarray(front, complex), np.asarray(back, complex)
        self.m = model.m

    def initial(self) -> tuple:
        return (
            np.zeros(len(self.front) - 1, complex),
            np.zeros(self.m - 1, complex),
            np.zeros(len(self.back) - 1, complex),
        )

    def run(self, z: np.ndarray, past: tuple) -> tuple[np.ndarray, tuple]:
        u, s0 = _fir(z, self.front, past[0])
        v, s1 = self.model.run(u, past[1])
        y, s2 = _fir(v, self.back, past[2])
        return y, (s0, s1, s2)


def _fir(z: np.ndarray, taps: np.ndarray, history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ext = np.concatenate([history, z])
    return np.convolve(ext, taps, mode="valid"), ext[len(ext) - (len(taps) - 1) :].copy()


def held_out_model(name: str) -> NeuralPA | FilteredPA:
    """The held-out amplifier ``name`` in numpy (a fitted model, or one in `FILTERED`)."""
    with np.load(model_file(name), allow_pickle=False) as data:
        model = NeuralPA({k: data[k] for k in data.files if not k.endswith("_input") and k != "spec"})
    if name in FILTERED:
        return FilteredPA(model, *FILTERED[name][1:])
    return model


class HeldOutPA(BaseDevice):
    """The held-out amplifier as an hwloop device: 2 -> 2, stateful, peak |x| <= 1, output noise."""

    def __init__(self, name: str = "apa", noise: float = 1e-3, seed: int = 0) -> None:
        self.model = held_out_model(name)
        info = DeviceInfo(
            name=f"heldout_{name}",
            in_dim=2,
            out_dim=2,
            max_batch=1 << 16,
            low=(-1.0, -1.0),
            high=(1.0, 1.0),
            stateful=True,
            firmware="benchmarks/heldout_pa",
            envelope=IQEnvelope(((0, 1),), 1.0),
        )
        super().__init__(info)
        self.noise, self.rng = noise, np.random.default_rng(seed)
        self._reset()

    def _initial(self) -> np.ndarray | tuple:
        return (
            self.model.initial()
            if isinstance(self.model, FilteredPA)
            else np.zeros(self.model.m - 1, complex)
        )

    def _reset(self) -> None:
        self.past = self._initial()

    def _query_batch(self, x: np.ndarray) -> np.ndarray:
        z = x[:, 0].astype(np.float64) + 1j * x[:, 1].astype(np.float64)
        y, self.past = self.model.run(z, self.past)
        out = np.stack([y.real, y.imag], axis=1) + self.noise * self.rng.normal(size=(len(y), 2))
        return out.astype(np.float32)

    def clean_sequence(self, x: np.ndarray) -> np.ndarray:
        z = np.asarray(x, np.float64)
        y, _ = self.model.run(z[:, 0] + 1j * z[:, 1], self._initial())
        return np.stack([y.real, y.imag], axis=1).astype(np.float32)


def signals(name: str) -> dict[str, np.ndarray]:
    """The measured input signals (train, test) the benchmarks predistort, (n, 2) float32."""
    name = base_name(name)
    if name == "dpa":
        from hwloop.dpd.signals import dpa200

        return {s: dpa200(s)[0] for s in ("train", "test")}
    with np.load(model_file(name), allow_pickle=False) as data:
        return {s: data[f"{s}_input"] for s in ("train", "test")}


def spec(name: str) -> dict:
    """Sample rate and channel of the measured signal."""
    with np.load(model_file(name), allow_pickle=False) as data:
        return json.loads(str(data["spec"]))


def _pairs(name: str, data: Path | None) -> tuple[dict, dict]:
    from hwloop.dpd.signals import DATASET_DIR, cplx, dpa200, read_pairs

    if name == "dpa":
        splits = {s: tuple(cplx(a) for a in dpa200(s)) for s in ("train", "val", "test")}
        meta = json.loads((DATASET_DIR / "spec.json").read_text())
    else:
        if data is None:
            raise SystemExit("--data DIR (an OpenDPD dataset folder) is needed for this name")
        splits = {s: tuple(cplx(a) for a in read_pairs(data, split=s)) for s in ("train", "val", "test")}
        meta = json.loads((data / "spec.json").read_text())
    return splits, {"fs": float(meta["input_signal_fs"]), "bw": float(meta["bw_main_ch"])}


def fit(name: str, data: Path | None, epochs: int, seed: int) -> dict:
    """Fit the neural model with Keras on train, keep the epoch best on val; write its npz."""
    import keras

    from hwloop.dpd.metrics import acpr_db, nmse_db

    keras.utils.set_random_seed(seed)
    splits, meta = _pairs(name, data)
    m = TAPS

    def tapped(z: np.ndarray) -> np.ndarray:
        ext = np.concatenate([np.zeros(m - 1, complex), z])
        return np.stack([ext[m - 1 - j : m - 1 - j + len(z)] for j in range(m)], axis=1)

    def arrays(split: str) -> tuple[list[np.ndarray], np.ndarray]:
        x, y = splits[split]
        t = tapped(x)
        return [np.abs(t[:, :ENV_TAPS]), t.real, t.imag], np.stack([y.real, y.imag], 1)

    env_in = keras.Input((ENV_TAPS,))
    re_in, im_in = keras.Input((m,)), keras.Input((m,))
    a = keras.layers.Dense(HIDDEN, activation="tanh")(env_in)
    a = keras.layers.Dense(HIDDEN, activation="tanh")(a)
    g = keras.layers.Dense(
        2 * m, kernel_initializer="zeros", kernel_regularizer=keras.regularizers.L2(GAIN_L2)
    )(a)
    # h_m as a bias of the gains: the linear taps start at the least-squares FIR.
    x_tr, y_tr = arrays("train")
    t_tr = x_tr[1] + 1j * x_tr[2]
    # Ridge: the band-limited signal leaves the FIR's response outside the channel undetermined, and
    # plain least squares puts gains of 9 there (a real amplifier is about flat); 1e-3 keeps it near 1.
    gram = t_tr.conj().T @ t_tr
    lam = FIR_RIDGE * np.real(np.trace(gram)) / m
    h0 = np.linalg.solve(gram + lam * np.eye(m), t_tr.conj().T @ (y_tr[:, 0] + 1j * y_tr[:, 1]))
    lin = keras.layers.Dense(2 * m, use_bias=False, trainable=False, name="one")
    gains = keras.layers.Add()([g, lin(env_in)])
    gr, gi = gains[:, :m] + h0.real, gains[:, m:] + h0.imag
    yr = keras.ops.sum(re_in * gr - im_in * gi, axis=1, keepdims=True)
    yi = keras.ops.sum(re_in * gi + im_in * gr, axis=1, keepdims=True)
    model = keras.Model([env_in, re_in, im_in], keras.ops.concatenate([yr, yi], axis=1))
    lin.set_weights([np.zeros((ENV_TAPS, 2 * m), np.float32)])
    model.compile(keras.optimizers.Adam(3e-3), "mse")
    x_va, y_va = arrays("val")
    best = keras.callbacks.ModelCheckpoint(
        str(DATA / f".heldout_{name}.weights.h5"), save_best_only=True, save_weights_only=True
    )
    lr = keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=4)
    model.fit(
        x_tr,
        y_tr,
        batch_size=256,
        epochs=epochs,
        validation_data=(x_va, y_va),
        callbacks=[best, lr],
        verbose=2,
    )
    model.load_weights(str(DATA / f".heldout_{name}.weights.h5"))
    (DATA / f".heldout_{name}.weights.h5").unlink()
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense) and layer.name != "one"]
    weights: dict[str, np.ndarray] = {"h": h0}
    for i, layer in enumerate(dense):
        w, b = layer.get_weights()
        weights[f"w{i}"], weights[f"b{i}"] = w, b
    pa = NeuralPA(weights)
    report = {"taps": m, "envelope_taps": ENV_TAPS, "hidden": [HIDDEN, HIDDEN], "epochs": epochs, **meta}
    for s in ("train", "val", "test"):
        x, y = splits[s]
        out = pa.run(x, np.zeros(m - 1, complex))[0]
        report[f"nmse_{s}_db"] = round(nmse_db(out, y, 1.0), 2)
    xt, yt = splits["test"]
    report["acpr_test_model_dbc"] = round(
        acpr_db(pa.run(xt, np.zeros(m - 1, complex))[0], meta["fs"], meta["bw"]), 2
    )
    report["acpr_test_measured_dbc"] = round(acpr_db(yt, meta["fs"], meta["bw"]), 2)
    DATA.mkdir(parents=True, exist_ok=True)
    extra: dict[str, np.ndarray] = {}
    if name != "dpa":
        from hwloop.dpd.signals import iq

        extra = {f"{s}_input": iq(splits[s][0]) for s in ("train", "test")}
    np.savez_compressed(model_file(name), **weights, **extra, spec=json.dumps(meta))
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", default="apa")
    ap.add_argument(
        "--data", type=Path, default=None, help="an OpenDPD dataset folder (split CSVs, spec.json)"
    )
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from common import load, machine, save, today

    report = fit(args.name, args.data, args.epochs, args.seed)
    results = load("heldout_pa")
    results[args.name] = {**report, "date": today(), "machine": machine()}
    save("heldout_pa", results)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
