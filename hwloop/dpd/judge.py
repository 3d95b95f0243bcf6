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
uncertainty (`hwloop.metrics.tied`: within twice the combined standard
error):

1. the rounds whose ACPR is tied with the best;
2. of those, the ones whose EVM is tied with their best EVM;
3. of those, the first in ``prefer`` (an incumbent such as the warm start
   goes first, so a challenger replaces it only on evidence), else the
   latest.

A round with a clearly better ACPR is kept even at a worse EVM: the
adjacent channels are what a transmitter must meet; the EVM decides among
rounds the ACPR cannot tell apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hwloop.dpd.metrics import aclr_db, acpr_db, acpr_se_db, evm_db, evm_se_db, nmse_db, nmse_se_db
from hwloop.metrics import tied


@dataclass(frozen=True)
class Judgement:
    """A round's figures on its held-out stretch, each with its standard error in dB."""

    acpr_dbc: float
    acpr_se_db: float
    aclr_db: float
    evm_db: float
    evm_se_db: float
    nmse_db: float
    nmse_se_db: float
    samples: int

    def info(self) -> dict:
        """The figures for a round record, ``judge_`` before each name."""
        return {f"judge_{k}": round(float(getattr(self, k)), 3) for k in self.__dataclass_fields__} | {
            "judge_samples": self.samples
        }


def judge(y: np.ndarray, u: np.ndarray, *, gain: complex = 1.0, fs: float, bw: float) -> Judgement:
    """Figures of the answer y (complex) to the targets u (complex, y's target is ``gain`` u) on one
    contiguous stretch past the amplifier's cold start."""
    ref = gain * u
    return Judgement(
        acpr_dbc=acpr_db(y, fs, bw),
        acpr_se_db=acpr_se_db(y, fs, bw),
        aclr_db=aclr_db(y, fs, bw),
        evm_db=evm_db(y, ref, 1.0, fs, bw),
        evm_se_db=evm_se_db(y, ref, 1.0, fs, bw),
        nmse_db=nmse_db(y, ref, 1.0),
        nmse_se_db=nmse_se_db(y, ref, 1.0),
        samples=len(y),
    )


def _tied_with_best(scores: dict[int, tuple[float, float]]) -> list[int]:
    best = min(scores, key=lambda i: scores[i][0])
    return [i for i, s in scores.items() if s[0] <= scores[best][0] or tied(s, scores[best])]


def contenders(judged: list[Judgement]) -> list[int]:
    """Indices of the rounds the figures cannot tell from the best: ACPR tied with the best, and
    of those, EVM tied with their best (steps 1 and 2 of the keep rule)."""
    if not judged:
        raise ValueError("nothing to choose from")
    by_acpr = _tied_with_best({i: (j.acpr_dbc, j.acpr_se_db) for i, j in enumerate(judged)})
    return _tied_with_best({i: (judged[i].evm_db, judged[i].evm_se_db) for i in by_acpr})


def keep_round(judged: list[Judgement], prefer: list[int] | None = None) -> int:
    """The index of the round to keep (the module's rule): among `contenders`, the first in
    ``prefer``, else the latest."""
    pool = contenders(judged)
    order = [*(prefer or []), *range(len(judged) - 1, -1, -1)]
    return next(i for i in order if i in pool)
