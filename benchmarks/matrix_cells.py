"""The cells of the robustness matrix (`matrix.py`) and how one run of a cell is measured.

A *cell* is one operating condition (a device, its noise, a drive, a
signal); each cell is run by every method of its row group with each seed.
Row groups:

- ``memoryless``: {one-to-one, not} x {1, 2, 3 outputs} x noise {at the
  output, at the input, both}, ila, iila, surrogate and auto at
  `MEMORYLESS_QUERIES`; scored by the clean closed-loop NMSE (noise-free
  device, fresh targets: ``closed_loop_nmse_clean_db``).
- ``heldout``: devices outside the catalogue that are not one-to-one
  (`matrix_devices`), with input noise; ila, surrogate, auto.
- ``dpd``: the I/Q amplifier `pa_wh` with three linear responses (minimum
  phase, a fractional delay, a zero outside the unit circle) x drive (6 dB
  back-off to the peak the amplifier reaches) x signal (generated OFDM, the
  DPA_200MHz measurement); ila, iila, surrogate, auto and the textbook
  GMP-ILA at `DPD_QUERIES`; scored on a held-out signal through the
  noise-free amplifier: by the output's ACPR with generated OFDM, by the
  adjacent-channel power the amplifier adds (`added_acpr_db`) with the
  measurement, whose own adjacent-channel power is a floor every method hits.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MEMORYLESS_QUERIES = 5_000
DPD_QUERIES = 20_000
NOISE = 0.005  # output and input-referred noise std of the memoryless rows
SEEDS = (0, 1, 2)
STRATEGIES = ("ila", "iila", "surrogate", "auto")
DPD_METHODS = ("textbook", "ila", "iila", "surrogate", "auto")
HELDOUT_METHODS = ("ila", "surrogate", "auto")

# (outputs, one-to-one) -> catalogue simulator
MEMORYLESS_DEVICES = {
    (1, True): "rapp",
    (1, False): "saleh_folded",
    (2, True): "saleh_iq",
    (2, False): "saleh_iq_folded",
    (3, True): "mimo3",
    (3, False): "mimo3_folded",
}
NOISE_AT = {
    "output": f"noise={NOISE}&input_noise=0",
    "input": f"noise=0&input_noise={NOISE}",
    "both": f"noise={NOISE}&input_noise={NOISE}",
}
HELDOUT_SHAPES = ("sine_fold", "bump_fold", "bump_iq", "sine_mix")
HELDOUT_INPUT_NOISE = (0.005,)  # one level: the matrix is sized to about an hour on 2 cores
HELDOUT_OUTPUT_NOISE = 1e-3

# The linear responses of the DPD rows, as URI parameters of the I/Q PA simulator.
RESPONSES = {
    "minimum phase": "pa_wh",
    "fractional delay 0.4": "pa_wh?frac_delay=0.4",
    "zero outside the unit circle": "pa_wh?nmp_zero=1.25",
}
BACKOFFS_DB = (6.0, 0.0)  # drive: the targets' peak below the peak the amplifier reaches (the two ends)
SIGNALS = {  # name -> (training signal, held-out signal)
    "ofdm": ("ofdm:n=16000,papr=8,seed=0", "ofdm:n=16384,papr=8,seed=1"),
    "dpa200": ("dpa200:train", "dpa200:test"),
}
DPD_NOISE = 1e-3
SCORE_SEED = 5  # the noise-free scoring ignores it; the device it is opened with


@dataclass(frozen=True)
class Cell:
    """One operating condition of a row group."""

    group: str
    name: str  # the row label: what the condition is
    params: tuple  # what `run` needs to build the device (and signal)

    def key(self, method: str, seed: int) -> str:
        return f"{self.group}/{self.name}/{method}/{seed}"


def memoryless_cells() -> list[Cell]:
    return [
        Cell("memoryless", f"{'one-to-one' if o2o else 'folded'}, {outs} out, noise at {at}", (sim, at))
        for (outs, o2o), sim in MEMORYLESS_DEVICES.items()
        for at in NOISE_AT
    ]


def heldout_cells() -> list[Cell]:
    return [
        Cell("heldout", f"{shape}, input noise {level:g}", (shape, level))
        for shape in HELDOUT_SHAPES
        for level in HELDOUT_INPUT_NOISE
    ]


def dpd_cells() -> list[Cell]:
    return [
        Cell("dpd", f"{response}, {backoff:g} dB back-off, {signal}", (uri, backoff, signal))
        for response, uri in RESPONSES.items()
        for backoff in BACKOFFS_DB
        for signal in SIGNALS
    ]


GROUPS = {
    "memoryless": (memoryless_cells, STRATEGIES),
    "heldout": (heldout_cells, HELDOUT_METHODS),
    "dpd": (dpd_cells, DPD_METHODS),
}


def with_params(uri: str, query: str) -> str:
    return f"{uri}{'&' if '?' in uri else '?'}{query}"


@dataclass(frozen=True)
class Reduced:
    """A smaller matrix (the CI test): fewer queries and fit steps for the memoryless rows."""

    queries: int = MEMORYLESS_QUERIES
    fit_steps: int | None = None  # None: the default


FULL = Reduced()


def run(cell: Cell, method: str, seed: int, size: Reduced = FULL) -> dict:
    """One method on one cell with one seed: its score (lower is better) and what explains it."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = _run_dpd(cell, method, seed) if cell.group == "dpd" else _run_memoryless(cell, method, seed, size)
    return {**out, "wall_s": round(time.perf_counter() - t0, 1), "cpu_s": round(time.process_time() - c0, 1)}


def _run_memoryless(cell: Cell, method: str, seed: int, size: Reduced) -> dict:
    import hwloop
    from hwloop.rundir import TrainOptions

    if cell.group == "heldout":
        from matrix_devices import heldout_device

        shape, level = cell.params
        device = heldout_device(shape, noise=HELDOUT_OUTPUT_NOISE, input_noise=level, seed=seed)
    else:
        sim, at = cell.params
        device = f"sim:{sim}?{NOISE_AT[at]}&seed={seed}"
    opts = TrainOptions() if size.fit_steps is None else TrainOptions(fit_steps=size.fit_steps)
    with tempfile.TemporaryDirectory() as tmp:
        m = hwloop.train(
            device, strategy=method, queries=size.queries, seed=seed, run_dir=tmp, options=opts
        ).metrics
    keep = ("closed_loop_nmse_db", "noise_floor_db", "queries_used", "auto_path", "best_round")
    out = {"score": m["closed_loop_nmse_clean_db"], **{k: m.get(k) for k in keep}}
    if method == "auto":
        out.update({k: m.get(k) for k in ("noise_split", "one_to_one", "noise_of_jitter")})
    return out


def _signal(spec: str) -> tuple[np.ndarray, float, float]:
    from hwloop.dpd.signals import load_signal, signal_rate

    return load_signal(spec), signal_rate(spec) or 800e6, 200e6


def reachable_peak(uri: str, train: np.ndarray) -> float:
    """The output peak the amplifier reaches: its noise-free answer to the training signal driven
    to the input peak, |x| = 1."""
    import hwloop

    z = train[:, 0].astype(np.float64) + 1j * train[:, 1]
    x = train / np.abs(z).max() * (1 - 1e-6)
    dev = hwloop.open_device(f"sim:{uri}" if not uri.startswith("sim:") else uri)
    y = dev.clean_sequence(x.astype(np.float32))
    return float(np.abs(y[:, 0] + 1j * y[:, 1]).max())


def added_acpr_db(y: np.ndarray, t: np.ndarray, fs: float, bw: float) -> float:
    """The adjacent-channel power of the error y - t over the target's main-channel power (dBc):
    what the amplifier adds. The measured DPA_200MHz input carries its own adjacent-channel power
    (-41.8 dBc on its test split), which the output's ACPR cannot go below whatever the
    predistorter does; the added power is not bounded by it."""
    from hwloop.dpd.metrics import channel_powers

    lower, _, upper = channel_powers(y - t, fs, bw)
    return float(10 * np.log10(max(lower, upper, 1e-30) / channel_powers(t, fs, bw)[1]))


def _run_dpd(cell: Cell, method: str, seed: int) -> dict:
    import hwloop
    from hwloop.dpd.metrics import acpr_db, evm_db, nmse_db
    from hwloop.rundir import TrainOptions

    uri, backoff, signal = cell.params
    train_spec, held_spec = SIGNALS[signal]
    train, fs, bw = _signal(train_spec)
    held, _, _ = _signal(held_spec)
    peak_out = reachable_peak(uri, train)
    ztrain = train[:, 0].astype(np.float64) + 1j * train[:, 1]
    gain = peak_out * 10 ** (-backoff / 20) / float(np.abs(ztrain).max())
    t_train, t_held = (gain * train).astype(np.float32), (gain * held).astype(np.float32)
    dev = hwloop.open_device(with_params(f"sim:{uri}", f"noise={DPD_NOISE}&seed={seed}"))
    extra: dict = {}
    if method == "textbook":
        from dpd_common import safe
        from dpd_textbook import TextbookILA

        def query_sequence(x: np.ndarray) -> np.ndarray:
            dev.reset()
            return dev.query(safe(x))

        pd = TextbookILA()
        extra["queries_used"] = pd.fit(query_sequence, t_train, DPD_QUERIES)
        apply = pd.apply
    else:
        with tempfile.TemporaryDirectory() as tmp:
            sig = Path(tmp) / "train.npz"
            np.savez(sig, x=train, fs=fs)
            opts = TrainOptions(signal=str(sig), gain=gain, bw=bw, holdout=0.0, skip_reference=True)
            res = hwloop.train(
                dev, strategy=method, queries=DPD_QUERIES, seed=seed, run_dir=Path(tmp) / "run", options=opts
            )
        m = res.metrics
        extra = {"queries_used": m["queries_used"], "dpd_kept_round": m.get("dpd_kept_round")}
        extra.update({k: v for k, v in m.items() if k.startswith("dpd_align") or k.startswith("dpd_latency")})
        apply = res.inverse.apply
    from dpd_common import safe

    x = safe(apply(t_held))
    y = dev.clean_sequence(x)
    yz, tz = y[:, 0] + 1j * y[:, 1], t_held[:, 0] + 1j * t_held[:, 1]
    steady = slice(16, None)  # without the samples after the reset: the amplifier's memory filling
    acpr = acpr_db(yz, fs, bw)
    return {
        "score": round(acpr if signal == "ofdm" else added_acpr_db(yz, tz, fs, bw), 3),
        "acpr_dbc": round(acpr, 3),
        "evm_db": round(evm_db(yz, tz, 1.0, fs, bw), 3),
        "nmse_db": round(nmse_db(yz[steady], tz[steady], 1.0), 3),
        "gain": round(gain, 5),
        "drive_peak": round(float(np.abs(x[:, 0] + 1j * x[:, 1]).max()), 4),
        **extra,
    }
