"""The farm's driver loop: start each unit, wait for any, retry once, record.

Runs in the process that called `hwloop.run_farm`, with Ray already connected.
It owns every actor and task it starts, so if that process dies Ray reaps
them; OUT/farm.json, rewritten after each unit, is what a resumed farm reads.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwloop.farm.actor import DeviceActor, error_line, run_unit
from hwloop.farm.units import FARM_JSON, FarmResult, UnitDoneFn
from hwloop.rundir import write_json_atomic

log = logging.getLogger(__name__)

ACTOR_NAMESPACE = "hwloop"
RETRYABLE = ("actor_died",)


def actor_name(farm_id: str, session: str, unit: str, attempt: int) -> str:
    """The named device actor of a unit's attempt (1, 2, ...) in this invocation of
    the farm, to find it in Ray (a resumed farm must not collide with the actors of
    the killed one, which Ray may not have reaped yet)."""
    return f"hwloop-device/{farm_id}.{session}/{unit}/{attempt}"


@dataclass
class _Attempt:
    entry: dict
    attempt: int
    actor: Any
    t0: float


class _Driver:
    def __init__(self, ray: Any, state: dict, out: Path, unit_cpus: float, env: dict | None) -> None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self.ray = ray
        self.state = state
        self.out = out
        self.env = env
        self.unit_cpus = unit_cpus
        self.options = state.get("train_options", {})
        node = ray.get_runtime_context().get_node_id()
        self.run_task = ray.remote(run_unit).options(
            num_cpus=unit_cpus,
            max_retries=0,
            runtime_env=env,
            # runs stay on this node: their run directories are under OUT, here
            scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False),
        )
        self.actor_cls = ray.remote(DeviceActor)
        self.offered = set(ray.cluster_resources())
        self.pending: dict[Any, _Attempt] = {}
        self.session = uuid.uuid4().hex[:6]

    def start(self, entry: dict, attempt: int) -> dict | None:
        """Start the unit's device actor and its run (resuming if the run directory holds one);
        returns a failed outcome instead when the unit cannot start at all."""
        run_dir = self.out / entry["unit"]
        resource = entry.get("resource")
        if resource and resource not in self.offered:
            return {"status": "failed", "error": f"no node of the Ray cluster offers resource {resource!r}"}
        actor = self.actor_cls.options(
            name=actor_name(self.state["farm_id"], self.session, entry["unit"], attempt),
            namespace=ACTOR_NAMESPACE,
            num_cpus=0,
            resources={resource: 1} if resource else None,
            max_restarts=0,
            runtime_env=self.env,
        ).remote(entry["device"])
        resume = (run_dir / "config.toml").is_file()
        threads = max(1, int(self.unit_cpus))
        ref = self.run_task.remote(actor, entry["device"], str(run_dir), resume, self.options, threads)
        entry["status"] = "running"
        self.pending[ref] = _Attempt(entry, attempt, actor, time.perf_counter())
        log.info("unit %s: attempt %d started%s", entry["unit"], attempt, " (resuming)" if resume else "")
        return None

    def outcome(self, ref: Any) -> dict:
        from ray.exceptions import RayActorError, WorkerCrashedError

        try:
            return self.ray.get(ref)
        except (RayActorError, WorkerCrashedError) as exc:
            return {"status": "actor_died", "error": error_line(exc)}
        except Exception as exc:  # a run's own bug must not stop the other units
            return {"status": "failed", "error": error_line(exc)}

    def finish(self, entry: dict, res: dict, t0: float, attempt: int) -> None:
        entry.pop("error", None)
        status = "ok" if res["status"] == "ok" else "failed"
        entry.update(res.get("metrics", {}))
        entry.update(
            status=status,
            attempts=attempt,
            unit_wall_s=round(entry.get("unit_wall_s", 0.0) + time.perf_counter() - t0, 3),
        )
        if status != "ok":
            entry["error"] = res.get("error", "unknown error")
            entry["wall_s"] = entry["unit_wall_s"]
        for key in ("host", "node_id"):
            if key in res:
                entry[key] = res[key]


def drive(
    ray: Any,
    state: dict,
    out: Path,
    *,
    unit_cpus: float,
    retries: int,
    env: dict | None,
    on_unit_done: UnitDoneFn | None,
) -> FarmResult:
    """Run every unit not already ok; returns when all have finished."""
    t_start = time.perf_counter()
    drv = _Driver(ray, state, out, unit_cpus, env)
    path = out / FARM_JSON
    units: list[dict] = state["units"]
    for entry in units:
        if entry["status"] == "ok":
            continue
        done = out / entry["unit"] / "metrics.json"
        if done.is_file():  # the run finished, the farm was killed before it said so
            metrics = json.loads(done.read_text())
            metrics.pop("train_curve", None)
            entry.update(metrics, status="ok")
            entry.pop("error", None)
            continue
        entry.setdefault("history", [])
        refused = drv.start(entry, 1)
        if refused is not None:
            drv.finish(entry, refused, time.perf_counter(), 1)
            if on_unit_done is not None:
                on_unit_done(entry)
    write_json_atomic(path, _snapshot(state, out, t_start))
    while drv.pending:
        ready, _ = ray.wait(list(drv.pending), num_returns=1)
        att = drv.pending.pop(ready[0])
        res = drv.outcome(ready[0])
        _kill(ray, att.actor)
        att.entry.setdefault("history", []).append(_history(att.attempt, res))
        if res["status"] in RETRYABLE and att.attempt <= retries:
            log.warning("unit %s: %s; retrying from its log", att.entry["unit"], res.get("error"))
            spent = time.perf_counter() - att.t0
            att.entry["unit_wall_s"] = round(att.entry.get("unit_wall_s", 0.0) + spent, 3)
            drv.start(att.entry, att.attempt + 1)
            continue
        drv.finish(att.entry, res, att.t0, att.attempt)
        write_json_atomic(path, _snapshot(state, out, t_start))
        if on_unit_done is not None:
            on_unit_done(att.entry)
    result = FarmResult(out, units, time.perf_counter() - t_start, extra=_extra(state))
    write_json_atomic(path, result.to_dict())
    return result


def _history(attempt: int, res: dict) -> dict:
    """What one attempt did, for farm.json: outcome, the device actor's counts, rows it found logged."""
    keep = ("status", "error", "resumed", "logged_before", "actor_stats", "host", "node_id")
    return {"attempt": attempt, **{k: res[k] for k in keep if k in res}}


def _kill(ray: Any, actor: Any) -> None:
    with contextlib.suppress(Exception):  # already dead
        ray.kill(actor)


def _extra(state: dict) -> dict:
    return {k: state[k] for k in ("farm_id", "train_options") if k in state}


def _snapshot(state: dict, out: Path, t_start: float) -> dict:
    return FarmResult(out, state["units"], time.perf_counter() - t_start, extra=_extra(state)).to_dict()
