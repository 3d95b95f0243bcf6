"""The trained inverse as users hold it: one object per kind of model, clipped to the safe range."""

from __future__ import annotations

from typing import Any

from hwloop.device import DeviceInfo


def package_inverse(inverse: Any, memory: dict | None, info: DeviceInfo) -> Any:
    """The inverse as users hold it: clipped to the safe range, saveable, ``apply(t)``."""
    from hwloop.inverses.base import Inverse
    from hwloop.inverses.models import with_clip
    from hwloop.inverses.tapped import SequenceInverse

    if memory is not None and memory.get("kind") in ("gmp", "gru"):
        return inverse  # a GMPInverse or GRUInverse: apply(t) on whole sequences, save(run)
    if memory is not None:
        m = memory
        return SequenceInverse(
            inverse,
            int(m["depth"]),
            int(m["lookahead"]),
            info.low_array,
            info.high_array,
            info.to_dict(),
        )
    return Inverse(with_clip(inverse, info.low, info.high), info.to_dict())
