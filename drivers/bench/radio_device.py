"""``bench:FILE.toml`` with a ``[radio]`` table: a transceiver as one stateful I/Q device.

The same loop as the instrument bench (`device.BenchDevice`), with the
radio's pair of ends (`radio.RadioSession`): each query x (n, 2) is played
as one cyclic TX buffer ``[guard zeros | x]`` in 12-bit DAC codes (|x| = 1 is
the DAC's full scale, at ``tx_gain_db``), checked by the interlock first
(peak, RMS and PAPR in dBFS, length, TX gain: nothing sent if it fails),
captured ``periods`` times over on a fresh RX buffer, TX switched off
(buffer destroyed, attenuation at its maximum), and the capture cleaned and
aligned (`impairments.clean_capture`: IQ image, DC, carrier offset, then the
shared `alignment.align`, then the capture's phase) and divided by the
session's complex small-signal gain. A linear path reads y = x.

A capture whose RX DMA overflowed, or that correlates below
``min_correlation`` with what was played (stale or broken), is an
`UnusableAnswer` (the meter asks again); one that reached the ADC's rails is
a `DeviceError` (lower ``rx_gain_db``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from hwloop.device import BaseDevice, DeviceError, DeviceInfo, IQEnvelope, OutOfRangeError, UnusableAnswer
from hwloop.drivers.bench.alignment import align, causal_offset
from hwloop.drivers.bench.impairments import (
    Cleaned,
    carrier_offset,
    clean_capture,
    correct_image,
    derotate,
    fit_image,
)
from hwloop.drivers.bench.interlock import Interlock, InterlockLog, Tripped, check_armed, period_levels
from hwloop.drivers.bench.radio import RadioSession, pyadi_class
from hwloop.drivers.bench.radio_config import RadioConfig
from hwloop.drivers.bench.signals import DAC_FS, MEMORY, calibration_signal, quantise12

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

ADC_FS = 2048.0
DRIFT_SAMPLES = 0.2  # a compressed capture's own estimate moves ~0.1 sample; a radio's clocks are shared


class RadioDevice(BaseDevice):
    """A transceiver behind the device contract: I/Q in, I/Q out, stateful, envelope-limited."""

    def __init__(self, cfg: RadioConfig, operator: str, *, uri: str = "") -> None:
        self.cfg = cfg
        self.uri = uri or f"bench:{cfg.path}"
        self.guard = cfg.signal.guard
        self.periods = cfg.signal.periods
        self.captures = self.drifts = self.overflows = 0
        self.phases: list[float] = []
        self.log = InterlockLog(cfg.interlock.log)
        self.log.record("armed", operator=operator, bench=str(cfg.path), radio=cfg.radio.uri,
                        device=cfg.radio.device, limits=asdict(cfg.limits))  # fmt: skip
        self.interlock: Interlock | None = None
        self.session: RadioSession | None = None
        try:
            self.session = RadioSession(cfg.radio)
            self.interlock = Interlock(
                self.log,
                operator,
                limits=cfg.limits,
                full_scale_dbm=0.0,
                emergency_off=self._emergency_off,
                sessions=[self.session],
                watchdog_s=cfg.interlock.watchdog_s,
                grace_s=cfg.interlock.rf_grace_s,
                retry_s=cfg.interlock.emergency_retry_s,
            )
            self.log.record("identified", radio=self.session.idn)
            self.settings = self.session.configure()
            self.fs = float(self.settings["sample_rate"])
            self.log.record("configured", **self.settings)
            self.log.record("rf_off", cause="configuration", readback=self.settings["tx_gain_db"])
            self.interlock.install()
            self.calibration = self._calibrate()
        except BaseException as exc:
            if self.interlock is not None:
                self.interlock.trip(f"opening the radio failed: {type(exc).__name__}: {exc}")
                self.interlock.uninstall()
            if self.session is not None:
                self.session.close()
            raise
        peak = min(1.0, cfg.peak)
        info = DeviceInfo(
            name=f"bench:{cfg.path.stem}",
            in_dim=2,
            out_dim=2,
            max_batch=min(cfg.limits.max_samples, MEMORY // self.periods) - self.guard,
            low=(-peak, -peak),
            high=(peak, peak),
            stateful=True,
            firmware=self.session.idn,
            envelope=IQEnvelope(((0, 1),), peak, min(cfg.rms, peak)),
        )
        super().__init__(info)

    # ------------------------------------------------------------ one cyclic buffer
    def _emergency_off(self) -> str:
        assert self.session is not None
        self.session.cancel()  # a refill blocked on the RX buffer returns now
        return self.session.emergency_off()

    def _play_and_capture(self, period: np.ndarray) -> np.ndarray:
        """Capture ``periods`` looped periods of ``period`` (complex, full-scale units): ADC units."""
        il, s = self.interlock, self.session
        assert il is not None and s is not None
        codes = quantise12(period)
        il.allow_rf()
        il.check_period(codes)  # raises before anything is sent
        rms, peak, papr = period_levels(codes, 0.0, DAC_FS)
        n = self.periods * len(codes)
        try:
            gain = s.set_tx_gain(self.cfg.radio.tx_gain_db)
            il.check_tx_gain(gain)
            il.allow_rf()
            il.rf_on = True  # from here the watchdog guards every call
            s.play(codes)
            il.note_rf(True, tx_gain_db=gain, rms_dbfs=round(rms, 4), peak_dbfs=round(peak, 4),
                       papr_db=round(papr, 3), samples=len(codes))  # fmt: skip
            raw, overflow = s.capture(n, self.cfg.radio.flush)
            il.allow_rf()  # a trip during the capture: the answer is not used
            readback = s.tx_off()
            il.note_rf(False, cause="capture done", readback=readback)
        except BaseException as exc:
            earlier = il.tripped  # the watchdog's trip cancels a blocked refill: say why, not "EBADF"
            il.trip(f"{type(exc).__name__}: {exc}")
            if earlier and isinstance(exc, DeviceError) and not isinstance(exc, Tripped):
                raise Tripped(f"radio: the interlock tripped ({earlier}); then {exc}") from None
            raise
        self.captures += 1
        if overflow:
            self.overflows += 1
            self.log.record("overflow", capture=self.captures)
            raise UnusableAnswer("radio: the RX DMA overflowed during the capture; not used")
        rails = int(np.sum((np.abs(raw.real) >= ADC_FS - 1) | (np.abs(raw.imag) >= ADC_FS - 1)))
        if rails:
            self.log.record("clipped", samples=rails, rx_gain_db=self.cfg.radio.rx_gain_db)
            raise DeviceError(
                f"radio: {rails} samples reached the ADC's full scale at rx_gain_db "
                f"{self.cfg.radio.rx_gain_db:g}: lower [radio] rx_gain_db (or attenuate before the receiver)"
            )
        return raw / ADC_FS

    def _clean(self, period: np.ndarray, capture: np.ndarray, *, session: bool = True) -> Cleaned:
        cal = self.calibration
        c = clean_capture(
            period, capture, w=cal["w"], dc=cal["dc"], omega=cal["omega"], gain=cal["gain"], guard=self.guard,
            session_fraction=cal["peak_fraction"], offset=cal["offset"],
        )  # fmt: skip
        a = c.alignment
        if abs(a.drift) > DRIFT_SAMPLES:
            self.drifts += 1
            log.warning("radio: this capture's delay lies %.3f samples from the session's", a.drift)
        if a.correlation < self.cfg.interlock.min_correlation:
            raise UnusableAnswer(
                f"radio: capture correlates {a.correlation:.2f} with the played waveform "
                f"(below {self.cfg.interlock.min_correlation}); not used"
            )
        self.phases.append(c.phase)
        return c

    def _calibrate(self) -> dict[str, Any]:
        """Small-signal capture: image, DC, carrier offset, delay, gain and phase, noise, headroom."""
        sig = self.cfg.signal
        z = calibration_signal(sig.calibration_samples, 10 ** (sig.calibration_db / 20), self.cfg.peak)
        period = np.concatenate([np.zeros(self.guard, complex), z])
        p = len(period)
        y = self._play_and_capture(period)
        om0 = carrier_offset(y - y.mean(), p)
        _, first = align(period, derotate(y - y.mean(), om0))
        if first.correlation < self.cfg.interlock.min_correlation:
            raise DeviceError(
                f"radio: the calibration capture correlates only {first.correlation:.2f} with the played "
                "waveform: check the cabling, the gains and the LOs"
            )
        fit = fit_image(period, y, om0, first.delay)
        dc = fit.dc + fit.w * np.conj(fit.dc)
        kw = {"w": fit.w, "dc": dc, "omega": om0, "gain": None, "guard": self.guard}
        peak = clean_capture(period, y, **kw)
        offset = causal_offset(period, peak.aligned)
        c = clean_capture(period, y, **kw, session_fraction=peak.alignment.fraction, offset=offset)
        energy = float(np.vdot(period, period).real)
        gain = complex(np.vdot(period, c.aligned) / energy)
        yc = derotate(correct_image(y, fit.w) - dc, c.omega)
        k = len(yc) // p
        spread = yc[: k * p].reshape(k, p)
        noise = float(np.mean(np.abs(spread - spread.mean(axis=0)) ** 2)) * k / (k - 1)
        after = fit_image(period, correct_image(y, fit.w), c.omega, c.alignment.delay)
        signal = float(np.mean(np.abs(gain * period) ** 2))
        headroom = -20 * math.log10(max(abs(gain) * self.cfg.peak, 1e-12))
        cal = {
            "gain": gain,
            "gain_db": 20 * math.log10(abs(gain)),
            "phase_deg": math.degrees(math.atan2(gain.imag, gain.real)),
            "fraction": c.alignment.fraction,
            "peak_fraction": peak.alignment.fraction,
            "offset": offset,
            "shift_samples": c.alignment.delay,
            "correlation": c.alignment.correlation,
            "noise_dbfs": 10 * math.log10(max(noise, 1e-30)),
            "snr_db": 10 * math.log10(signal / max(noise, 1e-30)),
            "omega": c.omega,
            "cfo_hz": c.omega * self.fs / (2 * math.pi),
            "w": fit.w,
            "dc": dc + c.dc,
            "dc_dbfs": 20 * math.log10(max(abs(fit.dc), 1e-12)),
            "image_rejection_db": fit.irr_db,
            "image_rejection_corrected_db": after.irr_db,
            "headroom_db": headroom,
        }
        if headroom < 1.0:
            log.warning("radio: the ADC reaches full scale %.1f dB before the TX peak limit (small signal): "
                        "lower rx_gain_db if captures clip", -headroom)  # fmt: skip
        self.log.record("calibrated", **{k2: (round(v, 6) if isinstance(v, float) else v)
                                        for k2, v in cal.items() if not isinstance(v, complex)})  # fmt: skip
        return cal

    # ------------------------------------------------------------ the device contract
    def _query_chunks(self, chunks: list[np.ndarray]) -> Any:
        if len(chunks) > 1:
            total = sum(len(c) for c in chunks)
            raise OutOfRangeError(
                f"radio: a query of {total} samples exceeds max_batch {self.info.max_batch} "
                "(one query is one cyclic buffer); nothing sent"
            )
        return (self._query_batch(c) for c in chunks)

    def _query_batch(self, x: np.ndarray) -> np.ndarray:
        z = x[:, 0].astype(np.float64) + 1j * x[:, 1].astype(np.float64)
        period = np.concatenate([np.zeros(self.guard, complex), z])
        c = self._clean(period, self._play_and_capture(period))
        y = c.aligned[self.guard :] / self.calibration["gain"]
        return np.stack([y.real, y.imag], axis=1).astype(np.float32)

    def _reset(self) -> None:
        """Nothing to do: each query is played after ``guard`` zeros, which reset the amplifier."""

    def _close(self) -> None:
        s, il = self.session, self.interlock
        try:
            if s is not None and not s.broken:
                readback = s.tx_off()
                self.log.record("rf_off", cause="close", readback=readback)
            elif il is not None:
                il.turn_off("close after a fault")
        except Exception as exc:
            if il is not None:
                il.trip(f"close: {type(exc).__name__}: {exc}")
        finally:
            if il is not None:
                il.uninstall()
            phases = np.unwrap(np.array(self.phases)) if self.phases else np.zeros(1)
            self.log.record("closed", captures=self.captures, drifts=self.drifts, overflows=self.overflows,
                            phase_spread_deg=round(float(np.degrees(np.std(phases))), 3))  # fmt: skip
            if s is not None:
                s.close()

    # ------------------------------------------------------------ run directory, probe
    def attach_run_dir(self, path: Path) -> None:
        """Keep the interlock log in the run directory too (``interlock.jsonl``), from the start."""
        self.log.attach(Path(path) / "interlock.jsonl")

    def probe_report(self) -> dict[str, Any]:
        from hwloop.drivers.bench.probe import probe_report

        return probe_report(self)

    @property
    def full_scale_db(self) -> float:
        return 0.0


def open_radio(cfg: RadioConfig, uri: str) -> RadioDevice:
    """The radio behind ``bench:FILE.toml``: extra installed, RF armed, then the transceiver."""
    pyadi_class(cfg.radio.device)  # MissingExtraError before anything else
    operator = check_armed()
    return RadioDevice(cfg, operator, uri=uri)


__all__ = ["RadioDevice", "open_radio", "quantise12"]
