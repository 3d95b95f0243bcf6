"""Device farms: one training run per device, in parallel, on Ray (extra ``hwloop[cluster]``).

``hwloop.farm(devices, out=OUT)`` trains every unit in its own run directory
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

import json
import logging
import os
import re
import sys
import types
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwloop.errors import MissingExtraError, RunDirError, UsageError

log = logging.getLogger(__name__)

FARM_JSON = "farm.json"
INSTALL_HINT = "pip install 'hwloop[cluster]'"
UnitDoneFn = Callable[[dict], None]


@dataclass(frozen=True)
class UnitSpec:
    """One device of a farm: its URI and, optionally, the Ray resource that pins it to a host."""

    uri: str
    resource: str | None = None


@dataclass
class FarmResult:
    """What `farm` returns: the farm.json content, with helpers."""

    out: Path
    units: list[dict]
    wall_s: float
    extra: dict = field(default_factory=dict)

    @property
    def failed(self) -> list[dict]:
        return [u for u in self.units if u["status"] != "ok"]

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict:
        return {
            **self.extra,
            "out": str(self.out),
            "wall_s": round(self.wall_s, 3),
            "ok": sum(u["status"] == "ok" for u in self.units),
            "failed": len(self.failed),
            "units": self.units,
        }


def import_ray() -> types.ModuleType:
    """Ray, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise MissingExtraError(f"hwloop farm needs Ray: {INSTALL_HINT}") from None
    return ray


_RESOURCE = re.compile(r"^[A-Za-z0-9_:.\-]+$")


def parse_devices_file(path: str | Path) -> list[UnitSpec]:
    """One URI per line, optionally ``URI resource=NAME``; ``#`` comments and blank lines."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise UsageError(f"devices file {p}: {exc.strerror or exc}") from None
    specs = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = re.split(r"(?:^|\s)#", raw, maxsplit=1)[0].strip()
        if not line:
            continue
        uri, *rest = line.split()
        resource = None
        for token in rest:
            key, eq, value = token.partition("=")
            if key != "resource" or not eq or not _RESOURCE.match(value) or resource is not None:
                raise UsageError(f"{p}:{n}: expected 'URI [resource=NAME]', got {raw.strip()!r}")
            resource = value
        if uri.startswith("resource="):
            raise UsageError(f"{p}:{n}: a line starts with the device URI, got {raw.strip()!r}")
        specs.append(UnitSpec(uri, resource))
    return specs


def unit_names(uris: Iterable[str]) -> list[str]:
    """Unique, filesystem-safe unit names derived from the URIs."""
    names: list[str] = []
    seen: set[str] = set()
    for uri in uris:
        base = re.sub(r"[^A-Za-z0-9._-]+", "-", uri).strip("-.")[:80].rstrip("-.") or "unit"
        name, k = base, 2
        while name in seen:
            name, k = f"{base}-{k}", k + 1
        seen.add(name)
        names.append(name)
    return names


def _worker_env() -> dict[str, str]:
    """What Ray workers need in their environment: this hwloop (a source
    checkout's path on PYTHONPATH) and a quiet TensorFlow."""
    import hwloop

    env = {"TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")}
    root = str(Path(hwloop.__file__).resolve().parents[1])
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


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, path)


def _read_farm(out: Path) -> dict:
    path = out / FARM_JSON
    if not path.is_file():
        raise RunDirError(f"{out} holds no {FARM_JSON}: not a farm, nothing to resume")
    try:
        data = json.loads(path.read_text())
        for u in data["units"]:
            if not (isinstance(u["unit"], str) and isinstance(u["device"], str)):
                raise TypeError("unit and device must be strings")
        return data
    except (ValueError, KeyError, TypeError) as exc:
        raise RunDirError(f"{path}: incomplete or corrupted ({exc})") from None


def _absolute(options: dict) -> dict:
    """Paths in train options as absolute paths: Ray workers run in another directory."""
    return {
        k: str(Path(v).resolve()) if k in ("init_from", "from_log", "from_data") and v else v
        for k, v in options.items()
    }


def _plan(devices: Iterable[str | UnitSpec], out: Path, resume: bool, train_options: dict) -> dict:
    """The farm's units and train options: new ones, or those recorded in OUT/farm.json."""
    specs = [d if isinstance(d, UnitSpec) else UnitSpec(str(d)) for d in devices]
    if resume:
        state = _read_farm(out)
        if specs and [s.uri for s in specs] != [u["device"] for u in state["units"]]:
            raise UsageError(f"{out} holds a farm of other devices; resume it without giving devices")
        if train_options:
            raise UsageError("a resumed farm keeps its own train options; give none")
        return state
    if not specs:
        raise UsageError("a farm needs at least one device (--device URI or --devices-file FILE)")
    if (out / FARM_JSON).exists():
        raise UsageError(f"{out} already holds a farm; choose another --out or add --resume")
    from hwloop.farm_actor import train_kwargs

    train_kwargs(train_options)  # unknown options fail here, before anything starts
    names = unit_names(s.uri for s in specs)
    units = [
        {"device": s.uri, "unit": n, "resource": s.resource, "status": "pending"}
        for s, n in zip(specs, names, strict=True)
    ]
    return {"farm_id": uuid.uuid4().hex[:8], "train_options": _absolute(train_options), "units": units}


def farm(
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
    from hwloop.farm_driver import run_farm

    ray = import_ray()
    if unit_cpus <= 0:
        raise UsageError(f"unit CPUs must be positive, got {unit_cpus}")
    out = Path(out).resolve()
    state = _plan(devices, out, resume, train_options)
    out.mkdir(parents=True, exist_ok=True)
    started = not ray.is_initialized()
    if started:
        runtime_env = _start_ray(ray, ray_address)
    else:
        log.debug("using this process's Ray connection; ray_address=%r is not used", ray_address)
        runtime_env = {"env_vars": _worker_env()}
    try:
        return run_farm(
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


class _FarmModule(types.ModuleType):
    """``hwloop.farm`` names both this module and the function; once the module
    is imported it shadows the function as an attribute of the package, so
    calling the module calls the function."""

    def __call__(self, *args: Any, **kwargs: Any) -> FarmResult:
        return farm(*args, **kwargs)


sys.modules[__name__].__class__ = _FarmModule
