"""Device URIs: schemes, simulator parameters, entry points, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

import hwloop
from hwloop.errors import BadDeviceParameterError, UnknownSchemeError, UsageError
from hwloop.registry import device_schemes, uri_scheme
from hwloop.simulators.base import SimDevice


@pytest.mark.parametrize(
    ("uri", "scheme"),
    [
        ("sim", "sim"),
        ("sim?seed=3", "sim"),
        ("sim:rapp?noise=1e-3&seed=0", "sim"),
        ("SIM:tanh", "sim"),
        ("serial:///dev/ttyUSB0?baud=115200", "serial"),
        ("/dev/ttyUSB0", "serial"),
        ("COM3", "serial"),
        ("socket://127.0.0.1:7000", "socket"),
        ("rfc2217://farm:2217", "rfc2217"),
        ("loop://", "loop"),
        ("my-plugin.v2:thing", "my-plugin.v2"),
    ],
)
def test_uri_scheme(uri: str, scheme: str) -> None:
    assert uri_scheme(uri) == scheme


@pytest.mark.parametrize("uri", ["", "   ", "1abc:x", "::", "a b"])
def test_malformed_uris_are_usage_errors(uri: str) -> None:
    with pytest.raises(UsageError):
        hwloop.open_device(uri)


def test_builtin_schemes_come_from_entry_points() -> None:
    schemes = device_schemes()
    assert schemes["sim"].value == "hwloop.simulators.catalog:open_sim"


def test_sim_default_is_siso_rapp_with_noise() -> None:
    dev = hwloop.open_device("sim")
    assert isinstance(dev, SimDevice)
    assert (dev.info.name, dev.info.in_dim, dev.info.out_dim) == ("rapp", 1, 1)
    assert dev.noise == pytest.approx(1e-3)


def test_default_sim_takes_parameters() -> None:
    dev = hwloop.open_device("sim?seed=11&noise=0.002")
    assert (dev.info.name, dev.seed, dev.noise) == ("rapp", 11, 0.002)
    assert hwloop.open_device("sim://tanh").info.name == "tanh"


def test_sim_parameters_are_applied() -> None:
    dev = hwloop.open_device("sim:tanh?noise=0.01&seed=7&gain=2&max_batch=5&input_noise=0.002")
    assert dev.noise == 0.01 and dev.seed == 7 and dev.input_noise == 0.002
    assert dev.info.max_batch == 5
    x = np.array([[0.3]], np.float32)
    assert dev.clean(x)[0, 0] == pytest.approx(np.tanh(0.6), rel=1e-6)


def test_same_uri_same_answers_different_seed_different() -> None:
    x = np.linspace(-1, 1, 50, dtype=np.float32)[:, None]
    a = hwloop.open_device("sim:rapp?seed=3").query(x)
    b = hwloop.open_device("sim:rapp?seed=3").query(x)
    c = hwloop.open_device("sim:rapp?seed=4").query(x)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize(
    ("uri", "fragment"),
    [
        ("sim:rapp?bogus=1", "unknown parameter 'bogus'"),
        ("sim:rapp?noise=abc", "not a valid float"),
        ("sim:rapp?noise=-1", "noise must be >= 0"),
        ("sim:rapp?noise=nan", "not a valid float"),
        ("sim:rapp?seed=1.5", "not a valid int"),
        ("sim:rapp?max_batch=0", "max_batch"),
        ("sim:quantised?bits=40", "bits"),
    ],
)
def test_bad_parameters(uri: str, fragment: str) -> None:
    with pytest.raises(BadDeviceParameterError, match=fragment.replace("(", r"\(")):
        hwloop.open_device(uri)


def test_unknown_scheme_and_simulator() -> None:
    with pytest.raises(UnknownSchemeError, match="unknown device scheme 'nosuch'"):
        hwloop.open_device("nosuch:thing")
    with pytest.raises(UnknownSchemeError, match="unknown simulator 'nosuch'"):
        hwloop.open_device("sim:nosuch")


def test_device_objects_pass_through_and_others_are_refused() -> None:
    dev = hwloop.open_device("sim:cubic")
    assert hwloop.open_device(dev) is dev
    with pytest.raises(UsageError, match="expected a device URI or a Device"):
        hwloop.open_device(42)  # type: ignore[arg-type]
