"""The bench from the command line: the bench file's errors, the missing extra, serve-bench, probe, train."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hwloop.device import MissingExtraError, UsageError
from hwloop.drivers.bench.config import load_config
from hwloop.drivers.bench.device import open_bench
from hwloop.simulators.fake_bench.bench import FakeBench

GOOD = """[generator]
resource = "TCPIP0::127.0.0.1::5025::SOCKET"
personality = "generic"
[analyser]
resource = "TCPIP0::127.0.0.1::5026::SOCKET"
personality = "generic"
[signal]
fs = 983.04e6
full_scale_dbm = -8.0
[limits]
peak_dbm = -8.0
rms_dbm = -15.0
papr_db = 20.0
max_samples = 1000000
"""


def _hwloop(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hwloop.cli", *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def test_the_contract_file_loads_with_the_drivers_defaults(tmp_path: Path) -> None:
    p = tmp_path / "lab.toml"
    p.write_text(GOOD)
    cfg = load_config(p)
    assert cfg.signal.guard == 256 and cfg.signal.periods == 4 and cfg.generator.timeout_s == 0.5
    assert cfg.peak == pytest.approx(1.0) and cfg.rms == pytest.approx(10 ** (-7 / 20))
    assert cfg.interlock.log == tmp_path / "lab.interlock.jsonl"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("peak_dbm = -8.0", ""), r"\[limits\] peak_dbm is missing"),
        (('personality = "generic"\n[analyser]', 'personality = "keysight"\n[analyser]'), "generic | rs_smw"),
        (("fs = 983.04e6", 'fs = "fast"'), r"\[signal\] fs must be a number"),
        (("peak_dbm = -8.0", "peak_dbm = -3.0"), "above digital full scale"),
        (("max_samples = 1000000", "max_samples = 1000000\nspeed = 3"), "speed is not a known key"),
        (("[signal]", "[signall]"), "unknown table"),
        (("rms_dbm = -15.0", "rms_dbm = -5.0"), "above peak_dbm"),
    ],
)
def test_a_bad_bench_file_is_one_line(tmp_path: Path, edit: tuple[str, str], message: str) -> None:
    p = tmp_path / "lab.toml"
    p.write_text(GOOD.replace(*edit, 1))
    with pytest.raises(UsageError, match=message) as err:
        load_config(p)
    assert "\n" not in str(err.value)


def test_without_the_extra_the_error_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = tmp_path / "lab.toml"
    p.write_text(GOOD)  # which extra a bench needs is in its file: the file is read first
    monkeypatch.setitem(sys.modules, "pyvisa", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'hwloop\[bench\]'"):
        open_bench(f"bench:{p}")


def test_unarmed_cli_exits_2_with_one_line(tmp_path: Path) -> None:
    p = tmp_path / "lab.toml"
    p.write_text(GOOD)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HWLOOP_")}
    r = _hwloop("probe", "--device", f"bench:{p}", env=env)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "not armed" in r.stderr


def test_serve_bench_prints_a_file_that_opens_and_probe_reports_the_bench(tmp_path: Path) -> None:
    out = tmp_path / "lab.toml"
    args = ["serve-bench", "--generator-port", "0", "--analyser-port", "0", "--write", str(out)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "hwloop.cli", *args, "--delay", "12.25", "--pa", "sim:pa_gmp?seed=1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        t0 = time.monotonic()
        while not out.exists() and time.monotonic() - t0 < 60:
            time.sleep(0.1)
        time.sleep(0.2)
        env = {**os.environ, "HWLOOP_ALLOW_RF": "1", "HWLOOP_OPERATOR": "pytest"}
        r = _hwloop("probe", "--device", f"bench:{out}", "--json", env=env)
        assert r.returncode == 0, r.stderr
        report = json.loads(r.stdout)["bench"]
        assert report["delay_fraction_samples"] == pytest.approx(0.25, abs=0.02)
        assert report["compression_db_at_peak"] < -0.5 and report["noise_floor_dbc"] < -30
        assert {"gain_db", "phase_deg", "noise_floor_dbm", "p1db_input_dbm", "am_am_dbm_db"} <= set(report)
    finally:
        proc.terminate()
        stdout, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "[generator]" in stdout


@pytest.mark.slow
def test_train_a_predistorter_through_the_fake_bench(tmp_path: Path) -> None:
    with FakeBench("sim:pa_wh?seed=3", seed=5) as fb:
        p = tmp_path / "lab.toml"
        p.write_text(fb.toml())
        env = {**os.environ, "HWLOOP_ALLOW_RF": "1", "HWLOOP_OPERATOR": "pytest"}
        run = tmp_path / "run"
        r = _hwloop(
            "train", "--device", f"bench:{p}", "--signal", "ofdm:n=8192,papr=8,seed=0", "--gain", "0.9",
            "--queries", "6000", "--out", str(run), "--json", env=env, timeout=900,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr[-3000:]
        m = json.loads(r.stdout)
        assert m["queries_used"] <= 6000 and m["acpr_dbc"] < m["acpr_dbc_no_dpd"]
        log = [json.loads(line) for line in (run / "interlock.jsonl").read_text().splitlines()]
        assert log[0]["event"] == "armed" and log[-1]["event"] == "closed"
        assert not fb.generator.rf_is_on()
