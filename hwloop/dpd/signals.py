"""Test signals for digital predistortion: OFDM-like generation, spec strings, measured I/Q files.

A signal is complex baseband I/Q held as an (n, 2) float32 array (column 0
I, column 1 Q), rows consecutive in time, the shape the 2->2 amplifier
simulators take. ``--signal`` on the command line is either a file (an I/Q
CSV with a header row ``I,Q``, as OpenDPD ships its measurements, or an NPZ)
or a generator spec such as ``ofdm:bw=200e6,fs=800e6,n=8192,papr=8,seed=0``.

The OFDM-like generator draws QAM symbols on the subcarriers inside the
channel, then lowers the peak-to-average power ratio by iterative clipping
and filtering (Armstrong 2002): clip the envelope at the target PAPR, remove
what the clipping spread outside the channel with an FFT mask, repeat. The
last step is the filter, so the returned signal is strictly band-limited
(periodic over its n samples, so Welch spectra show no edge leakage); its
PAPR ends slightly above the target because filtering regrows peaks.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from hwloop.errors import ShapeError, UsageError

log = logging.getLogger(__name__)

DATASET_DIR = Path(__file__).resolve().parent / "datasets" / "DPA_200MHz"
DPA_FILE = DATASET_DIR / "dpa_200mhz.npz"


@dataclass(frozen=True)
class OFDMSpec:
    """Parameters of the OFDM-like generator; defaults match the DPA_200MHz measurement."""

    bw: float = 200e6  # channel bandwidth, Hz
    fs: float = 800e6  # sample rate, Hz
    n: int = 8192  # samples
    papr: float = 8.0  # target peak-to-average power ratio, dB (0: no clipping)
    seed: int = 0
    nfft: int = 1024  # FFT size of one OFDM symbol (subcarrier spacing fs / nfft)
    qam: int = 16  # constellation size, a square of a power of 2
    iters: int = 8  # clipping-and-filtering rounds
    peak: float = 1.0  # peak |x| of the returned signal
    occ: float = 0.98  # occupied fraction of bw (guard bands at the channel edges, as in 5G NR)

    def check(self) -> OFDMSpec:
        """Raise `UsageError` naming the first value that cannot work."""
        if not (self.fs > 0 and 0 < self.bw < self.fs):
            raise UsageError(f"ofdm: need 0 < bw < fs, got bw={self.bw:g}, fs={self.fs:g}")
        if self.n < 16:
            raise UsageError(f"ofdm: n must be >= 16, got {self.n}")
        if self.nfft < 16 or self.nfft & (self.nfft - 1):
            raise UsageError(f"ofdm: nfft must be a power of 2 >= 16, got {self.nfft}")
        side = round(np.sqrt(self.qam))
        if self.qam < 4 or side * side != self.qam or side & (side - 1):
            raise UsageError(f"ofdm: qam must be 4, 16, 64, 256, ..., got {self.qam}")
        if self.papr < 0 or self.iters < 0 or self.peak <= 0 or not 0 < self.occ <= 1:
            raise UsageError("ofdm: papr and iters must be >= 0, peak > 0 and 0 < occ <= 1")
        return self


def iq(z: np.ndarray) -> np.ndarray:
    """Complex (n,) -> (n, 2) float32 [I, Q]."""
    z = np.asarray(z)
    return np.stack([z.real, z.imag], axis=1).astype(np.float32)


def cplx(x: np.ndarray) -> np.ndarray:
    """(n, 2) [I, Q] -> complex128 (n,); raises `ShapeError` for any other shape."""
    arr = np.asarray(x)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ShapeError(f"an I/Q signal must have shape (n, 2), got {arr.shape}")
    return arr[:, 0].astype(np.float64) + 1j * arr[:, 1].astype(np.float64)


def papr_db(x: np.ndarray) -> float:
    """Peak over mean power of the envelope, in dB."""
    p = np.abs(cplx(x)) ** 2
    return float(10.0 * np.log10(p.max() / p.mean()))


def _band_mask(n: int, fs: float, bw: float) -> np.ndarray:
    """True on the FFT bins of an n-point transform that lie inside +-bw/2."""
    return np.abs(np.fft.fftfreq(n, d=1.0 / fs)) <= bw / 2.0


def qam_grid(spec: OFDMSpec, rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The QAM symbols `ofdm` puts on its subcarriers: grid (symbols, nfft) and the carrier mask
    (what a receiver that knows the transmitted data demodulates against, `hwloop.dpd.demod`)."""
    rng = rng if rng is not None else np.random.default_rng(spec.seed)
    side = round(np.sqrt(spec.qam))
    levels = np.arange(side) * 2.0 - (side - 1)
    carriers = _band_mask(spec.nfft, spec.fs, spec.bw * spec.occ)
    carriers[0] = False  # no DC subcarrier, as in LTE and Wi-Fi
    n_sym = -(-spec.n // spec.nfft)
    grid = np.zeros((n_sym, spec.nfft), complex)
    n_car = int(carriers.sum())
    grid[:, carriers] = rng.choice(levels, (n_sym, n_car)) + 1j * rng.choice(levels, (n_sym, n_car))
    return grid, carriers


def ofdm(spec: OFDMSpec | None = None) -> np.ndarray:
    """A seeded, band-limited OFDM-like signal of ``spec.n`` samples, peak |x| = ``spec.peak``."""
    spec = (spec or OFDMSpec()).check()
    rng = np.random.default_rng(spec.seed)
    grid, _ = qam_grid(spec, rng)
    z = np.fft.ifft(grid, axis=1).ravel()[: spec.n]
    band = _band_mask(spec.n, spec.fs, spec.bw * spec.occ)
    z = np.fft.ifft(np.fft.fft(z) * band)  # symbol edges spread power out of band: remove it
    if spec.papr > 0:
        for _ in range(spec.iters):
            limit = np.sqrt(np.mean(np.abs(z) ** 2) * 10 ** (spec.papr / 10.0))
            mag = np.abs(z)
            z = np.where(mag > limit, z * limit / np.maximum(mag, 1e-300), z)
            z = np.fft.ifft(np.fft.fft(z) * band)
    z = z * (spec.peak * (1 - 5e-7) / np.abs(z).max())  # float32 rounding must not carry it past the peak
    out = iq(z)
    log.debug(
        "ofdm: n=%d bw=%g fs=%g papr %.2f dB (target %g)", spec.n, spec.bw, spec.fs, papr_db(out), spec.papr
    )
    return out


def parse_ofdm(text: str) -> OFDMSpec:
    """``ofdm:bw=200e6,fs=800e6,n=8192,papr=8,seed=0`` -> `OFDMSpec` (every key optional)."""
    head, _, body = text.strip().partition(":")
    if head.lower() != "ofdm":
        raise UsageError(f"signal spec {text!r}: expected 'ofdm:key=value,...'")
    types = {f.name: f.type for f in fields(OFDMSpec)}
    values: dict[str, float | int] = {}
    for item in filter(None, (s.strip() for s in body.replace("&", ",").split(","))):
        key, eq, raw = item.partition("=")
        key = key.strip()
        if not eq or key not in types:
            raise UsageError(f"signal spec {text!r}: bad item {item!r} (keys: {', '.join(types)})")
        try:
            num = float(raw)
            if types[key] == "int":
                if num != int(num):
                    raise ValueError(raw)
                num = int(num)
        except ValueError:
            raise UsageError(f"signal spec {text!r}: {key} must be a number, got {raw!r}") from None
        values[key] = num
    return OFDMSpec(**values).check()  # type: ignore[arg-type]


def _checked_iq(arr: np.ndarray, source: str) -> np.ndarray:
    arr = np.asarray(arr)
    if np.iscomplexobj(arr) and arr.ndim == 1:
        arr = iq(arr)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ShapeError(f"{source}: an I/Q signal must be (n, 2) or complex (n,), got shape {arr.shape}")
    if arr.shape[0] < 16:
        raise ShapeError(f"{source}: {arr.shape[0]} samples is too few (need 16 or more)")
    if not np.all(np.isfinite(arr)):
        raise ShapeError(f"{source}: the signal has non-finite samples")
    return arr.astype(np.float32)


def read_iq_csv(path: str | Path) -> np.ndarray:
    """An I/Q CSV with a header row naming columns I and Q (any order, other columns ignored)."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"signal file {p} does not exist")
    with p.open(newline="") as fh:
        reader = csv.reader(fh)
        header = [h.strip().upper() for h in next(reader, [])]
        if "I" not in header or "Q" not in header:
            raise ShapeError(f"{p}: the CSV header must name columns I and Q, got {header}")
        i, q = header.index("I"), header.index("Q")
        try:
            rows = [(float(r[i]), float(r[q])) for r in reader if r]
        except (ValueError, IndexError) as exc:
            raise ShapeError(f"{p}: a CSV row is malformed ({exc})") from None
    return _checked_iq(np.array(rows, np.float64).reshape(-1, 2), str(p))


def read_iq_npz(path: str | Path, key: str | None = None) -> np.ndarray:
    """An NPZ holding one I/Q array: ``key``, else the only array, else one named x, iq or signal."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"signal file {p} does not exist")
    try:
        with np.load(p, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data}
    except (OSError, ValueError) as exc:
        raise UsageError(f"{p}: not a readable NPZ file ({exc})") from None
    names = list(arrays)
    pick = key or (
        names[0] if len(names) == 1 else next((k for k in ("x", "iq", "signal") if k in arrays), None)
    )
    if pick is None or pick not in arrays:
        raise ShapeError(f"{p}: say which array holds the signal (arrays: {', '.join(names)})")
    arr = arrays[pick]
    return _checked_iq(arr, f"{p}[{pick}]")


def read_iq(path: str | Path) -> np.ndarray:
    """Read an I/Q signal from a .csv (header I,Q) or .npz file."""
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return read_iq_csv(path)
    if suffix == ".npz":
        return read_iq_npz(path)
    raise UsageError(f"{path}: signal files are .csv (header I,Q) or .npz")


def load_signal(spec_or_path: str | Path) -> np.ndarray:
    """The (n, 2) float32 target signal for ``--signal FILE|ofdm:...|dpa200:SPLIT``.

    ``dpa200:SPLIT`` is the input signal of the bundled DPA_200MHz measurement
    (split train, val or test).
    """
    text = str(spec_or_path).strip()
    if text.lower().startswith("dpa200:"):
        return dpa200(text.split(":", 1)[1])[0]
    if text.lower().startswith("ofdm:") or text.lower() == "ofdm":
        return ofdm(parse_ofdm(text if ":" in text else "ofdm:"))
    return read_iq(text)


def read_pairs(
    source: str | Path, second: str | Path | None = None, split: str = "train"
) -> tuple[np.ndarray, np.ndarray]:
    """Measured (x, y) I/Q pairs as OpenDPD ships them, both (n, 2) float32.

    ``source`` is a directory holding ``{split}_input.csv`` and
    ``{split}_output.csv``, or the input file with ``second`` the output file.
    The arrays feed ``--from-data`` as they are (NPZ with arrays x and y).
    """
    src = Path(source)
    if second is None:
        if not src.is_dir():
            raise UsageError(
                f"{src}: give a directory with {split}_input.csv/{split}_output.csv, or two files"
            )
        first, other = src / f"{split}_input.csv", src / f"{split}_output.csv"
    else:
        first, other = src, Path(second)
    x, y = read_iq(first), read_iq(other)
    if len(x) != len(y):
        raise ShapeError(f"{first} has {len(x)} samples but {other} has {len(y)}")
    return x, y


def dpa200(split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """The bundled DPA_200MHz measurement (OpenDPD, Apache-2.0): input and output of ``split``."""
    if split not in ("train", "val", "test"):
        raise UsageError(f"DPA_200MHz splits are train, val and test, not {split!r}")
    with np.load(DPA_FILE) as data:
        return data[f"{split}_input"].astype(np.float32), data[f"{split}_output"].astype(np.float32)


DEFAULT_FS = 800e6  # the sample rate assumed for a signal that does not say its own


def signal_rate(spec_or_path: str | Path) -> float | None:
    """The sample rate a signal declares, Hz, or None: a generator spec's ``fs``, an NPZ's ``fs``
    array, the ``input_signal_fs`` of the ``spec.json`` beside a CSV (OpenDPD's layout)."""
    text = str(spec_or_path).strip()
    low = text.lower()
    if low.startswith("dpa200:"):
        return _spec_rate(DATASET_DIR / "spec.json")
    if low.startswith("ofdm:") or low == "ofdm":
        return float(parse_ofdm(text if ":" in text else "ofdm:").fs)
    p = Path(text)
    if p.suffix.lower() == ".npz" and p.is_file():
        try:
            with np.load(p, allow_pickle=False) as data:
                if "fs" in data.files:
                    return float(np.asarray(data["fs"]).reshape(-1)[0])
        except (OSError, ValueError, IndexError) as exc:
            raise UsageError(f"{p}: cannot read its fs field ({exc})") from None
        return None
    return _spec_rate(p.parent / "spec.json") if p.suffix.lower() == ".csv" else None


def _spec_rate(path: Path) -> float | None:
    import json

    if not path.is_file():
        return None
    try:
        fs = float(json.loads(path.read_text()).get("input_signal_fs"))
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise UsageError(f"{path}: no usable input_signal_fs ({exc})") from None
    if not fs > 0:
        raise UsageError(f"{path}: input_signal_fs must be positive, got {fs}")
    return fs


def resolve_fs(fs: float | None, signal: str | Path | None) -> float:
    """``--fs`` as given, else the signal's own rate (`signal_rate`), else `DEFAULT_FS`."""
    if fs is not None:
        return float(fs)
    own = signal_rate(signal) if signal is not None else None
    if own is None:
        log.info("the signal does not declare its sample rate: assuming %g Hz (give --fs)", DEFAULT_FS)
        return DEFAULT_FS
    return own


def holdout_split(t: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray | None]:
    """(training part, held-out part): the last ``fraction`` of the signal is held out, so the
    score is of samples the fit never saw; ``fraction`` 0 holds out nothing (None)."""
    if not 0 <= fraction < 1:
        raise UsageError(f"the held-out fraction must be in [0, 1), got {fraction}")
    cut = len(t) - round(fraction * len(t))
    if fraction == 0 or cut == len(t):
        return t, None
    if cut < 256 or len(t) - cut < 256:
        raise UsageError(
            f"holding out {fraction:g} of a {len(t)}-sample signal leaves fewer than 256 samples on a side"
        )
    return t[:cut], t[cut:]
