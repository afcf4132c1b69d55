"""A raw AMQP 0-9-1 client over a plain socket, for what client libraries hide: bad frames,
methods out of order, what exactly the server sends before it closes.

Frames are encoded and decoded with pika's codec, not WarrenMQ's, so that a bug in WarrenMQ's
codec cannot hide itself.
"""

from __future__ import annotations

import socket
import struct
import time
from typing import Any

import pika.frame
import pika.spec

AMQP_0_9_1 = b"AMQP\x00\x00\x09\x01"


def frame(kind: int, channel: int, payload: bytes, end: int = 0xCE) -> bytes:
    return struct.pack(">BHI", kind, channel, len(payload)) + payload + bytes([end])


def method_payload(method: Any) -> bytes:
    """The payload of a method frame (class and method ids, then the arguments)."""
    return pika.frame.Method(0, method).marshal()[7:-1]


def header_payload(body_size: int, properties: pika.spec.BasicProperties | None = None) -> bytes:
    return pika.frame.Header(1, body_size, properties or pika.spec.BasicProperties()).marshal()[7:-1]


class Closed(EOFError):
    """The server closed the socket (``data`` is what came before)."""

    def __init__(self, data: bytes) -> None:
        super().__init__(f"closed by the server after {data!r}")
        self.data = data


class RawClient:
    def __init__(self, port: int, timeout: float = 5.0, sock: socket.socket | None = None) -> None:
        self.sock = sock or socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.buffer = b""

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_method(self, channel: int, method: Any) -> None:
        self.send(pika.frame.Method(channel, method).marshal())

    def _read_exactly(self, n: int) -> bytes:
        while len(self.buffer) < n:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                raise Closed(self.buffer)
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def read_frame(self) -> tuple[int, int, bytes]:
        kind, channel, size = struct.unpack(">BHI", self._read_exactly(7))
        payload = self._read_exactly(size)
        assert self._read_exactly(1) == b"\xce", "bad frame end"
        return kind, channel, payload

    def read_method(self) -> tuple[int, Any]:
        while True:
            kind, channel, payload = self.read_frame()
            if kind == 8:
                continue
            if kind != 1:
                continue  # content of a delivery: not what these tests look at
            method = pika.spec.methods[struct.unpack_from(">I", payload)[0]]()
            method.decode(payload, 4)
            return channel, method

    def expect(self, cls: type, channel: int = 0) -> Any:
        got_channel, method = self.read_method()
        assert isinstance(method, cls), f"expected {cls.NAME}, got {method}"
        assert got_channel == channel, (got_channel, method)
        return method

    def start(
        self,
        mechanism: str = "PLAIN",
        response: bytes | None = None,
        close_on_failure: bool = True,
        capabilities: dict[str, bool] | None = None,
        user: str = "guest",
        password: str = "guest",
    ) -> Any:
        """Protocol header, connection.start, start-ok; what the server answers (normally tune)."""
        self.send(AMQP_0_9_1)
        self.expect(pika.spec.Connection.Start)
        caps = {"authentication_failure_close": close_on_failure, **(capabilities or {})}
        properties = {"product": "raw", "capabilities": caps}
        if response is None:
            response = b"\x00" + user.encode() + b"\x00" + password.encode()
        self.send_method(0, pika.spec.Connection.StartOk(properties, mechanism, response, "en_US"))
        return self.read_method()[1]

    def handshake(self, channel_max: int = 0, frame_max: int = 0, heartbeat: int = 0, vhost: str = "/") -> Any:
        """The whole handshake, accepting the server's tune unless told otherwise; the tune."""
        tune = self.start()
        assert isinstance(tune, pika.spec.Connection.Tune), tune
        self.send_method(
            0, pika.spec.Connection.TuneOk(channel_max or tune.channel_max, frame_max or tune.frame_max, heartbeat)
        )
        self.send_method(0, pika.spec.Connection.Open(vhost))
        self.expect(pika.spec.Connection.OpenOk)
        return tune

    def open_channel(self, channel: int = 1) -> None:
        self.send_method(channel, pika.spec.Channel.Open())
        self.expect(pika.spec.Channel.OpenOk, channel)

    def expect_connection_close(self) -> tuple[int, str, int, int]:
        """The connection.close the server sends next: (code, text, class id, method id)."""
        _, method = self.read_method()
        assert isinstance(method, pika.spec.Connection.Close), method
        return method.reply_code, method.reply_text, method.class_id, method.method_id

    def read_until_closed(self, timeout: float = 5.0) -> bytes:
        """Everything the server sends until it closes the socket (fails after ``timeout``)."""
        self.sock.settimeout(timeout)
        data, self.buffer = self.buffer, b""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return data
                data += chunk
        except ConnectionResetError:
            return data
        except TimeoutError:
            pass
        raise AssertionError(f"the server did not close the connection within {timeout}s (got {data!r})")
