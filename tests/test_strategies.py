"""Every strategy on a small budget; the surrogate path's promises at full size (slow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import hwloop
from hwloop.metrics import keep_index, tied
from hwloop.querylog import open_run_log
from hwloop.run import TrainOptions
from hwloop.strategies.rounds import BASELINE_ROUND

SMALL = TrainOptions(fit_steps=200, eval_targets=200, noise_repeats=64)


@pytest.mark.parametrize("strategy", ["ila", "iila", "surrogate", "auto", "spsa"])
def test_every_strategy_spends_exactly_its_budget_within_range(strategy: str, tmp_path: Path) -> None:
    opts = SMALL  # spsa's fit_steps act too: its start is the ILA fit of its exploration pairs
    res = hwloop.train(
        "sim:saleh?seed=1", strategy=strategy, queries=1200, seed=0, run_dir=tmp_path, options=opts
    )
    m = res.metrics
    # SPSA spends in pairs of 32-target evaluations and may leave less than one pair unspent.
    assert m["strategy"] == strategy
    if strategy == "spsa":
        assert 1200 - 64 < m["queries_used"] <= 1200
    elif strategy in ("auto", "surrogate"):  # the re-selection reserve is spent only on two finalists or more
        assert m["queries_used"] + m["unspent"] == 1200 and m["unspent"] <= 120
    else:
        assert m["queries_used"] == 1200
    assert np.isfinite(m["closed_loop_nmse_db"])
    assert m["closed_loop_nmse_db"] < -5
    if strategy == "spsa":  # the baseline starts from ILA on its exploration pairs, then iterates
        assert m["spsa_fit_pairs"] == 120 and m["spsa_iterations"] >= 10
        assert m["spsa_first_loss"] < 0.05  # an untrained inverse starts near 1 (output-spread units)
    log = open_run_log(tmp_path)
    x, _ = log.arrays(None)
    assert log.count("train") == m["queries_used"]
    assert x.min() >= -0.7 and x.max() <= 0.7
    if strategy == "surrogate":
        assert len(m["round_nmse_db"]) >= 2 and -1.0 <= m["grad_cosine"] <= 1.0
    elif strategy == "auto":  # refinement may stop after its first measurement, saying why
        assert len(m["round_nmse_db"]) >= 2 or m["refinement_stopped"]
        assert -1.0 <= m["grad_cosine"] <= 1.0
    else:
        assert "grad_cosine" not in m


def test_auto_reselects_its_checkpoint_on_fresh_targets(tmp_path: Path) -> None:
    """On a folded device refinement runs, and the kept round is chosen by re-measuring the finalists
    (ILA on every pair among them) on shared fresh targets with the one selection rule
    (`hwloop.metrics.keep_index`), each compared with the best paired."""
    opts = TrainOptions(fit_steps=1500, eval_targets=200, noise_repeats=64)
    res = hwloop.train(
        "sim:saleh_folded", strategy="auto", queries=3000, seed=0, run_dir=tmp_path, options=opts
    )
    m = res.metrics
    assert m["refinement_stopped"] is None and len(m["round_nmse_db"]) >= 3
    rounds, fresh, unc = m["finalists_rounds"], m["finalists_remeasured_db"], m["finalists_uncertainty_db"]
    paired = m["finalists_paired_se_db"]
    assert len(rounds) >= 2 and len(fresh) == len(unc) == len(paired) == len(rounds)  # re-selection ran
    # Each compared with the best paired, on the targets they share (the best with itself: 0).
    lead = min(range(len(fresh)), key=lambda i: fresh[i])
    assert paired[lead] == 0 and all(p > 0 for i, p in enumerate(paired) if i != lead)
    assert m["best_round"] == rounds[keep_index(list(zip(fresh, paired, strict=True)))]
    # The start was fitted on one branch of the fold; ILA fitted on every pair measured is a
    # finalist too (round -1), first, so that a round tied with it is kept.
    assert m["ila_every_pair_finalist"] is True and m["ila_start_pairs"]["used"] < m["ila_start_pairs"]["of"]
    assert rounds[0] == BASELINE_ROUND
    scored = [(s, u) for s, u in zip(m["round_nmse_db"], m["round_uncertainty_db"], strict=True)]
    best = min(range(len(scored)), key=lambda i: scored[i][0])
    assert all(tied(scored[r], scored[best]) or r == best for r in rounds[1:])  # rounds: tied


def test_spsa_starts_from_its_exploration_pairs_fitted_as_ila_fits_them(tmp_path: Path) -> None:
    """The baseline's start is the ILA fit of the pairs it explored (the same model and fit as
    `ila` on those pairs): without that fit the comparison credits the surrogate with what any
    fit of the exploration pairs gives."""
    from hwloop.inverses.models import FitConfig, build_regressor, fit_regression
    from hwloop.metrics import nmse_db

    opts = TrainOptions(fit_steps=300, eval_targets=200, noise_repeats=64)
    m = hwloop.train("sim:tanh?seed=1", strategy="spsa", queries=2000, seed=0, run_dir=tmp_path, options=opts)
    x, y = open_run_log(tmp_path).arrays("train")
    x0, y0 = x[:200], y[:200]  # the exploration: a tenth of the budget, asked first
    ila = build_regressor(y0, x0, seed=0, name="inverse")
    fit_regression(ila, y0, x0, FitConfig(steps=300), seed=0)
    t = np.linspace(-0.85, 0.85, 200, dtype=np.float32)[:, None]
    dev = hwloop.open_device("sim:tanh?noise=0")
    start = nmse_db(dev.query(np.clip(np.asarray(ila(t)), -1, 1)), t)
    assert start < -25  # the start is a fitted inverse
    final = nmse_db(dev.query(np.clip(np.asarray(m.inverse.apply(t)), -1, 1)), t)
    assert final < start + 3.0, (final, start)  # SPSA refines it; it does not throw it away
    assert m.metrics["spsa_fit_pairs"] == 200


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lowsnr"])  # saleh_folded: tests/test_matrix.py (auto against ila, 3 seeds)
def test_auto_beats_ila_by_6_db_where_ila_is_biased(name: str, tmp_path: Path) -> None:
    scores = {}
    for strategy in ("ila", "auto"):
        res = hwloop.train(
            f"sim:{name}", strategy=strategy, queries=10_000, seed=0, run_dir=tmp_path / strategy
        )
        scores[strategy] = res.metrics["closed_loop_nmse_clean_db"]
    assert scores["auto"] <= scores["ila"] - 6.0, scores
