"""A parent run's amplifier model, corrected to the amplifier's new condition from a few answers.

A condition change (temperature, supply, carriers, age) moves an amplifier's
gain, compression point, AM/PM and memory, but leaves most of what it does.
The parent run's log holds tens of thousands of answers at the old condition;
a recalibration can afford a few thousand at the new one. So the parent's
forward GMP surrogate F_A (`hwloop.dpd.direct.SURROGATE_CFG`, 148 terms, fitted on every
sequence the parent logged) is corrected, not refitted:

    F_B(x) = Post(F_A(Pre(x))) + R(x)
    Pre(x)  = x + Phi_pre(x) a      a memoryless polynomial on the drive: the compression point's
                                     scale, input-side AM/PM (`PRE`)
    Post(v) = v + Phi_post(v) b     a polynomial with short memory on F_A's output: gain, AM/PM,
                                     output-side memory (`POST`)
    R(x)    = Phi_res(x) r          a small GMP residual: the memory the others miss (`RESIDUAL`)

All three start at zero (F_B = F_A) and are fitted together on the new
answers by damped Gauss-Newton (Levenberg-Marquardt): each step's damping is
chosen on rows held out of its fit (`hwloop.dpd.fitting.ridge_fit`), a step
that does not lower the error is halved. 40 complex numbers against F_A's
148: few enough for a thousand answers to pin down. Measured on sim:pa_wh
from 25 to 65 deg C: a predistorter trained on F_B (2,500 answers) scored
within 0.2 dB ACPR of a full retraining at 65 deg C (docs/drift.md).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import signal as sps

from hwloop.dpd.direct import SURROGATE_CFG, gmp_jacobian, jacobian_times
from hwloop.dpd.fitting import RIDGES, Normal, ridge_fit, row_split
from hwloop.dpd.gmp import GMP, GMPConfig, features
from hwloop.errors import RunDirError, ShapeError

log = logging.getLogger(__name__)

PRE = GMPConfig(order=5, memory=1, cross_order=1, cross_memory=1, lag=0)
POST = GMPConfig(order=5, memory=3, cross_order=1, cross_memory=1, lag=0)
RESIDUAL = GMPConfig(order=3, memory=4, cross_order=3, cross_memory=2, lag=2)
ENV_POWERS = (1, 2, 3, 4)  # |x|^k now...
ENV_TAUS = (2.0, 4.0, 8.0, 16.0, 32.0, 64.0)  # ...and |x|^2 through one-poles of these many samples
ITERATIONS = 10  # Gauss-Newton steps at most...
TOLERANCE_DB = 0.01  # ...stopping once a step gains less than this
FILE = "surrogate_gmp.npz"

Pair = tuple[np.ndarray, np.ndarray]  # (drive, answer), complex, one sequence from a reset


def envelope(x: np.ndarray) -> np.ndarray:
    """(n, 10) real: |x|^k for `ENV_POWERS`, and |x|^2 low-passed over `ENV_TAUS` samples from a
    reset: what a bias network, a supply or a warming die modulate the gain with."""
    p = np.abs(x) ** 2
    cols = [np.abs(x) ** k for k in ENV_POWERS]
    for tau in ENV_TAUS:
        a = np.exp(-1.0 / tau)
        cols.append(sps.lfilter([1 - a], [1, -a], p))
    return np.stack(cols, axis=1)


def fit_base(pairs: list[Pair], cfg: GMPConfig = SURROGATE_CFG) -> tuple[GMP, dict]:
    """The forward GMP drive -> answer on every logged sequence, its ridge chosen on held-out rows."""
    if not pairs:
        raise ShapeError("a surrogate needs at least one logged sequence")
    normal = Normal.empty(len(cfg.terms()))
    for x, y in pairs:
        normal.add(features(x, cfg), y)
    rf = normal.solve(RIDGES)
    return GMP(cfg, rf.coeffs), {**rf.info(), "sequences": len(pairs), "samples": normal.rows}


@dataclass
class ConditionedSurrogate:
    """F_B = Post(F_A(Pre(x))) + R(x): complex drive (n,) from a reset -> complex answer (n,)."""

    base: GMP
    a: np.ndarray = field(default_factory=lambda: np.zeros(len(PRE.terms()), complex))
    b: np.ndarray = field(default_factory=lambda: np.zeros(len(POST.terms()), complex))
    r: np.ndarray = field(default_factory=lambda: np.zeros(len(RESIDUAL.terms()), complex))
    m: np.ndarray = field(default_factory=lambda: np.zeros(len(ENV_POWERS) + len(ENV_TAUS), complex))
    info: dict = field(default_factory=dict)  # how it was fitted, for metrics.json
    anchor: Pair | None = None  # answers at the parent's own condition, for a model not yet corrected

    file_name = FILE  # where a run keeps it (`save`)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.complex128)
        v = self.base(x + features(x, PRE) @ self.a)
        return v + features(v, POST) @ self.b + features(x, RESIDUAL) @ self.r + v * (envelope(x) @ self.m)

    def copy(self) -> ConditionedSurrogate:
        return ConditionedSurrogate(
            self.base,
            self.a.copy(),
            self.b.copy(),
            self.r.copy(),
            self.m.copy(),
            dict(self.info),
            self.anchor,
        )

    # ------------------------------------------------------------ fitting
    def _columns(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The answer and its derivative in every real parameter (Re, Im of a, b, r), (n, P) complex."""
        pa = features(x, PRE)
        xp = x + pa @ self.a
        v = self.base(xp)
        pv, pr, env = features(v, POST), features(x, RESIDUAL), envelope(x)
        mod = env @ self.m
        af, bf = gmp_jacobian(self.base, xp)
        ap, bp = gmp_jacobian(GMP(POST, self.b), v)
        ap[0] += 1.0 + mod  # Post(v) + v * mod: both move with v

        def chain(d: np.ndarray) -> np.ndarray:  # Post's Jacobian after F_A's, both real-linear
            return jacobian_times(ap, bp, jacobian_times(af, bf, d))

        pm = v[:, None] * env
        cols = np.hstack([chain(pa), chain(1j * pa), pv, 1j * pv, pr, 1j * pr, pm, 1j * pm])
        return v + pv @ self.b + pr @ self.r + v * mod, cols

    def _step(self, d: np.ndarray) -> None:
        at = 0
        for name in ("a", "b", "r", "m"):
            p = len(getattr(self, name))
            setattr(self, name, getattr(self, name) + d[at : at + p] + 1j * d[at + p : at + 2 * p])
            at += 2 * p

    def _error(self, pairs: list[Pair]) -> float:
        return float(sum(np.sum(np.abs(self(x) - y) ** 2) for x, y in pairs))

    def fit(self, pairs: list[Pair], iterations: int = ITERATIONS) -> dict:
        """Fit a, b, r to the answers ``pairs`` by damped Gauss-Newton from where they are."""
        power = float(sum(np.sum(np.abs(y) ** 2) for _, y in pairs))
        if not pairs or power <= 0:
            raise ShapeError("fitting a condition needs answers with power in them")
        err = self._error(pairs)
        start_db = 10 * np.log10(max(err, 1e-300) / power)
        steps = []
        for _ in range(iterations):
            rows, res, fit, hold = [], [], [], []
            for x, y in pairs:
                y_hat, cols = self._columns(x)
                f, h = row_split(
                    len(x), (4, 1), block=int(np.clip(len(x) // 10, 16, 128))
                )  # held rows even in short sequences
                rows.append(cols)
                res.append(y - y_hat)
                fit.append(f)
                hold.append(h)
            a, e = np.vstack(rows), np.concatenate(res)
            f, h = np.concatenate(fit), np.concatenate(hold)
            rf = ridge_fit(
                np.vstack([a.real, a.imag]), np.concatenate([e.real, e.imag]), np.r_[f, f], np.r_[h, h]
            )
            before, scale = (self.a, self.b, self.r, self.m), 1.0
            for _ in range(4):  # a step that does not lower the error is halved
                self._step(scale * rf.coeffs)
                new = self._error(pairs)
                if new < err:
                    break
                self.a, self.b, self.r, self.m = before
                scale *= 0.5
            else:
                break
            gain_db = 10 * np.log10(err / new)
            err = new
            steps.append({"ridge": float(f"{rf.ridge:.3g}"), "holdout_nmse_db": round(rf.holdout_nmse_db, 3)})
            if gain_db < TOLERANCE_DB:
                break
        self.info = {
            **({"base": self.info["base"]} if "base" in self.info else {}),  # how F_A itself was fitted
            "answers": int(sum(len(x) for x, _ in pairs)),
            "start_nmse_db": round(float(start_db), 3),
            "nmse_db": round(float(10 * np.log10(max(err, 1e-300) / power)), 3),
            "steps": steps,
        }
        log.info("condition fitted: %s", self.info)
        return self.info

    # ------------------------------------------------------------ files
    def save(self, path: str | Path) -> Path:
        """Write the base GMP and the correction as an NPZ (no pickles)."""
        path = Path(path)
        np.savez(
            path,
            base_cfg=json.dumps(self.base.cfg.to_dict()),
            base=self.base.coeffs,
            a=self.a,
            b=self.b,
            r=self.r,
            m=self.m,
            info=json.dumps(self.info),
            **({} if self.anchor is None else {"anchor_x": self.anchor[0], "anchor_y": self.anchor[1]}),
        )
        return path

    @classmethod
    def load(cls, path: str | Path) -> ConditionedSurrogate:
        try:
            with np.load(path, allow_pickle=False) as data:
                base = GMP(GMPConfig(**json.loads(str(data["base_cfg"]))), data["base"])
                arrays = [np.asarray(data[k], complex) for k in ("a", "b", "r", "m")]
                info = json.loads(str(data["info"]))
                anchor = (data["anchor_x"], data["anchor_y"]) if "anchor_x" in data else None
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise RunDirError(f"{path}: not a readable amplifier surrogate ({exc})") from None
        model = cls(base, *arrays, info=info, anchor=anchor)
        shape = [len(c.terms()) for c in (PRE, POST, RESIDUAL)] + [len(ENV_POWERS) + len(ENV_TAUS)]
        if [len(v) for v in arrays] != shape:
            raise RunDirError(f"{path}: its correction does not have the shape this hwloop fits")
        return model
