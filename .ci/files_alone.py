#!/usr/bin/env python3
"""Run every test file alone, each in a pytest process of its own, and say which fail.

Proves what the suite promises: every file passes by itself (``pytest tests/test_x.py``),
not only after other files imported or set up what it uses. Slow tests are left out
unless ``--slow``; each file runs in random order (pytest-randomly, seed printed).

    python .ci/files_alone.py                 # every tests/test_*.py, not slow
    python .ci/files_alone.py test_cli test_resume
    python .ci/files_alone.py --slow --log files_alone.log
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*", help="test file names (test_cli or tests/test_cli.py); default all")
    ap.add_argument("--slow", action="store_true", help="include tests marked slow")
    ap.add_argument("--log", default=None, help="append each file's pytest output to this file")
    args = ap.parse_args()
    files = [ROOT / "tests" / f"{Path(f).stem}.py" for f in args.files] or sorted(
        (ROOT / "tests").glob("test_*.py")
    )
    python = os.environ.get("PYTHON", sys.executable)
    failed: list[str] = []
    t_all = time.monotonic()
    for path in files:
        cmd = [python, "-m", "pytest", str(path.relative_to(ROOT)), "-q", "-p", "no:cacheprovider"]
        cmd += [] if args.slow else ["-m", "not slow"]
        t0 = time.monotonic()
        res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
        tail = (res.stdout.strip().splitlines() or [""])[-1]
        # exit 5: every test of the file is slow (deselected); that file runs in CI's full suite
        ok = res.returncode in (0, 5)
        print(
            f"{'ok  ' if ok else 'FAIL'} {path.name:40s} {time.monotonic() - t0:7.1f} s  {tail}", flush=True
        )
        if args.log:
            with open(args.log, "a") as fh:
                fh.write(f"==== {path.name} exit {res.returncode}\n{res.stdout}\n{res.stderr}\n")
        if not ok:
            failed.append(path.name)
    print(f"{len(files) - len(failed)} of {len(files)} files pass alone, {time.monotonic() - t_all:.0f} s")
    if failed:
        print("failed alone: " + ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
