"""The device contract: what hwloop needs from anything it can query.

A device is a black box F: (n, in_dim) inputs -> (n, out_dim) outputs, with a
declared safe input range. `BaseDevice` owns what every device needs once -
shape and finiteness checks, bounds enforcement, chunking by ``max_batch``,
counting and timing - so a concrete device implements only ``_query_batch``.

This package is the whole contract a driver or simulator needs: `Device`
and `BaseDevice` (`base`), `DeviceInfo` and the input check (`info`), the
I/Q envelope (`envelope`), URI parameters (`Param`, `parse_params`:
`params`) and the device errors. Drivers and simulators import nothing else
from hwloop.

May import: hwloop.errors and numpy only; everything else in hwloop may
import it.
"""

from __future__ import annotations

from hwloop.device.base import BaseDevice, Device, DeviceStats
from hwloop.device.envelope import IQEnvelope
from hwloop.device.info import DeviceInfo, check_inputs
from hwloop.device.params import Param, parse_params
from hwloop.errors import (
    BadDeviceParameterError,
    DeviceDisconnected,
    DeviceError,
    DeviceRebooted,
    DeviceTimeout,
    HwloopError,
    MissingExtraError,
    NonFiniteAnswer,
    OutOfRangeError,
    ShapeError,
    UnknownSchemeError,
    UnusableAnswer,
    UsageError,
)

__all__ = [
    "BadDeviceParameterError",
    "BaseDevice",
    "Device",
    "DeviceDisconnected",
    "DeviceError",
    "DeviceInfo",
    "DeviceRebooted",
    "DeviceStats",
    "DeviceTimeout",
    "HwloopError",
    "IQEnvelope",
    "MissingExtraError",
    "NonFiniteAnswer",
    "OutOfRangeError",
    "Param",
    "ShapeError",
    "UnknownSchemeError",
    "UnusableAnswer",
    "UsageError",
    "check_inputs",
    "parse_params",
]
