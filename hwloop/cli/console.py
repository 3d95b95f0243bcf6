"""What reaches the user's stderr: Python's lines only, never TensorFlow's C++ logs.

TensorFlow 2.21 and absl write their start-up lines ("All log messages before
absl::InitializeLog() ...", oneDNN, cuInit/cudart probes, the TFLite
converter's MLIR notes) straight to file descriptor 2, from C++, whatever
``TF_CPP_MIN_LOG_LEVEL`` says. `native_stderr_hidden` gives Python its own
descriptor for stderr (a duplicate of the terminal, file or pipe the user
gave) and points descriptor 2 at the null device for the rest of the
command, so everything Python prints (progress, warnings, the summary, the
one-line error) still arrives and nothing native does. ``-v`` lets the
native lines through. `StderrHandler` is the log handler that writes to
whatever ``sys.stderr`` is when a line is logged, so log lines follow it
(and print above a live progress display instead of through it).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

QUIET_LOGGERS = ("tensorflow", "absl", "h5py", "jax")  # Python-side chatter of the ML stack


class StderrHandler(logging.StreamHandler):
    """A `logging.StreamHandler` bound to the current ``sys.stderr``, not the one at set-up."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


def _is_process_stderr(stream: object) -> bool:
    """True when ``stream`` writes to descriptor 2 itself (not a test runner's capture)."""
    try:
        return stream.fileno() == 2  # type: ignore[attr-defined]
    except (AttributeError, ValueError, OSError):
        return False


@contextmanager
def native_stderr_hidden(show: bool = False) -> Iterator[None]:
    """Descriptor 2 to the null device while the block runs, Python's stderr kept.

    Does nothing when ``show`` (``-v``) or when ``sys.stderr`` is not the
    process's descriptor 2 (in-process test runners capture it elsewhere).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if not show:
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
    if show or not _is_process_stderr(sys.stderr):
        yield
        return
    old = sys.stderr
    old.flush()
    saved = os.dup(2)
    python_side = open(  # noqa: SIM115 - lives as long as the block
        saved,
        "w",
        buffering=1,
        encoding=getattr(old, "encoding", None) or "utf-8",
        errors="backslashreplace",
        closefd=True,
    )
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    os.close(null)
    sys.stderr = python_side
    try:
        yield
    finally:
        try:
            python_side.flush()
        finally:
            sys.stderr = old
            os.dup2(python_side.fileno(), 2)
            python_side.close()


def interrupted_message(exc: BaseException) -> str:
    """The line for Ctrl-C: what was kept and, where a command can go on, the exact command."""
    resume = getattr(exc, "resume_command", None)
    kept = getattr(exc, "kept", None)
    text = "hwloop: interrupted"
    if kept:
        text += f"; {kept}"
    if resume:
        text += f"; resume with: {resume}"
    return text
