"""A run's measured rounds, as metrics.json numbers them, for the report's round panels.

Three strategies record rounds, each its own way; `read_rounds` reads any of
them (and tolerates keys that are missing, renamed or added later):

- ``auto``/``surrogate`` (memoryless, or sequences): ``round_nmse_db`` with
  ``round_uncertainty_db``, ``round_spent`` (training queries once the round's
  answers were in) and ``best_round``;
- a calibration (``--init-from``): ``rounds``, each with ``round``,
  ``queries``, ``measured_nmse_db``, ``measured_uncertainty_db``; ``kept`` is
  ``"final"`` (the inverse trained after the last round, its error predicted
  as ``final_predicted_nmse_db``) or ``"round K checkpoint"``;
- a predistorter (``--signal``): indirect learning's ``dpd_rounds``, then
  direct learning's ``dpd_direct_rounds``, numbered from 1 across both by
  their ``round`` (each with ``nmse_db`` and ``acpr_dbc``; direct rounds also
  the judged window's ``judge_nmse_db``, ``judge_acpr_dbc`` and their standard
  errors); ``dpd_kept_round`` is the ``round`` of the kept one. Runs written
  before that numbered direct rounds from 0 and ``dpd_kept_round`` among them
  alone: read as such. Queries per round are the samples of its stretch
  (``dpd_stretch``, ``dpd_direct_stretch``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any


def finite(v: object) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


@dataclass
class Round:
    """One measured round: its name as metrics.json gives it, its scores, the queries spent by then."""

    label: str
    nmse_db: float | None = None
    se_db: float | None = None
    judged_db: float | None = None  # a score on rows no fit saw (direct learning's judge)
    acpr_dbc: float | None = None
    queries: int | None = None  # training queries spent once this round's answers were in
    kept: bool = False
    group: str = ""  # "indirect", "direct", "predicted" or ""


@dataclass
class Rounds:
    """Every measured round of a run in order, and what was kept."""

    rounds: list[Round] = field(default_factory=list)
    kept_text: str | None = None  # e.g. "direct round 1 (dpd_kept_round 1)"
    source: str = ""  # the metrics keys they came from

    @property
    def kept_index(self) -> int | None:
        return next((i for i, r in enumerate(self.rounds) if r.kept), None)


def read_rounds(m: dict[str, Any]) -> Rounds:
    """The rounds a run's metrics record, whichever strategy wrote them."""
    if isinstance(m.get("dpd_rounds"), list) or isinstance(m.get("dpd_direct_rounds"), list):
        return _dpd(m)
    if isinstance(m.get("rounds"), list):
        return _calibration(m)
    if isinstance(m.get("round_nmse_db"), list):
        return _device_rounds(m)
    return Rounds()


def _int(v: object) -> int | None:
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def _device_rounds(m: dict[str, Any]) -> Rounds:
    scores = m["round_nmse_db"]
    se = m.get("round_uncertainty_db") if isinstance(m.get("round_uncertainty_db"), list) else []
    spent = m.get("round_spent") if isinstance(m.get("round_spent"), list) else []
    best = _int(m.get("best_round"))
    out = Rounds(source="round_nmse_db")
    for i, v in enumerate(scores):
        out.rounds.append(
            Round(
                str(i),
                nmse_db=finite(v),
                se_db=finite(se[i]) if i < len(se) else None,
                queries=_int(spent[i]) if len(spent) == len(scores) else None,
                kept=i == best,
            )
        )
    if best is not None and 0 <= best < len(scores):
        out.kept_text = f"round {best} (best_round {best})"
    return out


def _calibration(m: dict[str, Any]) -> Rounds:
    out = Rounds(source="rounds")
    spent = 0
    for i, r in enumerate(x for x in m["rounds"] if isinstance(x, dict)):
        n = _int(r.get("queries"))
        spent = spent + n if n is not None and spent is not None else None
        out.rounds.append(
            Round(
                str(r.get("round", i)),
                nmse_db=finite(r.get("measured_nmse_db", r.get("nmse_db"))),
                se_db=finite(r.get("measured_uncertainty_db")),
                queries=spent,
            )
        )
    kept = m.get("kept")
    chosen = re.fullmatch(r"round (\d+)( checkpoint)?", kept) if isinstance(kept, str) else None
    if chosen:
        k = int(chosen.group(1))
        for r in out.rounds:
            r.kept = r.label == str(k)
        out.kept_text = f"round {k}'s checkpoint (kept: {kept!r})"
    elif kept == "final" or finite(m.get("final_predicted_nmse_db")) is not None:
        out.rounds.append(
            Round(
                "final",
                nmse_db=finite(m.get("final_predicted_nmse_db")),
                queries=_int(m.get("queries_used")),
                kept=kept == "final",
                group="predicted",
            )
        )
        if kept == "final":
            out.kept_text = "the inverse trained after the last round (kept: 'final')"
    return out


def _stretch_len(v: object) -> int | None:
    """Samples in a stretch: a list of [start, end] windows, or one [start, end]."""
    if not isinstance(v, list) or not v:
        return None
    windows = v if all(isinstance(w, list) for w in v) else [v]
    try:
        return sum(int(w[1]) - int(w[0]) for w in windows)
    except (TypeError, ValueError, IndexError):
        return None


def _dpd(m: dict[str, Any]) -> Rounds:
    ind = [r for r in m.get("dpd_rounds") or [] if isinstance(r, dict)]
    direct = [r for r in m.get("dpd_direct_rounds") or [] if isinstance(r, dict)]
    n_ind, n_dir = _stretch_len(m.get("dpd_stretch")), _stretch_len(m.get("dpd_direct_stretch"))
    out = Rounds(source="dpd_rounds, dpd_direct_rounds")
    # rounds numbered across both (their own "round"); older runs numbered direct rounds from 0
    legacy = bool(direct) and _int(direct[0].get("round")) == 0
    spent: int | None = 0
    numbers: list[int | None] = []
    for i, r in enumerate(ind):
        spent = None if spent is None or n_ind is None else spent + n_ind
        number = _int(r.get("round")) or i + 1
        numbers.append(None if legacy else number)
        out.rounds.append(
            Round(
                f"indirect {number}" if legacy else f"round {number} (indirect)",
                nmse_db=finite(r.get("nmse_db")),
                acpr_dbc=finite(r.get("acpr_dbc")),
                queries=spent,
                group="indirect",
            )
        )
    for i, r in enumerate(direct):
        spent = None if spent is None or n_dir is None else spent + n_dir
        number = _int(r.get("round"))
        if number is None:
            number = i if legacy else len(ind) + i + 1
        numbers.append(number)
        judged_acpr = finite(r.get("judge_acpr_dbc"))
        out.rounds.append(
            Round(
                f"direct {number}" if legacy else f"round {number} (direct)",
                nmse_db=finite(r.get("nmse_db")),
                se_db=finite(r.get("judge_nmse_se_db", r.get("judge_se_db"))),
                judged_db=finite(r.get("judge_nmse_db")),
                acpr_dbc=judged_acpr if judged_acpr is not None else finite(r.get("acpr_dbc")),
                queries=spent,
                group="direct",
            )
        )
    used = _int(m.get("queries_used"))
    if used is not None and spent is not None and spent > used:  # stretches not what was spent: say nothing
        for r in out.rounds:
            r.queries = None
    kept = _int(m.get("dpd_kept_round"))
    if kept is not None:
        for r, number in zip(out.rounds, numbers, strict=True):
            r.kept = number == kept
        k = out.kept_index
        if k is not None:
            label = out.rounds[k].label
            out.kept_text = (
                f"direct round {kept} (dpd_kept_round {kept})"
                if legacy
                else f"{label}; dpd_kept_round {kept}"
            )
    return out
