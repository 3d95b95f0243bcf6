"""Every shell command and Python block of README.md and docs/*.md runs as written.

`tests/docs_runner.py` says how (Sybil finds the blocks; a shell session per
document runs them in a fresh workspace with ``HWLOOP_DOCS_QUICK=1``). A new
page under docs/ is picked up without being listed here. Commands a page
marks ``hardware only``, and install steps the test environment stands for,
are not run: each is listed below as a skipped test with its reason.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from docs_runner import ROOT, SESSION, SYBIL, DocSession, directives, documents, not_run_commands


def _doc_params() -> list:
    params = []
    for doc in documents():
        marks = [pytest.mark.slow] if "slow" in directives(doc) else []
        params.append(pytest.param(doc, id=str(doc.relative_to(ROOT)), marks=marks))
    return params


@pytest.mark.parametrize("doc", _doc_params())
def test_document_runs_as_written(doc: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kind = "empty" if "workspace empty" in directives(doc) else "checkout"
    ws = tmp_path / "ws"
    ws.mkdir()
    session = DocSession(doc, ws, kind)
    monkeypatch.chdir(ws)  # the Python blocks run where the shell does
    monkeypatch.setenv("HWLOOP_DOCS_QUICK", "1")
    for name in ("HWLOOP_ALLOW_RF", "HWLOOP_OPERATOR"):
        monkeypatch.delenv(name, raising=False)
    document = SYBIL.parse(doc)
    document.namespace[SESSION] = session
    try:
        for example in document.examples():
            example.evaluate()
    finally:
        session.close()
    assert session.not_run == not_run_commands(doc)  # what was skipped is what the listing says


def _not_run_params() -> list:
    params = []
    for doc in documents():
        for line, text, why in not_run_commands(doc):
            rel = doc.relative_to(ROOT)
            params.append(pytest.param(rel, line, text, why, id=f"{rel}:{line}"))
    return params


@pytest.mark.parametrize(("doc", "line", "text", "why"), _not_run_params())
def test_command_not_run_is_listed(doc: Path, line: int, text: str, why: str) -> None:
    """Listed, never silently skipped: each shown but not-run command is a skip with its reason."""
    assert text in (ROOT / doc).read_text() or "hardware only" in why.lower()
    pytest.skip(f"not run: {doc}:{line} `{text}`: {why}")


def test_ci_runs_the_readme_test_command() -> None:
    """README's test command is the one .ci/run runs (so `pytest` there is the whole suite)."""
    readme = (ROOT / "README.md").read_text()
    command = re.search(r"```sh\n(python3 -m venv \.venv && .*pytest)\n```", readme)
    assert command is not None
    assert command.group(1) in (ROOT / ".ci" / "run").read_text()
