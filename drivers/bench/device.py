"""``bench:FILE.toml``: a vector signal generator and a signal analyser as one stateful I/Q device.

Each query x (n, 2) is played as one looped ARB period ``[guard zeros | x]``:
the period is quantised to int16, checked by the interlock (peak, RMS, PAPR,
length: nothing sent if it fails), uploaded with RF off, the level set so
that |x| = 1 is ``full_scale_dbm``, ARB and RF switched on (each setting read
back), ``periods`` periods captured, RF switched off again, the capture
aligned (integer + fractional delay; `alignment`) and divided by the
session's complex small-signal gain from the calibration capture made when
the bench opened. The answer is the aligned samples under x: a linear path
reads y = x.

``reset()`` does nothing, because it need not: every query starts after
``guard`` samples of silence, so the amplifier's memory is cleared by
construction (the guard must outlast it). ``max_batch`` is what the limits
and the instruments' memories (2^24 samples) allow after the guard; one
query is always one ARB period, so a longer query is refused, not cut.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from hwloop.device import (
    BaseDevice,
    DeviceError,
    DeviceInfo,
    IQEnvelope,
    MissingExtraError,
    OutOfRangeError,
    UnusableAnswer,
    UsageError,
)
from hwloop.drivers.bench import personalities
from hwloop.drivers.bench.alignment import Alignment, align, causal_offset
from hwloop.drivers.bench.config import BenchConfig, bench_config, read_toml
from hwloop.drivers.bench.instruments import Analyser, Generator
from hwloop.drivers.bench.interlock import Interlock, InterlockLog, check_armed, period_levels
from hwloop.drivers.bench.radio_config import RadioConfig, radio_config
from hwloop.drivers.bench.session import ScpiSession, quick_command, resource_manager
from hwloop.drivers.bench.signals import MEMORY, calibration_signal, quantise

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

INSTALL_HINT = "pip install 'hwloop[bench]'"
DRIFT_SAMPLES = 0.1  # a capture's own delay estimate this far from the session's is flagged


class BenchDevice(BaseDevice):
    """The RF bench behind the device contract: I/Q in, I/Q out, stateful, envelope-limited."""

    def __init__(self, cfg: BenchConfig, operator: str, *, uri: str = "") -> None:
        self.cfg = cfg
        self.uri = uri or f"bench:{cfg.path}"
        self.fs = cfg.signal.fs
        self.guard = cfg.signal.guard
        self.periods = cfg.signal.periods
        self.last: Alignment | None = None
        self.captures = 0
        self.drifts = 0
        self.log = InterlockLog(cfg.interlock.log)
        self.log.record(
            "armed",
            operator=operator,
            bench=str(cfg.path),
            full_scale_dbm=cfg.signal.full_scale_dbm,
            limits=asdict(cfg.limits),
        )
        self._rm = resource_manager()
        self.sessions: list[ScpiSession] = []
        self.interlock: Interlock | None = None
        try:
            gen = ScpiSession(
                cfg.generator.resource, name="generator", timeout_s=cfg.generator.timeout_s, rm=self._rm
            )
            self.sessions.append(gen)
            ana = ScpiSession(
                cfg.analyser.resource, name="analyser", timeout_s=cfg.analyser.timeout_s, rm=self._rm
            )
            self.sessions.append(ana)
            self.gen = Generator(gen, personalities.generator(cfg.generator.personality))
            self.ana = Analyser(ana, personalities.analyser(cfg.analyser.personality))
            self.interlock = Interlock(
                self.log,
                operator,
                limits=cfg.limits,
                full_scale_dbm=cfg.signal.full_scale_dbm,
                emergency_off=self._emergency_off,
                sessions=self.sessions,
                watchdog_s=cfg.interlock.watchdog_s,
                grace_s=cfg.interlock.rf_grace_s,
                retry_s=cfg.interlock.emergency_retry_s,
            )
            self.log.record("identified", generator=gen.idn, analyser=ana.idn)
            self.gen.configure(self.fs, cfg.limits.rms_dbm)
            self.log.record("rf_off", cause="configuration", readback=0)
            start = cfg.analyser.ref_level_dbm
            self.ana.configure(self.fs, cfg.analyser.start_ref_level_dbm if start is None else start)
            self.interlock.install()
            self.calibration = self._calibrate()
        except BaseException as exc:
            if self.interlock is not None:
                self.interlock.trip(f"opening the bench failed: {type(exc).__name__}: {exc}")
                self.interlock.uninstall()
            for s in self.sessions:
                s.close()
            raise
        peak = min(1.0, cfg.peak)
        info = DeviceInfo(
            name=f"bench:{cfg.path.stem}",
            in_dim=2,
            out_dim=2,
            max_batch=min(cfg.limits.max_samples, MEMORY, MEMORY // self.periods) - self.guard,
            low=(-peak, -peak),
            high=(peak, peak),
            stateful=True,
            firmware=f"{gen.idn} | {ana.idn}",
            envelope=IQEnvelope(((0, 1),), peak, min(cfg.rms, peak)),
        )
        super().__init__(info)

    # ------------------------------------------------------------ one ARB period
    def _emergency_off(self) -> str:
        d = self.gen.d
        reply = quick_command(self._rm, self.cfg.generator.resource, [d.rf(False)], d.rf_query(), 0.5)
        if reply != "0":
            raise DeviceError(f"generator: output read back {reply!r} after {d.rf(False)!r}")
        return reply

    def _play_and_capture(self, period: np.ndarray) -> np.ndarray:
        """Capture ``periods`` looped periods of ``period`` (complex, full-scale units): sqrt(mW) samples."""
        il = self.interlock
        assert il is not None
        iq = quantise(period)
        level = il.check_period(iq)  # raises before anything is sent
        il.allow_rf()
        _, peak, papr = period_levels(iq, self.cfg.signal.full_scale_dbm)
        try:
            self.gen.load(iq, level, self.fs)
            il.allow_rf()
            il.rf_on = True  # from here the watchdog guards every call
            self.gen.play()
            il.note_rf(
                True, level_dbm=level, peak_dbm=round(peak, 4), papr_db=round(papr, 3), samples=len(iq)
            )
            if self.cfg.signal.settle_s:
                time.sleep(self.cfg.signal.settle_s)
            n = self.periods * len(iq)
            self.ana.acquire(n, self.fs)
            il.allow_rf()  # tripped during the capture (the watchdog, a lost link): not used
            self.gen.stop()  # RF is on only while the analyser captures; the transfer comes after
            il.note_rf(False, cause="capture done", readback=0)
            capture, overloaded = self.ana.fetch(n)
        except BaseException as exc:
            il.trip(f"{type(exc).__name__}: {exc}")
            raise
        self.captures += 1
        if overloaded:
            il.trip(f"analyser overload at reference level {self.ana.ref_level:g} dBm")
            raise DeviceError(
                f"bench: the analyser overloaded at {self.ana.ref_level:g} dBm; the interlock tripped "
                "(raise [analyser] ref_level_dbm or margin_db)"
            )
        return capture

    def _measure(self, period: np.ndarray, *, session: bool = True) -> tuple[np.ndarray, Alignment]:
        capture = self._play_and_capture(period)
        cal = getattr(self, "calibration", None) if session else None
        frac, offset = (cal["peak_fraction"], cal["offset"]) if cal else (None, 0.0)
        aligned, a = align(period, capture, session_fraction=frac, offset=offset)
        self.last = a
        if abs(a.drift) > DRIFT_SAMPLES:
            self.drifts += 1
            log.warning("bench: this capture's delay lies %.3f samples from the session's", a.drift)
        if a.correlation < self.cfg.interlock.min_correlation:
            raise UnusableAnswer(
                f"bench: capture correlates {a.correlation:.2f} with the played waveform "
                f"(below {self.cfg.interlock.min_correlation}); not used"
            )
        return aligned, a

    def _calibrate(self) -> dict[str, Any]:
        """Small-signal capture: session gain and phase, fractional delay, noise; sets the reference level."""
        sig = self.cfg.signal
        z = calibration_signal(sig.calibration_samples, 10 ** (sig.calibration_db / 20), self.cfg.peak)
        period = np.concatenate([np.zeros(self.guard, complex), z])
        _, a = self._measure(period, session=False)
        fs_amp = math.sqrt(10 ** (sig.full_scale_dbm / 10))  # sqrt(mW) at |x| = 1
        gain_db = 20 * math.log10(max(abs(a.gain), 1e-30) / fs_amp)
        if self.cfg.analyser.ref_level_dbm is None:
            rlev = round(min(30.0, self.cfg.limits.peak_dbm + gain_db + self.cfg.analyser.margin_db), 2)
            self.ana.set_ref_level(rlev)
            self.log.record("reference_level", dbm=rlev, gain_db=round(gain_db, 3))
        capture = self._play_and_capture(period)
        aligned, peak = align(period, capture)
        offset = causal_offset(period, aligned)  # where the response starts, not where it peaks
        _, a = align(period, capture, session_fraction=peak.fraction, offset=offset)
        if a.correlation < self.cfg.interlock.min_correlation:
            raise DeviceError(
                f"bench: the calibration capture correlates only {a.correlation:.2f} with the played "
                "waveform: check the cabling, the analyser's settings and the resources"
            )
        k = len(capture) // len(period)
        spread = capture[: k * len(period)].reshape(k, len(period))
        noise = float(np.mean(np.abs(spread - spread.mean(axis=0)) ** 2)) * k / max(k - 1, 1)
        signal = float(np.mean(np.abs(a.gain * period) ** 2))
        cal = {
            "gain": a.gain,
            "gain_db": 20 * math.log10(abs(a.gain) / fs_amp),
            "phase_deg": math.degrees(math.atan2(a.gain.imag, a.gain.real)),
            "fraction": a.fraction,
            "peak_fraction": peak.fraction,
            "offset": offset,
            "shift_samples": a.delay,
            "correlation": a.correlation,
            "noise_dbm": 10 * math.log10(max(noise, 1e-30)),
            "snr_db": 10 * math.log10(signal / max(noise, 1e-30)) if k > 1 else None,
            "ref_level_dbm": self.ana.ref_level,
        }
        self.log.record("calibrated", **{k2: v for k2, v in cal.items() if k2 != "gain"})
        return cal

    # ------------------------------------------------------------ the device contract
    def _query_chunks(self, chunks: list[np.ndarray]) -> Any:
        if len(chunks) > 1:
            total = sum(len(c) for c in chunks)
            raise OutOfRangeError(
                f"bench: a query of {total} samples exceeds max_batch {self.info.max_batch} "
                "(one query is one ARB period); nothing sent"
            )
        return (self._query_batch(c) for c in chunks)

    def _query_batch(self, x: np.ndarray) -> np.ndarray:
        z = x[:, 0].astype(np.float64) + 1j * x[:, 1].astype(np.float64)
        period = np.concatenate([np.zeros(self.guard, complex), z])
        aligned, _ = self._measure(period)
        y = aligned[self.guard :] / self.calibration["gain"]
        return np.stack([y.real, y.imag], axis=1).astype(np.float32)

    def _reset(self) -> None:
        """Nothing to do: each query is played after ``guard`` zeros, which reset the amplifier."""

    def _close(self) -> None:
        try:
            if self.gen.s.in_step or self.gen.s.idn:
                self.gen.stop()
                self.log.record("rf_off", cause="close", readback=0)
        except Exception as exc:
            if self.interlock is not None:
                self.interlock.trip(f"close: {type(exc).__name__}: {exc}")
        finally:
            if self.interlock is not None:
                self.interlock.uninstall()
            self.log.record(
                "closed",
                captures=self.captures,
                drifts=self.drifts,
                recoveries=sum(s.recoveries for s in self.sessions),
            )
            for s in self.sessions:
                s.close()

    # ------------------------------------------------------------ run directory, probe
    def attach_run_dir(self, path: Path) -> None:
        """Keep the interlock log in the run directory too (``interlock.jsonl``), from the start."""
        self.log.attach(Path(path) / "interlock.jsonl")

    def probe_report(self) -> dict[str, Any]:
        from hwloop.drivers.bench.probe import probe_report

        return probe_report(self)


def _bench_path(uri: str) -> Path:
    rest = uri.strip()
    if rest.lower().startswith("bench:"):
        rest = rest[len("bench:") :]
    rest = rest.removeprefix("//")
    if not rest or "?" in rest:
        raise UsageError(f"bench URI {uri!r}: expected bench:FILE.toml (no parameters)")
    return Path(rest)


def load_bench_file(path: str | Path) -> BenchConfig | RadioConfig:
    """A `BenchConfig` (``[generator]`` + ``[analyser]``) or a `RadioConfig` (``[radio]``)."""
    p, doc = read_toml(path)
    return radio_config(p, doc) if "radio" in doc else bench_config(p, doc)


def open_bench(uri: str) -> BaseDevice:
    """Entry point for ``bench:FILE.toml``: file valid, extra installed, RF armed, then the hardware.

    A file with ``[generator]`` + ``[analyser]`` is an instrument bench (`BenchDevice`, extra
    ``hwloop[bench]``); one with ``[radio]`` a transceiver (`RadioDevice`, extra ``hwloop[sdr]``)."""
    cfg = load_bench_file(_bench_path(uri))
    if isinstance(cfg, BenchConfig):
        try:
            import pyvisa  # noqa: F401
            import pyvisa_py  # noqa: F401
        except ImportError:
            raise MissingExtraError(f"bench: devices need PyVISA and pyvisa-py: {INSTALL_HINT}") from None
        operator = check_armed()
        return BenchDevice(cfg, operator, uri=uri)
    from hwloop.drivers.bench.radio_device import open_radio

    return open_radio(cfg, uri)


def _describe() -> list[tuple[str, str]]:
    return [
        ("bench:FILE.toml", "2->2  RF bench: signal generator + analyser over VISA (hwloop[bench])"),
        (
            "bench:FILE.toml",
            "2->2  [radio]: a Pluto/AD9361/AD9364 transceiver through pyadi-iio (hwloop[sdr])",
        ),
    ]


open_bench.describe = _describe  # type: ignore[attr-defined]
open_bench.check = lambda uri: load_bench_file(_bench_path(uri))  # type: ignore[attr-defined]  # no instrument
