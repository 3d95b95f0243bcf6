"""GMP coefficients as CSV with the basis definition, for MATLAB and vendor DPD tools.

``gmp_coeffs.csv``: one row per basis term, ``index,k,m,l,re,im,term``:
the term is ``x[n-m] * |x[n-m-l]|^(k-1)`` (`hwloop.dpd.gmp`), ``re``/``im``
its complex coefficient written with 17 significant digits (float64 round
trip). ``gmp_basis.txt`` states the model, the sample conventions, the
peak limit and the configuration in words; ``golden_float.csv`` holds a
stretch of targets and the float predistorter's drive for them, so another
implementation can check itself. `read_coeffs` reads the CSV back into a
`hwloop.dpd.gmp.GMPInverse` that computes the same drive.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hwloop.dpd.gmp import GMP, GMPConfig, GMPInverse
from hwloop.errors import RunDirError

if TYPE_CHECKING:  # the run reader loads Keras; reading coefficients back needs numpy only
    from hwloop.export.source import RunSource

COEFFS = "gmp_coeffs.csv"
BASIS = "gmp_basis.txt"
GOLDEN = "golden_float.csv"
HEADER = ["index", "k", "m", "l", "re", "im", "term"]
GOLDEN_SAMPLES = 2048


def _term(k: int, m: int, lag: int) -> str:
    if k == 1:
        return f"x[n-{m}]"
    env = f"n-{m + lag}" if m + lag else "n"
    return f"x[n-{m}]*|x[{env}]|^{k - 1}"


def basis_text(inv: GMPInverse) -> str:
    cfg = inv.model.cfg
    g = complex(inv.gain)
    return (
        "\n".join(
            [
                "Generalised memory polynomial predistorter (hwloop export --format coeffs)",
                "",
                "Model, for complex baseband samples x[n] = I[n] + jQ[n] of the target (in the device's",
                "output units, as the run trained it) and the drive y[n]:",
                "",
                "    y[n] = sum_i c_i * x[n - m_i] * |x[n - m_i - l_i]|^(k_i - 1)",
                "",
                f"with the {len(cfg.terms())} terms (k_i, m_i, l_i) and complex coefficients c_i = re + j im",
                f"listed in {COEFFS}, one row each, in that order. Samples before the first",
                "are zero (a reset amplifier). Then the peak limit: where |y[n]| > peak,",
                "y[n] is scaled to magnitude peak with its phase kept.",
                "",
                f"peak = {inv.peak!r}",
                f"gain it was trained to (target = gain * linear input): {g.real!r} + {g.imag!r}j",
                "",
                "Configuration (hwloop.dpd.gmp.GMPConfig):",
                *(f"    {k} = {v}" for k, v in cfg.to_dict().items()),
                "",
                "Aligned terms: k = 1..order, m = 0..memory-1, l = 0; lagging terms: k = 2..cross_order,",
                "m = 0..cross_memory-1, l = 1..lag (even orders included when even = True).",
                *(
                    [
                        f"Leading taps (lookahead = {cfg.lookahead}): every delay counts from sample n + "
                        f"{cfg.lookahead}, so x[n - m] above reads x[n + {cfg.lookahead} - m]; the drive of",
                        f"sample n needs the targets up to n + {cfg.lookahead} (a latency of {cfg.lookahead} "
                        "samples streamed); targets after the last are zero.",
                    ]
                    if cfg.lookahead
                    else []
                ),
                f"{GOLDEN}: targets (tI, tQ) and the drive (xI, xQ) this model gives them, from a reset.",
            ]
        )
        + "\n"
    )


def write_coeffs(inv: GMPInverse, out: Path) -> None:
    """gmp_coeffs.csv and gmp_basis.txt for ``inv``."""
    with open(out / COEFFS, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER)
        for i, ((k, m, lag), c) in enumerate(zip(inv.model.cfg.terms(), inv.model.coeffs, strict=True)):
            w.writerow([i, k, m, lag, f"{c.real:.17g}", f"{c.imag:.17g}", _term(k, m, lag)])
    (out / BASIS).write_text(basis_text(inv))


def read_coeffs(
    path: str | Path, *, peak: float = 1.0, gain: complex = 1.0, cfg: dict | None = None
) -> GMPInverse:
    """A `GMPInverse` from gmp_coeffs.csv; ``cfg`` (GMPConfig fields) checks the term order."""
    p = Path(path)
    try:
        with open(p, newline="") as fh:
            rows = list(csv.DictReader(fh))
        terms = [(int(r["k"]), int(r["m"]), int(r["l"])) for r in rows]
        coeffs = np.array([float(r["re"]) + 1j * float(r["im"]) for r in rows])
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise RunDirError(f"{p}: not a GMP coefficient file ({type(exc).__name__}: {exc})") from None
    config = GMPConfig(**cfg) if cfg is not None else None
    if config is None or config.terms() != terms:
        raise RunDirError(f"{p}: its terms do not match the GMP configuration it is listed with")
    return GMPInverse(GMP(config, coeffs), peak=peak, gain=gain)


def export_coeffs(src: RunSource, out: Path) -> dict:
    """The coeffs export's files and its manifest record."""
    inv: GMPInverse = src.inverse
    write_coeffs(inv, out)
    t = src.stretch(GOLDEN_SAMPLES)
    x = inv.apply(t)
    with open(out / GOLDEN, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["tI", "tQ", "xI", "xQ"])
        for a, b in zip(t, x, strict=True):
            w.writerow([f"{v:.17g}" for v in (*a, *b)])
    g = complex(inv.gain)
    return {
        "gmp": inv.model.cfg.to_dict(),
        "peak": inv.peak,
        "gain": [g.real, g.imag],
        "terms": len(inv.model.cfg.terms()),
        "interface": {"in_dim": 2, "out_dim": 2, "stateful": True, "depth": inv.model.cfg.depth},
        "golden": {"file": GOLDEN, "rows": len(t)},
    }


def read_golden(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(t, x) float arrays of golden_float.csv."""
    try:
        data = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    except (OSError, ValueError) as exc:
        raise RunDirError(f"{path}: not a golden file ({exc})") from None
    return data[:, :2], data[:, 2:]


def manifest_cfg(manifest: dict) -> tuple[dict, float, complex]:
    """(GMPConfig fields, peak, gain) of a coeffs manifest."""
    try:
        g = manifest["gain"]
        return dict(manifest["gmp"]), float(manifest["peak"]), complex(float(g[0]), float(g[1]))
    except (KeyError, TypeError, ValueError, IndexError):
        raise RunDirError(
            f"a coeffs manifest lacks its GMP configuration: {json.dumps(manifest)[:80]}"
        ) from None
