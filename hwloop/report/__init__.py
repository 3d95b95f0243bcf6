"""`hwloop report`: report.png from a run directory's files alone.

Owns reading the run (`data`), the panels every run has (`panels`) and the
figure that lays them out (`figure`, ``write_report``); the I/Q panels it draws for a signal run live in
`hwloop.dpd.panels`. May import: the run directory, the query log, hwloop.dpd
panels, matplotlib. Never imports TensorFlow, strategies or the meter.
"""

from hwloop.report.figure import write_report

__all__ = ["write_report"]
