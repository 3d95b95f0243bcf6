"""EVM by demodulation: per-subcarrier equalised EVM on the OFDM symbols of a generated signal.

For a signal hwloop generates (`hwloop.dpd.signals.ofdm`) the symbol grid is
known: ``nfft`` samples a symbol, no cyclic prefix, data on the subcarriers
of `qam_grid`. The output is cut into those symbols, each is transformed,
and every data subcarrier is equalised by one complex gain, the least-squares
fit of its received values on the reference over all symbols measured (the
per-subcarrier zero-forcing equalisation of TS 38.104 Annex B, with the
whole capture as its reference). EVM is the RMS error vector over the RMS
reference symbol, in dB. The equaliser removes any linear response (gain,
phase, a flat memory), so what is left is distortion and noise on the data
subcarriers alone: what a receiver sees.

Two references: the transmitted signal's own subcarriers (`demod_evm_db`
with ``reference``: the predistorted amplifier's EVM, what DPD is judged
by), and the QAM data themselves (``reference=None``: the signal's own EVM,
the cost of the generator's filtering and of its and `hwloop.dpd.cfr`'s
crest factor reduction, which a receiver pays on top).
"""

from __future__ import annotations

import numpy as np

from hwloop.dpd.signals import OFDMSpec, cplx, qam_grid
from hwloop.errors import ShapeError

MIN_SYMBOLS = 2  # an equaliser fitted on one symbol would absorb that symbol's error


def _complex(x: np.ndarray) -> np.ndarray:
    z = np.asarray(x) if np.iscomplexobj(x) else cplx(np.asarray(x))
    if z.ndim != 1:
        raise ShapeError(f"demodulation needs one I/Q sequence, got shape {z.shape}")
    return z


def _symbols(
    z: np.ndarray, first: int, last: int, nfft: int, offset: int, carriers: np.ndarray
) -> np.ndarray:
    return np.stack([np.fft.fft(z[s * nfft - offset : (s + 1) * nfft - offset]) for s in range(first, last)])[
        :, carriers
    ]


def demod_evm_db(
    y: np.ndarray, spec: OFDMSpec, offset: int = 0, reference: np.ndarray | None = None
) -> tuple[float, int] | None:
    """(EVM dB, symbols used) of y, whose first sample is sample ``offset`` of the signal ``spec``
    generates, against ``reference`` (a waveform aligned with y, e.g. the targets) or the QAM data
    (None); None when fewer than `MIN_SYMBOLS` whole symbols lie inside y."""
    z = _complex(y)
    grid, carriers = qam_grid(spec)
    nfft = spec.nfft
    first = -(-offset // nfft)  # the first symbol that starts inside y
    last = min((offset + len(z)) // nfft, -(-spec.n // nfft))  # whole symbols only
    if last - first < MIN_SYMBOLS:
        return None
    rx = _symbols(z, first, last, nfft, offset, carriers)
    if reference is None:
        tx = grid[first:last][:, carriers] / nfft  # what a transform of the ifft'd symbol returns
    else:
        ref = _complex(reference)
        if ref.shape != z.shape:
            raise ShapeError(f"reference and output differ in length: {ref.shape} vs {z.shape}")
        tx = _symbols(ref, first, last, nfft, offset, carriers)
    h = np.sum(rx * np.conj(tx), axis=0) / np.maximum(np.sum(np.abs(tx) ** 2, axis=0), 1e-300)
    err = rx / np.where(np.abs(h) > 0, h, 1.0) - tx
    ratio = float(np.sum(np.abs(err) ** 2) / np.sum(np.abs(tx) ** 2))
    return (float("-inf") if ratio == 0 else float(10 * np.log10(ratio))), last - first
