"""Error-feedback rounding of the last hidden layer (`hwloop.export.shaping`): what it promises.

- every shaped activation is one of the two words nearest the table's tanh
  (only the choice between them changes);
- on an MLP whose last layer is ordered as `extract` orders it, the error its
  8-bit activations add to the output falls by more than 10 dB against nearest
  rounding;
- the layer before it, rounded through the output's sensitivity to each unit
  (probed at the nearest words), adds more than 10 dB less to the output than
  nearest rounding does;
- the scaled running errors fit int64 at the widest words a layer can hold;
- an export below 16-bit activations says it shapes, and 16 bits does not.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_export_qat import random_mlp

from hwloop.export.fixed import QFormat, tanh_input, tanh_q
from hwloop.export.mlp import quantize
from hwloop.export.mlp_float import order_units
from hwloop.export.shaping import ERROR_BITS, TABLE, error_shifts, shaped_words


def _targets(n: int = 4000) -> np.ndarray:
    return np.random.default_rng(3).normal(0, 0.5, (n, 2))


def _last_layer_error_db(q, mlp, t: np.ndarray) -> float:
    """What the last layer's rounding adds to the output, over the output's power: its words
    against the table's tanh, through the output words."""
    _, _, s, o = mlp.parts(t)
    h = q.standardised(q.fmt_t.quantize(t))
    last = len(q.hidden) - 1
    for k in range(last):
        h = q.activation(k, h)
    err = q.fmt_h.value(q.activation(last, h)) - TABLE.value(q.table_words(last, h))
    out = err @ (q.out.wide / 2.0**q.out.wfrac)
    return float(10 * np.log10(np.mean(out**2) / np.mean((s + o) ** 2)))


def test_each_shaped_word_is_one_of_the_two_nearest() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(-TABLE.hi, TABLE.hi + 1, (500, 12))
    fmt = QFormat(8, 7)
    wide = rng.integers(-127, 128, (12, 2))
    words = shaped_words(y, wide, error_shifts(wide, np.array([7, 9]), 8), fmt)
    floor = np.clip(np.floor_divide(y, 256), fmt.lo, fmt.hi)
    assert np.all((words == floor) | (words == np.minimum(floor + 1, fmt.hi)))
    assert np.any(words != np.clip(np.floor(y / 256 + 0.5), fmt.lo, fmt.hi))  # it does choose


def _ordered_8_bit(seed: int, d_out: int):
    """A random 2 -> 48 -> 48 -> d_out MLP ordered as `extract` orders it, its targets, and its
    words at 16-bit weights and 8-bit activations."""
    mlp = random_mlp(seed, d_out=d_out, width=48)
    t = _targets()
    order_units(mlp, t)
    return mlp, t, quantize(mlp, t, 16, 8, 16)


@pytest.mark.parametrize("d_out", [1, 2, 3])
def test_shaping_cuts_the_output_error_of_8_bit_activations(d_out: int) -> None:
    mlp, t, q = _ordered_8_bit(5, d_out)
    assert q.shaped
    shaped = _last_layer_error_db(q, mlp, t)
    q.shaped = False
    nearest = _last_layer_error_db(q, mlp, t)
    assert shaped < nearest - 10.0, (shaped, nearest)


def _output_db(q, mlp, t: np.ndarray, probed: bool) -> float:
    """The export's output (standardised, before the drive's words) against the float model's,
    the penultimate layer's words probed or nearest."""
    _, _, s, o = mlp.parts(t)
    z = q.standardised(q.fmt_t.quantize(t))
    layer = q.hidden[0]
    h = q.activation(0, z) if probed else tanh_q(tanh_input(layer.acc(z), layer.shift), q.fmt_h)
    h = q.activation(1, h)
    zo = (q.skip.acc(z) / 2.0 ** (q.skip.wfrac + q.fmt_z.frac)) + (
        q.out.acc(h) / 2.0 ** (q.out.wfrac + q.fmt_h.frac)
    )
    return float(10 * np.log10(np.mean((zo - s - o) ** 2) / np.mean((s + o) ** 2)))


@pytest.mark.parametrize("d_out", [1, 2, 3])
def test_the_probe_cuts_what_the_layer_before_adds(d_out: int) -> None:
    mlp, t, q = _ordered_8_bit(7, d_out)
    probed, nearest = _output_db(q, mlp, t, True), _output_db(q, mlp, t, False)
    assert probed < nearest - 10.0, (probed, nearest)


def test_the_running_error_fits_int64_at_the_widest_words() -> None:
    wide = np.full((256, 3), (1 << 15) - 1, np.int64) << 8  # 16-bit words shifted by a block's exponent
    wfrac = np.array([20, 24, 30])
    shifts = error_shifts(wide, wfrac, 8)
    assert np.all(shifts >= 0)
    worst = (np.sum(np.abs(wide), axis=0) << 8) >> shifts
    assert np.all(worst < 1 << ERROR_BITS)
    assert 3 * int(worst.max()) ** 2 < 1 << 63


def test_exports_below_16_bit_activations_shape_and_16_bits_does_not() -> None:
    mlp = random_mlp(2)
    t = _targets(500)
    assert quantize(mlp, t, 8, 8, 16).to_dict()["act_rounding"] == "feedback"
    assert quantize(mlp, t, 8, 16, 16).to_dict()["act_rounding"] == "nearest"
