"""Device farms: one training run per device, in parallel, on Ray (extra ``hwloop[cluster]``).

``hwloop.run_farm(devices, out=OUT)`` trains every unit in its own run directory
``OUT/<unit>/`` (it is ``hwloop.train`` running there, so the layout is the
train layout) and keeps ``OUT/farm.json`` up to date, one entry per unit.
Each device lives in a Ray actor that opens it on the host offering it (a
unit may be pinned to a Ray custom resource, i.e. to a host); each run is a
Ray task on the driver's node, so every run directory lands under OUT.

A unit whose device actor dies mid-run is retried once: it resumes from its
log, and the device is asked nothing the log already holds. A unit that
fails never stops the others. ``resume=True`` finishes a farm that was
killed: units already ok are kept, the others resume from their logs.
"""

from __future__ import annotations

import logging
import os
import types
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hwloop.errors import MissingExtraError, UsageError
from hwloop.farm.units import FarmResult, UnitDoneFn, UnitSpec, plan_farm

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'hwloop[cluster]'"


def import_ray() -> types.ModuleType:
    """Ray, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise MissingExtraError(f"hwloop farm needs Ray: {INSTALL_HINT}") from None
    return ray


def _worker_env() -> dict[str, str]:
    """What Ray workers need in their environment: this hwloop (a source
    checkout's path on PYTHONPATH) and a quiet TensorFlow."""
    env = {"TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")}
    root = str(Path(__file__).resolve().parents[2])  # hwloop/farm/api.py -> the tree holding hwloop/
    if not any(part in ("site-packages", "dist-packages") for part in Path(root).parts):
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    return env


def _start_ray(ray: types.ModuleType, address: str | None) -> dict | None:
    """Connect or start Ray; returns the runtime_env tasks and actors need (None: inherited).

    A private local instance is started with the worker environment in place,
    so its workers inherit it and Ray can use its ordinary worker pool;
    workers of a cluster started elsewhere get it as a runtime_env.
    """
    env = _worker_env()
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "logging_level": logging.WARNING,
        "configure_logging": False,
    }
    if address is not None:
        ray.init(address=address, **kwargs)
        return {"env_vars": env}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        ray.init(address="local", **kwargs)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return None


def run_farm(
    devices: Iterable[str | UnitSpec],
    *,
    out: str | Path,
    ray_address: str | None = None,
    resume: bool = False,
    unit_cpus: float = 0.25,
    retries: int = 1,
    on_unit_done: UnitDoneFn | None = None,
    **train_options: Any,
) -> FarmResult:
    """Train every device of ``devices`` in parallel on Ray, each in ``out/<unit>/``.

    ``ray_address`` joins a running cluster ("auto", "HOST:PORT"); None starts
    a private local Ray instance (or uses the one this process already has).
    ``unit_cpus`` is the CPU share Ray books per run (0.25: four runs per core,
    for latency-bound devices). ``train_options`` go to `hwloop.train`
    (strategy, queries, seed, fit_steps, eval_targets, init_from, max_rate, ...).
    ``on_unit_done`` receives each unit's farm.json entry as it finishes.
    """
    from hwloop.farm.driver import drive

    ray = import_ray()
    if unit_cpus <= 0:
        raise UsageError(f"unit CPUs must be positive, got {unit_cpus}")
    out = Path(out).resolve()
    state = plan_farm(devices, out, resume, train_options)
    out.mkdir(parents=True, exist_ok=True)
    started = not ray.is_initialized()
    if started:
        runtime_env = _start_ray(ray, ray_address)
    else:
        log.debug("using this process's Ray connection; ray_address=%r is not used", ray_address)
        runtime_env = {"env_vars": _worker_env()}
    try:
        return drive(
            ray,
            state,
            out,
            unit_cpus=unit_cpus,
            retries=retries,
            env=runtime_env,
            on_unit_done=on_unit_done,
        )
    finally:
        if started:
            ray.shutdown()
