"""Progress on stderr for the commands that take long: a `hwloop.progress.Reporter`.

Three forms, chosen once per command:

- on a terminal, a live display (rich) with one row per phase the library
  reports (training queries, the current fit with its steps and time left,
  evaluation queries, a farm's units); log lines and warnings print above it
  and it is erased at the end, leaving the summary;
- anywhere else (a file, a pipe, CI), one plain line at least every
  `PLAIN_EVERY` seconds once the command has run `PLAIN_FIRST` seconds, saying
  what each running phase has done and, with a total, how long is left;
- ``--quiet``: nothing.

Library code reports through `hwloop.progress`; a command wraps its long call
in ``with Display.open("train", quiet) as shown:`` and passes
``shown.on_fit_step`` where the library takes a fit-step callback.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import click

from hwloop import progress

PLAIN_FIRST = 2.0  # seconds before the first plain line: a quick error stays one line
PLAIN_EVERY = 4.0  # at most this long between plain lines (the contract says 10 s: room for a stall)
COUNTERS = ("collect", "evaluate", "units")  # phases counted in bursts: no time left is guessed


def quiet_option(f: Callable) -> Callable:
    """``--quiet``: no progress on stderr (the summary, warnings and errors still print)."""
    return click.option("--quiet", "-q", "quiet", is_flag=True, help="No progress display on stderr.")(f)


@dataclass
class _Row:
    label: str
    unit: str
    total: float | None
    done: float = 0.0
    note: str | None = None
    started: float = field(default_factory=time.monotonic)
    over: bool = False
    runs: int = 1  # how many times this phase started (fits of a run)
    timed: bool = False  # time left is said for steady work (fits), not for queries that come in bursts
    paced_from: tuple[float, float] | None = None  # (time, done) of the first report with work done

    def mark(self, done: float, now: float) -> None:
        """Record the first report with work done: the pace is measured from there, since the time
        before it (a fit's first step traces its graph) says nothing of the steps that follow."""
        self.done = done
        if self.paced_from is None and done > 0:
            self.paced_from = (now, done)

    def time_left(self, now: float) -> float | None:
        """Seconds left at the pace since `paced_from`, once a second of it has been seen."""
        if self.paced_from is None or not self.total:
            return None
        since, first = self.paced_from
        if self.done <= first or now - since < 1.0:
            return None
        return (now - since) * (self.total - self.done) / (self.done - first)


def _fmt_s(s: float) -> str:
    s = max(0, round(s))
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def _num(v: float) -> str:
    return f"{int(v)}" if float(v).is_integer() else f"{v:.1f}"


class Display:
    """A `hwloop.progress.Reporter` that shows what it is told on stderr."""

    def __init__(self, command: str, mode: str) -> None:
        self.command, self.mode = command, mode
        self.rows: dict[str, _Row] = {}
        self.t0 = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_line = self.t0
        self._rich: Any = None
        self._ids: dict[str, Any] = {}
        self._interrupt_pending = False
        self._old_sigint: Any = None

    @classmethod
    @contextmanager
    def open(cls, command: str, quiet: bool = False, safe_interrupt: bool = False) -> Iterator[Display]:
        """The display for one command's long work; the library reports into it meanwhile.

        ``safe_interrupt``: Ctrl-C is raised at the work's next progress report (every fit
        step, every answered batch), never inside TensorFlow's own code or a finaliser,
        where a KeyboardInterrupt can be lost and the run go on; a second Ctrl-C raises at once.
        """
        mode = "off" if quiet else "rich" if _stderr_is_terminal() else "plain"
        shown = cls(command, mode)
        shown._begin()
        safe = safe_interrupt and threading.current_thread() is threading.main_thread()
        if safe:
            shown._old_sigint = signal.signal(signal.SIGINT, shown._on_sigint)
        try:
            with progress.reporting(shown if mode != "off" or safe else None):
                yield shown
        finally:
            if safe:
                signal.signal(signal.SIGINT, shown._old_sigint)
            shown._end()

    def _on_sigint(self, _signum: int, _frame: Any) -> None:
        if self._interrupt_pending:  # the second Ctrl-C: at once
            raise KeyboardInterrupt
        self._interrupt_pending = True

    def _raise_if_interrupted(self) -> None:
        if self._interrupt_pending:
            signal.signal(signal.SIGINT, signal.default_int_handler)  # raised once; a further one at once
            self._interrupt_pending = False
            raise KeyboardInterrupt

    # ------------------------------------------------------------ Reporter
    def start(self, name: str, total: float | None, unit: str, label: str) -> None:
        self._raise_if_interrupted()
        with self._lock:
            row = self.rows.get(name)
            runs = 1 if row is None else row.runs + 1
            self.rows[name] = _Row(label, unit, total, runs=runs, timed=name not in COUNTERS)
        if self._rich is not None:
            self._rich_start(name)

    def update(self, name: str, done: float, total: float | None, note: str | None) -> None:
        self._raise_if_interrupted()
        with self._lock:
            row = self.rows.get(name)
            if row is None:
                return
            row.mark(done, time.monotonic())
            row.total = total if total is not None else row.total
            row.note = note if note is not None else row.note
        if self._rich is not None:
            self._rich_update(name)

    def finish(self, name: str) -> None:
        with self._lock:
            row = self.rows.get(name)
            if row is None:
                return
            row.over = True
            row.total = row.done if row.total is None or row.done > row.total else row.total
        if self._rich is not None:
            self._rich_update(name)

    def on_fit_step(self, step: int, loss: float) -> None:
        """The library's fit-step callback: the current fit's loss beside its row."""
        self._raise_if_interrupted()
        with self._lock:
            row = self.rows.get("fit")
            if row is not None:
                row.note = f"loss {loss:.2e}"
        if self._rich is not None and "fit" in self._ids:
            self._rich_update("fit")

    # ------------------------------------------------------------ lifetime
    def _begin(self) -> None:
        if self.mode == "rich":
            self._rich_begin()
        elif self.mode == "plain":
            self._thread = threading.Thread(target=self._heartbeat, name="hwloop-progress", daemon=True)
            self._thread.start()

    def _end(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._rich is not None:
            self._rich.stop()
            self._rich = None

    # ------------------------------------------------------------ plain lines
    def _heartbeat(self) -> None:
        while not self._stop.wait(0.25):
            now = time.monotonic()
            if now - self.t0 < PLAIN_FIRST:
                continue
            if now - self._last_line >= PLAIN_EVERY:
                self._emit(now)

    def _emit(self, now: float) -> None:
        with self._lock:
            text = self.status(now)
        self._last_line = now
        try:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()
        except (OSError, ValueError):  # stderr closed under us: nothing to tell
            self._stop.set()

    def status(self, now: float | None = None) -> str:
        """One line: elapsed time and every phase that runs (or ran last)."""
        now = time.monotonic() if now is None else now
        parts = []
        for name, row in self.rows.items():
            if row.over and name not in ("collect",):
                continue
            parts.append(self._describe(name, row, now))
        what = "; ".join(parts) if parts else "working"
        return f"hwloop {self.command} [{_fmt_s(now - self.t0)}]: {what}"

    @staticmethod
    def _describe(name: str, row: _Row, now: float) -> str:
        label = row.label + (f" #{row.runs}" if name == "fit" and row.runs > 1 else "")
        if row.total is None and not row.done:  # work without steps to count: how long it has run
            return f"{label} for {_fmt_s(now - row.started)}"
        count = _num(row.done) + (f"/{_num(row.total)}" if row.total else "")
        text = f"{label} {count}{' ' + row.unit if row.unit else ''}"
        running = row.timed and row.done < (row.total or 0) and not row.over
        left = row.time_left(now) if running else None
        if left is not None:
            text += f", {_fmt_s(left)} left"
        if row.note:
            text += f", {row.note}"
        return text

    # ------------------------------------------------------------ terminal
    def _rich_begin(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        console = Console(file=sys.stderr, stderr=True)
        self._rich = Progress(
            SpinnerColumn(finished_text="[green]✓"),
            TextColumn("{task.description}"),
            BarColumn(bar_width=28),
            TextColumn("{task.fields[count]}"),
            TimeElapsedColumn(),
            _left_column(),
            TextColumn("{task.fields[note]}"),
            console=console,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=True,
        )
        self._rich.start()
        self._ids["_run"] = self._rich.add_task(
            f"hwloop {self.command}: working", total=None, count="", note=""
        )

    def _rich_start(self, name: str) -> None:
        row = self.rows[name]
        label = row.label + (f" #{row.runs}" if name == "fit" and row.runs > 1 else "")
        self._rich.update(self._ids["_run"], visible=False)
        if name in self._ids:
            self._rich.reset(self._ids[name], total=row.total, description=label)
        else:
            self._ids[name] = self._rich.add_task(label, total=row.total, count="", note="", timed=row.timed)
        self._rich_update(name)

    def _rich_update(self, name: str) -> None:
        row = self.rows.get(name)
        if row is None or name not in self._ids:
            return
        count = "" if row.total is None and not row.done else _num(row.done)
        count += (f"/{_num(row.total)}" if row.total else "") + (f" {row.unit}" if count else "")
        self._rich.update(
            self._ids[name], completed=row.done, total=row.total, count=count, note=row.note or ""
        )
        if row.over:
            self._rich.stop_task(self._ids[name])


def _left_column() -> Any:
    """Time left of a task with a total, blank otherwise (rich's own column shows -:--:--)."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class TimeLeft(ProgressColumn):
        def render(self, task: Any) -> Text:
            left = task.time_remaining
            if not task.fields.get("timed") or task.total is None or task.finished or left is None:
                return Text("")
            return Text(f"{_fmt_s(left)} left", style="progress.remaining")

    return TimeLeft()


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False
