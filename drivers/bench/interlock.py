"""The RF interlock: arming, limits before anything is sent, RF off on every abnormal path.

- Arming: RF may go on only when the environment holds ``HWLOOP_ALLOW_RF=1``
  and ``HWLOOP_OPERATOR=<a name>`` (CI never sets them); without both the bench
  refuses before any instrument is contacted (`NotArmed`, a usage error).
- Limits: every played period (guard included, as quantised for the ARB, at
  the level that will be set) is checked against peak, RMS, PAPR and length
  before a byte goes out (`check_period`); a violation is `OutOfRangeError`.
- Trips: an exception or timeout in the measurement path, a lost link, an
  overload, SIGTERM, SIGINT (Ctrl-C), interpreter exit, or the watchdog all
  call `trip`, which turns RF off over a second, fresh connection (the first
  may be stuck), reads the state back and logs it; if that fails it is tried
  again until ``retry_s`` has passed (a link that drops often comes back). A
  tripped interlock never arms again in this session: queries raise.
- The watchdog (a thread, every ``watchdog_s``) trips when, with RF on, a call
  runs past its expected end by more than ``grace_s`` (whatever the
  instrument's own read timeout: RF is off within 1 s of a late reply), or
  past its timeout; and, RF on or not, it asks each busy session whether its
  link is lost (`check_link`: the peer closed the connection), so a lost link
  turns RF off at once instead of a timeout later.
- Levels: an instrument bench checks dBm at the generator's output (full
  scale ``full_scale_dbm``, int16 codes of full scale 32767), a radio dBFS at
  its DAC (full scale 0 dB, 12-bit codes of full scale 2047): `LevelLimits`
  says which.
- The log: one JSON object a line, appended and fsynced as it happens
  (``armed``, ``rf_on``, ``rf_off``, ``trip``, ``refused``, ``closed``), kept in
  the bench file's folder and, once a run starts, in its run directory too.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hwloop.device import DeviceError, OutOfRangeError, UsageError

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

ENV_ALLOW = "HWLOOP_ALLOW_RF"
ENV_OPERATOR = "HWLOOP_OPERATOR"


class NotArmed(UsageError):
    """RF was asked for without the arming gate; nothing was sent."""


class Tripped(DeviceError):
    """The interlock has turned RF off for good in this session."""


def check_armed(env: dict[str, str] | None = None) -> str:
    """The arming operator's name, or `NotArmed` (before anything is sent)."""
    env = dict(os.environ) if env is None else env
    operator = env.get(ENV_OPERATOR, "").strip()
    if env.get(ENV_ALLOW) != "1" or not operator:
        raise NotArmed(
            f"the RF bench is not armed: set {ENV_ALLOW}=1 and {ENV_OPERATOR}=<your name> to allow RF "
            "(nothing was sent to the instruments)"
        )
    if len(operator) > 64 or not operator.isprintable():
        raise NotArmed(f"{ENV_OPERATOR} must be a printable name of at most 64 characters")
    return operator


class InterlockLog:
    """Append-only JSONL, fsynced per line; `attach` starts a copy in a run directory."""

    def __init__(self, path: Path) -> None:
        self.paths = [Path(path)]
        self.records: list[dict[str, Any]] = []
        self._lock = threading.RLock()  # re-entrant: a signal handler may log while the main thread logs
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a"):
                pass
        except OSError as exc:
            raise UsageError(f"cannot write the interlock log {path}: {exc}") from None

    def record(self, event: str, **fields: Any) -> dict[str, Any]:
        rec = {"t": round(time.time(), 6), "event": event, "pid": os.getpid(), **fields}
        line = json.dumps(rec, default=str) + "\n"
        with self._lock:
            self.records.append(rec)
            for p in self.paths:
                self._append(p, line)
        return rec

    @staticmethod
    def _append(path: Path, text: str) -> None:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, text.encode())
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:  # a full disk must not stop RF going off
            log.error("interlock log %s: %s", path, exc)

    def attach(self, path: Path) -> None:
        """Copy this session's records to ``path`` and append there from now on."""
        path = Path(path)
        with self._lock:
            if path in self.paths:
                return
            self._append(path, "".join(json.dumps(r, default=str) + "\n" for r in self.records))
            self.paths.append(path)


@dataclass(frozen=True)
class LevelLimits:
    """Peak, RMS (``unit``: dBm at the generator, dBFS at a radio's DAC), PAPR and length of a period."""

    peak: float
    rms: float
    papr_db: float
    max_samples: int
    unit: str = "dBm"
    code_fs: float = 32767.0  # the integer code of digital full scale
    max_tx_gain_db: float | None = None  # a radio: the largest TX gain ever written

    @classmethod
    def of(cls, limits: Any) -> LevelLimits:
        """From an instrument bench's ``[limits]`` (dBm) or a radio's (dBFS)."""
        if isinstance(limits, LevelLimits):
            return limits
        if hasattr(limits, "peak_dbfs"):
            return cls(limits.peak_dbfs, limits.rms_dbfs, limits.papr_db, limits.max_samples, "dBFS",
                       2047.0, limits.max_tx_gain_db)  # fmt: skip
        return cls(limits.peak_dbm, limits.rms_dbm, limits.papr_db, limits.max_samples)


def period_levels(
    iq: np.ndarray, full_scale_dbm: float, code_fs: float = 32767.0
) -> tuple[float, float, float]:
    """(RMS level, peak, PAPR dB) of an integer (n, 2) period played at full scale ``full_scale_dbm``.

    The level written is rounded down to 1e-4 dB, and peak and PAPR follow from
    the level written, so what the generator computes is what was checked.
    """
    mag2 = (iq.astype(np.float64) ** 2).sum(axis=1) / code_fs**2
    ms = float(mag2.mean())
    if ms <= 0:
        return -math.inf, -math.inf, 0.0
    level = math.floor((full_scale_dbm + 10 * math.log10(ms)) * 1e4) / 1e4
    papr = 10 * math.log10(float(mag2.max()) / ms)
    return level, level + papr, papr


class Interlock:
    """RF state, limits and every way RF goes off; one per bench session."""

    def __init__(
        self,
        log_: InterlockLog,
        operator: str,
        *,
        limits: Any,
        full_scale_dbm: float,
        emergency_off: Callable[[], str],
        sessions: Iterable[Any] = (),
        watchdog_s: float = 0.05,
        grace_s: float = 0.5,
        retry_s: float = 5.0,
    ) -> None:
        self.log = log_
        self.operator = operator
        self.limits = None if limits is None else LevelLimits.of(limits)
        self.full_scale_dbm = full_scale_dbm
        self.emergency_off = emergency_off
        self.sessions = list(sessions)
        self.grace_s = grace_s
        self.retry_s = retry_s
        self.rf_on = False
        self.tripped: str | None = None
        self._lock = threading.RLock()
        self._prev: dict[int, Any] = {}
        self._stop = threading.Event()
        self._watchdog = threading.Thread(
            target=self._watch, args=(watchdog_s,), daemon=True, name="rf-watchdog"
        )

    # ------------------------------------------------------------ limits
    def check_period(self, iq: np.ndarray) -> float:
        """The level to set for this period, or `OutOfRangeError` naming the limit (nothing sent)."""
        lim = self.limits
        assert lim is not None
        n = len(iq)
        level, peak, papr = period_levels(iq, self.full_scale_dbm, lim.code_fs)
        u = lim.unit
        why = ""
        if n > lim.max_samples:
            why = f"{n} samples exceed max_samples {lim.max_samples}"
        elif peak > lim.peak + 1e-9:
            why = f"peak {peak:.3f} {u} exceeds the peak limit {lim.peak} {u}"
        elif level > lim.rms + 1e-9:
            why = f"RMS {level:.3f} {u} exceeds the RMS limit {lim.rms} {u}"
        elif papr > lim.papr_db:
            why = f"PAPR {papr:.2f} dB (guard included) exceeds papr_db {lim.papr_db}"
        if why:
            self.log.record("refused", reason=why)
            raise OutOfRangeError(f"bench: {why}; nothing sent")
        return level

    def check_tx_gain(self, db: float) -> None:
        """A radio's TX gain (read back) at or below ``max_tx_gain_db``, or `OutOfRangeError`."""
        top = None if self.limits is None else self.limits.max_tx_gain_db
        if top is not None and db > top + 1e-9:
            why = f"TX gain {db:g} dB exceeds max_tx_gain_db {top:g}"
            self.log.record("refused", reason=why)
            raise OutOfRangeError(f"bench: {why}; nothing sent")

    # ------------------------------------------------------------ RF state
    def allow_rf(self) -> None:
        if self.tripped:
            raise Tripped(f"bench: the interlock tripped ({self.tripped}); RF stays off in this session")

    def note_rf(self, on: bool, **fields: Any) -> None:
        with self._lock:
            self.rf_on = on
            self.log.record("rf_on" if on else "rf_off", **fields)

    def trip(self, reason: str) -> None:
        """RF off now over a second connection (retried up to ``retry_s``), logged; never re-armed."""
        with self._lock:
            first = self.tripped is None
            if first:
                self.tripped = reason
            self.log.record("trip", reason=reason, first=first)
            self.turn_off(reason)

    def turn_off(self, reason: str) -> bool:
        """`emergency_off` until it succeeds or ``retry_s`` has passed; True when RF read back off."""
        with self._lock:
            t_end = time.monotonic() + self.retry_s
            attempts, errors = 0, []
            while True:
                attempts += 1
                try:
                    state = self.emergency_off()
                except Exception as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                else:
                    self.rf_on = False
                    self.log.record(
                        "rf_off", via="second connection", readback=state, reason=reason, attempts=attempts,
                        **({"errors": errors[-3:]} if errors else {}),
                    )  # fmt: skip
                    return True
                if time.monotonic() + 0.1 > t_end:
                    break
                time.sleep(min(0.05 * attempts, 0.5))
            self.log.record(
                "rf_off_failed", via="second connection", error=errors[-1], reason=reason, attempts=attempts
            )
            log.error(
                "bench: could not turn RF off over a second connection (%d attempts): %s",
                attempts,
                errors[-1],
            )
            return False

    # ------------------------------------------------------------ handlers
    def install(self) -> None:
        """Signal handlers (main thread only), atexit and the watchdog."""
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._prev[sig] = signal.signal(sig, self._on_signal)
        atexit.register(self._at_exit)
        self._watchdog.start()

    def uninstall(self) -> None:
        self._stop.set()
        atexit.unregister(self._at_exit)
        if threading.current_thread() is threading.main_thread():
            for sig, prev in self._prev.items():
                with contextlib.suppress(ValueError, TypeError):
                    signal.signal(sig, prev)
        self._prev.clear()

    def _on_signal(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        self.trip(name)
        prev = self._prev.get(signum)
        self.uninstall()
        if callable(prev):
            prev(signum, frame)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + signum)

    def _at_exit(self) -> None:
        if self.rf_on:
            self.trip("interpreter exit with RF on")

    def overdue(self, now: float) -> str | None:
        """Why RF must go off now (a call past its expected end plus the grace, or past its
        deadline, while RF is on; a lost link), or None."""
        for s in self.sessions:
            lost = s.check_link() if hasattr(s, "check_link") else None
            if lost:
                return f"link lost: {lost}"
            if not self.rf_on:
                continue
            deadline, since = s.deadline, getattr(s, "busy_since", None)
            if since is not None:
                soft = since + getattr(s, "expected_s", 0.0) + self.grace_s
                deadline = soft if deadline is None else min(deadline, soft)
            if deadline is not None and now > deadline:
                return f"watchdog: {s.name} call still running {now - deadline:.2f} s past its deadline"
        return None

    def _watch(self, poll: float) -> None:
        while not self._stop.wait(poll):
            if self.tripped:
                continue
            why = self.overdue(time.monotonic())
            if why and (self.rf_on or why.startswith("link lost")):
                self.trip(why)
