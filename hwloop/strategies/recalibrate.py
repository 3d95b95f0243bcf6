"""Recalibrate a predistorter with memory from a parent run in a few queries (``--signal S --init-from RUN``).

The parent run trained a GMP predistorter with a full budget at one
condition; the amplifier has since moved (temperature, supply, carriers,
age). Its log holds everything it measured, so its amplifier model costs
no query: a forward GMP fitted on those sequences (or the model a parent
recalibration left, ``surrogate_gmp.npz``). The recalibration spends its
budget in rounds on one training stretch (`hwloop.strategies.dpd.training_stretch`):

1. round 0 drives the parent's predistorter: its score at the new condition,
   and the first answers there;
2. the parent's model is corrected to those answers
   (`hwloop.strategies.condition_model`: a few dozen numbers on top of it,
   not a refit);
3. the change is transferred (`_transfer`): training's own indirect learning
   (`hwloop.strategies.dpd.fit_predistorter`) is run, over the whole signal
   and without a query, on the corrected model and on the reference model
   (the parent's, corrected the same way on as many of the parent's own last
   answers: the model's bias measured as the new answers measure it), and
   the difference of the two predistorters is added to the parent's. What
   the model gets wrong about the amplifier cancels; what the parent learnt
   from the amplifier itself stays;
4. the next round drives that predistorter: its score, and more answers for
   the next correction; and so on.

Rounds are judged and kept by training's rule (`hwloop.dpd.judge`: ACPR first,
then EVM, each up to its uncertainty): the parent's predistorter (round 0, the
incumbent) stays unless a later round is better beyond it. The kept predistorter has the parent's basis; the
corrected model is saved beside it, so a recalibrated run is itself a parent.
Measured on the held-out APA model (docs/drift.md): 2,500 queries, 5 % of
the parent's, end within 0.5 dB ACPR of a 50,000-query retraining.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hwloop.device import DeviceInfo
from hwloop.dpd.gmp import GMP, GMPConfig, GMPInverse, Stretch, peak_limit
from hwloop.dpd.judge import Judgement, judge, keep_round
from hwloop.dpd.metrics import acpr_db, evm_db
from hwloop.dpd.readings import OwnACPR
from hwloop.dpd.signals import cplx, iq
from hwloop.errors import RunDirError, UsageError
from hwloop.strategies.base import Context, Outcome
from hwloop.strategies.condition_model import FILE, ConditionedSurrogate, Pair, fit_base
from hwloop.strategies.dpd import GUARD, MIN_STRETCH, fit_predistorter, training_stretch

log = logging.getLogger(__name__)

MIN_ROUND = MIN_STRETCH  # samples a round needs (a stretch past its guards: its score and answers)
LONG_ROUNDS = 3  # rounds from LONG_BUDGET queries on...
LONG_BUDGET = 6000  # ...else 2: the parent's predistorter, then one retrained on the corrected model


@dataclass
class DPDParent:
    """A parent run's GMP predistorter and its amplifier model."""

    run: Path
    inverse: GMPInverse
    surrogate: ConditionedSurrogate
    queries: int | None  # the parent's training queries
    surrogate_from: str  # "model" (a recalibration's surrogate_gmp.npz) or "log"


def load_dpd_parent(run_dir: str | Path, info: DeviceInfo) -> DPDParent:
    """The parent run's predistorter and amplifier model; a run that holds none is a usage error."""
    from hwloop.inverses.store import load_inverse
    from hwloop.strategies.parent import check_parent

    run = check_parent(str(run_dir), info, predistorter=True)
    try:
        inv = load_inverse(run)
    except RunDirError as exc:
        raise UsageError(f"--init-from: {exc}") from None
    if not isinstance(inv, GMPInverse):
        raise UsageError(f"--init-from {run}: recalibration starts from a GMP predistorter, {run} holds none")
    queries = _parent_queries(run)
    if (run / FILE).is_file():
        return DPDParent(run, inv, ConditionedSurrogate.load(run / FILE), queries, "model")
    return DPDParent(run, inv, model_from_log(run), queries, "log")


def model_from_log(run: Path) -> ConditionedSurrogate:
    """The amplifier model a run's log gives: a forward GMP on every training sequence it holds,
    not corrected yet, its last sequence (the amplifier where the run left its predistorter) kept
    as the anchor the recalibration measures the model's own bias on (`recalibrate`)."""
    from hwloop.data import load_run_sequences

    pairs = [(cplx(x), cplx(y)) for x, y in load_run_sequences(run)]
    if not pairs:
        raise UsageError(f"{run}: its log holds no training sequence to model the amplifier on")
    base, fit = fit_base(pairs)
    log.info("amplifier model of %s fitted on its log: %s", run, fit)
    return ConditionedSurrogate(base, info={"base": fit}, anchor=pairs[-1])


def _parent_queries(run: Path) -> int | None:
    try:
        value = json.loads((run / "metrics.json").read_text()).get("queries_used")
    except (OSError, ValueError, AttributeError):
        return None
    return int(value) if isinstance(value, int) else None


def steady_rows(stretch: Stretch) -> np.ndarray:
    """Rows past the first `GUARD` samples of every window: where the amplifier has forgotten
    the reset or the window before (scored, never the cold start)."""
    ok = np.ones(len(stretch.u), bool)
    at = 0
    for a, b in stretch.windows:
        ok[at : at + min(GUARD, b - a)] = False
        at += b - a
    return ok


@dataclass
class Recalibration:
    """What `recalibrate` returns: the predistorter kept, the corrected model, every round."""

    inverse: GMPInverse
    surrogate: ConditionedSurrogate
    kept_round: int
    rounds: list[dict] = field(default_factory=list)
    queries: int = 0
    pairs: list[Pair] = field(default_factory=list)  # every (drive, answer) measured
    reference: dict | None = None  # the reference model: where it came from, its fit

    def details(self) -> dict:
        return {
            "dpd_method": "recalibration: the parent's amplifier model corrected to the new condition, "
            "the predistorter retrained on it, rounds kept by training's rule",
            "recal_rounds": self.rounds,
            "recal_kept_round": self.kept_round,
            "recal_queries": self.queries,
            "recal_model": self.surrogate.info,
            "recal_reference": self.reference,
            "gmp": self.inverse.model.cfg.to_dict(),
            "inverse_kind": "gmp",
        }


def _retrain(
    model: ConditionedSurrogate, t: np.ndarray, start: GMPInverse, fs: float, bw: float
) -> GMPInverse:
    """Training's indirect learning run on the corrected model over the whole signal (no query),
    in the textbook basis when the parent's holds it, then lifted into the parent's basis."""
    cfg = start.model.cfg
    fit_cfg = GMPConfig() if set(GMPConfig().terms()) <= set(cfg.terms()) else cfg

    def on_model(x: np.ndarray) -> np.ndarray:
        return iq(model(cplx(np.asarray(x, np.float64))))

    inv, _ = fit_predistorter(
        on_model, t, 3 * len(t), direct=False, peak=start.peak, cfg=fit_cfg, fs=fs, bw=bw
    )
    try:
        lifted = inv.model.lift(cfg)
    except UsageError:
        lifted = inv.model
    return GMPInverse(GMP(lifted.cfg, lifted.coeffs), peak=start.peak, gain=inv.gain)


def _reference(surrogate: ConditionedSurrogate, answers: int) -> tuple[ConditionedSurrogate, dict]:
    """The model the transfer starts from: the parent's, or, for a model not corrected yet, the same
    correction fitted on as many of the parent's own answers (its anchor) as this recalibration will
    fit at the new condition: the model's bias there is then in both and cancels."""
    if surrogate.anchor is None:
        return surrogate, {"from": "the parent's model as saved"}
    ref = surrogate.copy()
    ref.anchor = None
    x, y = surrogate.anchor
    fit = ref.fit([(x[:answers], y[:answers])])
    return ref, {"from": "the parent's last logged sequence", **fit}


def _transfer(start: GMPInverse, retrained: GMPInverse, reference: GMPInverse) -> GMPInverse:
    """``start`` + (``retrained`` - ``reference``): the change the corrected model asks of a predistorter
    trained on it, from the one the uncorrected model gives (``reference``), applied to the parent's
    own predistorter. What the model gets wrong about the amplifier is in both and cancels; what the
    parent learnt from the amplifier itself, and the model never knew, stays."""
    if not (start.model.cfg == retrained.model.cfg == reference.model.cfg):
        return retrained  # pragma: no cover - _retrain lifts both into the parent's basis
    coeffs = start.model.coeffs + retrained.model.coeffs - reference.model.coeffs
    return GMPInverse(GMP(start.model.cfg, coeffs), peak=start.peak, gain=start.gain)


def recalibrate(
    query_sequence: Callable[[np.ndarray], np.ndarray],
    t: np.ndarray,
    start: GMPInverse,
    surrogate: ConditionedSurrogate,
    budget: int,
    *,
    fs: float = 800e6,
    bw: float = 200e6,
    rounds: int | None = None,
    extra: list[Pair] | None = None,
    transfer: bool = True,
) -> Recalibration:
    """Recalibrate ``start`` for the targets t (n, 2) with at most ``budget`` queries.

    ``query_sequence(x)`` resets the amplifier and returns its answer to the
    whole drive x. ``surrogate`` (the parent's model) is not changed; a copy
    is corrected on every answer of this recalibration plus ``extra`` (answers
    measured at the new condition before, e.g. a tracking check's).
    ``transfer``: a candidate is ``start`` moved by what the correction changes
    in a predistorter trained on the model (see `_transfer`); else the one
    trained on the corrected model itself.
    """
    rounds = rounds or (LONG_ROUNDS if budget >= LONG_BUDGET else 2)
    n = min(len(t), budget // rounds)
    if n < MIN_ROUND or rounds < 2:
        raise UsageError(
            f"--queries {budget} leaves {n} samples a round; recalibration needs {rounds} rounds of at least "
            f"{MIN_ROUND} (--queries {rounds * MIN_ROUND} or more)"
        )
    stretch = training_stretch(t, n)
    u, ok = stretch.u, steady_rows(stretch)
    g = complex(start.gain)
    seen = list(extra or [])
    reference, fitted = _reference(surrogate, n + sum(len(x) for x, _ in seen))
    model = reference.copy()  # the new condition's correction starts from the reference's
    out = Recalibration(start, model, 0, reference=fitted)
    candidates: list[GMPInverse] = [start]
    judged: list[Judgement] = []
    rows, own = stretch.judged(), OwnACPR.of(stretch.signal, fs, bw)
    before = _retrain(reference, t, start, fs, bw) if transfer else None
    for r in range(rounds):
        cur = candidates[-1]
        x = peak_limit(stretch.basis(cur.model.cfg) @ cur.model.coeffs, cur.peak)
        y = cplx(np.asarray(query_sequence(iq(x)), np.float64))
        out.queries += len(x)
        out.pairs.append((x, y))
        judged.append(judge(y[rows] / g, u[rows], fs=fs, bw=bw, own=own))  # training's judge
        main = stretch.longest()
        out.rounds.append(
            {
                "round": r,
                "what": "parent" if r == 0 else ("parent + transfer" if before else "retrained on the model"),
                **judged[-1].info(),
                "acpr_dbc": round(acpr_db(y[main], fs, bw), 3),
                "evm_db": round(evm_db(y[ok], u[ok], g, fs, bw), 3),
                "clipped": int(np.sum(np.abs(x) >= cur.peak * (1 - 1e-6))),
            }
        )
        log.info("recalibration round %d: %s", r, out.rounds[-1])
        if r == rounds - 1:
            break
        seen.append((x, y))
        out.rounds[-1]["model_fit"] = model.fit(seen)
        retrained = _retrain(model, t, start, fs, bw)
        candidates.append(retrained if before is None else _transfer(start, retrained, before))
    out.kept_round = keep_round(judged, prefer=[0])  # the parent is the incumbent
    out.inverse = candidates[out.kept_round]
    for i, rnd in enumerate(out.rounds):
        rnd["kept"] = i == out.kept_round
    return out


def train(ctx: Context) -> Outcome:
    dev, t = ctx.dev, ctx.signal
    if dev is None or t is None:
        raise UsageError("recalibration needs --signal and a device")
    parent = load_dpd_parent(str(ctx.settings.init_from), dev.info)

    def query_sequence(x: np.ndarray) -> np.ndarray:
        dev.reset()
        return dev.query(np.asarray(x, np.float32), "train")

    res = recalibrate(
        query_sequence,
        t,
        parent.inverse,
        parent.surrogate,
        dev.remaining,
        fs=ctx.settings.fs,
        bw=ctx.settings.bw,
    )
    res.inverse.info = dev.info.to_dict()
    details = {
        **res.details(),
        "recal_parent_queries": parent.queries,
        "recal_model_from": parent.surrogate_from,
    }
    if parent.queries:
        details["recal_share_of_parent"] = round(res.queries / parent.queries, 4)
    return Outcome(res.inverse, [], surrogate=res.surrogate, details=details, memory={"kind": "gmp"})
