"""A farm unit on a remote serial port: ``rfc2217://127.0.0.1:PORT``.

The port is `hwloop serve --pty` (a real pseudo-terminal) put on the network
by pyserial's own RFC 2217 server, `serial.rfc2217.PortManager`, bridged to
a TCP socket as in pyserial's examples/rfc2217_server.py. The client side is
pyserial's RFC 2217 URL handler, through the ordinary serial driver.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import serial
import serial.rfc2217
from ray_fixtures import RayCluster
from serial_fixtures import start_serve, stop_process

import hwloop


class PtySerial(serial.Serial):
    """A pseudo-terminal has no modem lines (their ioctls fail on it): report them
    inactive and ignore DTR/RTS, which PortManager reads and sets for its client."""

    cts = dsr = ri = cd = property(lambda self: False)

    def _update_dtr_state(self) -> None:
        pass

    def _update_rts_state(self) -> None:
        pass


class Rfc2217Server:
    """Serve one serial port over RFC 2217 on 127.0.0.1, one client at a time."""

    def __init__(self, port_path: str) -> None:
        self.serial = PtySerial(port_path, timeout=0.1)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.alive = True
        self.to_client = 0
        self.to_port = 0
        self.clients = 0
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while self.alive:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.clients += 1
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._serve(conn)

    def _serve(self, conn: socket.socket) -> None:
        manager = serial.rfc2217.PortManager(self.serial, _Writer(conn, self._lock))
        done = threading.Event()

        def port_to_socket() -> None:
            while self.alive and not done.is_set():
                try:
                    data = self.serial.read(self.serial.in_waiting or 1)
                    if data:
                        self.to_client += len(data)
                        _Writer(conn, self._lock).write(b"".join(manager.escape(data)))
                except (OSError, serial.SerialException):
                    break
            done.set()

        reader = threading.Thread(target=port_to_socket, daemon=True)
        reader.start()
        try:
            while self.alive and not done.is_set():
                try:
                    data = conn.recv(4096)
                except OSError:  # the client went away
                    break
                if not data:
                    break
                payload = b"".join(manager.filter(data))
                self.to_port += len(payload)
                self.serial.write(payload)
        finally:
            done.set()
            reader.join(timeout=5)
            conn.close()

    def close(self) -> None:
        self.alive = False
        self.listener.close()
        self.thread.join(timeout=5)
        self.serial.close()


class _Writer:
    """What PortManager writes its Telnet replies through; shared with the data path."""

    def __init__(self, conn: socket.socket, lock: threading.Lock) -> None:
        self.conn, self.lock = conn, lock

    def write(self, data: bytes) -> None:
        with self.lock:
            self.conn.sendall(data)


def test_farm_unit_on_an_rfc2217_port(ray_cluster: RayCluster, tmp_path: Path) -> None:
    proc, pty = start_serve("sim:tanh?seed=3", tmp_path)
    server = None
    try:
        server = Rfc2217Server(pty)
        uri = f"rfc2217://127.0.0.1:{server.port}"
        result = hwloop.run_farm(
            [uri], out=tmp_path / "farm", strategy="ila", queries=300, fit_steps=300, eval_targets=64
        )
        assert result.ok, [u["error"] for u in result.failed]
        (u,) = result.units
        assert u["unit"] == f"rfc2217-127.0.0.1-{server.port}"
        assert u["device"] == uri and u["queries_used"] == 300
        assert u["closed_loop_nmse_db"] < -20
        assert server.clients >= 1 and server.to_port > 0 and server.to_client > 0
        assert f'device = "{uri}"' in (Path(u["run_dir"]) / "config.toml").read_text()
    finally:
        if server is not None:
            server.close()
        stop_process(proc)
