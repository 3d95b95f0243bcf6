"""Training strategies: each spends a metered device's budget and returns an inverse.

Owns one module per strategy (ila, iila, surrogate, auto, spsa, sequence,
sequence_forward, held, calibrate, dpd, offline), each with one entry point
``train(ctx) -> Outcome``; their shared pieces (`base`: Settings, Context,
Outcome; `registry`: which strategy runs for which settings; `joint`: the
surrogate and inverse trained in one step; `gauss_newton`: the one
Gauss-Newton step; `rounds`: device rounds and the one re-selection rule;
`parent`: a run to start from).

May import: hwloop.inverses, hwloop.dpd, hwloop.device_op, hwloop.metered
(the only way to a device), hwloop.metrics, hwloop.device, hwloop.errors.
Never imports drivers, simulators, the registry of devices, the query log,
the run directory, the run or the CLI.
"""
