"""Progress: what the library reports (hwloop.progress) and how the CLI shows it (hwloop.cli.display)."""

from __future__ import annotations

import io
import logging
import time

import pytest

from hwloop import progress
from hwloop.cli import display
from hwloop.cli.console import StderrHandler
from hwloop.cli.display import Display


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def start(self, name: str, total: float | None, unit: str, label: str) -> None:
        self.events.append(("start", name, total, unit, label))

    def update(self, name: str, done: float, total: float | None, note: str | None) -> None:
        self.events.append(("update", name, done, total, note))

    def finish(self, name: str) -> None:
        self.events.append(("finish", name))


def test_without_a_listener_reporting_is_a_no_op() -> None:
    assert list(progress.steps(3)) == [0, 1, 2]
    progress.count("collect", 5, total=10)
    with progress.task("fit", total=2) as t:
        t.advance()
    progress.finish("collect")


def test_the_library_reports_tasks_counters_and_steps_in_order() -> None:
    rec = Recorder()
    with progress.reporting(rec):
        progress.count("collect", 100, total=1000, unit="queries")
        progress.count("collect", 50, total=1000, unit="queries")
        assert list(progress.steps(3, label="fit through the device")) == [0, 1, 2]
        progress.expect("evaluate", 40, unit="queries")
        progress.count("evaluate", 40)
        progress.finish("evaluate")
        progress.finish("collect")
    names = [(e[0], e[1]) for e in rec.events]
    assert names[:3] == [("start", "collect"), ("update", "collect"), ("update", "collect")]
    assert rec.events[2] == ("update", "collect", 150, 1000, None)
    fit = [e for e in rec.events if e[1] == "fit"]
    assert fit[0] == ("start", "fit", 3, "steps", "fit through the device")
    assert fit[-2] == ("update", "fit", 3, 3, None) and fit[-1] == ("finish", "fit")
    assert ("update", "evaluate", 40, 40, None) in rec.events and rec.events[-1] == ("finish", "collect")


def test_reporting_nests_and_restores() -> None:
    outer, inner = Recorder(), Recorder()
    with progress.reporting(outer):
        progress.count("collect", 1, total=2)
        with progress.reporting(inner):
            progress.count("collect", 1, total=5)
        progress.count("collect", 1, total=2)
    assert [e for e in outer.events if e[0] == "update"][-1] == ("update", "collect", 2, 2, None)
    assert inner.events[0] == ("start", "collect", 5, "", "collect")


def _capture(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    buf = io.StringIO()
    monkeypatch.setattr("sys.stderr", buf)
    return buf


def test_plain_lines_come_while_work_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(display, "PLAIN_FIRST", 0.2)
    monkeypatch.setattr(display, "PLAIN_EVERY", 0.3)
    buf = _capture(monkeypatch)
    with Display.open("train") as shown:
        assert shown.mode == "plain"
        progress.count("collect", 300, total=1000, unit="queries")
        for i in progress.steps(6):
            shown.on_fit_step(i, 1e-3 / (i + 1))
            time.sleep(0.25)
    lines = buf.getvalue().splitlines()
    assert len(lines) >= 2, lines
    assert all(line.startswith("hwloop train [") for line in lines)
    assert any("collect 300/1000 queries" in line and "fit" in line and "steps" in line for line in lines)
    assert any("loss" in line for line in lines)


def test_time_left_is_paced_from_the_first_step_not_the_tracing_before_it() -> None:
    """A fit whose first step took 30 s (its graph traced) and whose next ten took a second: 989
    steps left at ten a second is 1m39s, not the 46 minutes the whole time spent would say."""
    shown = Display("train", "plain")
    shown.start("fit", 1000, "steps", "fit")
    row = shown.rows["fit"]
    row.started = 0.0
    row.mark(1, now=30.0)
    row.mark(11, now=31.0)
    assert Display._describe("fit", row, 31.0) == "fit 11/1000 steps, 1m39s left"
    row.mark(11, now=30.5)
    assert Display._describe("fit", row, 30.5) == "fit 11/1000 steps"  # under a second of pace: no guess
    shown.finish("fit")
    assert "left" not in Display._describe("fit", row, 40.0)


def test_quiet_shows_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(display, "PLAIN_FIRST", 0.0)
    monkeypatch.setattr(display, "PLAIN_EVERY", 0.05)
    buf = _capture(monkeypatch)
    with Display.open("train", quiet=True):
        progress.count("collect", 300, total=1000)
        time.sleep(0.3)
    assert buf.getvalue() == ""


def test_a_quick_command_prints_no_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    buf = _capture(monkeypatch)
    with Display.open("eval"):
        progress.count("evaluate", 10)
    assert buf.getvalue() == ""  # under PLAIN_FIRST: a refusal or a fast command stays one line


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_log_lines_print_whole_above_the_display(monkeypatch: pytest.MonkeyPatch) -> None:
    buf = Tty()
    monkeypatch.setattr("sys.stderr", buf)
    log = logging.getLogger("hwloop.test_progress")
    handler = StderrHandler()
    log.addHandler(handler)
    try:
        with Display.open("train") as shown:
            assert shown.mode == "rich"
            progress.count("collect", 10, total=100, unit="queries")
            log.warning("bench: this capture's delay lies 0.103 samples from the session's")
            time.sleep(0.2)
    finally:
        log.removeHandler(handler)
    text = buf.getvalue()
    assert "bench: this capture's delay lies 0.103 samples from the session's" in text
    assert "collect" in text  # the live rows were drawn
