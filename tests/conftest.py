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

pytest_plugins = ["serial_fixtures", "ray_fixtures", "pytester"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--device-url"):
        return
    skip = pytest.mark.skip(reason="needs a real board: run with --device-url URL")
    for item in items:
        if "hardware" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def device_url(request: pytest.FixtureRequest) -> str:
    return request.config.getoption("--device-url")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
