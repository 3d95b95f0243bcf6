"""Closed-loop NMSE and the noise floor on cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from hwloop.metrics import db_or_none, nmse_db, noise_floor_db, noise_variance, paired_difference_se_db


def test_nmse_of_a_ten_percent_gain_error_is_minus_20_db(rng: np.random.Generator) -> None:
    t = rng.normal(size=(1000, 2))
    assert nmse_db(1.1 * t, t) == pytest.approx(-20.0, abs=1e-9)


def test_nmse_exact_match_and_errors() -> None:
    t = np.ones((3, 1))
    assert nmse_db(t, t) == float("-inf")
    assert db_or_none(float("-inf")) is None and db_or_none(-12.34567) == -12.346
    with pytest.raises(ValueError, match="shapes differ"):
        nmse_db(np.ones((3, 1)), np.ones((3, 2)))
    with pytest.raises(ValueError, match="all zero"):
        nmse_db(np.ones((3, 1)), np.zeros((3, 1)))


def test_noise_variance_and_floor_recover_a_known_sigma(rng: np.random.Generator) -> None:
    clean = rng.uniform(-1, 1, size=(20000, 2))
    sigma = np.array([0.01, 0.03])
    a = clean + rng.normal(size=clean.shape) * sigma
    b = clean + rng.normal(size=clean.shape) * sigma
    var = noise_variance(a, b)
    np.testing.assert_allclose(var, sigma**2, rtol=0.05)
    expected = 10 * np.log10(np.sum(sigma**2) / np.mean(np.sum(clean**2, axis=1)))
    assert noise_floor_db(var, clean) == pytest.approx(expected, abs=0.2)
    assert noise_floor_db(np.zeros(2), clean) == float("-inf")


def test_paired_difference_is_tighter_than_the_errors_combined_and_matches_its_spread() -> None:
    """Two checkpoints read on the same targets share each target's difficulty; the paired standard
    error of their NMSE difference is what the difference varies by over fresh target sets."""
    rng = np.random.default_rng(0)
    diffs, paired, combined = [], [], []
    for _ in range(400):
        hard = rng.exponential(1.0, 200)  # per-target difficulty, common to both
        a, b = hard * rng.uniform(0.9, 1.1, 200), 0.8 * hard * rng.uniform(0.9, 1.1, 200)
        diffs.append(10 * np.log10(a.mean() / b.mean()))
        paired.append(paired_difference_se_db(a, b))
        combined.append(np.hypot(*(10 / np.log(10) * x.std() / (x.mean() * np.sqrt(len(x))) for x in (a, b))))
    assert np.mean(paired) == pytest.approx(np.std(diffs), rel=0.15)
    assert np.mean(paired) < 0.2 * np.mean(combined)
    assert paired_difference_se_db(np.ones(5), np.ones(5)) == 0.0
