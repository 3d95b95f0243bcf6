"""Open a device from a URI through the ``hwloop.devices`` entry points.

Every scheme, built-in or third-party, is an entry point
``scheme = "pkg.module:factory"`` with ``factory(uri) -> Device``; the
registry itself names no concrete device. A bare port path (``/dev/ttyUSB0``,
``COM3``) is read as the ``serial`` scheme, as pyserial does.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points

from hwloop.device import Device, Param, parse_params
from hwloop.errors import UnknownSchemeError, UsageError

log = logging.getLogger(__name__)

__all__ = [
    "ENTRY_POINT_GROUP",
    "Param",
    "check_uri",
    "device_schemes",
    "open_device",
    "parse_params",
    "uri_scheme",
]

ENTRY_POINT_GROUP = "hwloop.devices"
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")
_BARE_PORT_RE = re.compile(r"^(/dev/|COM\d+$|\\\\\.\\)", re.IGNORECASE)


def uri_scheme(uri: str) -> str:
    """The scheme of a device URI; ``sim`` alone and bare port paths included."""
    uri = uri.strip()
    if not uri:
        raise UsageError("empty device URI")
    if _BARE_PORT_RE.match(uri):
        return "serial"
    m = _SCHEME_RE.match(uri)
    if m:
        return m.group(1).lower()
    m = re.fullmatch(r"([A-Za-z][A-Za-z0-9+.\-]*)(\?.*)?", uri)
    if m:  # "sim" or "sim?seed=1": a scheme's default device, with parameters
        return m.group(1).lower()
    raise UsageError(f"not a device URI: {uri!r} (expected e.g. 'sim', 'sim:rapp?noise=1e-3')")


def device_schemes() -> dict[str, EntryPoint]:
    """Every scheme an installed package provides, by name."""
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name.lower(), ep)
    return found


def _factory(uri: str) -> tuple[str, Callable[[str], Device]]:
    scheme = uri_scheme(uri)
    schemes = device_schemes()
    ep = schemes.get(scheme)
    if ep is None:
        known = ", ".join(sorted(schemes)) or "none installed"
        raise UnknownSchemeError(f"unknown device scheme {scheme!r} in {uri!r} (known: {known})")
    try:
        return scheme, ep.load()
    except Exception as exc:  # a broken plugin must not look like a bad URI
        raise UsageError(f"device scheme {scheme!r}: cannot load {ep.value}: {exc}") from exc


def check_uri(uri: str) -> str:
    """Refuse a URI that cannot name a device, without opening one; returns its scheme.

    Checks the scheme, and the parameters where the scheme's factory has a
    ``check(uri)`` attribute (the simulators, the serial schemes, bench
    files). Needs no TensorFlow, so a command refuses a bad URI at once.
    """
    scheme, factory = _factory(uri)
    check = getattr(factory, "check", None)
    if callable(check):
        check(uri.strip())
    return scheme


def open_device(uri: str | Device) -> Device:
    """Open the device a URI names; a `Device` object is returned as it is."""
    if not isinstance(uri, str):
        if isinstance(uri, Device):
            return uri
        raise UsageError(f"expected a device URI or a Device, got {type(uri).__name__}")
    scheme, factory = _factory(uri)
    device = factory(uri.strip())
    if not isinstance(device, Device):
        raise UsageError(f"device scheme {scheme!r}: factory returned {type(device).__name__}, not a Device")
    log.info("opened %s as %r", uri, device)
    return device
