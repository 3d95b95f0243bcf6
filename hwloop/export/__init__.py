"""Deployable forms of a trained inverse: fixed-point C, TFLite, GMP coefficients.

Owns, one module per job: `fixed` (Q formats, rounding, saturation, the
fixed-point tanh, square root and envelope limit: the numpy half of
bit-exactness), `mlp_float` (the float MLP read out of its Keras graph),
`words` (the input and output words the MLP and GRU share), `mlp`, `gru`
and `gmp` (each family quantised, with its numpy bit-exact
reference: the MLP with per-unit or per-block weight formats, the GRU with
its state, the GMP as gain tables), `ptq` (layer-wise refit and
error-feedback rounding), `cgen_mlp`, `cgen_gru` and `cgen_gmp` (the C99
source for them, sharing `cgen_common`), `qat_model` (the MLP's exported
arithmetic as a trainable Keras model, straight-through) and `qat`
(fine-tuning it with the device in the loop), `golden` (golden vectors, the
C check program, the manifest with SHA-256 of every file), `tflite`
(float16, 16x8 and full int8 through TensorFlow's converter, run through
the TFLite interpreter), `coeffs` (GMP coefficients as CSV with the basis
definition), `source` (what a run directory gives an export: the inverse,
its device, representative data from the query log), `build` (one export,
by format) and `loaded` (an export read back as an inverse with
``apply(t)``, checked against its manifest and its run, for
``hwloop eval --exported``).

May import: hwloop.errors, hwloop.device, hwloop.dpd, hwloop.inverses,
hwloop.querylog, hwloop.rundir, hwloop.evaluate, hwloop.metered,
hwloop.metrics, hwloop.registry (the fine-tuning's device), hwloop.strategies
(the surrogate, joint steps and rounds the fine-tuning shares with
training), numpy, scipy and TensorFlow. Nothing in hwloop.dpd,
hwloop.inverses or hwloop.strategies imports this package; only the CLI
does.
"""
