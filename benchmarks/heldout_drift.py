"""The held-out APA amplifier (`heldout_pa`) under the operating conditions of simulators/conditions.py.

`heldout_pa.NeuralPA` is an amplifier the predistorter's structure does not
share (complex taps gated by an MLP of the envelope history); the condition
transforms (gain, compression point, AM/PM, bias-network memory, and the
drift modes) act on it as on the catalogue's amplifiers, through the same
`hwloop.simulators.conditions.ConditionedPA`. Its INFO carries the
condition after ``#``, as a simulator's does.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from heldout_pa import NeuralPA, model_file

from hwloop.device import DeviceInfo, IQEnvelope, parse_params
from hwloop.simulators.conditions import CONDITION_PARAMS, ConditionedPA, drift_from


class NeuralAmplifier:
    """`NeuralPA` with the ``initial_state``/``run`` form the condition transforms wrap."""

    def __init__(self, name: str = "apa") -> None:
        with np.load(model_file(name), allow_pickle=False) as data:
            self.model = NeuralPA({k: data[k] for k in data.files})

    def initial_state(self) -> tuple:
        return (np.zeros(self.model.m - 1, complex),)

    def run(self, z: np.ndarray, state: tuple) -> tuple[np.ndarray, tuple]:
        y, past = self.model.run(z, state[0])
        return y, (past,)


def apa_device(query: str = "", *, noise: float = 3e-4, seed: int = 0, name: str = "apa") -> ConditionedPA:
    """The held-out amplifier at the condition of ``query`` (``temp=65&vdd=4.5``, ``drift=...``)."""
    where = f"heldout_{name}"
    values = parse_params(query, CONDITION_PARAMS, where=where)
    condition = "&".join(f"{k}={v}" for k, v in values.items() if v != CONDITION_PARAMS[k].default)
    info = DeviceInfo(
        name=where,
        in_dim=2,
        out_dim=2,
        max_batch=1 << 16,
        low=(-1.0, -1.0),
        high=(1.0, 1.0),
        stateful=True,
        firmware="benchmarks/heldout_pa" + (f"#{condition}" if condition else ""),
        envelope=IQEnvelope(((0, 1),), 1.0),
    )
    return ConditionedPA(
        info, NeuralAmplifier(name), drift_from(values, where), noise=noise, seed=seed, latency=0.0
    )
