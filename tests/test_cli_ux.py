"""What a user sees: errors in a second and alone, listings on stdout, progress, interrupts, no leftovers.

The subprocess tests run the real ``hwloop`` entry point (fd 2 is a real
pipe there, as for a user), so TensorFlow's C++ lines would show if they
leaked. "Before TensorFlow" is checked by what the process imported, not by
a clock.
"""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from hwloop.cli import cli
from hwloop.errors import UsageError
from hwloop.rundir import RunDir

# Runs the CLI and, at exit, writes which heavy packages the process had imported.
WRAPPER = (
    "import atexit, json, sys\n"
    "marker = sys.argv.pop(1)\n"
    "atexit.register(lambda: open(marker, 'w').write(json.dumps("
    "{m: m in sys.modules for m in ('tensorflow', 'keras', 'ray')})))\n"
    "sys.argv[0] = 'hwloop'\n"
    "from hwloop.cli.app import main\n"
    "main()\n"
)


def _hwloop(
    tmp: Path, *args: str, env: dict | None = None, timeout: float = 300
) -> tuple[int, str, str, dict]:
    marker = tmp / f"imported-{time.monotonic_ns()}.json"
    proc = subprocess.run(
        [sys.executable, "-c", WRAPPER, str(marker), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=tmp,
    )
    imported = json.loads(marker.read_text()) if marker.exists() else {}
    return proc.returncode, proc.stdout, proc.stderr, imported


BAD_URIS = [
    ("train: unknown scheme", ["train", "--device", "nosuch:x"], "unknown device scheme 'nosuch'"),
    ("train: unknown simulator", ["train", "--device", "sim:nope"], "unknown simulator 'nope'"),
    ("train: bad parameter", ["train", "--device", "sim:rapp?nois=1"], "unknown parameter 'nois'"),
    ("train: bad value", ["train", "--device", "sim:rapp?seed=x"], "seed='x' is not a valid int"),
    ("eval", ["eval", "--run", "somewhere", "--device", "nosuch:x"], "unknown device scheme"),
    ("probe", ["probe", "--device", "sim:rapp?nois=1"], "unknown parameter 'nois'"),
    ("serve", ["serve", "--device", "nosuch:x", "--pty"], "unknown device scheme"),
    ("serial parameter", ["probe", "--device", "serial:///dev/ttyUSB0?baud=fast"], "baud='fast'"),
    ("farm", ["farm", "--device", "sim:rapp", "--device", "nosuch:x", "--out", "f"], "unknown device scheme"),
]


@pytest.mark.parametrize(("what", "args", "message"), BAD_URIS, ids=[b[0] for b in BAD_URIS])
def test_a_bad_uri_is_one_line_before_tensorflow_loads(
    what: str, args: list[str], message: str, tmp_path: Path
) -> None:
    rc, out, err, imported = _hwloop(tmp_path, *args)
    assert rc == 2, err
    assert err.splitlines() == [err.strip()] and err.startswith("hwloop: error: ") and message in err
    assert imported == {"tensorflow": False, "keras": False, "ray": False}
    assert not (tmp_path / "f").exists() and out == ""


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ux") / "run"
    args = ["train", "--device", "sim:tanh?seed=1", "--strategy", "ila", "--queries", "300"]
    res = CliRunner().invoke(cli, [*args, "--fit-steps", "60", "--eval-targets", "50", "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out


def test_tensorflow_logs_never_reach_stderr(tiny_run: Path, tmp_path: Path) -> None:
    """Commands that load TensorFlow print their own lines only: one on success, one on refusal."""
    np.save(tmp_path / "t.npy", np.linspace(-0.5, 0.5, 7, dtype=np.float32)[:, None])
    rc, _, err, imported = _hwloop(
        tmp_path, "apply", "--run", str(tiny_run), "--in", "t.npy", "--out", "x.npy"
    )
    assert rc == 0 and imported["tensorflow"], err
    assert err.splitlines() == ["wrote 7 input row(s) to x.npy"]
    np.save(tmp_path / "bad.npy", np.zeros((3, 2), np.float32))
    rc, _, err, imported = _hwloop(
        tmp_path, "apply", "--run", str(tiny_run), "--in", "bad.npy", "--out", "y.npy"
    )
    assert rc == 2 and imported["tensorflow"] and len(err.splitlines()) == 1, err
    assert not (tmp_path / "y.npy").exists()


def test_a_refused_export_leaves_no_folder(tiny_run: Path, tmp_path: Path) -> None:
    for fmt, bits in (("c", "3"), ("tflite", "12")):
        out = tmp_path / f"export-{fmt}"
        rc, _, err, _ = _hwloop(
            tmp_path, "export", "--run", str(tiny_run), "--format", fmt, "--bits", bits, "--out", str(out)
        )
        assert rc == 2 and len(err.splitlines()) == 1, err
        assert not out.exists(), f"{fmt} --bits {bits} left {out}"
    kept = tmp_path / "mine"
    kept.mkdir()  # a folder the user made stays, empty
    rc, _, _, _ = _hwloop(
        tmp_path, "export", "--run", str(tiny_run), "--format", "c", "--bits", "3", "--out", str(kept)
    )
    assert rc == 2 and kept.is_dir() and not any(kept.iterdir())


def test_listings_are_on_stdout_with_every_simulators_parameters() -> None:
    res = CliRunner().invoke(cli, ["devices"])
    assert res.exit_code == 0 and res.stderr == ""
    text = res.stdout
    assert "sim:pa_gmp" in text and "drive=1" in text and "thermal=0" in text and "tau=2000" in text
    assert "every sim: URI takes seed=0 max_batch=1024 latency=0" in text
    listed = json.loads(CliRunner().invoke(cli, ["devices", "--json"]).stdout)["devices"]
    pa_wh = next(d for d in listed if d["uri"] == "sim:pa_wh")
    assert pa_wh["parameters"]["am_pm"] == 1.0 and pa_wh["parameters"]["noise"] == 0.001
    res = CliRunner().invoke(
        cli, ["probe", "--device", "sim:tanh?noise=0", "--points", "3", "--repeats", "4"]
    )
    assert res.exit_code == 0 and res.stderr == "" and "sweep of input 0:" in res.stdout


def test_errors_speak_python_from_python_and_options_from_the_cli(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "queries.sqlite").write_bytes(b"")
    with pytest.raises(UsageError) as caught:
        RunDir(run).check_fresh()
    assert "resume=True" in str(caught.value) and "--resume" not in str(caught.value)
    assert "--resume" in caught.value.cli_message() and "--out" in caught.value.cli_message()
    res = CliRunner().invoke(cli, ["train", "--device", "sim", "--out", str(run)])
    assert res.exit_code == 2 and "choose another --out or add --resume" in res.stderr


def _read_lines(stream: object, lines: list[tuple[float, str]], t0: float) -> None:
    for line in stream:  # type: ignore[attr-defined]
        lines.append((time.monotonic() - t0, line.rstrip("\n")))


@pytest.mark.slow
def test_a_log_gets_a_progress_line_at_least_every_ten_seconds(tmp_path: Path) -> None:
    """`hwloop train --device sim 2>log`: stderr is no terminal; lines come while it works."""
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "hwloop.cli", "train", "--device", "sim", "--queries", "3000",
         "--fit-steps", "2500", "--out", str(tmp_path / "run")],
        stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines: list[tuple[float, str]] = []
    reader = threading.Thread(target=_read_lines, args=(proc.stderr, lines, t0))
    reader.start()
    proc.wait(timeout=600)
    reader.join(timeout=10)
    end = time.monotonic() - t0
    assert proc.returncode == 0, lines
    stamps = [0.0] + [t for t, _ in lines] + [end]
    assert max(b - a for a, b in itertools.pairwise(stamps)) <= 10.0, lines
    text = "\n".join(line for _, line in lines)
    assert "hwloop train [" in text and "collect" in text and "fit" in text and "steps" in text
    assert lines[-1][1].startswith("auto on sim: closed-loop NMSE")
    quiet = subprocess.run(
        [sys.executable, "-m", "hwloop.cli", "train", "--device", "sim", "--queries", "300", "--fit-steps",
         "300", "--quiet", "--out", str(tmp_path / "quiet")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert quiet.returncode == 0 and quiet.stderr.splitlines()[-1].startswith("auto on sim")
    assert "hwloop train [" not in quiet.stderr


@pytest.mark.slow
def test_ctrl_c_says_how_to_resume_and_that_command_finishes_the_run(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["train", "--device", "sim:tanh?seed=3", "--queries", "3000", "--fit-steps", "3000"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "hwloop.cli", *args, "--out", str(out)],
        stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines: list[tuple[float, str]] = []
    reader = threading.Thread(target=_read_lines, args=(proc.stderr, lines, time.monotonic()))
    reader.start()
    deadline = time.monotonic() + 300
    while not any("fit" in line for _, line in lines) and time.monotonic() < deadline:
        time.sleep(0.2)  # interrupt it while it fits, after it has spent queries
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)
    reader.join(timeout=10)
    assert proc.returncode == 130, lines
    last = lines[-1][1]
    assert last.startswith("hwloop: interrupted; every answer so far is in"), last
    command = last.split("resume with: ", 1)[1]
    assert command == f"hwloop train --resume --out {out} --device 'sim:tanh?seed=3'"
    done = subprocess.run(
        [sys.executable, "-m", "hwloop.cli", *command.split()[1:4], str(out), "--device", "sim:tanh?seed=3",
         "--json"], capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    m = json.loads(done.stdout)
    assert m["queries_used"] == 3000 and m["replayed_rows"] > 0


def test_docs_quick_caps_budgets_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hwloop.config import QUICK_CAPS, quick_cap

    monkeypatch.setenv("HWLOOP_DOCS_QUICK", "1")
    assert quick_cap("queries", 10_000) == QUICK_CAPS["queries"] and quick_cap("queries", 300) == 300
    assert quick_cap("eval_queries", None, fill=True) == QUICK_CAPS["eval_queries"]
    out = tmp_path / "run"
    res = CliRunner().invoke(
        cli, ["train", "--device", "sim:tanh", "--strategy", "ila", "--queries", "50000", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    assert "HWLOOP_DOCS_QUICK is set: budgets capped (queries 50000 -> 1500)" in res.stderr
    plan = RunDir(out).read_plan()
    assert plan.queries == QUICK_CAPS["queries"] and plan.options.fit_steps == QUICK_CAPS["fit_steps"]
    assert json.loads((out / "metrics.json").read_text())["queries_used"] == QUICK_CAPS["queries"]
    monkeypatch.setenv("HWLOOP_DOCS_QUICK", "0")
    assert quick_cap("queries", 10_000) == 10_000


def test_a_refused_run_leaves_no_run_directory(tmp_path: Path) -> None:
    """Refusals at any stage (options, parent run, a strategy's own budget check) write nothing."""
    cases = [
        ["--device", "sim:wh", "--hold", "0"],
        ["--device", "sim", "--init-from", str(tmp_path / "no-such-run")],
        ["--device", "sim:pa_gmp", "--signal", "dpa200:train", "--queries", "100"],  # refused by the strategy
    ]
    for i, args in enumerate(cases):
        out = tmp_path / f"run{i}"
        res = CliRunner().invoke(cli, ["train", *args, "--out", str(out)])
        assert res.exit_code == 2 and res.stderr.splitlines()[-1].startswith("hwloop: error: "), res.output
        assert not out.exists(), f"{args} left {sorted(p.name for p in out.iterdir())}"
