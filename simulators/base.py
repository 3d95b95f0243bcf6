"""A simulated device: a seeded numpy function behind the device contract.

Simulators behave like the hardware they stand for: they declare a safe input
range (and refuse anything outside it, through `BaseDevice`), add seeded
Gaussian measurement noise to their outputs and, optionally, noise referred
to their inputs, and can be slowed down to a given latency per query. The
noise-free answer stays reachable through `clean` so benchmarks can score
against the true device.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from hwloop.device import BadDeviceParameterError, BaseDevice, DeviceInfo, Param, check_inputs

Transfer = Callable[[np.ndarray], np.ndarray]

BASE_PARAMS: dict[str, Param] = {
    "noise": Param(float, 1e-3, "std of Gaussian noise added to each output"),
    "seed": Param(int, 0, "seed of the noise generator"),
    "max_batch": Param(int, 1024, "largest number of rows per device call"),
    "latency": Param(float, 0.0, "seconds each device call takes"),
}
"""URI parameters every simulator takes, memoryless or not."""


def check_base_values(where: str, values: dict, nonnegative: tuple[str, ...] = ("noise", "latency")) -> None:
    """Refuse parameter values no simulator can honour, naming the URI they came from."""
    for key in nonnegative:
        if values[key] < 0:
            raise BadDeviceParameterError(f"{where}: {key} must be >= 0, got {values[key]}")
    if values["max_batch"] < 1:
        raise BadDeviceParameterError(f"{where}: max_batch must be >= 1, got {values['max_batch']}")


class NoisySim(BaseDevice):
    """What every simulator shares: seeded output noise, a latency per call, whether it is one-to-one."""

    def __init__(
        self, info: DeviceInfo, *, noise: float, seed: int, latency: float, one_to_one: bool = True
    ) -> None:
        super().__init__(info)
        if min(noise, latency) < 0:
            raise ValueError("noise and latency must be >= 0")
        self.noise = float(noise)
        self.seed = int(seed)
        self.latency = float(latency)
        self.one_to_one = one_to_one
        self._rng = np.random.default_rng(seed)

    def _measured(self, y: np.ndarray) -> np.ndarray:
        """``y`` plus this call's output noise, after the call's latency has passed."""
        if self.noise:
            y = y + self._rng.normal(0.0, self.noise, size=y.shape)
        if self.latency:
            time.sleep(self.latency)
        return y


class SimDevice(NoisySim):
    """A memoryless simulated device ``y = Q(f(x + n_in) + n_out)``, Q an optional quantiser."""

    def __init__(
        self,
        info: DeviceInfo,
        transfer: Transfer,
        *,
        noise: float = 1e-3,
        input_noise: float = 0.0,
        seed: int = 0,
        latency: float = 0.0,
        lsb: float = 0.0,
        one_to_one: bool = True,
    ) -> None:
        super().__init__(info, noise=noise, seed=seed, latency=latency, one_to_one=one_to_one)
        if min(input_noise, lsb) < 0:
            raise ValueError("input_noise and lsb must be >= 0")
        self.transfer = transfer
        self.input_noise = float(input_noise)
        self.lsb = float(lsb)

    def clean(self, x: np.ndarray) -> np.ndarray:
        """The noise-free answer, for scoring; it is not a measurement and is not counted."""
        arr = check_inputs(self.info, x).astype(np.float64)
        return self._quantise(np.asarray(self.transfer(arr), dtype=np.float64)).astype(np.float32)

    def _quantise(self, y: np.ndarray) -> np.ndarray:
        return np.round(y / self.lsb) * self.lsb if self.lsb else y

    def _query_batch(self, x: np.ndarray) -> np.ndarray:
        xd = x.astype(np.float64)
        if self.input_noise:
            # Input-referred noise acts inside the device (e.g. a noisy driver
            # stage); it may push the operating point slightly past the range,
            # as real noise would, but the commanded input stayed in range.
            xd = xd + self._rng.normal(0.0, self.input_noise, size=xd.shape)
        y = self._measured(np.asarray(self.transfer(xd), dtype=np.float64))
        # Noise comes before the quantiser, as in an ADC: it dithers the steps.
        return self._quantise(y).astype(np.float32)

    def _reset(self) -> None:
        """Memoryless: nothing to clear."""
