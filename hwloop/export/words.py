"""What every inverse in words shares (the quantised MLP and GRU): the input and output formats
and words chosen from the float model, the shifts between them, and the standardised inputs."""

from __future__ import annotations

import numpy as np

from hwloop.export.fixed import QFormat, q_for_range, requant

TARGET_MARGIN = 1.1  # targets up to 10 % beyond the logged ones keep their value


class WordInverse:
    """What every inverse in words shares: its formats' shifts and the standardised input words.

    A subclass (a dataclass) holds ``abits`` and the formats and words these read: ``fmt_t``,
    ``mean_t``, ``fmt_is``, ``inv_std``, ``fmt_z``, ``fmt_zo``, ``fmt_so``, ``fmt_x``, ``mean_x``.
    """

    abits: int
    fmt_t: QFormat
    mean_t: np.ndarray
    fmt_is: QFormat
    inv_std: np.ndarray
    fmt_z: QFormat
    fmt_zo: QFormat
    fmt_so: QFormat
    fmt_x: QFormat
    mean_x: np.ndarray

    @property
    def fmt_h(self) -> QFormat:
        return QFormat(self.abits, self.abits - 1)

    @property
    def in_dim(self) -> int:
        return len(self.mean_t)

    @property
    def out_dim(self) -> int:
        return len(self.mean_x)

    @property
    def z_shift(self) -> int:
        return self.fmt_t.frac + self.fmt_is.frac - self.fmt_z.frac

    @property
    def x_shift(self) -> int:
        return self.fmt_zo.frac + self.fmt_so.frac - self.fmt_x.frac

    def standardised(self, t: np.ndarray) -> np.ndarray:
        """The words z of the standardised input rows t."""
        d = self.fmt_t.saturate(np.asarray(t, np.int64) - self.mean_t)
        return requant(d * self.inv_std, self.z_shift, self.fmt_z)


def input_words(targets: np.ndarray, in_mean: np.ndarray, in_std: np.ndarray, io_bits: int) -> dict:
    """The input side of an inverse in words: the targets' format (``targets``, rows of its input,
    set the range), their mean, 1/std and the standardised words' format."""
    fmt_t = q_for_range(TARGET_MARGIN * float(np.max(np.abs(np.asarray(targets, np.float64)))), io_bits, 20)
    full_t = -fmt_t.lo / 2.0**fmt_t.frac  # |d| after saturation
    inv_std = 1.0 / in_std
    fmt_is = q_for_range(float(np.max(inv_std)), io_bits, 30)
    fmt_z = q_for_range(full_t * float(np.max(inv_std)), io_bits, 20)
    return {
        "fmt_t": fmt_t,
        "mean_t": fmt_t.quantize(in_mean),
        "fmt_is": fmt_is,
        "inv_std": fmt_is.quantize(inv_std),
        "fmt_z": fmt_z,
    }


def output_words(
    low: np.ndarray, high: np.ndarray, out_mean: np.ndarray, out_std: np.ndarray, io_bits: int
) -> dict:
    """The output side: the standardised output's format, the drive's, its mean and std, its range."""
    # Where zo maps beyond [low, high] the clip decides; 25 % headroom past that.
    reach = np.maximum(np.abs(low - out_mean), np.abs(high - out_mean)) / out_std
    fmt_zo = q_for_range(1.25 * float(np.max(reach)), io_bits, 20)
    fmt_x = q_for_range(float(np.max(np.maximum(np.abs(low), np.abs(high)))), io_bits, 20)
    fmt_so = q_for_range(float(np.max(out_std)), io_bits, 30)
    fmt_so = QFormat(io_bits, max(fmt_so.frac, fmt_x.frac - fmt_zo.frac))  # keeps the x shift >= 0
    return {
        "fmt_zo": fmt_zo,
        "fmt_so": fmt_so,
        "std_x": fmt_so.quantize(out_std),
        "fmt_x": fmt_x,
        "mean_x": fmt_x.quantize(out_mean),
        "low_q": fmt_x.quantize(low),
        "high_q": fmt_x.quantize(high),
    }
