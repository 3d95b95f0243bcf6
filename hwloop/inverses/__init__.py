"""Inverse families: the models M that map targets to device inputs.

Owns the Keras building blocks (`layers`: standardisation, `MaskedDense`;
`models`: the regressor and its fit loop), the families (`base`: the
memoryless MLP inverse; `tapped`: delay-line MLP; `gru`: recurrent; `gmp`:
the polynomial predistorter's Keras form; `held`: per-output heads and
masked losses) and `store`, the one save/load registry over them.

May import: hwloop.errors, hwloop.dpd (the numpy GMP that `gmp` wraps),
Keras/TensorFlow. Never imports strategies, the meter, the run or the CLI.
"""
