"""The catalogue of simulated devices, opened as ``sim:NAME?param=value&...``.

Every simulator is seeded (``seed``), adds Gaussian measurement noise of
standard deviation ``noise`` (absolute, in output units; default 1e-3) and
optionally ``input_noise`` referred to its input, may quantise its output to
a step ``lsb`` like an ADC, and refuses inputs outside its declared safe
range. ``sim`` alone is the Rapp amplifier with noise 1e-3.

| name      | in->out | what it stands for |
|-----------|---------|--------------------|
| tanh      | 1->1    | soft saturation of an amplifier or driver stage |
| rapp      | 1->1    | solid-state PA, Rapp model with smoothness p |
| saleh     | 1->1    | TWT amplifier, Saleh AM/AM below its peak |
| saleh_iq  | 2->2    | Saleh AM/AM + AM/PM on baseband I/Q |
| mimo3     | 3->3    | three coupled channels: y = tanh(A x), crosstalk in A |
| cubic     | 1->1    | sensor with offset and cubic non-linearity |
| quantised | 1->1    | smooth sensor read through an ADC of `bits` bits |
| saleh_folded | 1->1 | Saleh AM/AM over [0, 2], past its peak at 1: two inputs per output |
| lowsnr    | 1->1    | tanh sensor with heavy output noise (default 0.05, 5% of full scale) |
| saleh_iq_folded | 2->2 | `saleh_iq` driven to magnitude 1.5, past its AM/AM peak at 0.93 |
| mimo3_folded | 3->3 | channels y = 2u/(1 + u^2), u = A x over [-1.8, 1.8]^3: fold where u_i > 1 |
| iqpa      | 2->2    | many units of one I/Q PA design, `?unit=K` (simulators/units.py) |

``saleh_folded`` and ``lowsnr`` defeat inverse modelling (so do the folded
devices on two and three outputs): ILA averages the two preimages of a
folded curve, and regresses on noisy outputs (errors in variables). Score
them against the noise-free answer (`SimDevice.clean`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from hwloop.device import (
    BadDeviceParameterError,
    BaseDevice,
    DeviceInfo,
    IQEnvelope,
    Param,
    UnknownSchemeError,
    parse_params,
)
from hwloop.simulators import shapes
from hwloop.simulators.base import BASE_PARAMS, SimDevice, Transfer, check_base_values

DEFAULT_SIM = "rapp"

COMMON_PARAMS: dict[str, Param] = {
    **BASE_PARAMS,
    "input_noise": Param(float, 0.0, "std of Gaussian noise referred to the input"),
    "lsb": Param(float, 0.0, "output quantisation step (0: none)"),
}


@dataclass(frozen=True)
class SimSpec:
    """One catalogue entry: shape, safe range, parameters and the transfer."""

    name: str
    summary: str
    in_dim: int
    out_dim: int
    low: tuple[float, ...]
    high: tuple[float, ...]
    params: Mapping[str, Param]
    build: Callable[[dict], Transfer]
    one_to_one: bool = True
    overrides: Mapping[str, object] = field(default_factory=dict)
    iq_peak: float | None = None  # I/Q inputs (0, 1) limited by magnitude: the declared envelope

    def all_params(self) -> dict[str, Param]:
        merged = dict(COMMON_PARAMS)
        for key, value in dict(self.overrides).items():
            p = merged[key]
            merged[key] = Param(p.type, value, p.help)
        merged.update(self.params)
        return merged


SALEH_IQ_PARAMS = {
    "alpha_a": Param(float, 2.1587, "AM/AM gain"),
    "beta_a": Param(float, 1.1517, "AM/AM compression"),
    "alpha_p": Param(float, 4.0033, "AM/PM strength (rad)"),
    "beta_p": Param(float, 9.1040, "AM/PM compression"),
}
MIMO_PARAMS = {"coupling": Param(float, 0.25, "largest off-diagonal crosstalk")}

SIMULATORS: dict[str, SimSpec] = {
    s.name: s
    for s in [
        SimSpec(
            "tanh",
            "soft saturation y = tanh(gain x)",
            1,
            1,
            (-1.0,),
            (1.0,),
            {"gain": Param(float, 1.5, "small-signal gain")},
            shapes.tanh,
        ),
        SimSpec(
            "rapp",
            "Rapp solid-state PA, smoothness p",
            1,
            1,
            (-1.2,),
            (1.2,),
            {
                "p": Param(float, 2.0, "smoothness of the knee (large p: hard clip)"),
                "gain": Param(float, 1.0, "small-signal gain"),
                "sat": Param(float, 1.0, "saturation level"),
            },
            shapes.rapp,
        ),
        SimSpec(
            "saleh",
            "Saleh AM/AM (TWT) below its peak",
            1,
            1,
            (-0.7,),
            (0.7,),
            {"alpha": Param(float, 2.0, "gain"), "beta": Param(float, 1.0, "compression")},
            shapes.saleh,
        ),
        SimSpec(
            "saleh_iq",
            "Saleh AM/AM + AM/PM on I/Q",
            2,
            2,
            (-0.5, -0.5),
            (0.5, 0.5),
            SALEH_IQ_PARAMS,
            shapes.saleh_iq,
            iq_peak=0.5,
        ),
        SimSpec(
            "mimo3",
            "three coupled channels y = tanh(A x)",
            3,
            3,
            (-1.0,) * 3,
            (1.0,) * 3,
            MIMO_PARAMS,
            shapes.mimo3,
        ),
        SimSpec(
            "cubic",
            "sensor y = offset + gain x + k3 x^3",
            1,
            1,
            (-1.0,),
            (1.0,),
            {
                "offset": Param(float, 0.1, "output offset"),
                "gain": Param(float, 1.0, "linear gain"),
                "k3": Param(float, -0.2, "cubic coefficient"),
            },
            shapes.cubic,
        ),
        SimSpec(
            "saleh_folded",
            "Saleh AM/AM driven past its peak (not one-to-one)",
            1,
            1,
            (0.0,),
            (2.0,),
            {"alpha": Param(float, 2.0, "gain"), "beta": Param(float, 1.0, "compression")},
            shapes.saleh,
            one_to_one=False,
        ),
        SimSpec(
            "lowsnr",
            "low-SNR sensor: tanh(gain x) with 5% output noise",
            1,
            1,
            (-1.0,),
            (1.0,),
            {"gain": Param(float, 1.5, "small-signal gain")},
            shapes.tanh,
            overrides={"noise": 0.05},
        ),
        SimSpec(
            "quantised",
            "smooth sensor read through a `bits`-bit ADC",
            1,
            1,
            (-1.0,),
            (1.0,),
            {"bits": Param(int, 10, "ADC resolution over the full scale [-1, 1]")},
            shapes.quantised,
            one_to_one=False,
        ),
        SimSpec(
            "saleh_iq_folded",
            "Saleh AM/AM + AM/PM on I/Q driven to |x| = 1.5, past the AM/AM peak (not one-to-one)",
            2,
            2,
            (-1.5, -1.5),
            (1.5, 1.5),
            SALEH_IQ_PARAMS,
            shapes.saleh_iq,
            one_to_one=False,
            iq_peak=1.5,
        ),
        SimSpec(
            "mimo3_folded",
            "three coupled channels past their peaks, y = 2u / (1 + u^2), u = A x (not one-to-one)",
            3,
            3,
            (-1.8,) * 3,
            (1.8,) * 3,
            MIMO_PARAMS,
            shapes.mimo3_folded,
            one_to_one=False,
        ),
    ]
}


def _lookup(name: str) -> tuple[dict[str, Param], Callable[[dict], BaseDevice]]:
    """The parameters a simulator takes and how to build it from their values."""
    from hwloop.simulators.pa import PA_SIMULATORS, build_pa_sim
    from hwloop.simulators.units import UNIT_PARAMS, UNIT_SIMULATORS, build_unit_sim
    from hwloop.simulators.with_memory import MEMORY_SIMULATORS, build_memory_sim

    if name in SIMULATORS:
        spec = SIMULATORS[name]
        return spec.all_params(), lambda values: _build(spec, values)
    if name in MEMORY_SIMULATORS:
        return MEMORY_SIMULATORS[name].all_params(), lambda values: build_memory_sim(name, values)
    if name in PA_SIMULATORS:
        return PA_SIMULATORS[name].all_params(), lambda values: build_pa_sim(name, values)
    if name in UNIT_SIMULATORS:
        return dict(UNIT_PARAMS), lambda values: build_unit_sim(name, values)
    known = ", ".join(sorted([*SIMULATORS, *MEMORY_SIMULATORS, *PA_SIMULATORS, *UNIT_SIMULATORS]))
    raise UnknownSchemeError(f"unknown simulator {name!r} (known: {known})")


def make_sim(name: str = DEFAULT_SIM, **params: object) -> BaseDevice:
    """Build a simulator by catalogue name; unknown names or parameters raise."""
    allowed, build = _lookup(name)
    values = {k: p.default for k, p in allowed.items()}
    for key, value in params.items():
        if key not in allowed:
            raise BadDeviceParameterError(
                f"sim:{name}: unknown parameter {key!r} (allowed: {', '.join(sorted(allowed))})"
            )
        values[key] = allowed[key].type(value)
    return _identified(build(values), name, values, allowed)


TRANSPORT_PARAMS = ("max_batch", "latency")  # how a device is reached, not which device it is


def _identified(dev: BaseDevice, name: str, values: Mapping, allowed: Mapping[str, Param]) -> BaseDevice:
    """The simulator with its identity in INFO's firmware string: the parameters that make it
    this device (``hwloop-sim/rapp?seed=2``), so a resumed run can tell it from another one.
    Operating conditions (simulators/conditions.py) follow a ``#``: the same device at
    another condition (``hwloop-sim/pa_wh?seed=2#temp=60``)."""
    from hwloop.simulators.conditions import CONDITION_PARAMS

    own = {
        k: v
        for k, v in sorted(values.items())
        if k not in TRANSPORT_PARAMS and k in allowed and v != allowed[k].default
    }
    query = _digest("&".join(f"{k}={v}" for k, v in own.items() if k not in CONDITION_PARAMS))
    condition = _digest("&".join(f"{k}={v}" for k, v in own.items() if k in CONDITION_PARAMS))
    firmware = dev.info.firmware + (f"?{query}" if query else "") + (f"#{condition}" if condition else "")
    dev.info = replace(dev.info, firmware=firmware)
    return dev


def _digest(query: str) -> str:
    """INFO_OK holds at most 255 bytes of firmware: a long query becomes a digest."""
    return "sha1=" + hashlib.sha1(query.encode()).hexdigest()[:16] if len(query) > 96 else query


def _build(spec: SimSpec, values: dict) -> SimDevice:
    where = f"sim:{spec.name}"
    check_base_values(where, values, ("noise", "input_noise", "latency", "lsb"))
    if spec.name == "quantised":
        if not 2 <= values["bits"] <= 24:
            raise BadDeviceParameterError(f"{where}: bits must be in 2..24")
        if not values["lsb"]:
            values["lsb"] = 2.0 / 2 ** values["bits"]
    info = DeviceInfo(
        name=spec.name,
        in_dim=spec.in_dim,
        out_dim=spec.out_dim,
        max_batch=values["max_batch"],
        low=spec.low,
        high=spec.high,
        firmware=f"hwloop-sim/{spec.name}",
        envelope=None if spec.iq_peak is None else IQEnvelope(((0, 1),), spec.iq_peak),
    )
    return SimDevice(
        info,
        spec.build(values),
        noise=values["noise"],
        input_noise=values["input_noise"],
        seed=values["seed"],
        latency=values["latency"],
        lsb=values["lsb"],
        one_to_one=spec.one_to_one,
    )


def open_sim(uri: str) -> BaseDevice:
    """Entry point for the ``sim`` scheme: ``sim``, ``sim?k=v``, ``sim:NAME?k=v&...``."""
    rest = uri.strip()[3:]  # after "sim"
    rest = rest[1:] if rest.startswith(":") else rest
    path, _, query = rest.partition("?")
    name = path.strip("/") or DEFAULT_SIM
    allowed, build = _lookup(name)
    values = parse_params(query, allowed, where=f"sim:{name}")
    return _identified(build(values), name, values, allowed)


def describe() -> list[tuple[str, str]]:
    """(URI, one line) for every simulator, for ``hwloop devices``."""
    from hwloop.simulators.pa import PA_SIMULATORS
    from hwloop.simulators.units import UNIT_SIMULATORS
    from hwloop.simulators.with_memory import MEMORY_SIMULATORS

    static = [(f"sim:{s.name}", f"{s.in_dim}->{s.out_dim}  {s.summary}") for s in SIMULATORS.values()]
    memory = [(f"sim:{m.name}", f"1->1  {m.summary}") for m in MEMORY_SIMULATORS.values()]
    pas = [(f"sim:{m.name}", f"2->2  {m.summary}") for m in PA_SIMULATORS.values()]
    return static + memory + pas + [(f"sim:{n}", f"2->2  {line}") for n, line in UNIT_SIMULATORS.items()]


def check(uri: str) -> None:
    """Refuse a ``sim:`` URI the way opening it would (name, parameters, values), keeping nothing."""
    open_sim(uri).close()


def parameters(uri: str) -> dict[str, Param]:
    """The parameters a ``sim:NAME`` URI takes, with their defaults, for ``hwloop devices``."""
    name = uri.strip()[3:].lstrip(":").partition("?")[0].strip("/") or DEFAULT_SIM
    return _lookup(name)[0]


open_sim.describe = describe  # type: ignore[attr-defined]
open_sim.check = check  # type: ignore[attr-defined]
open_sim.parameters = parameters  # type: ignore[attr-defined]
