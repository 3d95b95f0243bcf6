"""Digital predistortion as signal processing, in numpy: nothing here trains a network.

Owns signals (OFDM generation, I/Q files, datasets), the field's metrics
(ACPR, ACLR, EVM, NMSE), the generalised memory polynomial and its least
squares, direct learning through a surrogate's Jacobian, crest factor
reduction and the report's I/Q panels.

May import: hwloop.errors, numpy, scipy (matplotlib inside the panels).
Never imports Keras, strategies, the meter, the run or the CLI.
"""
