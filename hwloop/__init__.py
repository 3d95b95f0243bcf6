"""hwloop: train a neural network to be the inverse of a device you can only query.

Importing hwloop is cheap: TensorFlow loads only when training or loading a
model needs it (``train``, ``load_inverse``).
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
    "farm",
    "load_inverse",
    "open_device",
    "train",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())


def _source_tree_subpackages() -> None:
    """In a source checkout, drivers/ and simulators/ sit beside hwloop/ and
    install as hwloop.drivers and hwloop.simulators. Let `import hwloop` from
    the checkout's root (``python -m hwloop.cli``) find them there too; an
    installed hwloop has them inside and is left alone."""
    import os

    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    if not os.path.isdir(os.path.join(here, "drivers")) and all(
        os.path.isfile(os.path.join(root, sub, "__init__.py")) for sub in ("drivers", "simulators")
    ):
        __path__.append(root)  # type: ignore[name-defined]  # hwloop.X also looks in root/X


_source_tree_subpackages()

if TYPE_CHECKING:  # pragma: no cover
    from hwloop.farm import farm
    from hwloop.inverse import load_inverse
    from hwloop.run import train


def __getattr__(name: str) -> Any:
    if name == "train":
        from hwloop.run import train

        return train
    if name == "farm":  # the module, callable as the function; needs Ray only when called
        import importlib

        return importlib.import_module("hwloop.farm")
    if name == "load_inverse":
        from hwloop.inverse import load_inverse

        return load_inverse
    raise AttributeError(f"module 'hwloop' has no attribute {name!r}")
