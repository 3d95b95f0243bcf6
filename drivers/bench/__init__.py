"""The RF bench as a device (``bench:FILE.toml``): a vector signal generator and a signal analyser over VISA.

One module per job, transport apart from instrument (PyMeasure style):
``config`` (the bench file), ``session`` (PyVISA resource, timeouts, recovery,
blocks), ``personalities`` (command spellings: the generic set (docs/scpi.md) and
R&S SMW/FSW), ``instruments`` (settings written and read back), ``alignment``
(delay and averaging of a looped capture), ``interlock`` (arming, limits,
RF off on every abnormal path, the log), ``device`` (`BenchDevice`,
`open_bench`), ``probe`` (delay, gain, noise floor, compression).

May import: hwloop.device and this package only (PyVISA, numpy, scipy outside hwloop).
"""
