"""The ILA start's branch on a folded device (`hwloop.strategies.fold.main_branch`), on exact
device models: one piece of the majority sign of det J, not every row of that sign."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from hwloop.simulators.shapes import MIMO_COUPLING, MIMO_GAIN
from hwloop.strategies.fold import branch_rows, jacobian_det, main_branch


def _saleh_of_mixed(a: np.ndarray) -> keras.Model:
    """y = 2u / (1 + u^2), u = x A^T: `sim:mimo3_folded` (or a 1-D fold), as a Keras model."""
    mix = tf.constant(a.T, tf.float32)
    inp = keras.Input((a.shape[1],))
    out = keras.layers.Lambda(lambda x: 2.0 * (x @ mix) / (1.0 + (x @ mix) ** 2))(inp)
    return keras.Model(inp, out)


def test_on_three_folded_channels_the_branch_is_the_one_inside_every_fold() -> None:
    a = np.diag(MIMO_GAIN) + MIMO_COUPLING  # mimo3_folded's default coupling
    x = np.random.default_rng(0).uniform(-1.8, 1.8, (2000, 3)).astype(np.float32)
    model = _saleh_of_mixed(a)
    inner = np.all(np.abs(x @ a.T) < 1.0, axis=1)  # no channel past its peak: reaches every output
    det = jacobian_det(model, x)
    branch, check = main_branch(x, model)
    assert check.one_to_one is False
    assert np.sum((det > 0) & ~inner) > 300  # rows past two peaks keep the sign
    assert np.sum(branch & ~inner) <= 0.02 * np.sum(branch)
    assert np.mean(branch[inner]) >= 0.95


def test_on_one_fold_the_branch_is_every_row_of_the_majority_sign() -> None:
    x = np.random.default_rng(1).uniform(-1.8, 1.8, (500, 1)).astype(np.float32)
    branch, check = main_branch(x, _saleh_of_mixed(np.eye(1)))
    assert check.one_to_one is False
    np.testing.assert_array_equal(branch, np.abs(x[:, 0]) < 1.0)


def test_rows_two_close_folds_apart_are_not_joined() -> None:
    """Two rows whose segment crosses two folds 0.07 and 0.08 of the way along (det J negative
    between them, positive at both ends): the checks along it must see the dip between the folds,
    which falls between two of them at 8 points and was missed on fitted surrogates of
    sim:mimo3_folded."""
    x = np.array([[0.9605, 0.9504], [1.5426, 1.5791]], np.float32)
    model = _saleh_of_mixed(np.eye(2))
    det = jacobian_det(model, x)
    assert np.all(det > 0)
    branch = branch_rows(x, det, model)
    assert branch.sum() == 1
