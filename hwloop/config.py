"""Reading and writing the small TOML files hwloop uses (config.toml); the quick-docs caps.

``HWLOOP_DOCS_QUICK=1`` in the environment caps every training and
evaluation budget (`QUICK_CAPS`) so that the commands of the docs run in
seconds as written (the docs test sets it); the figures such runs print are
not the docs' figures. Everything else about a run is unchanged, and
config.toml records the budgets that were really used.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hwloop.errors import UsageError

log = logging.getLogger(__name__)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


QUICK_ENV = "HWLOOP_DOCS_QUICK"
QUICK_CAPS = {"queries": 1500, "fit_steps": 200, "eval_queries": 500, "eval_targets": 200}


def quick() -> bool:
    """True when ``HWLOOP_DOCS_QUICK`` asks for shrunken budgets (anything but empty, 0, false, no)."""
    return os.environ.get(QUICK_ENV, "").strip().lower() not in ("", "0", "false", "no", "off")


def quick_cap(name: str, value: Any, *, fill: bool = False) -> Any:
    """``value`` within its quick cap when `quick` (``fill``: None becomes the cap), else as it is.

    Idempotent, so a budget capped twice (by the CLI and by the library) is the same.
    """
    if not quick() or name not in QUICK_CAPS:
        return value
    if value is None:
        return QUICK_CAPS[name] if fill else None
    return min(value, QUICK_CAPS[name])


def quick_plan(queries: int, opts: Any, given: dict[str, Any] | None) -> tuple[int, Any, Any]:
    """A run's budget, `hwloop.rundir.TrainOptions` and the options a user gave again, capped.

    Without ``--eval-targets`` or a signal (whose evaluation has its own floor)
    the evaluation budget is capped too.
    """
    fill = opts.signal is None and opts.eval_targets is None
    capped = opts.replace(
        fit_steps=quick_cap("fit_steps", opts.fit_steps),
        eval_queries=quick_cap("eval_queries", opts.eval_queries, fill=fill),
        eval_targets=quick_cap("eval_targets", opts.eval_targets),
    )
    log.warning(
        "%s is set: budgets capped (queries %d -> %d)", QUICK_ENV, queries, quick_cap("queries", queries)
    )
    again = None if given is None else {k: quick_cap(k, v) for k, v in given.items()}
    return quick_cap("queries", queries), capped, again


def read_toml(path: str | Path) -> dict[str, Any]:
    """Parse a TOML file; a missing or malformed file is a usage error."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise UsageError(f"config file {p} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"config file {p} is not valid TOML: {exc}") from None


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return (
            repr(v)
            if v == v and abs(v) != float("inf")
            else ("nan" if v != v else ("inf" if v > 0 else "-inf"))
        )
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(i) for i in v) + "]"
    if isinstance(v, Mapping):  # an inline table, e.g. device_info's envelope
        return "{ " + ", ".join(f"{k} = {_value(i)}" for k, i in v.items() if i is not None) + " }"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def dumps_toml(data: Mapping[str, Any]) -> str:
    """Scalars and lists at top level, then one level of tables (deeper mappings inline)."""
    lines = [f"{k} = {_value(v)}" for k, v in data.items() if v is not None and not isinstance(v, Mapping)]
    for k, v in data.items():
        if isinstance(v, Mapping):
            lines += ["", f"[{k}]"] + [f"{kk} = {_value(vv)}" for kk, vv in v.items() if vv is not None]
    return "\n".join(lines) + "\n"


def write_toml(path: str | Path, data: Mapping[str, Any]) -> None:
    Path(path).write_text(dumps_toml(data))
