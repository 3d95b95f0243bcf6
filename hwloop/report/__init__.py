"""`hwloop report`: report.png from a run directory's files alone.

Owns reading the run (`data`), its measured rounds as metrics.json numbers
them (`rounds`), the panels every run has (`panels`), the I/Q panels of a
2->2 run (`iq`: spectrum for a signal run, AM/AM, AM/PM) and the figure that
lays them out (`figure`, ``write_report``). May import: the run directory,
the query log, hwloop.dpd, scipy, matplotlib. Never imports TensorFlow,
strategies or the meter.
"""

from hwloop.report.figure import write_report

__all__ = ["write_report"]
