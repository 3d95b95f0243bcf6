"""Rounds judged by the field's figures on a held-out window, and the rule that keeps one."""

from __future__ import annotations

import numpy as np
import pytest

from hwloop.dpd.gmp import Stretch
from hwloop.dpd.judge import Judgement, contenders, judge, keep_round
from hwloop.dpd.signals import OFDMSpec, cplx, ofdm


def _j(acpr: float, evm: float, nmse: float = -45.0, se: float = 0.3) -> Judgement:
    return Judgement(acpr, se, -acpr, evm, se, nmse, se, 2000)


def test_a_clearly_better_acpr_replaces_the_warm_start_even_when_nmse_cannot_tell() -> None:
    """The case NMSE judged wrong: the warm start at -51.3 dBc, a round at -58.2 dBc, their NMSE
    within its uncertainty of each other."""
    warm, step = _j(-51.3, -47.0, nmse=-44.0, se=0.5), _j(-58.2, -47.5, nmse=-44.3, se=0.5)
    assert keep_round([warm, step], prefer=[0]) == 1


def test_tied_acpr_is_decided_by_evm_and_a_full_tie_keeps_the_incumbent() -> None:
    assert keep_round([_j(-55.0, -45.0), _j(-55.2, -49.0)], prefer=[0]) == 1  # EVM 4 dB better
    assert keep_round([_j(-55.0, -45.0), _j(-55.2, -45.3)], prefer=[0]) == 0  # nothing to tell them apart
    assert keep_round([_j(-55.0, -45.0), _j(-55.2, -45.3)]) == 1  # no incumbent: the latest
    # ACPR decides first: a round clearly better in the adjacent channels is kept at a worse EVM
    assert keep_round([_j(-52.0, -49.0), _j(-57.0, -46.0)], prefer=[0]) == 1
    # an ACPR tie with a clearly worse EVM is not a contender
    assert contenders([_j(-55.0, -49.0), _j(-55.3, -44.0), _j(-50.0, -50.0)]) == [0]
    with pytest.raises(ValueError):
        keep_round([])


def test_judge_reads_the_figures_of_a_held_out_window() -> None:
    u = 2.0 * cplx(ofdm(OFDMSpec(n=8000, seed=3)))
    y = u * (1 - 0.01 * np.abs(u) ** 2)
    j = judge(y, u, fs=800e6, bw=200e6)
    assert j.samples == 8000 and -70 < j.acpr_dbc < -30 and j.aclr_db == pytest.approx(-j.acpr_dbc, abs=3)
    assert 0 < j.acpr_se_db < 1 and 0 < j.evm_se_db < 1 and j.evm_db < j.nmse_db + 3
    info = j.info()
    assert info["judge_acpr_dbc"] == round(j.acpr_dbc, 3) and info["judge_samples"] == 8000


def test_the_judged_window_is_contiguous_and_never_the_peak_window() -> None:
    z = cplx(ofdm(OFDMSpec(n=20000, seed=1)))
    peak = int(np.argmax(np.abs(z)))
    windows = [(0, 1000), (5000, 6000), (peak - 500, peak + 500), (19000, 20000)]
    windows = sorted(windows)
    s = Stretch(z, windows, guard=16)
    rows = s.judged()
    owner = np.repeat(np.arange(len(windows)), [b - a for a, b in windows])
    held = set(owner[rows])
    assert len(held) == 1 and windows[held.pop()] != (peak - 500, peak + 500)
    assert rows.stop - rows.start == 1000 - 16  # the window past its guard
    one = Stretch.whole(ofdm(OFDMSpec(n=4000, seed=1)))
    assert one.judged() == slice(3000, 4000)  # one window: its last quarter


def test_rounds_judged_on_the_same_window_are_compared_paired() -> None:
    """Two outputs on one window, the second's distortion 1.5 dB smaller: each figure's own
    uncertainty (a short window) cannot tell them apart, their paired difference can."""
    u = 2.0 * cplx(ofdm(OFDMSpec(n=20000, seed=5)))[5000:6200]
    rng = np.random.default_rng(0)
    dist = -0.01 * u * np.abs(u) ** 2 + 1e-3 * (rng.normal(size=len(u)) + 1j * rng.normal(size=len(u)))
    first = judge(u + dist, u, fs=800e6, bw=200e6)
    second = judge(u + 10 ** (-1.5 / 20) * dist, u, fs=800e6, bw=200e6)
    gap = first.acpr_dbc - second.acpr_dbc
    assert gap == pytest.approx(1.5, abs=0.1)
    assert gap < 2 * np.hypot(first.acpr_se_db, second.acpr_se_db)  # unpaired: tied
    assert gap > 2 * first.difference_se_db(second, "acpr")  # paired: told apart
    assert keep_round([first, second], prefer=[0]) == 1
