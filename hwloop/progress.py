"""Progress of long work: the library reports it here, whoever listens shows it.

Library code never prints. Where work takes long it opens a task and
advances it (``with progress.task("fit", total=steps, unit="step") as t:
t.advance(100, note="loss 1e-4")``), or counts into a named task that may
already run (``progress.count("collect", n, total=budget)``, as the metered
device does for every answered batch). Without a listener every call is a
no-op costing a few attribute look-ups. A command line, a notebook or a
service installs its own `Reporter` with `reporting` for the duration of a
call; `hwloop.cli.display` is the command line's.

Tasks are named by phase, so one display can keep one row per phase across
a run: ``collect`` (training queries), ``fit`` (optimiser steps of one
fit), ``evaluate`` (evaluation and noise-floor queries), ``rounds``
(device rounds of a strategy), ``units`` (a farm's units).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

__all__ = ["Reporter", "Task", "count", "expect", "finish", "reporting", "steps", "task"]


class Reporter(Protocol):
    """What a listener implements; every call comes from the thread doing the work."""

    def start(self, name: str, total: float | None, unit: str, label: str) -> None:
        """Task ``name`` (re)starts at zero, of ``total`` units (None: unknown)."""

    def update(self, name: str, done: float, total: float | None, note: str | None) -> None:
        """Task ``name`` has done ``done`` units; ``note`` is a short status (a loss, a round)."""

    def finish(self, name: str) -> None:
        """Task ``name`` is over (its row may stay, marked done)."""


_lock = threading.Lock()
_stack: list[Reporter] = []
_counts: dict[str, list[float | None]] = {}  # running counters of `count`: [done, total]


def _current() -> Reporter | None:
    return _stack[-1] if _stack else None


@contextmanager
def reporting(reporter: Reporter | None) -> Iterator[None]:
    """Send progress to ``reporter`` while the block runs (None: to nobody)."""
    with _lock:
        _stack.append(reporter)  # type: ignore[arg-type]
        saved = dict(_counts)
        _counts.clear()
    try:
        yield
    finally:
        with _lock:
            _stack.pop()
            _counts.clear()
            _counts.update(saved)


class Task:
    """One unit of long work in progress: advance it, then close it (or use ``with``)."""

    def __init__(self, name: str, total: float | None = None, unit: str = "", label: str = "") -> None:
        self.name, self.total, self.done = name, total, 0.0
        self._reporter = _current()
        if self._reporter is not None:
            self._reporter.start(name, total, unit, label or name)

    def advance(self, n: float = 1, note: str | None = None) -> None:
        self.done += n
        if self._reporter is not None:
            self._reporter.update(self.name, self.done, self.total, note)

    def set(self, done: float, note: str | None = None) -> None:
        self.done = done
        if self._reporter is not None:
            self._reporter.update(self.name, self.done, self.total, note)

    def close(self) -> None:
        if self._reporter is not None:
            self._reporter.finish(self.name)
            self._reporter = None

    def __enter__(self) -> Task:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def task(name: str, total: float | None = None, unit: str = "", label: str = "") -> Task:
    """Start a task; ``with task(...) as t:`` closes it at the end of the block."""
    return Task(name, total, unit, label)


def steps(total: int, name: str = "fit", unit: str = "steps", label: str = "") -> Iterator[int]:
    """``range(total)`` reported as task ``name``: a training loop's ``for i in steps(n):``.

    Reports at most ten times a second, so a fast loop pays a clock read per step.
    """
    t = Task(name, total, unit, label)
    if t._reporter is None:
        yield from range(total)
        return
    last = time.monotonic()
    try:
        for i in range(total):
            yield i
            now = time.monotonic()
            if now - last >= 0.1:
                last = now
                t.set(i + 1)
        t.set(total)
    finally:
        t.close()


def count(name: str, n: float, *, total: float | None = None, unit: str = "", label: str = "") -> None:
    """Add ``n`` to the running counter ``name``, starting it (with ``total``) on first use."""
    reporter = _current()
    if reporter is None:
        return
    entry = _counts.get(name)
    if entry is None:
        entry = _counts[name] = [0.0, total]
        reporter.start(name, total, unit, label or name)
    elif total is not None and entry[1] != total:
        entry[1] = total
    entry[0] = (entry[0] or 0.0) + n
    reporter.update(name, entry[0], entry[1], None)


def expect(name: str, total: float | None, *, unit: str = "", label: str = "") -> None:
    """(Re)start the counter ``name`` at zero with a known ``total`` before `count` adds to it."""
    reporter = _current()
    if reporter is None:
        return
    _counts[name] = [0.0, total]
    reporter.start(name, total, unit, label or name)


def finish(name: str) -> None:
    """Close the counter ``name`` (a phase is over); the next `count` starts it afresh."""
    reporter = _current()
    if reporter is None or _counts.pop(name, None) is None:
        return
    reporter.finish(name)
