"""Device URI parameters: ``sim:rapp?noise=1e-3&seed=0`` parsed against a declared spec."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from hwloop.errors import BadDeviceParameterError


@dataclass(frozen=True)
class Param:
    """One URI parameter: its type, default and a line of help."""

    type: type
    default: Any
    help: str = ""


def parse_params(query: str, spec: Mapping[str, Param], *, where: str) -> dict[str, Any]:
    """Parse ``a=1&b=x`` against ``spec``; unknown names and bad values raise."""
    values = {name: p.default for name, p in spec.items()}
    for key, raw in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
        if key not in spec:
            allowed = ", ".join(sorted(spec)) or "none"
            raise BadDeviceParameterError(f"{where}: unknown parameter {key!r} (allowed: {allowed})")
        values[key] = _convert(raw, spec[key].type, key=key, where=where)
    return values


def _convert(raw: str, typ: type, *, key: str, where: str) -> Any:
    try:
        if typ is bool:
            low = raw.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if typ is int:
            return int(raw, 0)
        if typ is float:
            v = float(raw)
            if v != v or v in (float("inf"), float("-inf")):
                raise ValueError(raw)
            return v
        return typ(raw)
    except ValueError:
        raise BadDeviceParameterError(
            f"{where}: parameter {key}={raw!r} is not a valid {typ.__name__}"
        ) from None
