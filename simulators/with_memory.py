"""Simulated devices with memory: power amplifiers whose output depends on past inputs.

Both are real-valued single-input single-output baseband models (in_dim =
out_dim = 1) declared ``stateful``: the rows of one query are consecutive
samples in time, and the delay lines persist across query calls until
``reset()`` empties them (zeros, as if the device had been idle). Like the
memoryless simulators they are seeded, add Gaussian measurement noise of
standard deviation ``noise`` (default 1e-3) to the output, refuse inputs
outside the safe range [-1, 1], and give the noise-free answer for scoring
through `MemorySimDevice.clean_sequence` (from a reset state, not counted).

| name        | model |
|-------------|-------|
| wh          | Wiener-Hammerstein: FIR h1 -> Rapp -> FIR h2 (3 taps each) |
| memory_poly | memory polynomial y[n] = sum_{k,m} a_km x[n-m] abs(x[n-m])^(k-1) |

The default filters of ``wh`` are minimum phase (zeros at radius ~0.26 and
~0.32), so a causal inverse over a few past target samples exists; strong
post-cursor taps make a memoryless inverse clearly worse.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from hwloop.device import BadDeviceParameterError, DeviceInfo, Param, UnknownSchemeError, check_inputs
from hwloop.simulators.base import BASE_PARAMS, NoisySim, check_base_values

log = logging.getLogger(__name__)

State = tuple[np.ndarray, ...]


class StreamSystem:
    """A causal system on a 1-D sample stream, its memory held in explicit state."""

    def initial_state(self) -> State:  # pragma: no cover - abstract
        raise NotImplementedError

    def run(self, x: np.ndarray, state: State) -> tuple[np.ndarray, State]:  # pragma: no cover
        """Samples x (n,) from ``state`` -> outputs (n,) and the state after them."""
        raise NotImplementedError


def _fir(x: np.ndarray, taps: np.ndarray, history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """y[n] = sum_k taps[k] x[n-k], continuing from the last len(taps)-1 inputs."""
    ext = np.concatenate([history, x])
    y = np.convolve(ext, taps, mode="valid")
    keep = len(taps) - 1
    return y, (ext[len(ext) - keep :] if keep else ext[:0]).copy()


def rapp(u: np.ndarray, gain: float, sat: float, p: float) -> np.ndarray:
    """Rapp AM/AM on a real signal (odd, monotone, saturating at +-sat)."""
    v = gain * u
    return v / (1.0 + np.abs(v / sat) ** (2 * p)) ** (1.0 / (2 * p))


def min_phase(taps: np.ndarray) -> bool:
    """True if every zero of the FIR filter lies strictly inside the unit circle."""
    t = np.trim_zeros(np.asarray(taps, np.float64), "b")
    return len(t) < 2 or bool(np.all(np.abs(np.roots(t)) < 1.0))


@dataclass(frozen=True)
class WienerHammerstein(StreamSystem):
    """u = h1 * x; v = Rapp(u); y = h2 * v (``*`` a causal FIR convolution)."""

    h1: tuple[float, ...]
    h2: tuple[float, ...]
    gain: float = 1.2
    sat: float = 1.0
    p: float = 2.0

    def initial_state(self) -> State:
        return np.zeros(len(self.h1) - 1), np.zeros(len(self.h2) - 1)

    def run(self, x: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        u, s1 = _fir(x, np.asarray(self.h1), state[0])
        v = rapp(u, self.gain, self.sat, self.p)
        y, s2 = _fir(v, np.asarray(self.h2), state[1])
        return y, (s1, s2)


@dataclass(frozen=True)
class MemoryPolynomial(StreamSystem):
    """y[n] = sum_{k=1..K} sum_{m=0..M-1} a[m, k-1] x[n-m] abs(x[n-m])^(k-1)."""

    coeffs: tuple[tuple[float, ...], ...]  # (M, K): row m = delay, column k-1 = order

    def initial_state(self) -> State:
        return (np.zeros(len(self.coeffs) - 1),)

    def run(self, x: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        a = np.asarray(self.coeffs, np.float64)
        ext = np.concatenate([state[0], x])
        y = np.zeros(len(x))
        for k in range(a.shape[1]):
            y += np.convolve(ext * np.abs(ext) ** k, a[:, k], mode="valid")
        keep = a.shape[0] - 1
        return y, ((ext[len(ext) - keep :] if keep else ext[:0]).copy(),)


class MemorySimDevice(NoisySim):
    """A stateful simulated SISO device: a `StreamSystem` plus seeded output noise."""

    def __init__(
        self,
        info: DeviceInfo,
        system: StreamSystem,
        *,
        noise: float = 1e-3,
        seed: int = 0,
        latency: float = 0.0,
    ) -> None:
        if not info.stateful or info.in_dim != 1 or info.out_dim != 1:
            raise ValueError("a MemorySimDevice is stateful and 1 -> 1")
        super().__init__(info, noise=noise, seed=seed, latency=latency)
        self.system = system
        self._state = system.initial_state()

    def _query_batch(self, x: np.ndarray) -> np.ndarray:
        y, self._state = self.system.run(x[:, 0].astype(np.float64), self._state)
        return self._measured(y)[:, None].astype(np.float32)

    def _reset(self) -> None:
        """Empty the delay lines; the noise stream goes on (it is not device memory)."""
        self._state = self.system.initial_state()

    def clean_sequence(self, x: np.ndarray) -> np.ndarray:
        """Noise-free answer to the sequence ``x`` from a reset state; the device's own state is untouched."""
        arr = check_inputs(self.info, x).astype(np.float64)
        y, _ = self.system.run(arr[:, 0], self.system.initial_state())
        return y[:, None].astype(np.float32)


WH_PARAMS: dict[str, Param] = {
    "h1_1": Param(float, 0.2 / 0.75, "first post-cursor tap of h1, relative to its main tap"),
    "h1_2": Param(float, 0.05 / 0.75, "second post-cursor tap of h1, relative to its main tap"),
    "h2_1": Param(float, -0.25, "first post-cursor tap of h2 (main tap 1)"),
    "h2_2": Param(float, 0.1, "second post-cursor tap of h2 (main tap 1)"),
    "gain": Param(float, 1.2, "Rapp small-signal gain"),
    "sat": Param(float, 1.0, "Rapp saturation level"),
    "p": Param(float, 2.0, "Rapp smoothness"),
}

# Rows: delay m = 0, 1, 2; columns: order k = 1, 2, 3 (x, x|x|, x^3).
MP_COEFFS = ((1.0, 0.05, -0.25), (0.2, -0.03, 0.05), (-0.08, 0.01, -0.02))

MP_PARAMS: dict[str, Param] = {
    "memory": Param(float, 1.0, "scale of the delayed terms (m >= 1); 0 makes it memoryless"),
    "nonlin": Param(float, 1.0, "scale of the non-linear terms (k >= 2)"),
}


def wh_system(values: Mapping[str, Any]) -> WienerHammerstein:
    """h1 = (1, h1_1, h1_2) normalised to unit absolute sum (|u| <= 1 on the safe range)."""
    h1 = np.array([1.0, values["h1_1"], values["h1_2"]])
    h1 = h1 / np.sum(np.abs(h1))
    h2 = np.array([1.0, values["h2_1"], values["h2_2"]])
    for name, taps in (("h1", h1), ("h2", h2)):
        if not min_phase(taps):
            log.warning("wh: %s = %s is not minimum phase: a causal inverse needs lookahead", name, taps)
    if values["gain"] <= 0 or values["sat"] <= 0 or values["p"] <= 0:
        raise BadDeviceParameterError("sim:wh: gain, sat and p must be > 0")
    return WienerHammerstein(
        tuple(float(v) for v in h1), tuple(float(v) for v in h2), values["gain"], values["sat"], values["p"]
    )


def mp_system(values: Mapping[str, Any]) -> MemoryPolynomial:
    a = np.array(MP_COEFFS)
    a[1:, :] *= values["memory"]
    a[:, 1:] *= values["nonlin"]
    return MemoryPolynomial(tuple(tuple(float(v) for v in row) for row in a))


@dataclass(frozen=True)
class MemorySpec:
    """A catalogue entry for a stateful simulator (SISO, safe range [-1, 1])."""

    name: str
    summary: str
    params: Mapping[str, Param]
    system: Callable[[Mapping[str, Any]], StreamSystem]

    def all_params(self) -> dict[str, Param]:
        return {**BASE_PARAMS, **self.params}


MEMORY_SIMULATORS: dict[str, MemorySpec] = {
    s.name: s
    for s in [
        MemorySpec("wh", "Wiener-Hammerstein PA: FIR -> Rapp -> FIR (stateful)", WH_PARAMS, wh_system),
        MemorySpec(
            "memory_poly", "memory-polynomial PA, 3 delays x 3 orders (stateful)", MP_PARAMS, mp_system
        ),
    ]
}


def build_memory_sim(name: str, values: Mapping[str, Any]) -> MemorySimDevice:
    """Build from fully parsed parameter values (every key of ``all_params()``)."""
    spec = MEMORY_SIMULATORS.get(name)
    if spec is None:
        known = ", ".join(sorted(MEMORY_SIMULATORS))
        raise UnknownSchemeError(f"unknown memory simulator {name!r} (known: {known})")
    check_base_values(f"sim:{name}", values)
    info = DeviceInfo(
        name=name,
        in_dim=1,
        out_dim=1,
        max_batch=values["max_batch"],
        low=(-1.0,),
        high=(1.0,),
        stateful=True,
        firmware=f"hwloop-sim/{name}",
    )
    return MemorySimDevice(
        info, spec.system(values), noise=values["noise"], seed=values["seed"], latency=values["latency"]
    )
