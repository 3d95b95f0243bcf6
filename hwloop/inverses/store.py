"""The one save/load registry of inverse families: ``save_inverse`` and ``load_inverse``.

Every family module (base's mlp, tapped, gru, gmp) describes itself with a
`hwloop.inverses.base.Family`; this module imports each of them, so loading a
run needs no back-imports from the families, and it registers their Keras
layers before a model is read.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from hwloop.errors import RunDirError, UsageError
from hwloop.inverses import layers  # noqa: F401 - registers hwloop's serialisable layers
from hwloop.inverses.base import INFO_FILE, INVERSE_FILE, MLP, Family
from hwloop.inverses.gmp import FAMILY as GMP
from hwloop.inverses.gru import FAMILY as GRU
from hwloop.inverses.tapped import FAMILY as TAPPED

log = logging.getLogger(__name__)

FAMILIES: dict[str, Family] = {f.kind: f for f in (MLP, TAPPED, GRU, GMP)}


def family_of(inverse: Any) -> Family:
    """The family that holds objects of ``inverse``'s type."""
    for fam in FAMILIES.values():
        if isinstance(inverse, fam.types):
            return fam
    raise UsageError(f"no inverse family holds a {type(inverse).__name__}")


def save_inverse(inverse: Any, run_dir: str | Path) -> Path:
    """Write ``inverse`` into ``run_dir`` as its family does (inverse.keras, device.json)."""
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    return family_of(inverse).save(inverse, run)


def _kind(info: dict) -> str:
    memory = info.get("inverse_memory")
    if not memory:
        return MLP.kind
    return str(memory.get("kind", TAPPED.kind))  # runs before "kind" was recorded: tapped


def load_inverse(run_dir: str | Path) -> Any:
    """Load the inverse a run saved; works in a fresh interpreter.

    For a device with memory this is a tapped-delay, recurrent (GRU) or GMP
    inverse whose ``apply`` takes a whole target sequence, to be sent to the
    device after a reset.
    """
    import keras

    run = Path(run_dir)
    path, info_path = run / INVERSE_FILE, run / INFO_FILE
    if not run.is_dir():
        raise RunDirError(f"run directory {run} does not exist")
    if not path.is_file() or not info_path.is_file():
        raise RunDirError(f"{run} holds no trained inverse ({INVERSE_FILE} or {INFO_FILE} missing)")
    try:
        info = json.loads(info_path.read_text())
        fam = FAMILIES.get(_kind(info))
        if fam is None:
            raise ValueError(f"unknown inverse family {_kind(info)!r}")
        model = keras.models.load_model(path, compile=False)
    except Exception as exc:
        raise RunDirError(f"{path}: cannot load the inverse ({type(exc).__name__}: {exc})") from exc
    log.debug("loading a %s inverse from %s", fam.kind, run)
    return fam.load(model, info)
