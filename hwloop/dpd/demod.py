"""EVM by demodulation: per-subcarrier equalised EVM on the OFDM symbols of a generated signal.

For a signal hwloop generates (`hwloop.dpd.signals.ofdm`) the symbol grid is
known: ``nfft`` samples a symbol, no cyclic prefix, data on the subcarriers
of `qam_grid`. The output is cut into those symbols, each is transformed,
and every data subcarrier is equalised by one complex gain, the least-squares
fit of its received values on the reference (the per-subcarrier
zero-forcing equalisation of TS 38.104 Annex B). EVM is the RMS error vector
over the RMS reference symbol, in dB. The equaliser removes any linear
response (gain, phase, a flat memory), so what is left is distortion and
noise on the data subcarriers alone: what a receiver sees.

The equaliser that scores a symbol is fitted on the other symbols (leave one
out): fitted on the symbols it scores, it absorbs part of their error and
reads optimistic (by 10 log10(S / (S - 1)) dB for S symbols: 3 dB on two).
Fitted on the others, the error it leaves is the symbol's own plus the
equaliser's estimation error, S / (S - 1) times the first on average; the
error power is scaled by (S - 1) / S, which makes the estimate unbiased (the
test measures it, 4 to 16 symbols). Fewer than `MIN_SYMBOLS` whole symbols in
the scored stretch give no EVM by demodulation (`whole_symbols` says how
many there are).

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

MIN_SYMBOLS = 4  # each symbol is scored by an equaliser fitted on at least three others


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


def _span(n: int, spec: OFDMSpec, offset: int) -> tuple[int, int]:
    """(first, last + 1) of the generator's symbols wholly inside n samples starting at ``offset``."""
    first = -(-offset // spec.nfft)  # the first symbol that starts inside the stretch
    last = min((offset + n) // spec.nfft, -(-spec.n // spec.nfft))
    return first, max(first, last)


def whole_symbols(n: int, spec: OFDMSpec, offset: int = 0) -> int:
    """How many of the generator's symbols lie wholly in n samples starting at ``offset``."""
    first, last = _span(n, spec, offset)
    return last - first


def demod_evm_db(
    y: np.ndarray, spec: OFDMSpec, offset: int = 0, reference: np.ndarray | None = None
) -> tuple[float, int] | None:
    """(EVM dB, symbols used) of y, whose first sample is sample ``offset`` of the signal ``spec``
    generates, against ``reference`` (a waveform aligned with y, e.g. the targets) or the QAM data
    (None); None when fewer than `MIN_SYMBOLS` whole symbols lie inside y. Each symbol's
    equaliser is fitted on the others (see the module)."""
    z = _complex(y)
    grid, carriers = qam_grid(spec)
    nfft = spec.nfft
    first, last = _span(len(z), spec, offset)
    count = last - first
    if count < MIN_SYMBOLS:
        return None
    rx = _symbols(z, first, last, nfft, offset, carriers)
    if reference is None:
        tx = grid[first:last][:, carriers] / nfft  # what a transform of the ifft'd symbol returns
    else:
        ref = _complex(reference)
        if ref.shape != z.shape:
            raise ShapeError(f"reference and output differ in length: {ref.shape} vs {z.shape}")
        tx = _symbols(ref, first, last, nfft, offset, carriers)
    cross, power = rx * np.conj(tx), np.abs(tx) ** 2
    h = (cross.sum(axis=0) - cross) / np.maximum(power.sum(axis=0) - power, 1e-300)  # each: the others
    err = rx / np.where(np.abs(h) > 0, h, 1.0) - tx
    ratio = float(np.sum(np.abs(err) ** 2) / np.sum(power)) * (count - 1) / count
    return (float("-inf") if ratio == 0 else float(10 * np.log10(ratio))), count
