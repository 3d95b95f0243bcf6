"""A farm's units and its record, OUT/farm.json: what to run, and what happened; no Ray here."""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from hwloop.errors import RunDirError, UsageError, spelled
from hwloop.rundir import train_kwargs

log = logging.getLogger(__name__)

FARM_JSON = "farm.json"
UnitDoneFn = Callable[[dict], None]


@dataclass(frozen=True)
class UnitSpec:
    """One device of a farm: its URI and, optionally, the Ray resource that pins it to a host."""

    uri: str
    resource: str | None = None


@dataclass
class FarmResult:
    """What `farm` returns: the farm.json content, with helpers."""

    out: Path
    units: list[dict]
    wall_s: float
    extra: dict = field(default_factory=dict)

    @property
    def failed(self) -> list[dict]:
        return [u for u in self.units if u["status"] != "ok"]

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict:
        return {
            **self.extra,
            "out": str(self.out),
            "wall_s": round(self.wall_s, 3),
            "ok": sum(u["status"] == "ok" for u in self.units),
            "failed": len(self.failed),
            "units": self.units,
        }


_RESOURCE = re.compile(r"^[A-Za-z0-9_:.\-]+$")


def parse_devices_file(path: str | Path) -> list[UnitSpec]:
    """One URI per line, optionally ``URI resource=NAME``; ``#`` comments and blank lines."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise UsageError(f"devices file {p}: {exc.strerror or exc}") from None
    specs = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = re.split(r"(?:^|\s)#", raw, maxsplit=1)[0].strip()
        if not line:
            continue
        uri, *rest = line.split()
        resource = None
        for token in rest:
            key, eq, value = token.partition("=")
            if key != "resource" or not eq or not _RESOURCE.match(value) or resource is not None:
                raise UsageError(f"{p}:{n}: expected 'URI [resource=NAME]', got {raw.strip()!r}")
            resource = value
        if uri.startswith("resource="):
            raise UsageError(f"{p}:{n}: a line starts with the device URI, got {raw.strip()!r}")
        specs.append(UnitSpec(uri, resource))
    return specs


def unit_names(uris: Iterable[str]) -> list[str]:
    """Unique, filesystem-safe unit names derived from the URIs."""
    names: list[str] = []
    seen: set[str] = set()
    for uri in uris:
        base = re.sub(r"[^A-Za-z0-9._-]+", "-", uri).strip("-.")[:80].rstrip("-.") or "unit"
        name, k = base, 2
        while name in seen:
            name, k = f"{base}-{k}", k + 1
        seen.add(name)
        names.append(name)
    return names


def read_farm(out: Path) -> dict:
    path = out / FARM_JSON
    if not path.is_file():
        raise RunDirError(f"{out} holds no {FARM_JSON}: not a farm, nothing to resume")
    try:
        data = json.loads(path.read_text())
        for u in data["units"]:
            if not (isinstance(u["unit"], str) and isinstance(u["device"], str)):
                raise TypeError("unit and device must be strings")
        return data
    except (ValueError, KeyError, TypeError) as exc:
        raise RunDirError(f"{path}: incomplete or corrupted ({exc})") from None


def _absolute(options: dict) -> dict:
    """Paths in train options as absolute paths: Ray workers run in another directory."""
    return {
        k: str(Path(v).resolve()) if k in ("init_from", "from_log", "from_data") and v else v
        for k, v in options.items()
    }


def check_farm_options(train_options: dict) -> None:
    """Every unit's options, checked once before anything starts: unknown ones, and ones that
    would not act (`hwloop.run.check_request`, as ``hwloop.train`` would for each unit)."""
    from hwloop.run import DEFAULT_QUERIES, check_request, python_given

    kw = train_kwargs(train_options)
    opts = kw["options"].replace(**{k: kw[k] for k in ("mask", "hold", "init_from") if k in kw})
    given = python_given(opts, kw.get("queries", DEFAULT_QUERIES), where="passed to hwloop.run_farm")
    check_request(opts, kw.get("strategy", "auto"), offline=False, given=given)


def plan_farm(devices: Iterable[str | UnitSpec], out: Path, resume: bool, train_options: dict) -> dict:
    """The farm's units and train options: new ones, or those recorded in OUT/farm.json."""
    specs = [d if isinstance(d, UnitSpec) else UnitSpec(str(d)) for d in devices]
    if resume:
        state = read_farm(out)
        if specs and [s.uri for s in specs] != [u["device"] for u in state["units"]]:
            raise UsageError(f"{out} holds a farm of other devices; resume it without giving devices")
        if train_options:
            raise UsageError("a resumed farm keeps its own train options; give none")
        return state
    if not specs:
        raise UsageError("a farm needs at least one device (--device URI or --devices-file FILE)")
    if (out / FARM_JSON).exists():
        raise UsageError(
            f"{out} already holds a farm; "
            + spelled("choose another --out or add --resume", "choose another out or pass resume=True")
        )
    check_farm_options(train_options)  # unknown options, and options that would not act, fail here
    names = unit_names(s.uri for s in specs)
    units = [
        {"device": s.uri, "unit": n, "resource": s.resource, "status": "pending"}
        for s, n in zip(specs, names, strict=True)
    ]
    return {"farm_id": uuid.uuid4().hex[:8], "train_options": _absolute(train_options), "units": units}
