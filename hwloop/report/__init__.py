"""`hwloop report`: report.png from a run directory's files alone.

Owns the figure (`figure`); the I/Q panels it draws for a signal run live in
`hwloop.dpd.panels`. May import: the run directory, the query log, hwloop.dpd
panels, matplotlib. Never imports TensorFlow, strategies or the meter.
"""
