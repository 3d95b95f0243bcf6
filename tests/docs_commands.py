"""The commands of a docs page: split into logical lines, install steps recognised.

Used by `docs_runner` (see its docstring for the conventions a page follows).
"""

from __future__ import annotations

import importlib.metadata as md
import re
import shlex
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Command:
    """One logical shell command of a block (continuation lines joined)."""

    text: str
    line: int  # line in the document
    expect_error: str | None = None  # "# hwloop: error: ..." below it
    expect_output: list[str] = field(default_factory=list)  # console blocks
    comment: str = ""


def split_commands(source: str, first_line: int, console: bool = False) -> list[Command]:
    """A block's commands: ``\\``-continued lines joined, comments kept apart."""
    out: list[Command] = []
    lines = source.splitlines()
    i = 0
    while i < len(lines):
        raw, line_no = lines[i], first_line + i
        i += 1
        stripped = raw.strip()
        if console:
            if stripped.startswith("$ "):
                out.append(Command(stripped[2:], line_no))
            elif stripped and out:
                out[-1].expect_output.append(stripped)
            continue
        if not stripped:
            continue
        if stripped.startswith("#"):
            m = re.match(r"#\s*(hwloop: error: .*)$", stripped)
            if m and out:
                out[-1].expect_error = m.group(1)
            continue
        text = raw
        while text.rstrip().endswith("\\") and i < len(lines):
            text = text.rstrip()[:-1] + " " + lines[i].strip()
            i += 1
        code, comment = _strip_comment(text)
        out.append(Command(code.strip(), line_no, comment=comment))
    return out


def _strip_comment(text: str) -> tuple[str, str]:
    """``cmd  # note`` -> (cmd, note); a # inside quotes stays (shlex decides)."""
    for m in re.finditer(r"\s#", text):
        head = text[: m.start()]
        try:
            shlex.split(head)
        except ValueError:  # inside quotes
            continue
        return head, text[m.start() :].strip().lstrip("#").strip()
    return text, ""


SETUP = [
    (re.compile(r"^python3? -m venv\b"), "creates the virtual environment the test runs in"),
    (re.compile(r"^(sudo )?apt(-get)? (update|install)\b"), "system packages: CI installs its own (.ci/run)"),
    (re.compile(r"^sudo usermod\b"), "host administration (serial-port access)"),
]


def setup_reason(segment: str, workspace_kind: str) -> str | None:
    """Why an install step is not run as written, or None when it runs (or is checked) as such."""
    s = segment.strip()
    for pattern, why in SETUP:
        if pattern.search(s):
            return why
    if re.fullmatch(r"(\.venv/bin/)?pytest", s):
        return "the whole test suite: CI runs it by this very command (.ci/run)"
    if pip_install_args(s) and workspace_kind == "checkout":
        return "installs hwloop: the test environment is that install (checked, not repeated)"
    return None


def pip_install_args(s: str) -> list[str] | None:
    m = re.match(r"^(?:\S*/)?(?:pip3?|python3? -m pip) install (.+)$", s)
    return shlex.split(m.group(1)) if m else None


def check_installed(segment: str, checkout: Path | None = None) -> None:
    """A ``pip install`` of hwloop (or one of its extras): the test environment must hold it;
    a plain ``pip install .`` of the checkout is built as a wheel and checked to work on its own."""
    args = [a for a in pip_install_args(segment) or [] if not a.startswith("-")]
    if "." in args and "-e" not in segment and checkout is not None:
        check_wheel(checkout)
    for arg in args:
        extras = re.findall(r"\[([\w,\s]+)\]", arg)
        dist = md.distribution("hwloop")  # raises if hwloop is not installed at all
        wanted = {e.strip() for group in extras for e in group.split(",")}
        for req in dist.requires or []:
            m = re.search(r"extra\s*==\s*['\"]([\w-]+)['\"]", req)
            if m and m.group(1) in wanted:
                name = re.split(r"[\s;<>=!~\[]", req, maxsplit=1)[0]
                md.distribution(name)  # PackageNotFoundError names what is missing


_WHEEL_CHECKED: list[Path] = []


def check_wheel(checkout: Path) -> None:
    """What ``pip install .`` installs works without the checkout: the wheel holds the package
    data (the bundled measurements, the simulators' fits) and its entry points open devices."""
    if checkout in _WHEEL_CHECKED:
        return
    with tempfile.TemporaryDirectory() as tmp:
        wheels, site = Path(tmp) / "wheels", Path(tmp) / "site"
        pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
        subprocess.run(
            [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(checkout)],
            check=True, capture_output=True, timeout=600,
        )  # fmt: skip
        (wheel,) = wheels.glob("hwloop-*.whl")
        names = zipfile.ZipFile(wheel).namelist()
        for needed in ("hwloop/dpd/datasets/DPA_200MHz/dpa_200mhz.npz", "hwloop/simulators/data/"):
            assert any(n.startswith(needed) for n in names), f"{wheel.name} lacks {needed}"
        subprocess.run(
            [*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True, timeout=600
        )
        code = (
            f"import sys; sys.path.insert(0, {str(site)!r}); "
            "import hwloop, hwloop.registry as r; from hwloop.dpd.signals import dpa200; "
            f"assert hwloop.__file__.startswith({str(site)!r}), hwloop.__file__; "
            "r.open_device('sim:pa_gmp').close(); dpa200('test')"
        )
        subprocess.run([sys.executable, "-I", "-c", code], check=True, timeout=300, cwd=tmp)
    _WHEEL_CHECKED.append(checkout)
