"""Digital predistortion on the fitted amplifier simulators: every method out of sample, one shared gain.

For each simulator (sim:pa_gmp, sim:pa_wh, sim:pa_wh?thermal=0.03; noise
1e-3, seed 0) and each signal, every method gets the same targets, t =
GAIN x the training signal (one shared target gain, so no method picks an
easier gain of its own), and a query budget:

- ``textbook``: `dpd_textbook.TextbookILA`, the textbook GMP (K7 M4 L2, 76
  terms, ridge) by indirect learning, three rounds; the reference;
- ``ila``: what ``--strategy ila`` runs (`hwloop.strategies.dpd.fit_predistorter`);
- ``auto`` / ``surrogate``: what those strategies run (indirect warm start,
  then direct learning through a GMP surrogate).

Each predistorter is scored on a held-out signal the fit never saw, sent
to the same amplifier model with another noise seed (5):

- ``dpa``: train on DPA_200MHz's train input, score on its test input;
- ``ofdm``: train on ``ofdm:n=16000,papr=8,seed=0``, score on
  ``ofdm:n=16384,papr=8,seed=1`` (200 MHz channel at 800 MS/s).

Figures: ACPR (Welch, worse side) of the measured output and of the
noise-free one, ACLR (TS 38.104 square filter), in-band EVM and NMSE
against the targets (gain 1), the peak drive, the coefficient count and
the training queries; beside them the bare signal at that drive's average
power (``*_no_dpd``: EVM and NMSE against the least-squares gain, the answer
time-aligned). ``none``: the bare signal at the average power of the first
of `NONE_AT`'s drives measured in the cell, scored the same way.

    python benchmarks/dpd.py [--sims pa_gmp,pa_wh,...] [--signals dpa,ofdm] [--methods ...] [--force]
    python benchmarks/dpd.py --sweep   # auto at 50,000: direct rounds 2, 3, 5; the 92-term GMP throughout
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import fresh, load, machine, save
from dpd_common import safe
from dpd_textbook import TextbookILA
from provenance import stamp

ROOTS = [
    "hwloop.strategies.dpd",
    "hwloop.simulators.pa",
    "hwloop.dpd.metrics",
]  # the code a cell measures, for its stamp
NAME = "dpd"
NOISE = 1e-3
GAIN = 2.0  # the one target gain every method is trained to (target peak 2.0; the PA's output peaks near 2.5)
N_TRAIN = 16_000
METHODS = (
    "textbook/50000",
    "ila/50000",
    "auto/50000",
    "textbook/20000",
    "ila/20000",
    "surrogate/20000",
    "none",
)
NONE_AT = ("auto/50000", "ila/50000", "ila/20000", "textbook/50000")  # whose drive power "none" takes


def _signals(name: str) -> tuple[np.ndarray, np.ndarray]:
    from hwloop.dpd.signals import dpa200, load_signal

    if name == "dpa":
        return dpa200("train")[0], dpa200("test")[0]
    if name == "ofdm":
        return load_signal(f"ofdm:n={N_TRAIN},papr=8,seed=0"), load_signal("ofdm:n=16384,papr=8,seed=1")
    raise SystemExit(f"unknown signal {name!r} (dpa, ofdm)")


def _device(sim: str, seed: int):
    import hwloop

    return hwloop.open_device(f"sim:{sim}{'&' if '?' in sim else '?'}noise={NOISE}&seed={seed}")


def _answer(sim: str, x: np.ndarray) -> np.ndarray:
    dev = _device(sim, 5)
    dev.reset()
    return dev.query(safe(x))


def bare_signal(sim: str, t: np.ndarray, rms: float) -> dict:
    """The bare signal t at average drive power rms^2: ACPR, ACLR, and EVM and NMSE against the
    least-squares gain, the answer time-aligned (the page's no-DPD convention)."""
    from hwloop.dpd.scoring import bare_signal_figures
    from hwloop.dpd.signals import cplx

    x = t * (rms / float(np.sqrt(np.mean(np.sum(t.astype(np.float64) ** 2, 1)))))
    fig = bare_signal_figures(cplx(_answer(sim, x)), cplx(t), 800e6, 200e6)
    out = {k: round(float(v), 3) for k, v in fig.items() if not k.endswith("_se_db")}
    out["drive_peak"] = round(float(np.hypot(x[:, 0], x[:, 1]).max()), 4)
    return out


def score(sim: str, x: np.ndarray, t: np.ndarray) -> dict:
    """Figures of the drive x for targets t on the amplifier with noise seed 5, and of the bare
    signal at the drive's average power."""
    from hwloop.dpd.metrics import aclr_db, acpr_db, dpd_report

    dev = _device(sim, 5)
    x = safe(x)
    dev.reset()
    y = dev.query(x)
    r = dpd_report(y, t, gain=1.0)
    r["aclr_db"] = round(aclr_db(y), 2)
    r["acpr_clean_dbc"] = round(acpr_db(dev.clean_sequence(x)), 3)
    r["drive_peak"] = round(float(np.hypot(x[:, 0], x[:, 1]).max()), 4)
    r["drive_rms"] = round(float(np.sqrt(np.mean(np.sum(x.astype(np.float64) ** 2, 1)))), 5)
    bare = bare_signal(sim, t, r["drive_rms"])
    r.update({f"{k}_no_dpd": bare[k] for k in ("acpr_dbc", "aclr_db", "evm_db", "nmse_db")})
    return r


SWEEP = (2, 3, 5)


def run_method(
    sim: str,
    signal: str,
    method: str,
    rounds: int | None = None,
    textbook_gmp: bool = False,
    cell: dict | None = None,
) -> dict:
    """One method's fit on GAIN x the training signal and its held-out score."""
    from hwloop.strategies.dpd import fit_predistorter

    train, held = _signals(signal)
    t_train, t_held = GAIN * train, GAIN * held
    if method == "none":
        ref = next((k for k in NONE_AT if k in (cell or {})), None)
        if ref is None:
            raise SystemExit(
                f"'none' takes the drive power of one of {', '.join(NONE_AT)}: measure one first"
            )
        rms = cell[ref]["drive_rms"]
        return {
            **bare_signal(sim, t_held, rms),
            "drive_rms": rms,
            "drive_of": ref,
            "terms": 0,
            "queries_used": 0,
        }
    name, budget = method.split("/")
    dev = _device(sim, 0)
    sent = [0]

    def query_sequence(x: np.ndarray) -> np.ndarray:
        sent[0] += len(x)
        dev.reset()
        return dev.query(safe(np.asarray(x)))

    t0 = time.perf_counter()
    details: dict = {}
    if name == "textbook":
        pd = TextbookILA()
        pd.fit(query_sequence, t_train, int(budget))
        apply, terms = pd.apply, pd.terms
    else:
        from hwloop.dpd.gmp import GMPConfig

        inv, details = fit_predistorter(
            query_sequence,
            t_train,
            int(budget),
            direct=name != "ila",
            keep="best" if name == "auto" else "last",
            rounds=rounds,
            cfg=GMPConfig() if textbook_gmp else None,
        )
        apply, terms = inv.apply, len(inv.model.cfg.terms())
    wall = time.perf_counter() - t0
    out = score(sim, apply(t_held), t_held)
    keep = (
        "dpd_kept_round",
        "dpd_damping",
        "dpd_gain_bound",
        "dpd_surrogate_nmse_db",
        "dpd_steps_shrunk",
        "dpd_lookahead",
        "dpd_alignment",
    )
    out.update(
        terms=terms,
        queries_used=sent[0],
        eval_queries=len(held),
        wall_s=round(wall, 2),
        details={k: details[k] for k in keep if k in details},
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sims", default="pa_gmp,pa_wh,pa_wh?thermal=0.03")
    ap.add_argument("--signals", default="ofdm,dpa")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--force", action="store_true", help="re-run cells already in the results file")
    ap.add_argument("--sweep", action="store_true", help="auto's direct rounds (2, 3, 5) and the 92-term GMP")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    data = load(NAME)
    if data.get("schema") != 2:  # the figures before one shared gain and held-out scoring are not kept
        data = {"schema": 2, "cells": {}}
    data.update(
        noise=NOISE,
        gain=GAIN,
        seed=0,
        command="python benchmarks/dpd.py",
        method="every method at one target gain, scored on a held-out signal",
    )
    if args.sweep:
        sweep = data.setdefault("rounds_sweep", {})
        for sim in args.sims.split(","):
            for rounds, textbook in [(r, False) for r in SWEEP] + [(None, True)]:
                key = f"{sim}/{rounds or 'default'}{'/gmp92' if textbook else ''}"
                if fresh(sweep, key) and not args.force:
                    continue
                sweep[key] = {**run_method(sim, "ofdm", "auto/50000", rounds, textbook), **stamp(ROOTS)}
                save(NAME, data)
                print(key, sweep[key], flush=True)
        return
    for sim in args.sims.split(","):
        for signal in args.signals.split(","):
            cell = data["cells"].setdefault(f"{sim}/{signal}", {})
            for method in args.methods.split(","):
                if fresh(cell, method) and not args.force:
                    continue
                cell[method] = {**run_method(sim, signal, method, cell=cell), **stamp(ROOTS)}
                data.update(
                    machine=machine(), measured_at=cell[method]["measured_at"], commit=cell[method]["commit"]
                )
                save(NAME, data)
                print(sim, signal, method, cell[method], flush=True)


if __name__ == "__main__":
    main()
