"""Typed exceptions: the CLI maps them to one line on stderr and an exit code.

`UsageError` and its subclasses mean the user asked for something that cannot
work as written (exit 2); every other `HwloopError` is a runtime failure
(exit 1).
"""

from __future__ import annotations

import re

_SPELLED = re.compile("\x1f([^\x1e\x1f]*)\x1e([^\x1e\x1f]*)\x1f")


def spelled(cli: str, python: str) -> str:
    """A part of an error message that names options: the command line reads ``cli``
    (``add --resume``), Python ``python`` (``pass resume=True``)."""
    return f"\x1f{cli}\x1e{python}\x1f"


class HwloopError(Exception):
    """Base of every error hwloop raises on purpose.

    ``str(error)`` speaks Python (``resume=True``); `cli_message` speaks the
    command line (``--resume``) where the message was written with `spelled`.
    """

    exit_code = 1

    def __str__(self) -> str:
        return _SPELLED.sub(lambda m: m.group(2), super().__str__())

    def cli_message(self) -> str:
        return _SPELLED.sub(lambda m: m.group(1), super().__str__())


class UsageError(HwloopError, ValueError):
    """Bad input from the user: a URI, an option, a file, a shape."""

    exit_code = 2


class UnknownSchemeError(UsageError):
    """A device URI whose scheme no installed driver provides."""


class BadDeviceParameterError(UsageError):
    """A device URI parameter that is unknown or has a bad value."""


class ShapeError(UsageError):
    """An array whose shape does not fit the device or the model."""


class RunDirError(UsageError):
    """A run directory that is missing, incomplete or corrupted."""


class DeviceError(HwloopError):
    """A device could not answer, or answered something unusable."""


class OutOfRangeError(DeviceError, ValueError):
    """An input outside the device's safe range or not finite; never sent."""


class UnusableAnswer(DeviceError):
    """The device answered, but not with a usable measurement (wrong row count or type,
    non-finite values). Never logged or used. A stateless device may simply be asked
    again; a stateful one may already have applied the input, so its caller resets it
    and re-warms it from the log instead of asking again."""


class NonFiniteAnswer(UnusableAnswer):
    """The device answered NaN or infinity; such an answer is never a measurement."""


class BudgetExhausted(HwloopError):
    """The hard cap on training queries has been reached."""


class DeviceTimeout(DeviceError):
    """A device did not answer in time, even after the allowed retries."""


class DeviceRebooted(DeviceError):
    """A stateful device rebooted mid-sequence: its memory is gone, re-warm it."""


class DeviceDisconnected(DeviceError):
    """The transport went away and could not be re-opened within the retry limit."""


class MissingExtraError(UsageError):
    """An optional feature whose extra is not installed (e.g. Ray for ``hwloop farm``)."""


class DeviceActorDied(DeviceDisconnected):
    """The process holding a farm unit's device died; the unit may resume from its log."""
