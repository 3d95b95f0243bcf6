"""Run README.md and docs/*.md as written: Sybil finds the blocks, a shell session runs them.

One document is one session, as a reader typing its commands into one
terminal: a persistent ``bash`` in a fresh workspace (``cd``, ``export`` and
background jobs carry from one command to the next), Python blocks executed
in one namespace per document (Sybil's), in the same working directory.

What a document's text decides (all visible in its markdown source):

- ```` ```sh ````/```` ```bash ```` blocks: every command runs and must exit 0.
  A command followed by a comment ``# hwloop: error: TEXT`` must fail with
  TEXT on stderr (a trailing ``...`` ends the part compared). A command
  ending in ``&`` runs in the background until the document ends; the runner
  waits for its first line of output, and the ``/dev/pts/N`` (then ``M``)
  that later commands name is the pseudo-terminal it printed.
- ```` ```console ```` blocks: ``$ command`` lines run; each other line must
  appear in that command's output.
- ```` ```python ```` blocks run in the document's namespace, unless their first
  line is a comment naming a file (``# tests/test_x.py``): then they are that
  file, written (or appended to) in the workspace. ```` ```toml ```` blocks that
  name a file likewise; other toml and text blocks are shown output.
- A command or Python block whose comment says ``hardware only`` is not run
  and is listed (`not_run`); so are install commands, which the test
  environment stands for (`setup_reason`).
- HTML comments ``<!-- docs-test: ... -->`` (invisible when rendered):
  ``stand-in PATH = URI`` serves the simulator URI on a pty (``hwloop serve
  --pty``) and puts its path wherever later commands name PATH (a board's
  ``/dev/ttyACM0``); ``workspace empty`` runs the document in an empty
  folder (a user's own project) instead of a copy of the checkout; ``slow``
  marks it slow.

``HWLOOP_DOCS_QUICK=1`` is set for every command (and the Python blocks), so
training and evaluation budgets are capped (`hwloop.config.QUICK_CAPS`).
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from docs_commands import Command, check_installed, pip_install_args, setup_reason, split_commands
from sybil import Region, Sybil
from sybil.evaluators.python import PythonEvaluator
from sybil.parsers.markdown import CodeBlockParser
from sybil.parsers.markdown.lexers import DirectiveInHTMLCommentLexer

ROOT = Path(__file__).resolve().parents[1]
QUICK = {"HWLOOP_DOCS_QUICK": "1"}
COMMAND_TIMEOUT = 900.0  # one command, seconds
READY_TIMEOUT = 120.0  # a background command's first line of output
SESSION = "__docs_session__"
FILE_COMMENT = re.compile(r"^#\s*([\w./-]+\.(?:py|toml|txt|cfg|ini))\b")
HARDWARE = re.compile(r"hardware only", re.IGNORECASE)
PTY_PLACEHOLDERS = ("/dev/pts/N", "/dev/pts/M", "/dev/pts/K")
CHECKOUT_ENTRIES = (".ci", "README.md", "pyproject.toml", "hwloop", "simulators", "benchmarks", "tests")
CHECKOUT_ENTRIES += ("docs",)


def documents() -> list[Path]:
    """README.md and every docs/*.md: a new page is run without anyone listing it."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def directives(path: Path) -> list[str]:
    return [m.strip() for m in re.findall(r"<!--\s*docs-test:\s*(.*?)\s*-->", path.read_text())]


# ---------------------------------------------------------------- the session


class DocSession:
    """A workspace, a persistent bash, stand-ins and substitutions for one document."""

    def __init__(self, doc: Path, workspace: Path, kind: str) -> None:
        self.doc, self.ws, self.kind = doc, workspace, kind
        self.logs = workspace / ".docs-test"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.subs: dict[str, str] = {}
        self.ptys: list[str] = []
        self.n = 0
        self.not_run: list[tuple[int, str, str]] = []
        self.helpers: list[subprocess.Popen] = []
        self.env = self._environment()
        self._prepare()
        self.bash = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=open(self.logs / "bash.err", "w"),  # noqa: SIM115 - lives with the session
            cwd=workspace,
            env=self.env,
            text=True,
            start_new_session=True,
        )
        self._send("set -o pipefail")

    def _environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HWLOOP_")}
        env.update(QUICK)
        env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _prepare(self) -> None:
        """The reader's folder: a copy of the checkout's layout (or an empty project) and ``.venv``."""
        (self.ws / ".venv").symlink_to(Path(sys.prefix))
        if self.kind != "checkout":
            return
        for name in CHECKOUT_ENTRIES:
            if (ROOT / name).exists():
                (self.ws / name).symlink_to(ROOT / name)
        shutil.copytree(ROOT / "drivers", self.ws / "drivers", symlinks=True)  # builds write into it

    # -------------------------------------------------------------- running
    def _send(self, text: str) -> None:
        assert self.bash.stdin is not None
        self.bash.stdin.write(text + "\n")
        self.bash.stdin.flush()

    def substitute(self, text: str) -> str:
        for old, new in self.subs.items():
            text = re.sub(re.escape(old) + r"(?![\w/])", new, text)
        return text

    def run(self, cmd: Command, where: str) -> tuple[int, str, str]:
        """Run one command in the session; returns (exit status, stdout, stderr)."""
        self.n += 1
        n, text = self.n, self.substitute(cmd.text)
        script, out, err, rc = (self.logs / f"{n}.{ext}" for ext in ("sh", "out", "err", "rc"))
        script.write_text(text + "\n")
        background = text.rstrip().endswith("&") and not text.rstrip().endswith("&&")
        self._send(
            f"{{ source {shlex.quote(str(script))} ; }} >{shlex.quote(str(out))} 2>{shlex.quote(str(err))}"
            f" </dev/null; echo $? >{shlex.quote(str(rc))}.tmp && mv {shlex.quote(str(rc))}.tmp "
            f"{shlex.quote(str(rc))}"
        )
        deadline = time.monotonic() + COMMAND_TIMEOUT
        while not rc.exists():
            if time.monotonic() > deadline or self.bash.poll() is not None:
                raise AssertionError(f"{where}: `{text}` did not finish in {COMMAND_TIMEOUT:.0f} s")
            time.sleep(0.1)
        status = int(rc.read_text().strip() or "1")
        if background:
            self._wait_ready(out, err, text, where)
        return status, out.read_text(errors="replace"), err.read_text(errors="replace")

    def _wait_ready(self, out: Path, err: Path, text: str, where: str) -> None:
        """A background command is ready once it printed a line and then paused (1 s); the
        first pty it names is the next placeholder's (``/dev/pts/N``, then ``M``)."""
        deadline = time.monotonic() + READY_TIMEOUT
        seen, quiet_since = "", time.monotonic()
        while time.monotonic() < deadline:
            now_seen = out.read_text(errors="replace")
            if now_seen != seen:
                seen, quiet_since = now_seen, time.monotonic()
            elif "\n" in seen and time.monotonic() - quiet_since >= 1.0:
                ptys = re.findall(r"/dev/pts/\d+", seen)
                if ptys and len(self.ptys) < len(PTY_PLACEHOLDERS):
                    self.subs[PTY_PLACEHOLDERS[len(self.ptys)]] = ptys[0]
                    self.ptys.append(ptys[0])
                return
            time.sleep(0.2)
        raise AssertionError(
            f"{where}: background `{text}` printed nothing in {READY_TIMEOUT:.0f} s; "
            f"stderr: {err.read_text(errors='replace')[-800:]}"
        )

    def stand_in(self, path: str, uri: str) -> None:
        """Serve ``uri`` on a pty with ``hwloop serve`` and name it wherever ``path`` appears."""
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "hwloop"), "serve", "--device", uri, "--pty"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=self.env,
            text=True,
            start_new_session=True,
        )
        self.helpers.append(proc)
        assert proc.stdout is not None
        first = proc.stdout.readline().strip()
        if not first.startswith("/dev/"):
            raise AssertionError(f"stand-in {uri} for {path} printed {first!r}, not a pty path")
        self.subs[path] = first

    def close(self) -> None:
        for proc in [self.bash, *self.helpers]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in [self.bash, *self.helpers]:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


# ---------------------------------------------------------------- evaluators


def _where(example: Any, line: int | None = None) -> str:
    rel = Path(example.path).resolve().relative_to(ROOT)
    return f"{rel}:{line if line is not None else example.line}"


def _tail(text: str, n: int = 1500) -> str:
    return text[-n:].strip()


def run_shell_block(example: Any) -> None:
    session: DocSession = example.namespace[SESSION]
    console = example.region.lexemes.get("arguments") == "console"
    for cmd in split_commands(example.parsed, example.line + 1, console=console):
        where = _where(example, cmd.line)
        if HARDWARE.search(cmd.comment):
            session.not_run.append((cmd.line, cmd.text, cmd.comment))
            continue
        segments = [s for s in re.split(r"\s+&&\s+", cmd.text)]
        kept = []
        for seg in segments:
            why = setup_reason(seg, session.kind)
            if why is None and pip_install_args(seg.strip()) and session.kind != "checkout":
                seg = _private_install(seg)
            elif why is not None:
                if pip_install_args(seg.strip()):
                    check_installed(seg.strip(), ROOT)
                session.not_run.append((cmd.line, seg.strip(), why))
                continue
            kept.append(seg)
        if not kept:
            continue
        cmd.text = " && ".join(kept)
        status, out, err = session.run(cmd, where)
        shown = f"{where}: `{session.substitute(cmd.text)}`"
        if cmd.expect_error is not None:
            want = cmd.expect_error.rstrip(". ").rstrip()
            assert status != 0, f"{shown} should have failed ({cmd.expect_error}) but exited 0"
            assert want in err, f"{shown}: expected `{want}` on stderr, got: {_tail(err)}"
            continue
        expected_failure = console and any("hwloop: error:" in e for e in cmd.expect_output)
        if expected_failure:
            assert status != 0, f"{shown} should have failed but exited 0"
        else:
            assert status == 0, f"{shown} exited {status}\nstdout: {_tail(out)}\nstderr: {_tail(err)}"
        for line in cmd.expect_output:
            assert line in out + err, f"{shown}: expected `{line}` in its output, got: {_tail(out + err)}"


def _private_install(segment: str) -> str:
    """``pip install .`` of a user's own package (a plugin): into the workspace, on PYTHONPATH,
    so the test environment stays as it was."""
    target = ".docs-test/site"
    return (
        f"python -m pip install --quiet --no-deps --no-build-isolation --target {target} . && "
        f'export PYTHONPATH="$PWD/{target}${{PYTHONPATH:+:$PYTHONPATH}}"'
    )


_python = PythonEvaluator()


def run_python_block(example: Any) -> Any:
    session: DocSession = example.namespace[SESSION]
    source: str = example.parsed
    first = source.lstrip().splitlines()[0] if source.strip() else ""
    if HARDWARE.search(first):
        session.not_run.append((example.line, first, first.lstrip("# ")))
        return None
    m = FILE_COMMENT.match(first)
    if m:
        _write_file(session.ws / m.group(1), source)
        return None
    return _python(example)


def write_file_block(example: Any) -> None:
    session: DocSession = example.namespace[SESSION]
    source: str = example.parsed
    first = source.lstrip().splitlines()[0] if source.strip() else ""
    m = FILE_COMMENT.match(first)
    if m:
        _write_file(session.ws / m.group(1), source)


def _write_file(path: Path, source: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        if path.stat().st_size:
            fh.write("\n")
        fh.write(source)


def apply_directive(example: Any) -> None:
    session: DocSession = example.namespace[SESSION]
    text = str(example.parsed).strip()
    m = re.fullmatch(r"stand-in\s+(\S+)\s*=\s*(\S+)", text)
    if m:
        session.stand_in(m.group(1), m.group(2))
    elif not re.fullmatch(r"slow|workspace\s+\w+", text):
        raise AssertionError(f"{_where(example)}: unknown docs-test directive {text!r}")


class _Directives:
    def __init__(self) -> None:
        self.lexer = DirectiveInHTMLCommentLexer(
            directive="docs-test", arguments=r".+?", mapping={"arguments": "arguments", "source": "source"}
        )

    def __call__(self, document: Any) -> Any:
        for region in self.lexer(document):
            yield Region(region.start, region.end, region.lexemes["arguments"], apply_directive)


class _Python(CodeBlockParser):
    language = "python"

    def evaluate(self, example: Any) -> Any:
        return run_python_block(example)


SYBIL = Sybil(
    parsers=[
        _Directives(),
        CodeBlockParser("sh", run_shell_block),
        CodeBlockParser("bash", run_shell_block),
        CodeBlockParser("console", run_shell_block),
        CodeBlockParser("toml", write_file_block),
        _Python(),
    ],
)


def not_run_commands(doc: Path) -> list[tuple[int, str, str]]:
    """What a document shows but the runner does not run, and why (collected without running)."""
    found: list[tuple[int, str, str]] = []
    kind = "empty" if "workspace empty" in directives(doc) else "checkout"
    for example in SYBIL.parse(doc):
        lang = example.region.lexemes.get("arguments")
        if lang in ("sh", "bash", "console"):
            for cmd in split_commands(example.parsed, example.line + 1, console=lang == "console"):
                if HARDWARE.search(cmd.comment):
                    found.append((cmd.line, cmd.text, cmd.comment))
                    continue
                for seg in re.split(r"\s+&&\s+", cmd.text):
                    why = setup_reason(seg, kind)
                    if why:
                        found.append((cmd.line, seg.strip(), why))
        elif lang == "python":
            first = example.parsed.lstrip().splitlines()[0] if example.parsed.strip() else ""
            if HARDWARE.search(first):
                found.append((example.line, first, first.lstrip("# ")))
    return found
