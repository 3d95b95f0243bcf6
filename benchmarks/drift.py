"""Amplifiers whose condition moves: what a condition does, recalibration from a parent run, tracking.

Amplifiers: ``apa``, the held-out neural model of OpenDPD's APA_200MHz
(`heldout_pa.HeldOutPA`: no test and no default uses it; 983.04 MS/s, its
train split as the targets at gain 1, its test split to score, noise 3e-4)
under simulators/conditions.py's transforms; ``pa_wh`` and ``pa_gmp`` (the
catalogue's; OFDM at 800 MS/s, targets the signal times 2, noise 1e-3).
Every predistorter is scored on the test signal on a fresh amplifier (noise
seed 5) at the condition it is judged at: ACPR of the measured output (and of
the noise-free one), EVM and NMSE against the targets.

- ``conditions``: small-signal gain, compression and AM/PM at the peak drive,
  ACPR without predistortion and with the parent's predistorter (trained at
  25 deg C), at each condition;
- ``recal``: the parent (``auto``, 50,000 queries at 25 deg C); at each of
  three conditions a full retraining (``auto``, 50,000) and ``--init-from``
  the parent with 5 % of the parent's queries;
- ``track``: ``hwloop track`` with its defaults on the amplifier heating
  from 25 to 65 deg C along a scripted ramp; at every check (a checkpoint)
  the version in service is scored at that check's temperature against a
  fresh full training there, and the queries against retraining at every
  checkpoint.

    python benchmarks/drift.py [--pas apa,pa_wh] [--sections conditions,recal,track] [--force]
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import fresh, load, machine, save
from dpd_common import safe
from provenance import stamp

NAME = "drift"
ROOTS = ["hwloop.run", "hwloop.tracking", "hwloop.strategies.recalibrate", "hwloop.simulators.conditions"]
RUNS = Path(__file__).resolve().parent / ".drift_runs"  # run directories, reused (not committed)
PARENT_QUERIES = 50_000
SHARE = 0.05  # the recalibration's budget: this share of the parent's training queries
CONDITIONS = ("temp=65", "temp=-15", "vdd=4.5")
TABLE = ("", "temp=0", "temp=45", "temp=65", "temp=85", "vdd=4.5", "vdd=5.5")
RAMP = "drift=script:0:25,2:65&rate=1e4"  # 40 K over the first 20,000 samples the amplifier sees
TRACK_BUDGET = 20_000
PAS = ("apa", "pa_wh", "pa_gmp")


def pa_setup(pa: str) -> dict:
    """Targets (train, test), sample rate, channel and noise of one amplifier's benchmark."""
    from hwloop.dpd.signals import load_signal

    if pa == "apa":
        from heldout_pa import signals, spec

        sig, meta = signals("apa"), spec("apa")
        return {"train": sig["train"], "test": sig["test"], "gain": 1.0, **meta, "noise": 3e-4}
    train, test = load_signal("ofdm:n=16000,papr=8,seed=0"), load_signal("ofdm:n=16384,papr=8,seed=1")
    return {"train": train, "test": test, "gain": 2.0, "fs": 800e6, "bw": 200e6, "noise": 1e-3}


def device(pa: str, query: str, seed: int):
    """The amplifier at the condition ``query`` (URI parameters of simulators/conditions.py)."""
    import hwloop

    noise = pa_setup(pa)["noise"]
    if pa != "apa":
        return hwloop.open_device(f"sim:{pa}?noise={noise}&seed={seed}" + (f"&{query}" if query else ""))
    from heldout_drift import apa_device

    return apa_device(query, noise=noise, seed=seed)


def options(pa: str):
    from hwloop.rundir import TrainOptions

    s = pa_setup(pa)
    path = RUNS / pa / "signal.npz"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, x=s["train"], fs=s["fs"])  # the signal; the targets are it times the gain
    return TrainOptions(signal=str(path), gain=s["gain"], bw=s["bw"])


def train(
    pa: str, query: str, name: str, queries: int = PARENT_QUERIES, init_from: Path | None = None, force=False
):
    """A run in RUNS/pa/name (reused when it finished, unless ``force``): its metrics."""
    import hwloop

    out = RUNS / pa / name
    if (out / "metrics.json").is_file() and not force:
        return json.loads((out / "metrics.json").read_text())
    shutil.rmtree(out, ignore_errors=True)
    res = hwloop.train(
        device(pa, query, 0), queries=queries, run_dir=out, options=options(pa), init_from=init_from
    )
    return res.metrics


def score(pa: str, query: str, inverse) -> dict:
    """The predistorter on the test signal, on a fresh amplifier (seed 5) at the condition."""
    from hwloop.dpd.metrics import acpr_db, evm_db, nmse_db

    s = pa_setup(pa)
    t = s["gain"] * s["test"]
    x = safe(inverse.apply(t) if inverse is not None else t / np.abs(t[:, 0] + 1j * t[:, 1]).max())
    dev = device(pa, query, 5)
    dev.reset()
    y = dev.query(x)
    z, tz = y[:, 0] + 1j * y[:, 1], t[:, 0] + 1j * t[:, 1]
    gain = 1.0 if inverse is not None else None
    return {
        "acpr_dbc": round(acpr_db(z, s["fs"], s["bw"]), 2),
        "acpr_clean_dbc": round(acpr_db(dev.clean_sequence(x), s["fs"], s["bw"]), 2),
        "evm_db": round(evm_db(z, tz, gain, s["fs"], s["bw"]), 2),
        "nmse_db": round(nmse_db(z, tz, gain), 2),
    }


def cw_figures(pa: str, query: str) -> dict:
    """Small-signal gain, compression and AM/PM at the peak drive |x| = 1, from constant drives."""
    dev = device(pa, query, 0)

    def gain(a: float) -> complex:
        x = np.zeros((200, 2), np.float32)
        x[:, 0] = a
        y = dev.clean_sequence(x)
        return complex(y[-1, 0], y[-1, 1]) / a

    small, peak = gain(0.01), gain(1.0)
    return {
        "gain_db": round(20 * np.log10(abs(small)), 3),
        "compression_db": round(20 * np.log10(abs(peak / small)), 3),
        "am_pm_deg": round(float(np.degrees(np.angle(peak / small))), 3),
    }


def parent(pa: str, force: bool) -> Path:
    train(pa, "", "parent", force=force)
    return RUNS / pa / "parent"


def section_conditions(pa: str, data: dict, force: bool) -> None:
    import hwloop

    cells = data.setdefault(pa, {}).setdefault("conditions", {})
    inv = hwloop.load_inverse(parent(pa, False))
    for query in TABLE:
        key = query or "nominal"
        if fresh(cells, key) and not force:
            continue
        cells[key] = {
            **cw_figures(pa, query),
            "no_dpd": score(pa, query, None),
            "parent_dpd": score(pa, query, inv),
            **stamp(ROOTS),
        }
        save(NAME, data)
        print(pa, "conditions", key, cells[key], flush=True)


def section_recal(pa: str, data: dict, force: bool) -> None:
    import hwloop

    cells = data.setdefault(pa, {}).setdefault("recal", {})
    run = parent(pa, False)
    pm = json.loads((run / "metrics.json").read_text())
    budget = int(SHARE * pm["queries_used"])
    for query in CONDITIONS:
        if fresh(cells, query) and not force:
            continue
        full = train(pa, query, f"full-{query}", force=force)
        recal = train(pa, query, f"recal-{query}", queries=budget, init_from=run, force=True)
        cell = {
            "parent_queries": pm["queries_used"],
            "parent_as_is": score(pa, query, hwloop.load_inverse(run)),
            "full": {
                **score(pa, query, hwloop.load_inverse(RUNS / pa / f"full-{query}")),
                "queries": full["queries_used"],
            },
            "recal": {
                **score(pa, query, hwloop.load_inverse(RUNS / pa / f"recal-{query}")),
                "queries": recal["queries_used"],
                "kept_round": recal["recal_kept_round"],
                "model_nmse_db": recal["recal_model"]["nmse_db"],
                "base_holdout_nmse_db": recal["recal_model"].get("base", {}).get("holdout_nmse_db"),
            },
        }
        cell["recal_minus_full_acpr_db"] = round(cell["recal"]["acpr_dbc"] - cell["full"]["acpr_dbc"], 2)
        cells[query] = {**cell, **stamp(ROOTS)}
        save(NAME, data)
        print(pa, "recal", query, json.dumps(cells[query]), flush=True)


def section_track(pa: str, data: dict, force: bool) -> None:
    import hwloop

    block = data.setdefault(pa, {}).setdefault("track", {})
    if fresh({"t": block}, "t") and block.get("checkpoints") and not force:
        return
    run = RUNS / pa / "tracked"
    shutil.rmtree(run, ignore_errors=True)
    shutil.copytree(parent(pa, False), run)
    res = hwloop.track(run, device(pa, RAMP, 0), budget=TRACK_BUDGET)
    history = json.loads((run / "track" / "history.json").read_text())
    points = []
    for c in history["checks"]:
        temp = round(c["condition"]["temp"] * 2) / 2  # the full trainings, every 0.5 K
        version = c.get("adapted_to") if c.get("adapted_to") is not None else c["version"]
        query = f"temp={temp:g}"
        train(pa, query, f"full-{query}")
        inv = hwloop.load_inverse(run / "track" / f"v{version:03d}")
        mine = score(pa, query, inv)
        full = score(pa, query, hwloop.load_inverse(RUNS / pa / f"full-{query}"))
        untracked = score(pa, query, hwloop.load_inverse(run / "track" / "v000"))
        points.append(
            {
                "check": c["check"],
                "temp": c["condition"]["temp"],
                "version": version,
                "tracked": mine,
                "full": full,
                "untracked": untracked,
                "tracked_minus_full_acpr_db": round(mine["acpr_dbc"] - full["acpr_dbc"], 2),
                "queries_so_far": c["queries"],
            }
        )
        print(pa, "checkpoint", json.dumps(points[-1]), flush=True)
    k = len(points)
    block.clear()
    block.update(
        {
            "session": res.metrics,
            "checkpoints": points,
            "ramp": RAMP,
            "budget": TRACK_BUDGET,
            "retrain_every_checkpoint_queries": k * PARENT_QUERIES,
            "share_of_retraining": round(res.metrics["queries_used"] / (k * PARENT_QUERIES), 4),
            "worst_tracked_minus_full_acpr_db": max(p["tracked_minus_full_acpr_db"] for p in points),
            **stamp(ROOTS),
        }
    )
    save(NAME, data)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pas", default=",".join(PAS))
    ap.add_argument("--sections", default="conditions,recal,track")
    ap.add_argument("--force", action="store_true", help="re-measure cells already in the results file")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    data = load(NAME)
    data.update(
        machine=machine(),
        command="python benchmarks/drift.py",
        parent_queries=PARENT_QUERIES,
        share=SHARE,
    )
    sections = {"conditions": section_conditions, "recal": section_recal, "track": section_track}
    for pa in args.pas.split(","):
        for name in args.sections.split(","):
            sections[name](pa, data, args.force)


if __name__ == "__main__":
    main()
