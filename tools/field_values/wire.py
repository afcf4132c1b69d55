"""A raw AMQP 0-9-1 client over a socket, just enough to probe a broker with field tables."""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlparse

OWN_QUEUE = ""  # a case's routing key meaning: the connection's own (server-named) queue
REWRITTEN = "fv.rewritten"  # where the cases a broker rewrites go; one connection consumes it
DLX_QUEUE = "fv.dlx"  # messages expire at once here and are dead-lettered to REWRITTEN
ARGS_NAME = "fv.args"  # the queue and exchange that method-argument cases declare
HEADERS_EXCHANGE = "fv.headers"  # a headers exchange: REWRITTEN bound by ROUTE and by NUMBER
REPLY_TO = b"amq.rabbitmq.reply-to"


def shortstr(value: bytes) -> bytes:
    return bytes([len(value)]) + value


def longstr(value: bytes) -> bytes:
    return struct.pack(">I", len(value)) + value


def table(*entries: bytes) -> bytes:
    """A length-prefixed field table (or array) of already encoded entries."""
    return longstr(b"".join(entries))


def entry(key: bytes, kind: bytes, value: bytes = b"") -> bytes:
    return shortstr(key) + kind + value


def frame(kind: int, channel: int, payload: bytes) -> bytes:
    return struct.pack(">BHI", kind, channel, len(payload)) + payload + b"\xce"


def method(channel: int, class_id: int, method_id: int, args: bytes) -> bytes:
    return frame(1, channel, struct.pack(">HH", class_id, method_id) + args)


ROUTE = entry(b"route", b"S", longstr(b"fv"))  # a header every binding of ROUTE matches
NUMBER = entry(b"n", b"I", struct.pack(">i", 5))  # headers of any type may match it, or not


class Closed(Exception):
    """The broker closed the socket without a connection.close."""


class Refused(Exception):
    """The broker answered with connection.close or channel.close: ``reply`` is what it said."""

    def __init__(self, reply: list[Any]) -> None:
        super().__init__(reply)
        self.reply = reply


class Wire:
    """Frames over a socket (no Nagle: the cases are many small round trips)."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        self.sock.close()

    def _take(self, n: int) -> bytes:
        while len(self.buf) < n:
            try:
                chunk = self.sock.recv(1 << 20)
            except (ConnectionResetError, BrokenPipeError):
                chunk = b""
            if not chunk:
                raise Closed()
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def frame(self) -> tuple[int, int, bytes]:
        kind, channel, size = struct.unpack(">BHI", self._take(7))
        payload = self._take(size + 1)[:-1]
        return kind, channel, payload

    def method(self) -> tuple[int, int, bytes]:
        """The next method as (channel, class id << 16 | method id, arguments); a close from the
        broker raises Refused (answered, so that the broker can let go of the socket)."""
        while True:
            kind, channel, payload = self.frame()
            if kind != 1:
                continue  # heartbeats; content is read by whoever asked for a delivery
            index = struct.unpack_from(">I", payload)[0]
            if index in (0x000A0032, 0x00140028):  # connection.close, channel.close
                code, n = struct.unpack_from(">HB", payload, 4)
                text = payload[7 : 7 + n].decode("utf-8", "backslashreplace")  # exact, even if not UTF-8
                class_id, method_id = struct.unpack_from(">HH", payload, 7 + n)
                scope = "connection" if index == 0x000A0032 else "channel"
                self.send(method(channel, index >> 16, 51 if scope == "connection" else 41, b""))
                raise Refused([f"{scope}.close", code, text, class_id, method_id])
            return channel, index, payload[4:]

    def expect(self, index: int, channel: int = 1) -> bytes:
        got_channel, got, args = self.method()
        if (got_channel, got) != (channel, index):
            raise AssertionError(
                f"expected method {index:#010x} on channel {channel}, got {got:#010x} on {got_channel}"
            )
        return args


@dataclass
class Broker:
    host: str
    port: int
    user: str
    password: str
    vhost: str
    timeout: float = 5.0

    @classmethod
    def from_url(cls, url: str) -> Broker:
        parts = urlparse(url)
        vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
        return cls(
            parts.hostname or "127.0.0.1",
            parts.port or 5672,
            parts.username or "guest",
            parts.password or "guest",
            vhost,
        )

    def start(self, client_properties: bytes) -> Wire:
        """Protocol header to connection.tune; the tune-ok not yet sent."""
        wire = Wire(self.host, self.port, self.timeout)
        wire.send(b"AMQP\x00\x00\x09\x01")
        wire.expect(0x000A000A, 0)  # connection.start
        response = b"\x00" + self.user.encode() + b"\x00" + self.password.encode()
        wire.send(method(0, 10, 11, client_properties + shortstr(b"PLAIN") + longstr(response) + shortstr(b"en_US")))
        wire.expect(0x000A001E, 0)  # connection.tune
        return wire

    def open(self, rewritten: bool) -> tuple[Wire, str]:
        """A connection with channel 1 open, an exclusive queue of its own (its name returned)
        and the shared ones declared, consumers on its queue (and on REWRITTEN when asked) and
        on direct reply-to."""
        wire = self.start(CLIENT_PROPERTIES)
        dlx_args = table(
            entry(b"x-message-ttl", b"I", struct.pack(">i", 0)),
            entry(b"x-dead-letter-exchange", b"S", longstr(b"")),
            entry(b"x-dead-letter-routing-key", b"S", longstr(REWRITTEN.encode())),
        )
        # All at once: the broker takes them in order, and the run is mostly reconnections.
        wire.send(
            method(0, 10, 31, struct.pack(">HIH", 2047, 131072, 0))
            + method(0, 10, 40, shortstr(self.vhost.encode()) + b"\x00\x00")
            + method(1, 20, 10, b"\x00")
            + method(1, 50, 10, b"\x00\x00\x00\x04" + table())  # server-named, exclusive
            + queue_declare(DLX_QUEUE, dlx_args)
            + queue_declare(REWRITTEN, table())
            + queue_declare(ARGS_NAME, table())
            + method(1, 60, 20, b"\x00\x00" + shortstr(REPLY_TO) + shortstr(b"fv.reply") + b"\x02" + table())
        )
        wire.expect(0x000A0029, 0)  # connection.open-ok
        wire.expect(0x0014000B)
        args = wire.expect(0x0032000B)
        own = args[1 : 1 + args[0]].decode()
        for index in (0x0032000B, 0x0032000B, 0x0032000B, 0x003C0015):
            wire.expect(index)
        for queue in (own, REWRITTEN) if rewritten else (own,):
            wire.send(
                method(1, 60, 20, b"\x00\x00" + shortstr(queue.encode()) + shortstr(queue.encode()) + b"\x00" + table())
            )
            wire.expect(0x003C0015)
        if rewritten:
            wire.send(
                method(
                    1,
                    40,
                    10,
                    b"\x00\x00" + shortstr(HEADERS_EXCHANGE.encode()) + shortstr(b"headers") + b"\x00" + table(),
                )
            )
            wire.expect(0x0028000B)
            for binding in (ROUTE, NUMBER):
                wire.send(
                    method(
                        1,
                        50,
                        20,
                        b"\x00\x00"
                        + shortstr(REWRITTEN.encode())
                        + shortstr(HEADERS_EXCHANGE.encode())
                        + shortstr(b"")
                        + b"\x00"
                        + table(binding),
                    )
                )
                wire.expect(0x00320015)
        return wire, own

    def clean(self) -> None:
        wire, _ = self.open(False)
        for name in (REWRITTEN, DLX_QUEUE, ARGS_NAME):
            wire.send(method(1, 50, 40, b"\x00\x00" + shortstr(name.encode()) + b"\x00"))
            wire.expect(0x00320029)
        for name in (ARGS_NAME, HEADERS_EXCHANGE):
            wire.send(method(1, 40, 20, b"\x00\x00" + shortstr(name.encode()) + b"\x00"))
            wire.expect(0x00280015)
        wire.close()


CLIENT_PROPERTIES = table(entry(b"product", b"S", longstr(b"tools.field_values")))


def queue_declare(name: str, args: bytes) -> bytes:
    return method(1, 50, 10, b"\x00\x00" + shortstr(name.encode()) + b"\x00" + args)
