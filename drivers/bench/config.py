"""The bench file (``bench:lab.toml``): instruments, signal, level mapping, limits.

docs/scpi.md fixes the CONTRACT keys (``[generator]``/``[analyser]`` resource and
personality, ``[signal]`` fs and full_scale_dbm, ``[limits]`` peak_dbm,
rms_dbm, papr_db, max_samples); the rest are this driver's, with defaults:

- ``[generator]``/``[analyser]`` ``timeout_s`` (0.5): seconds a reply may take
  (plus transfer time for blocks) before the session is cleared and RF goes off;
- ``[analyser]`` ``ref_level_dbm`` (auto: the calibration's gain, the peak
  limit and ``margin_db`` 3 dB of headroom), ``start_ref_level_dbm`` (20) for
  the first calibration capture;
- ``[signal]`` ``guard`` (256 zeros before each drive: the amplifier's memory
  dies out in it), ``periods`` (4 ARB periods captured and averaged),
  ``settle_s`` (0), ``calibration_db`` (-20: RMS of the calibration signal
  below full scale), ``calibration_samples`` (4096);
- ``[interlock]`` ``log`` (default ``<bench file stem>.interlock.jsonl`` beside
  the bench file), ``min_correlation`` (0.5), ``watchdog_s`` (0.05 poll),
  ``rf_grace_s`` (0.5: how long past its expected end a call made with RF on
  may run before RF goes off, whatever the instruments' ``timeout_s``; at most
  0.8 so RF is off within 1 s), ``emergency_retry_s`` (5: how long RF off over a
  second connection is retried when it fails).

A file with a ``[radio]`` table instead of ``[generator]`` + ``[analyser]`` is a
transceiver (`radio_config`); `device.load_bench_file` reads either. Every mistake is
one line naming the file, the table and the key.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwloop.device import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

GENERATORS = ("generic", "rs_smw")
ANALYSERS = ("generic", "rs_fsw")


@dataclass(frozen=True)
class Instrument:
    resource: str
    personality: str
    timeout_s: float = 0.5


@dataclass(frozen=True)
class Analyser(Instrument):
    ref_level_dbm: float | None = None
    start_ref_level_dbm: float = 20.0
    margin_db: float = 3.0


@dataclass(frozen=True)
class Signal:
    fs: float
    full_scale_dbm: float
    guard: int = 256
    periods: int = 4
    settle_s: float = 0.0
    calibration_db: float = -20.0
    calibration_samples: int = 4096


@dataclass(frozen=True)
class Limits:
    peak_dbm: float
    rms_dbm: float
    papr_db: float
    max_samples: int


@dataclass(frozen=True)
class Interlock:
    log: Path
    min_correlation: float = 0.5
    watchdog_s: float = 0.05
    rf_grace_s: float = 0.5
    emergency_retry_s: float = 5.0


@dataclass(frozen=True)
class BenchConfig:
    path: Path
    generator: Instrument
    analyser: Analyser
    signal: Signal
    limits: Limits
    interlock: Interlock

    @property
    def peak(self) -> float:
        """Peak |x| allowed, in units of digital full scale (|x| = 1 is full_scale_dbm)."""
        return 10 ** ((self.limits.peak_dbm - self.signal.full_scale_dbm) / 20)

    @property
    def rms(self) -> float:
        return 10 ** ((self.limits.rms_dbm - self.signal.full_scale_dbm) / 20)


class _Table:
    """One TOML table, read key by key; leftovers are an error."""

    def __init__(self, where: str, name: str, data: Any) -> None:
        if not isinstance(data, dict):
            raise UsageError(f"{where}: missing table [{name}]")
        self.where, self.name, self.data = where, name, dict(data)

    def _fail(self, key: str, what: str) -> UsageError:
        return UsageError(f"{self.where}: [{self.name}] {key} {what}")

    def get(self, key: str, kind: type, default: Any = ..., check: Any = None, need: str = "") -> Any:
        if key not in self.data:
            if default is ...:
                raise self._fail(key, "is missing")
            return default
        raw = self.data.pop(key)
        ok = isinstance(raw, kind) and not isinstance(raw, bool)
        if kind is float and isinstance(raw, int) and not isinstance(raw, bool):
            raw, ok = float(raw), True
        if not ok or (kind is float and not math.isfinite(raw)):
            raise self._fail(key, f"must be a {'number' if kind is float else kind.__name__}, got {raw!r}")
        if check is not None and not check(raw):
            raise self._fail(key, f"must be {need}, got {raw!r}")
        return raw

    def done(self) -> None:
        if self.data:
            raise self._fail(sorted(self.data)[0], "is not a known key")


def _instrument(where: str, doc: dict, name: str, choices: tuple[str, ...]) -> dict[str, Any]:
    t = _Table(where, name, doc.get(name))
    out = {
        "resource": t.get("resource", str, check=lambda s: "::" in s, need="a VISA resource string"),
        "personality": t.get("personality", str, check=lambda s: s in choices, need=" | ".join(choices)),
        "timeout_s": t.get("timeout_s", float, 0.5, lambda v: 0 < v <= 600, need="in (0, 600]"),
    }
    if name == "analyser":
        out["ref_level_dbm"] = t.get("ref_level_dbm", float, None)
        out["start_ref_level_dbm"] = t.get("start_ref_level_dbm", float, 20.0)
        out["margin_db"] = t.get("margin_db", float, 3.0, lambda v: 0 <= v <= 40, need="in [0, 40]")
    t.done()
    return out


def read_toml(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """The bench file's path and its TOML document; a missing or malformed file is one line."""
    p = Path(path).expanduser()
    where = str(p)
    try:
        return p, tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise UsageError(f"bench file {where} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"bench file {where}: cannot read it ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"bench file {where}: not valid TOML ({exc})") from None


def interlock_table(p: Path, doc: dict[str, Any]) -> Interlock:
    """The ``[interlock]`` table, the same for an instrument bench and a radio."""
    i = _Table(str(p), "interlock", doc.get("interlock", {}))
    log = Path(i.get("log", str, p.stem + ".interlock.jsonl")).expanduser()
    out = Interlock(
        log=log if log.is_absolute() else p.parent.resolve() / log,
        min_correlation=i.get("min_correlation", float, 0.5, lambda v: 0 < v < 1, need="in (0, 1)"),
        watchdog_s=i.get("watchdog_s", float, 0.05, lambda v: 0.005 <= v <= 1, need="in [0.005, 1]"),
        rf_grace_s=i.get("rf_grace_s", float, 0.5, lambda v: 0 < v <= 0.8, need="in (0, 0.8]"),
        emergency_retry_s=i.get("emergency_retry_s", float, 5.0, lambda v: 0 <= v <= 60, need="in [0, 60]"),
    )
    i.done()
    return out


def load_config(path: str | Path) -> BenchConfig:
    """Read and check an instrument bench file; every problem is one `UsageError` line."""
    p, doc = read_toml(path)
    return bench_config(p, doc)


def bench_config(p: Path, doc: dict[str, Any]) -> BenchConfig:
    """Check an instrument bench file's document (``[generator]`` + ``[analyser]``)."""
    where = str(p)
    known = {"generator", "analyser", "signal", "limits", "interlock"}
    if extra := sorted(set(doc) - known):
        raise UsageError(
            f"{where}: unknown table [{extra[0]}] (known: {', '.join(sorted(known))}, or [radio])"
        )
    gen = Instrument(**_instrument(where, doc, "generator", GENERATORS))
    ana = Analyser(**_instrument(where, doc, "analyser", ANALYSERS))
    s = _Table(where, "signal", doc.get("signal"))
    signal = Signal(
        fs=s.get("fs", float, check=lambda v: 1e3 <= v <= 1e11, need="a sample rate in Hz"),
        full_scale_dbm=s.get("full_scale_dbm", float, check=lambda v: -150 <= v <= 40, need="in [-150, 40]"),
        guard=s.get("guard", int, 256, lambda v: 0 <= v <= 1 << 20, need="in [0, 2^20]"),
        periods=s.get("periods", int, 4, lambda v: 1 <= v <= 64, need="in [1, 64]"),
        settle_s=s.get("settle_s", float, 0.0, lambda v: 0 <= v <= 60, need="in [0, 60]"),
        calibration_db=s.get("calibration_db", float, -20.0, lambda v: -60 <= v < 0, need="in [-60, 0)"),
        calibration_samples=s.get("calibration_samples", int, 4096, lambda v: v >= 256, need=">= 256"),
    )
    s.done()
    t = _Table(where, "limits", doc.get("limits"))
    limits = Limits(
        peak_dbm=t.get("peak_dbm", float),
        rms_dbm=t.get("rms_dbm", float),
        papr_db=t.get("papr_db", float, check=lambda v: 0 < v <= 60, need="in (0, 60]"),
        max_samples=t.get("max_samples", int, check=lambda v: 16 <= v <= 1 << 24, need="in [16, 2^24]"),
    )
    t.done()
    if limits.peak_dbm > signal.full_scale_dbm:
        raise UsageError(
            f"{where}: [limits] peak_dbm {limits.peak_dbm} is above [signal] full_scale_dbm "
            f"{signal.full_scale_dbm}: the ARB cannot play above digital full scale"
        )
    if limits.rms_dbm > limits.peak_dbm:
        raise UsageError(f"{where}: [limits] rms_dbm {limits.rms_dbm} is above peak_dbm {limits.peak_dbm}")
    if limits.max_samples < signal.guard + 16:
        raise UsageError(f"{where}: [limits] max_samples leaves no room after the guard of {signal.guard}")
    if signal.calibration_db + signal.full_scale_dbm > limits.rms_dbm:
        raise UsageError(f"{where}: [signal] calibration_db puts the calibration above rms_dbm")
    return BenchConfig(p.resolve(), gen, ana, signal, limits, interlock_table(p, doc))
