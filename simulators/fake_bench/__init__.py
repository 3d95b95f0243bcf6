"""A fake RF bench for CI and for users without hardware: two TCP SCPI servers behind one PA simulator.

``scpi`` (the transport: framing, blocks, error queue, faults), ``generator``
and ``analyser`` (the generic set of docs/scpi.md, and the R&S SMW/FSW dialect),
``path`` (PA, delay, gain, phase, noise, free-running capture start),
``bench`` (`FakeBench`: both servers and the bench file). ``hwloop
serve-bench`` runs one.

May import: hwloop.device, hwloop.simulators.* (the PA simulators), numpy.
"""
