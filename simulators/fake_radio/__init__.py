"""A fake software-defined radio for CI and users without hardware: libiio's network protocol, an amplifier.

``context`` (the AD936x-like devices, channels, attributes and their XML),
``iiod`` (the libiio 0.x text protocol over TCP: framing, buffers, faults),
``rf`` (DAC, amplifier, delay, gain, residual carrier offset, IQ imbalance,
DC offset, noise, 12-bit ADC, free-running capture start), ``radio``
(`FakeRadio`: the server, the state and the bench file). ``hwloop serve-bench
--radio`` runs one; libiio's own client (pyadi-iio over pylibiio) talks to it.

May import: hwloop.device, hwloop.simulators.* (the amplifier simulators, the fake bench's
fractional delay), numpy.
"""
