"""Fit the I/Q amplifier simulators (sim:pa_gmp, sim:pa_wh) to the DPA_200MHz measurement.

GMP: least squares on the train split (`hwloop.dpd.gmp.GMP.fit`, relative ridge
1e-4: the 4x oversampled input leaves the delay taps nearly collinear, and
the ridge keeps their out-of-band response from blowing up). WH: nonlinear
least squares (scipy ``least_squares``) over the complex taps of h1 and h2
and the Rapp / Saleh parameters, started from the GMP's linear part. Writes
simulators/data/pa_dpa200.npz (what the simulators load) and
benchmarks/results/pa_fit.json (fit quality on the val and test splits).

    python benchmarks/fit_pa.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, save, stamp

from hwloop.dpd.gmp import GMP, GMPConfig
from hwloop.dpd.metrics import acpr_db, nmse_db
from hwloop.dpd.signals import cplx, dpa200
from hwloop.simulators.pa import FIT_FILE, WHAmplifier

GMP_CFG = GMPConfig(order=7, memory=10, cross_order=5, cross_memory=4, lag=4)
GMP_RIDGE = 1e-4
WH_TAPS = (3, 10)


ROOTS = ["hwloop.simulators.pa", "hwloop.dpd.gmp", "hwloop.dpd.metrics"]


def _wh(theta: np.ndarray, n1: int, n2: int) -> WHAmplifier:
    c = theta[: 2 * (n1 + n2 - 2)]
    h1 = np.concatenate([[1.0], c[: n1 - 1] + 1j * c[n1 - 1 : 2 * n1 - 2]])
    c2 = c[2 * n1 - 2 :]
    h2 = np.concatenate([[1.0], c2[: n2 - 1] + 1j * c2[n2 - 1 :]])
    gain, sat, p, alpha, beta, phi0 = theta[2 * (n1 + n2 - 2) :]
    return WHAmplifier(h1, h2, gain, abs(sat), abs(p), alpha, abs(beta), phi0)


def _run(model: WHAmplifier | GMP, x: np.ndarray) -> np.ndarray:
    if isinstance(model, GMP):
        return model(x)
    return model.run(x, model.initial_state())[0]


def fit_wh(x: np.ndarray, y: np.ndarray, lin: np.ndarray) -> tuple[WHAmplifier, dict]:
    """Nonlinear LS; h2 starts as the GMP's normalised linear taps, the Rapp gain as their scale."""
    n1, n2 = WH_TAPS
    h2 = np.zeros(n2, complex)
    h2[: min(n2, len(lin))] = lin[:n2] / lin[0]
    theta0 = np.concatenate(
        [
            np.zeros(2 * (n1 - 1)),
            h2[1:].real,
            h2[1:].imag,
            [abs(lin[0]), 3.0, 2.0, 0.0, 0.5, np.angle(lin[0])],
        ]
    )

    def resid(theta: np.ndarray) -> np.ndarray:
        e = _run(_wh(theta, n1, n2), x) - y
        return np.concatenate([e.real, e.imag])

    t0 = time.perf_counter()
    sol = least_squares(resid, theta0, method="trf", x_scale="jac", max_nfev=400)
    return _wh(sol.x, n1, n2), {"nfev": int(sol.nfev), "wall_s": round(time.perf_counter() - t0, 1)}


def main() -> None:
    data = {s: tuple(cplx(a) for a in dpa200(s)) for s in ("train", "val", "test")}
    xt, yt = data["train"]
    gmp = GMP.fit(xt, yt, GMP_CFG, GMP_RIDGE)
    lin = np.array(
        [c for c, (k, _, lag) in zip(gmp.coeffs, GMP_CFG.terms(), strict=True) if k == 1 and lag == 0]
    )
    wh, info = fit_wh(xt, yt, lin)
    gain = GMP(GMPConfig(1, 1, 1, 1, 0), np.array([np.vdot(xt, yt) / np.vdot(xt, xt)]))
    out: dict = {"machine": machine(), **stamp(ROOTS), "command": "python benchmarks/fit_pa.py"}
    for name, model in (("gmp", gmp), ("wh", wh), ("linear_gain", gain)):
        out[name] = {
            f"nmse_{s}_db": round(nmse_db(_run(model, data[s][0]), data[s][1], 1.0), 2)
            for s in ("train", "val", "test")
        }
        out[name]["acpr_test_dbc"] = round(acpr_db(_run(model, data["test"][0])), 2)
    out["measured_acpr_test_dbc"] = round(acpr_db(data["test"][1]), 2)
    out["wh"].update(
        info,
        h1=[[z.real, z.imag] for z in wh.h1],
        nonlinearity=[wh.gain, wh.sat, wh.p, wh.alpha, wh.beta, wh.phi0],
    )
    out["gmp"].update(config=GMP_CFG.to_dict(), ridge=GMP_RIDGE)
    FIT_FILE.parent.mkdir(parents=True, exist_ok=True)
    cfg = GMP_CFG
    np.savez(
        FIT_FILE,
        gmp_cfg=np.array([cfg.order, cfg.memory, cfg.cross_order, cfg.cross_memory, cfg.lag]),
        gmp_coeffs=gmp.coeffs,
        wh_h1=np.asarray(wh.h1),
        wh_h2=np.asarray(wh.h2),
        wh_nl=np.array([wh.gain, wh.sat, wh.p, wh.alpha, wh.beta, wh.phi0]),
    )
    save("pa_fit", out)
    print(out)


if __name__ == "__main__":
    main()
