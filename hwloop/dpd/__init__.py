"""Digital predistortion as signal processing, in numpy: nothing here trains a network.

Owns signals (OFDM generation, I/Q files, datasets, their sample rates),
the field's metrics (ACPR, ACLR, EVM, NMSE; EVM by demodulation in demod),
the generalised memory polynomial and its conditioned least squares
(fitting), indirect learning (ila) and its time alignment (align), direct
learning through a surrogate's Jacobian (direct), judging and keeping rounds
by the field's figures (judge), crest factor reduction (cfr) and a run's
signal path (path); the report draws its I/Q panels (`hwloop.report.iq`).

May import: hwloop.errors, hwloop.metrics (the one rule for noisy scores),
numpy, scipy.
Never imports Keras, strategies, the meter, the run or the CLI.
"""
