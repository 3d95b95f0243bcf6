"""Judging a predistorter by the figures a DPD engineer uses, on a stretch it was not fitted on.

A round of direct learning is scored on a held-out stretch of its answer
(`judge`): ACPR (the worse adjacent channel) and ACLR, in-band EVM and NMSE
against the targets, each with its standard error
(`hwloop.dpd.metrics.acpr_se_db` and friends: what another stretch of that
length would read). NMSE alone is a poor judge: it is dominated by the
largest errors in band, while a mask is failed in the adjacent channels; a
round at -58.2 dBc once lost to a warm start at -51.3 dBc because their NMSE
differed by less than its uncertainty.

The keep rule (`keep_round`), ACPR first, then EVM, each up to its
uncertainty (within `hwloop.metrics.TIE_Z`, two, standard errors of the
difference; rounds judged on the same window are compared paired, so the
stretch's own ups and downs, common to both, do not count against a real
difference):

1. the rounds whose ACPR is tied with the best;
2. of those, the ones whose EVM is tied with their best EVM;
3. of those, the first in ``prefer`` (an incumbent such as a recalibrated
   predistorter's parent goes first, so a challenger replaces it only on
   evidence), else the latest. Direct learning passes no ``prefer``: its
   warm start is not an incumbent.

A round with a clearly better ACPR is kept even at a worse EVM: the
adjacent channels are what a transmitter must meet; the EVM decides among
rounds the ACPR cannot tell apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hwloop.dpd.metrics import nmse_db
from hwloop.dpd.readings import OwnACPR, Reading, aclr_by_error_db, acpr_reading, evm_reading, nmse_se_db
from hwloop.metrics import TIE_Z


@dataclass(frozen=True)
class Judgement:
    """A round's figures on its held-out stretch, each with its standard error in dB; the ACPR and
    EVM readings kept for paired comparisons with other rounds judged on the same samples."""

    acpr_dbc: float
    acpr_se_db: float
    aclr_db: float
    evm_db: float
    evm_se_db: float
    nmse_db: float
    nmse_se_db: float
    samples: int
    readings: dict[str, Reading] = field(default_factory=dict, compare=False, repr=False)

    def info(self) -> dict:
        """The figures for a round record, ``judge_`` before each name."""
        names = ("acpr_dbc", "acpr_se_db", "aclr_db", "evm_db", "evm_se_db", "nmse_db", "nmse_se_db")
        return {f"judge_{k}": round(float(getattr(self, k)), 3) for k in names} | {
            "judge_samples": self.samples
        }

    def difference_se_db(self, other: Judgement, figure: str) -> float:
        """Standard error of this round's ``figure`` ("acpr" or "evm") minus the other's: paired when
        both were read on the same samples, else the two errors combined."""
        mine, theirs = self.readings.get(figure), other.readings.get(figure)
        if mine is None or theirs is None:
            return float(np.hypot(getattr(self, f"{figure}_se_db"), getattr(other, f"{figure}_se_db")))
        return mine.paired_se_db(theirs)


def judge(
    y: np.ndarray, u: np.ndarray, *, gain: complex = 1.0, fs: float, bw: float, own: OwnACPR | None = None
) -> Judgement:
    """Figures of the answer y (complex) to the targets u (complex, y's target is ``gain`` u) on one
    contiguous stretch past the amplifier's cold start; ACPR and ACLR through the error
    (`hwloop.dpd.readings.acpr_reading`, with the signal's ``own`` share), so a window of a
    thousand samples reads them without the leakage that would floor a Welch estimate there."""
    ref = gain * u
    acpr = acpr_reading(y, ref, fs, bw, None if own is None else own.sides)
    evm = evm_reading(y, ref, 1.0, fs, bw)
    return Judgement(
        acpr_dbc=acpr.db,
        acpr_se_db=acpr.se_db,
        aclr_db=aclr_by_error_db(y, ref, fs, bw, None if own is None else own.aclr_db),
        evm_db=evm.db,
        evm_se_db=evm.se_db,
        nmse_db=nmse_db(y, ref, 1.0),
        nmse_se_db=nmse_se_db(y, ref, 1.0),
        samples=len(y),
        readings={"acpr": acpr, "evm": evm},
    )


def _tied_with_best(judged: list[Judgement], pool: list[int], figure: str) -> list[int]:
    """The rounds of ``pool`` whose ``figure`` is the best's or within `TIE_Z` standard errors of
    their paired difference from it."""
    value = {i: getattr(judged[i], f"{figure}_dbc" if figure == "acpr" else f"{figure}_db") for i in pool}
    best = min(pool, key=lambda i: value[i])
    return [
        i
        for i in pool
        if value[i] <= value[best]
        or value[i] - value[best] <= TIE_Z * judged[i].difference_se_db(judged[best], figure)
    ]


def contenders(judged: list[Judgement]) -> list[int]:
    """Indices of the rounds the figures cannot tell from the best: ACPR tied with the best, and
    of those, EVM tied with their best (steps 1 and 2 of the keep rule)."""
    if not judged:
        raise ValueError("nothing to choose from")
    return _tied_with_best(judged, _tied_with_best(judged, list(range(len(judged))), "acpr"), "evm")


def keep_round(judged: list[Judgement], prefer: list[int] | None = None) -> int:
    """The index of the round to keep (the module's rule): among `contenders`, the first in
    ``prefer``, else the latest."""
    pool = contenders(judged)
    order = [*(prefer or []), *range(len(judged) - 1, -1, -1)]
    return next(i for i in order if i in pool)
