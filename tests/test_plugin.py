"""A device scheme from a separately installed package trains from the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PLUGIN_PYPROJECT = """
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "hwloop-demo-plugin"
version = "0.1.0"

[project.entry-points."hwloop.devices"]
demo = "hwloop_demo:open_demo"

[tool.setuptools]
py-modules = ["hwloop_demo"]
"""

PLUGIN_MODULE = '''
"""A third-party device: a soft limiter with an adjustable gain."""
from urllib.parse import urlsplit

import numpy as np

from hwloop import BaseDevice, DeviceInfo
from hwloop.registry import Param, parse_params


class Limiter(BaseDevice):
    def __init__(self, gain: float) -> None:
        super().__init__(DeviceInfo("demo-limiter", 1, 1, 64, (-1.0,), (1.0,), firmware="demo 0.1"))
        self.gain = gain
        self.rng = np.random.default_rng(0)

    def _query_batch(self, x):
        return np.tanh(self.gain * x) + self.rng.normal(0, 1e-3, x.shape)


def open_demo(uri: str) -> Limiter:
    params = parse_params(urlsplit(uri).query, {"gain": Param(float, 1.0)}, where="demo")
    return Limiter(params["gain"])


open_demo.describe = lambda: [("demo:?gain=G", "1->1  demo soft limiter")]
'''


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("plugin_src")
    (src / "pyproject.toml").write_text(PLUGIN_PYPROJECT)
    (src / "hwloop_demo.py").write_text(textwrap.dedent(PLUGIN_MODULE))
    target = tmp_path_factory.mktemp("plugin_site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(src),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    assert list(target.glob("hwloop_demo_plugin-*.dist-info"))
    return target


def _hwloop(args: list[str], plugin_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(plugin_path)}
    return subprocess.run(
        [sys.executable, "-m", "hwloop.cli", *args], env=env, capture_output=True, text=True, timeout=600
    )


def test_plugin_scheme_is_listed(plugin_path: Path) -> None:
    res = _hwloop(["devices", "--json"], plugin_path)
    assert res.returncode == 0, res.stderr
    listed = json.loads(res.stdout)
    assert "demo" in listed["schemes"]
    assert {"uri": "demo:?gain=G", "description": "1->1  demo soft limiter"} in listed["devices"]


def test_plugin_device_trains_from_the_cli(plugin_path: Path, tmp_path: Path) -> None:
    res = _hwloop(
        [
            "train",
            "--device",
            "demo:?gain=1.3",
            "--queries",
            "800",
            "--fit-steps",
            "300",
            "--eval-targets",
            "200",
            "--out",
            str(tmp_path / "run"),
            "--json",
        ],
        plugin_path,
    )
    assert res.returncode == 0, res.stderr
    m = json.loads(res.stdout)
    assert m["device"] == "demo:?gain=1.3" and m["queries_used"] + m["unspent"] == 800 and m["unspent"] < 80
    assert m["closed_loop_nmse_db"] < -25


def test_plugin_parameter_errors_are_clear(plugin_path: Path) -> None:
    res = _hwloop(["probe", "--device", "demo:?gain=loud"], plugin_path)
    assert res.returncode == 2
    assert res.stderr.strip() == "hwloop: error: demo: parameter gain='loud' is not a valid float"
