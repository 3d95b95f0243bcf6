"""Errors of the wire: bytes that break PROTOCOL.md, and a device's own ERROR answer.

They are `DeviceError`s, so the CLI reports them as device failures (exit 1).
"""

from __future__ import annotations

from hwloop.device import DeviceError


class ProtocolError(DeviceError):
    """Bytes on the wire that break the protocol (bad frame, version, type, length).

    ``code`` is the PROTOCOL.md error code a device would answer with.
    """

    code = 1

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class DeviceFault(DeviceError):
    """The device answered ERROR: ``code`` and ``device_message`` are its words."""

    def __init__(self, code: int, device_message: str, message: str | None = None) -> None:
        self.code = code
        self.device_message = device_message
        super().__init__(message or f"device error {code}: {device_message}")
