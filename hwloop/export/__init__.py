"""Deployable forms of a trained inverse: fixed-point C, TFLite, GMP coefficients.

Owns, one module per job: `fixed` (Q formats, rounding, saturation, the
fixed-point tanh and square root: the numpy half of bit-exactness), `mlp`
and `gmp` (each family quantised, with its numpy bit-exact reference),
`cgen_mlp` and `cgen_gmp` (the C99 source for them), `golden` (golden
vectors, the C check program, the manifest with SHA-256 of every file),
`tflite` (float16 and full-integer int8 through TensorFlow's converter,
run through the TFLite interpreter), `coeffs` (GMP coefficients as CSV with
the basis definition), `source` (what a run directory gives an export: the
inverse, its device, representative data from the query log), `build`
(one export, by format) and `loaded` (an export read back as an inverse
with ``apply(t)``, for ``hwloop eval --exported``).

May import: hwloop.errors, hwloop.dpd, hwloop.inverses, hwloop.querylog,
hwloop.rundir, hwloop.evaluate, hwloop.metered, hwloop.metrics, numpy and
TensorFlow. Nothing in hwloop.dpd or hwloop.inverses imports this package;
only the CLI does.
"""
