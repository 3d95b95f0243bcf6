"""``hwloop track``: watch a run's deployed predistorter on its amplifier, recalibrate it as it drifts.

Orchestration only: check, open, meter, run the strategy (`hwloop.strategies.track`),
keep its history in the run directory:

    RUN/track/history.json     every version (why, what it cost, its model's fit) and every check
                               (figures, the version in service, the device's condition if it says)
    RUN/track/vNNN/            each version's predistorter (inverse.keras, device.json) and amplifier
                               model (surrogate_gmp.npz); v000 is the run's own, as trained
    RUN/track/sNNN/            one session: session.toml (its settings and device), queries.sqlite
                               (its query log, committed before use), state.json (its last step)
    RUN/inverse.keras          the version in service, so `hwloop.load_inverse(RUN)` and exports use it

A session killed at any moment resumes when ``hwloop track`` runs again on the
same run: from its last committed step, the log rows after it replayed, so no
logged query is paid twice. A run is bound to its device, but an amplifier's
operating condition is not its identity: the device may report another
condition (a simulator's ``#temp=60``, `hwloop.device.DeviceInfo.condition`)
and is still accepted; another device is refused.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any

from hwloop.config import read_toml, write_toml
from hwloop.device import Device, DeviceInfo
from hwloop.errors import RunDirError, UsageError
from hwloop.metered import MeteredDevice, ProgressFn
from hwloop.querylog import QueryLog
from hwloop.registry import open_device
from hwloop.rundir import RunDir, read_json_object, write_json_atomic

log = logging.getLogger(__name__)

TRACK_DIR = "track"
HISTORY = "history.json"
MODEL_FILE = "surrogate_gmp.npz"
INVERSE_FILES = ("inverse.keras", "device.json")


@dataclass
class TrackResult:
    """What `track` returns: the session's summary (also in metrics.json's ``track``)."""

    metrics: dict[str, Any]
    run_dir: Path


class RunJournal:
    """The strategy's `Journal` on a run directory: versions, history, the session's state."""

    def __init__(self, run: Path, session: Path, qlog: QueryLog | None) -> None:
        self.run, self.root, self.session, self.qlog = run, run / TRACK_DIR, session, qlog
        self.history = read_json_object(self.root / HISTORY) or {"versions": [], "checks": []}
        self.session_id = session.name

    def version_dir(self, version: int) -> Path:
        return self.root / f"v{version:03d}"

    def load(self, version: int) -> tuple[Any, Any]:
        from hwloop.inverses.store import load_inverse
        from hwloop.strategies.condition_model import ConditionedSurrogate

        path = self.version_dir(version)
        return load_inverse(path), ConditionedSurrogate.load(path / MODEL_FILE)

    def _save_history(self) -> None:
        write_json_atomic(self.root / HISTORY, self.history)

    def add_check(self, record: dict) -> None:
        record = {**record, "session": self.session_id, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
        key = (record["session"], record["check"])
        self.history["checks"] = [c for c in self.history["checks"] if (c["session"], c["check"]) != key]
        self.history["checks"].append(record)
        self._save_history()

    def add_version(self, version: int, inverse: Any, model: Any, record: dict) -> None:
        from hwloop.inverses.store import save_inverse

        tmp = self.root / f".v{version:03d}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        save_inverse(inverse, tmp)
        model.save(tmp / MODEL_FILE)
        final = self.version_dir(version)
        shutil.rmtree(final, ignore_errors=True)  # a step replayed after a kill writes the same again
        os.replace(tmp, final)
        record = {**record, "session": self.session_id, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
        self.history["versions"] = [v for v in self.history["versions"] if v["version"] != version]
        self.history["versions"].append(record)
        self._save_history()
        publish(self.run, version)

    def commit(self, state: Any) -> None:
        rows = self.qlog.count() if self.qlog is not None else 0
        write_json_atomic(self.session / "state.json", {**asdict(state), "rows": rows})


def publish(run: Path, version: int) -> None:
    """Make ``version`` the run's inverse (what load_inverse, eval and export read), file by file
    through temporary copies; both files are written before either replaces the old one."""
    src = run / TRACK_DIR / f"v{version:03d}"
    for name in INVERSE_FILES:
        shutil.copyfile(src / name, run / f".{name}.track")
    for name in INVERSE_FILES:
        os.replace(run / f".{name}.track", run / name)
    metrics = read_json_object(run / "metrics.json")
    if metrics is not None:
        versions = read_json_object(run / TRACK_DIR / HISTORY) or {}
        summary = {
            "current_version": version,
            "versions": len(versions.get("versions", [])),
            "history": f"{TRACK_DIR}/{HISTORY}",
        }
        write_json_atomic(run / "metrics.json", {**metrics, "track": {**metrics.get("track", {}), **summary}})


def _start_history(run: Path, info: DeviceInfo) -> None:
    """track/v000 (the run's predistorter as trained, and its amplifier model fitted on the run's
    log) and history.json, written whole or not at all."""
    from hwloop.strategies.condition_model import ConditionedSurrogate
    from hwloop.strategies.recalibrate import model_from_log

    root = run / TRACK_DIR
    if (root / HISTORY).is_file():
        return
    tmp = root / ".v000.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in INVERSE_FILES:
        shutil.copyfile(run / name, tmp / name)
    if (run / MODEL_FILE).is_file():  # a recalibrated run keeps its corrected model
        shutil.copyfile(run / MODEL_FILE, tmp / MODEL_FILE)
        fit: dict = ConditionedSurrogate.load(run / MODEL_FILE).info
    else:
        model = model_from_log(run)
        model.save(tmp / MODEL_FILE)
        fit = model.info
    shutil.rmtree(root / "v000", ignore_errors=True)
    os.replace(tmp, root / "v000")
    m = read_json_object(run / "metrics.json") or {}
    v0 = {
        "version": 0,
        "reason": "trained",
        "queries": m.get("queries_used"),
        **{k: m.get(k) for k in ("acpr_dbc", "evm_db", "nmse_db") if k in m},
        "model": fit,
        "device": info.firmware,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    write_json_atomic(root / HISTORY, {"versions": [v0], "checks": []})


def _condition(dev: Device) -> Any:
    """What the device says of its operating condition now: a simulator's, else INFO's ``#...``."""
    cond = getattr(dev, "condition", None)
    if is_dataclass(cond) and not isinstance(cond, type):
        return {k: round(float(v), 4) for k, v in asdict(cond).items()}
    return dev.info.firmware.partition("#")[2] or None


def _targets(run: Path, signal: str | None) -> tuple[Any, float, float, str]:
    """The training targets the run was trained on (or ``signal`` at the run's gain), fs, bw."""
    from hwloop.dpd.metrics import check_band
    from hwloop.dpd.path import signal_path
    from hwloop.dpd.signals import load_signal, resolve_fs

    opts = RunDir(run).read_plan().options
    spec = signal or opts.signal
    if spec is None:
        raise UsageError(f"{run} was not trained on a signal: give --signal to track it on one")
    fs = resolve_fs(opts.fs, spec)
    check_band(fs, opts.bw)
    keys = {"holdout": opts.holdout, "eval_signal": None if signal else opts.eval_signal}
    path = signal_path(
        opts.gain * load_signal(spec),
        signal=spec,
        gain=opts.gain,
        cfr=opts.cfr,
        cfr_papr=opts.cfr_papr,
        fs=fs,
        bw=opts.bw,
        **keys,
    )
    return path.train, fs, opts.bw, spec


SESSION_KEYS = (
    "budget",
    "adapt_queries",
    "check_queries",
    "threshold_db",
    "check_every",
    "watch",
    "max_checks",
)


def _same_device(recorded: dict | None, info: DeviceInfo, what: str) -> None:
    """The run's own device, whatever its operating condition (INFO's firmware after '#')."""
    if not recorded:
        return
    try:
        before = DeviceInfo(**recorded).identity()
    except (TypeError, ValueError) as exc:
        raise RunDirError(f"{what}: the recorded device is incomplete or corrupted ({exc})") from None
    now = info.identity()
    for ident in (before, now):
        ident["firmware"] = ident["firmware"].partition("#")[0]
    if before != now:
        diff = ", ".join(f"{k} {before.get(k)!r} -> {now.get(k)!r}" for k in now if before.get(k) != now[k])
        raise UsageError(
            f"{what} was trained on another device ({diff}); track watches the run's own device "
            "(at any operating condition)"
        )


def _sessions(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("s[0-9][0-9][0-9]") if p.is_dir())


def _unfinished(run: Path) -> tuple[Path, dict, Any, int] | None:
    """The session a kill left unfinished: (folder, its settings, its last state, log rows
    consumed by it), or None."""
    from hwloop.strategies.track import TrackState

    root = run / TRACK_DIR
    found = _sessions(root) if root.is_dir() else []
    if found and not (found[-1] / "session.toml").is_file():
        shutil.rmtree(found[-1])  # killed while it was being created: nothing was sent
        found = found[:-1]
    if not found:
        return None
    last = found[-1]
    state = read_json_object(last / "state.json")
    if state is not None and state.get("stopped") is not None:
        return None
    cfg = read_toml(last / "session.toml")
    settings = cfg["settings"]
    if state is None:
        return last, cfg, TrackState(version=int(settings["start_version"])), 0
    rows = int(state.pop("rows", 0))
    return last, cfg, TrackState(**state), rows


def _new_session(run: Path, settings: dict, device: str, info: DeviceInfo) -> tuple[Path, Any]:
    from hwloop.strategies.track import TrackState

    root = run / TRACK_DIR
    history = read_json_object(root / HISTORY) or {"versions": [{"version": 0}]}
    current = max(v["version"] for v in history["versions"])
    folder = root / f"s{len(_sessions(root)) + 1:03d}"
    tmp = root / f".{folder.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    record = {k: (list(v) if isinstance(v, tuple) else v) for k, v in settings.items() if v is not None}
    write_toml(
        tmp / "session.toml",
        {"device": device, "settings": {**record, "start_version": current}, "device_info": info.to_dict()},
    )
    os.replace(tmp, folder)
    return folder, TrackState(version=current)


def track(
    run: str | Path,
    device: str | Device,
    *,
    budget: int | None = None,
    check_every: float = 0.0,
    threshold_db: float = 1.0,
    signal: str | None = None,
    check_queries: int | None = None,
    adapt_queries: int | None = None,
    watch: tuple[str, ...] | list[str] = ("acpr", "evm"),
    max_checks: int | None = None,
    progress: ProgressFn | None = None,
    given: set[str] | None = None,
) -> TrackResult:
    """Watch run ``run``'s predistorter on ``device`` until ``budget`` queries are spent.

    ``budget`` defaults to the run's own training queries, ``adapt_queries``
    (one recalibration) to 5 % of them (at least 1,024), ``check_queries`` to
    2 % of them (512 to 2,048): a check and a recalibration together cost
    7 % of what a retraining would. An unfinished session
    of the run is resumed with its own settings; ``given`` names the settings
    the caller set on purpose (from Python: every one away from its default),
    which must then match the session's.
    """
    from hwloop.config import quick, quick_cap
    from hwloop.strategies.track import TrackSettings
    from hwloop.strategies.track import track as run_track

    t0 = time.perf_counter()
    run = Path(run)
    rd = RunDir(run)
    plan = rd.read_plan()
    info_rec = read_json_object(run / "device.json") or {}
    if (info_rec.get("inverse_memory") or {}).get("kind") != "gmp":
        raise UsageError(f"{run} holds no GMP predistorter: track watches a run trained with --signal")
    trained = int((rd.read_metrics() or {}).get("queries_used") or 0) or plan.queries
    asked = {
        "budget": budget if budget is not None else trained,
        "adapt_queries": adapt_queries if adapt_queries is not None else max(1024, trained // 20),
        "check_queries": check_queries if check_queries is not None else min(2048, max(512, trained // 50)),
        "threshold_db": threshold_db,
        "check_every": check_every,
        "watch": list(watch),
        "max_checks": max_checks,
        "signal": signal,
    }
    if quick():  # HWLOOP_DOCS_QUICK: the session's budget capped, so the docs' commands run in seconds
        asked["budget"] = quick_cap("queries", asked["budget"])
    if given is None:  # from Python: what differs from the defaults was asked for
        defaults = {"threshold_db": 1.0, "check_every": 0.0, "watch": ["acpr", "evm"]}
        given = {k for k, v in asked.items() if v is not None and v != defaults.get(k, v)}
        named = (("budget", budget), ("adapt_queries", adapt_queries), ("check_queries", check_queries))
        given = {k for k in given if k not in dict(named)} | {k for k, v in named if v is not None}
    open_one = _unfinished(run)
    if open_one is not None:
        folder, cfg, state, rows = open_one
        settings = cfg["settings"]
        for key in sorted(given & {*SESSION_KEYS, "signal"}):
            if asked[key] != settings.get(key):
                flag = "--" + key.replace("_", "-")
                raise UsageError(
                    f"{run} has an unfinished tracking session ({folder.name}) started with {flag} "
                    f"{settings.get(key, '(not set)')}; drop {flag} or give the same value to resume it"
                )
    else:
        settings, rows = asked, 0
    targets, fs, bw, spec = _targets(run, settings.get("signal"))
    s = TrackSettings(
        **{k: tuple(v) if k == "watch" else v for k, v in settings.items() if k in SESSION_KEYS}, fs=fs, bw=bw
    ).check()
    uri = device if isinstance(device, str) else getattr(device, "uri", f"<{type(device).__name__}>")
    dev = open_device(device) if isinstance(device, str) else device
    qlog = None
    try:
        _same_device(read_toml(run / "config.toml").get("device_info"), dev.info, str(run))
        if open_one is not None:
            _same_device(cfg.get("device_info"), dev.info, f"{run} session {folder.name}")
        _start_history(run, dev.info)
        if open_one is None:
            folder, state = _new_session(run, settings, uri, dev.info)
        qlog = QueryLog(folder / "queries.sqlite", dev.info.in_dim, dev.info.out_dim)
        metered = MeteredDevice(
            dev, qlog, budget=s.budget, progress=progress, replay=open_one is not None, replay_from=rows
        )
        journal = RunJournal(run, folder, qlog)
        publish(run, state.version)
        log.info("tracking %s on %s (session %s%s)", run, uri, folder.name, ", resumed" if open_one else "")
        state = run_track(metered, targets, journal, s, state, condition=lambda: _condition(dev))
    finally:
        if qlog is not None:
            qlog.close()
        if isinstance(device, str):
            dev.close()
    history = read_json_object(run / TRACK_DIR / HISTORY) or {}
    mine = [c for c in history.get("checks", []) if c.get("session") == folder.name]
    summary = {
        "run_dir": str(run),
        "device": uri,
        "signal": spec,
        "session": folder.name,
        "resumed": open_one is not None,
        "checks": state.checks,
        "adaptations": state.adaptations,
        "versions": len(history.get("versions", [])),
        "current_version": state.version,
        "queries_used": state.spent,
        "check_queries_used": state.used["eval"],
        "adapt_queries_used": state.used["train"],
        "budget": s.budget,
        "stopped": state.stopped,
        "replayed_rows": metered.replayed_rows,
        "warmup_rows": metered.warmup_rows,
        "last_check": {k: mine[-1][k] for k in ("acpr_dbc", "evm_db", "nmse_db")} if mine else None,
        "history": str(run / TRACK_DIR / HISTORY),
        "wall_s": round(time.perf_counter() - t0, 3),
    }
    metrics = rd.read_metrics()
    if metrics is not None:
        rd.write_metrics({**metrics, "track": {**metrics.get("track", {}), **summary}})
    return TrackResult(summary, run)
