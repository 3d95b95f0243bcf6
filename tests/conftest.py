"""Shared fixtures; ``--device-url URL`` runs the hardware suite against a real board.

``--device-url`` itself, and the ``hwloop_device`` / ``sim_device`` fixtures,
come from hwloop's pytest plugin (hwloop.pytest_plugin, entry point
``pytest11``); this file only reads the option.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # One core per worker (pyproject's -n 2 fills the machine): TensorFlow, oneDNN and the CLIs the
    # tests start would otherwise each take every core, and two workers would fight over them.
    for var in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
        os.environ.setdefault(var, "1")

pytest_plugins = ["serial_fixtures", "ray_fixtures", "pytester"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without --device-url the hardware suite is not run in this process: it runs, whole,
    against two stand-ins in tests/test_hardware_standins.py (each in a pytest process of its
    own with --device-url), so it is deselected here rather than skipped."""
    if config.getoption("--device-url"):
        return
    hardware = [item for item in items if "hardware" in item.keywords]
    if hardware:
        config.hook.pytest_deselected(items=hardware)
        items[:] = [item for item in items if "hardware" not in item.keywords]


def pytest_report_header(config: pytest.Config) -> str | None:
    if config.getoption("--device-url"):
        return None
    return "hardware suite: run against hwloop serve --pty and the firmware (test_hardware_standins.py)"


@pytest.fixture
def device_url(request: pytest.FixtureRequest) -> str:
    return request.config.getoption("--device-url")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
