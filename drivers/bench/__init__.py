"""The RF bench as a device (``bench:FILE.toml``): a generator and an analyser over VISA, or a transceiver.

One module per job, transport apart from instrument (PyMeasure style):
``config`` (the bench file), ``session`` (PyVISA resource, timeouts, recovery,
blocks), ``personalities`` (command spellings: the generic set (docs/scpi.md) and
R&S SMW/FSW), ``instruments`` (settings written and read back), ``alignment``
(delay and averaging of a looped capture), ``interlock`` (arming, limits,
RF off on every abnormal path, the log), ``device`` (`BenchDevice`,
`open_bench`), ``probe`` (delay, gain, noise floor, compression).

The radio's pair of ends beside them, the alignment and interlock shared:
``radio_config`` (the ``[radio]`` table), ``radio`` (a Pluto / AD9361 / AD9364
through pyadi-iio: read-backs, cyclic TX, captures, TX off over a second
context), ``impairments`` (IQ image, carrier offset, DC, capture phase),
``radio_device`` (`RadioDevice`).

May import: hwloop.device and this package only (PyVISA, pyadi-iio, numpy, scipy outside hwloop).
"""
