"""hwloop: train a neural network to be the inverse of a device you can only query.

Importing hwloop is cheap: TensorFlow loads only when training or loading a
model needs it (``train``, ``load_inverse``). A source checkout works after
``pip install -e .``, which installs ``drivers/`` and ``simulators/`` as
``hwloop.drivers`` and ``hwloop.simulators``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from hwloop.device import BaseDevice, Device, DeviceInfo
from hwloop.errors import HwloopError, UsageError
from hwloop.registry import open_device

__version__ = "0.1.0"
__all__ = [
    "BaseDevice",
    "Device",
    "DeviceInfo",
    "HwloopError",
    "UsageError",
    "__version__",
    "load_inverse",
    "open_device",
    "run_farm",
    "track",
    "train",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())


if TYPE_CHECKING:  # pragma: no cover
    from hwloop.farm.api import run_farm
    from hwloop.inverses.store import load_inverse
    from hwloop.run import train
    from hwloop.tracking import track


def __getattr__(name: str) -> Any:
    if name == "train":
        from hwloop.run import train

        return train
    if name == "run_farm":  # needs Ray only when called
        from hwloop.farm.api import run_farm

        return run_farm
    if name == "track":  # watch a deployed predistorter (hwloop track)
        from hwloop.tracking import track

        return track
    if name == "load_inverse":
        from hwloop.inverses.store import load_inverse

        return load_inverse
    raise AttributeError(f"module 'hwloop' has no attribute {name!r}")
