"""pytest plugin shipped with hwloop: device fixtures for the tests of a device plugin or an application.

Installed through the ``pytest11`` entry point, so any project that has hwloop
installed gets, without a conftest:

- ``--device-url URL``: run the tests against a real device;
- ``hwloop_device``: the device under test, opened from ``--device-url`` when
  given, else from the ``hwloop_device("URI")`` marker nearest the test, else
  from the ini option ``hwloop_default_device`` (default ``sim``); closed
  after the test;
- ``sim_device(name, **params)``: a factory of catalogue simulators
  (`hwloop.simulators.catalog.make_sim`), all closed after the test.

Because pytest loads this module for every session in an environment where
hwloop is installed, it imports hwloop only inside the fixtures.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # pragma: no cover
    from hwloop.device import Device
    from hwloop.simulators.base import SimDevice

OPTION = "--device-url"
INI_DEFAULT = "hwloop_default_device"
MARKER = "hwloop_device"
FALLBACK_URI = "sim"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hwloop", "hwloop device under test")
    group.addoption(
        OPTION,
        action="store",
        default=None,
        dest="device_url",
        metavar="URL",
        help="URI of a real device (e.g. serial:///dev/ttyACM0) for the hwloop_device fixture "
        "and the tests marked 'hardware'.",
    )
    parser.addini(
        INI_DEFAULT,
        help=f"device URI the hwloop_device fixture opens without {OPTION} (default: {FALLBACK_URI})",
        default=FALLBACK_URI,
    )


def pytest_configure(config: pytest.Config) -> None:
    # HWLOOP_DOCS_QUICK shrinks the budgets of the docs' commands; a test session (the docs'
    # `pytest ...` commands included) keeps the budgets its tests ask for.
    os.environ.pop("HWLOOP_DOCS_QUICK", None)
    config.addinivalue_line(
        "markers",
        f"{MARKER}(uri): the device URI the hwloop_device fixture opens when {OPTION} is not given, "
        'e.g. @pytest.mark.hwloop_device("sim:saleh_iq").',
    )


def pytest_report_header(config: pytest.Config) -> str | None:
    url = config.getoption("device_url")
    return f"hwloop: device under test {url}" if url else None


def device_uri(request: pytest.FixtureRequest) -> str:
    """The URI ``hwloop_device`` opens: --device-url, then the marker, then the ini option."""
    url = request.config.getoption("device_url")
    if url:
        return str(url)
    marker = request.node.get_closest_marker(MARKER)
    if marker is not None:
        uri = marker.args[0] if marker.args else marker.kwargs.get("uri")
        if not isinstance(uri, str) or not uri.strip():
            raise pytest.UsageError(f'@pytest.mark.{MARKER} needs one URI string, e.g. {MARKER}("sim:tanh")')
        return uri
    return str(request.config.getini(INI_DEFAULT) or FALLBACK_URI)


@pytest.fixture
def hwloop_device(request: pytest.FixtureRequest) -> Iterator[Device]:
    """The device under test (see `device_uri` for which one), closed after the test."""
    from hwloop.registry import open_device

    dev = open_device(device_uri(request))
    try:
        yield dev
    finally:
        dev.close()


@pytest.fixture
def sim_device() -> Iterator[Callable[..., SimDevice]]:
    """``sim_device("saleh_iq", noise=0, seed=1)``: a catalogue simulator; every one made is closed."""
    from hwloop.simulators.catalog import DEFAULT_SIM, make_sim

    made: list[SimDevice] = []

    def make(name: str = DEFAULT_SIM, **params: object) -> SimDevice:
        dev = make_sim(name, **params)
        made.append(dev)
        return dev

    try:
        yield make
    finally:
        for dev in reversed(made):
            dev.close()
