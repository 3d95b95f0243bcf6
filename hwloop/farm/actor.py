"""The Ray side of a farm: a device in its own actor, a proxy to it, one unit's run.

A device actor opens its device from the URI inside the actor, so the
device's transport (a serial port, a socket) lives on the host that offers
it, and answers query batches in order. The unit's run, a Ray task on the
driver's node, trains through `ActorDevice`, a plain `hwloop.Device` that
forwards each call to the actor and waits for the answer: the metered device
around it commits every answer to the run's query log before training sees
it, exactly as for a local device, so a run whose actor died resumes from its
log like any other killed run.

This module imports Ray; only `hwloop.farm.driver` imports it, after checking that
Ray is installed.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np
import ray
from ray.exceptions import RayActorError, RayTaskError

from hwloop.device import DeviceInfo
from hwloop.errors import DeviceActorDied, HwloopError, RunDirError
from hwloop.rundir import train_kwargs

log = logging.getLogger(__name__)

LOCK_WAIT_S = 60.0  # how long a run waits for a run directory another process still holds


class DeviceActor:
    """Holds one device; methods run one at a time, in call order (a Ray actor's default)."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.device: Any = None
        self.rows = 0
        self.calls = 0
        self.resets = 0

    def open(self) -> dict:
        """Open the device (here, on the actor's host); returns its info and where it is."""
        from hwloop.registry import open_device

        if self.device is None:
            self.device = open_device(self.uri)
        return {
            "info": self.device.info.to_dict(),
            "node_id": ray.get_runtime_context().get_node_id(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
        }

    def query(self, x: np.ndarray) -> np.ndarray:
        y = np.asarray(self.device.query(x), dtype=np.float32)
        self.rows += len(x)
        self.calls += 1
        return y

    def reset(self) -> None:
        self.device.reset()
        self.resets += 1

    def stats(self) -> dict:
        """Rows, calls and resets this actor sent to its device."""
        return {"rows": self.rows, "calls": self.calls, "resets": self.resets}

    def close(self) -> dict:
        if self.device is not None:
            self.device.close()
            self.device = None
        return self.stats()


class ActorDevice:
    """A `hwloop.Device` whose calls go to a `DeviceActor` and wait for its answer.

    ``uri`` is the device's own URI, so the run's config.toml names the unit,
    and a later ``hwloop train --resume`` on that run opens it directly.
    """

    def __init__(self, actor: Any, uri: str, info: DeviceInfo) -> None:
        self.actor = actor
        self.uri = uri
        self.info = info

    def _call(self, method: Any, *args: Any) -> Any:
        try:
            return ray.get(method.remote(*args))
        except RayActorError as exc:
            raise DeviceActorDied(f"{self.uri}: the device's actor died ({_first_line(exc)})") from None
        except RayTaskError as exc:
            cause = exc.cause
            if isinstance(cause, HwloopError):
                raise cause from None
            raise

    def query(self, x: np.ndarray) -> np.ndarray:
        return np.array(self._call(self.actor.query, np.ascontiguousarray(x, dtype=np.float32)))

    def reset(self) -> None:
        self._call(self.actor.reset)

    def close(self) -> None:
        with contextlib.suppress(DeviceActorDied):
            self._call(self.actor.close)

    def __repr__(self) -> str:
        return f"<ActorDevice {self.uri}>"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def error_line(exc: BaseException) -> str:
    """One line for farm.json: the cause of a remote error, without Ray's traceback."""
    if isinstance(exc, RayTaskError) and exc.cause is not None:
        exc = exc.cause
    if isinstance(exc, RayActorError):
        return "the unit's device actor died"
    return f"{type(exc).__name__}: {_first_line(exc)}"


def _limit_threads(threads: int) -> None:
    """Keep several runs on one host from fighting over cores. TensorFlow
    accepts this only before it starts; a reused worker already has it."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        pass


class _RunDirLock:
    """An exclusive flock on the run directory: a run of a killed farm whose
    process Ray has not reaped yet must finish dying before its unit resumes."""

    def __init__(self, run_dir: Path, wait_s: float) -> None:
        self.fd = os.open(run_dir, os.O_RDONLY)
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(self.fd)
                    raise RunDirError(f"{run_dir} is in use by another process") from None
                time.sleep(0.2)

    def release(self) -> None:
        os.close(self.fd)


def run_unit(actor: Any, uri: str, run_dir: str, resume: bool, train_options: dict, threads: int = 1) -> dict:
    """One unit's training run, as a Ray task: open the device in its actor,
    train through the proxy, close. Returns an outcome dict; expected failures
    are reported in it rather than raised, so the driver can retry a unit
    whose actor died."""
    from hwloop.querylog import open_run_log
    from hwloop.run import train

    out: dict[str, Any] = {"resumed": resume}
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    lock = None
    proxy: ActorDevice | None = None
    try:
        lock = _RunDirLock(run, LOCK_WAIT_S)
        where = ray.get(actor.open.remote())
        out.update(node_id=where["node_id"], host=where["host"])
        proxy = ActorDevice(actor, uri, DeviceInfo(**where["info"]))
        _limit_threads(threads)  # TensorFlow loads here: not for a unit whose device cannot open
        if resume and (run / "queries.sqlite").is_file():
            with open_run_log(run) as qlog:
                out["logged_before"] = qlog.count()
        result = train(proxy, run_dir=run, resume=resume, **train_kwargs(train_options))
        out["metrics"] = {k: v for k, v in result.metrics.items() if k != "train_curve"}
        out["status"] = "ok"
    except (DeviceActorDied, RayActorError) as exc:
        out.update(status="actor_died", error=error_line(exc))
    except (HwloopError, RayTaskError, OSError) as exc:
        out.update(status="failed", error=error_line(exc))
    finally:
        if proxy is not None:
            try:
                out["actor_stats"] = ray.get(actor.stats.remote())
            except RayActorError:
                out["actor_stats"] = None
            proxy.close()
        if lock is not None:
            lock.release()
        if out.get("status") != "ok":
            with contextlib.suppress(OSError):
                run.rmdir()  # only if the unit never got as far as writing anything
    return out
