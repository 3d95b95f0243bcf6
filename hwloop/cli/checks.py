"""Checks a command runs before anything heavy: a bad URI, file or run directory in a second.

Everything here needs no TensorFlow (nor Ray), so a command that will
refuse its input does so before importing them; the library repeats the
same checks where it acts, so these only move the refusal earlier.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from hwloop.errors import RunDirError, UsageError


def check_device_uri(uri: str | None) -> None:
    """The device URI's scheme and parameters, without opening the device."""
    if uri is None:
        return
    from hwloop.registry import check_uri

    check_uri(uri)


def check_trained_run(run_dir: str) -> None:
    """A run directory holding a trained inverse (what `hwloop.load_inverse` needs)."""
    from hwloop.inverses.base import INFO_FILE, INVERSE_FILE

    run = Path(run_dir)
    if not run.is_dir():
        raise RunDirError(f"run directory {run} does not exist")
    if not (run / INVERSE_FILE).is_file() or not (run / INFO_FILE).is_file():
        raise RunDirError(f"{run} holds no trained inverse ({INVERSE_FILE} or {INFO_FILE} missing)")


def check_exists(path: str | None, what: str) -> None:
    if path is not None and not Path(path).exists():
        raise UsageError(f"{what} {path} does not exist")


def resume_command(command: str, out: str | Path, **extra: str | None) -> str:
    """The command line that continues an interrupted run, quoted for a shell."""
    parts = ["hwloop", command, "--resume", "--out", shlex.quote(str(out))]
    for name, value in extra.items():
        if value is not None:
            parts += ["--" + name.replace("_", "-"), shlex.quote(value)]
    return " ".join(parts)
