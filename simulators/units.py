"""Many units of one I/Q amplifier design: ``sim:iqpa?unit=K``.

A production line builds many units of one design; no two are alike. Each
unit here is a memoryless 2->2 baseband chain (I, Q in, I, Q out):

1. modulator with I/Q imbalance and LO leakage (amplitude imbalance ``g``,
   phase imbalance ``phi`` radians, DC offset ``d``)::

       u_I = (1 + g/2) (I cos(phi/2) + Q sin(phi/2)) + d_I
       u_Q = (1 - g/2) (Q cos(phi/2) + I sin(phi/2)) + d_Q

2. Saleh power amplifier on ``z = u_I + j u_Q``, ``r = |z|``::

       w = alpha_a / (1 + beta_a r^2) * z * exp(j alpha_p r^2 / (1 + beta_p r^2))

3. receiver DC offset ``c``: ``y = (Re w + c_I, Im w + c_Q)``.

Unit 0 is the nominal design: the Saleh parameters of ``sim:saleh_iq``
(alpha_a 2.1587, beta_a 1.1517, alpha_p 4.0033, beta_p 9.1040), no
imbalance, no offsets. Unit K > 0 draws its own spread from
``np.random.default_rng([design, K])`` (so the same K is always the same
unit, and a different ``design`` is another product), every draw uniform
and scaled by ``spread`` (default 1):

| parameter | spread |
|---|---|
| alpha_a, beta_a, alpha_p, beta_p | nominal x (1 + U(-0.1, 0.1)) |
| g (I/Q amplitude imbalance) | U(-0.1, 0.1) |
| phi (I/Q phase imbalance, rad) | U(-0.1, 0.1) |
| d_I, d_Q (LO leakage) | U(-0.02, 0.02) |
| c_I, c_Q (output offset) | U(-0.02, 0.02) |

The safe input range is [-0.5, 0.5]^2 (|x| <= 0.71, output amplitude about
1, so offsets are about 2 % of full scale). Every unit stays below its AM/AM
peak over that range and is one-to-one. Noise, seed, max_batch and latency
are the usual simulator parameters; ``clean`` gives the noise-free answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from hwloop.device import BadDeviceParameterError, DeviceInfo, IQEnvelope, Param
from hwloop.simulators.base import BASE_PARAMS, SimDevice, Transfer, check_base_values

LOW, HIGH = (-0.5, -0.5), (0.5, 0.5)
DESIGN_SEED = 20_240_601

UNIT_PARAMS: dict[str, Param] = {
    **BASE_PARAMS,
    "unit": Param(int, 0, "unit number; 0 is the nominal design"),
    "design": Param(int, DESIGN_SEED, "seed of the design's unit-to-unit spread"),
    "spread": Param(float, 1.0, "scale of the unit-to-unit spread (0: every unit nominal)"),
}


@dataclass(frozen=True)
class UnitParams:
    """One unit's physical parameters (see the module docstring for the model)."""

    alpha_a: float = 2.1587
    beta_a: float = 1.1517
    alpha_p: float = 4.0033
    beta_p: float = 9.1040
    g: float = 0.0
    phi: float = 0.0
    d_i: float = 0.0
    d_q: float = 0.0
    c_i: float = 0.0
    c_q: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


NOMINAL = UnitParams()


def unit_params(unit: int, *, design: int = DESIGN_SEED, spread: float = 1.0) -> UnitParams:
    """The parameters of unit ``unit``: a deterministic draw from (design, unit)."""
    if unit < 0:
        raise BadDeviceParameterError(f"sim:iqpa: unit must be >= 0, got {unit}")
    if unit == 0 or spread == 0.0:
        return NOMINAL
    rng = np.random.default_rng([design, unit])
    rel = rng.uniform(-0.1, 0.1, 4) * spread
    g, phi = rng.uniform(-0.1, 0.1, 2) * spread
    d_i, d_q, c_i, c_q = rng.uniform(-0.02, 0.02, 4) * spread
    n = NOMINAL
    scaled = [n.alpha_a, n.beta_a, n.alpha_p, n.beta_p] * (1 + rel)
    return UnitParams(*(float(v) for v in [*scaled, g, phi, d_i, d_q, c_i, c_q]))


def transfer(p: UnitParams) -> Transfer:
    """The unit's noise-free map (n, 2) -> (n, 2)."""
    ch, sh = np.cos(p.phi / 2), np.sin(p.phi / 2)

    def f(x: np.ndarray) -> np.ndarray:
        i, q = x[:, 0], x[:, 1]
        u_i = (1 + p.g / 2) * (i * ch + q * sh) + p.d_i
        u_q = (1 - p.g / 2) * (q * ch + i * sh) + p.d_q
        z = u_i + 1j * u_q
        r2 = np.abs(z) ** 2
        w = p.alpha_a / (1.0 + p.beta_a * r2) * z * np.exp(1j * p.alpha_p * r2 / (1.0 + p.beta_p * r2))
        return np.stack([w.real + p.c_i, w.imag + p.c_q], axis=1)

    return f


def build_unit_sim(name: str, values: Mapping[str, Any]) -> SimDevice:
    """Build ``sim:iqpa`` from fully parsed parameter values (every key of UNIT_PARAMS)."""
    where = f"sim:{name}"
    check_base_values(where, dict(values), ("noise", "latency", "spread"))
    if values["spread"] > 3.0:
        raise BadDeviceParameterError(f"{where}: spread must be <= 3 (the unit must stay one-to-one)")
    p = unit_params(values["unit"], design=values["design"], spread=values["spread"])
    info = DeviceInfo(
        name=name,
        in_dim=2,
        out_dim=2,
        max_batch=values["max_batch"],
        low=LOW,
        high=HIGH,
        firmware=f"hwloop-sim/{name}/unit{values['unit']}",
        envelope=IQEnvelope(((0, 1),), HIGH[0]),
    )
    dev = SimDevice(info, transfer(p), noise=values["noise"], seed=values["seed"], latency=values["latency"])
    dev.unit_params = p  # type: ignore[attr-defined]  # for tests and benchmarks
    return dev


UNIT_SIMULATORS: dict[str, str] = {"iqpa": "I/Q PA units: imbalance, offset, Saleh; ?unit=K"}
"""Unit-family simulators: name -> one line for ``hwloop devices``."""
