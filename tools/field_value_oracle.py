#!/usr/bin/env python3
"""Ask a broker, with raw frames, which AMQP field values it takes, and write the answers down.

    python tools/field_value_oracle.py --url amqp://guest:guest@127.0.0.1:5682/%2F   # RabbitMQ
    python tools/field_value_oracle.py --url amqp://... --check    # compare a broker with the file

Every field type byte (all 256) and boundary values of each type go in the headers table of a
published message; a representative set goes in method arguments (queue.declare,
exchange.declare, queue.bind, basic.consume, and connection.start-ok's client properties).
For each case the broker either takes it (a published message then comes back to a consumer,
and its property list is recorded as delivered) or refuses it: a connection.close (code, text,
ids), a channel.close, or a socket closed without a word.  Run against RabbitMQ 3.10.8 this
wrote tests/data/field_values.json; tests/interop/test_field_values.py replays it against
WarrenMQ.  The client here is its own, standard library only: neither WarrenMQ's codec nor a
client library's decides what was sent.

Cases are sent on one connection until one is refused, then on a new one; refused cases are
spread over a few connections at once (``--parallel``) to keep the run short.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "field_values.json"

OWN_QUEUE = ""  # a case's routing key meaning: the connection's own (server-named) queue
REWRITTEN = "fv.rewritten"  # where the cases a broker rewrites go; one connection consumes it
DLX_QUEUE = "fv.dlx"  # messages expire at once here and are dead-lettered to REWRITTEN
ARGS_NAME = "fv.args"  # the queue and exchange that method-argument cases declare
REPLY_TO = b"amq.rabbitmq.reply-to"
_SHOWN = 256  # bytes above which a case's bytes are recorded as a digest, not in hex

# -- the wire ----------------------------------------------------------------------------------------------


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
                text = payload[7 : 7 + n].decode("utf-8", "replace")
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
            + _queue_declare(DLX_QUEUE, dlx_args)
            + _queue_declare(REWRITTEN, table())
            + _queue_declare(ARGS_NAME, table())
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
        return wire, own

    def clean(self) -> None:
        wire, _ = self.open(False)
        for name in (REWRITTEN, DLX_QUEUE, ARGS_NAME):
            wire.send(method(1, 50, 40, b"\x00\x00" + shortstr(name.encode()) + b"\x00"))
            wire.expect(0x00320029)
        wire.send(method(1, 40, 20, b"\x00\x00" + shortstr(ARGS_NAME.encode()) + b"\x00"))
        wire.expect(0x00280015)
        wire.close()


CLIENT_PROPERTIES = table(entry(b"product", b"S", longstr(b"field_value_oracle")))


def _queue_declare(name: str, args: bytes) -> bytes:
    return method(1, 50, 10, b"\x00\x00" + shortstr(name.encode()) + b"\x00" + args)


# -- the cases ---------------------------------------------------------------------------------------------


@dataclass
class Case:
    """One probe.  ``kind`` is "publish" (``data`` is a property list: flags and properties,
    published to ``routing_key``) or a method whose arguments table ``data`` is."""

    id: str
    kind: str
    data: bytes
    routing_key: str = OWN_QUEUE
    result: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "kind": self.kind, "data": shown(self.data)}
        if self.routing_key != OWN_QUEUE:
            out["routing_key"] = self.routing_key
        out.update(self.result)
        if out.get("delivered") == out["data"]:
            out["delivered"] = "as sent"  # the common case, short: what differs stands out
        return out


def shown(data: bytes) -> str:
    """Bytes as the data file keeps them: hex, or a digest when they are long."""
    if len(data) <= _SHOWN:
        return data.hex()
    return f"{len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}"


LETTERS = b"SIFtlLATVbBsuifdDx"  # what RabbitMQ 3.10.8 takes, as the sweep below shows
NATURAL = {
    "S": 4,
    "x": 4,
    "F": 4,
    "A": 4,
    "V": 0,
    "t": 1,
    "b": 1,
    "B": 1,
    "s": 2,
    "u": 2,
    "I": 4,
    "i": 4,
    "f": 4,
    "D": 5,
    "l": 8,
    "L": 8,
    "T": 8,
    "d": 8,
}
SIZES = (0, 1, 2, 4, 5, 8)  # zero bytes after a type byte: each type of RabbitMQ's takes one of these
HEADERS = 0x2000


def _publish(case_id: str, headers: bytes, routing_key: str = OWN_QUEUE) -> Case:
    return Case(case_id, "publish", struct.pack(">H", HEADERS) + headers, routing_key)


def _float_bits(kind: str) -> dict[str, bytes]:
    if kind == "f":
        names = [
            "zero",
            "minus-zero",
            "min-subnormal",
            "max",
            "minus-max",
            "inf",
            "minus-inf",
            "nan",
            "snan",
            "minus-nan",
        ]
        words = [0, 0x80000000, 1, 0x7F7FFFFF, 0xFF7FFFFF, 0x7F800000, 0xFF800000, 0x7FC00000, 0x7F800001, 0xFFC00000]
        return {n: struct.pack(">I", w) for n, w in zip(names, words, strict=True)}
    names = ["zero", "minus-zero", "min-subnormal", "max", "minus-max", "inf", "minus-inf", "nan", "snan", "minus-nan"]
    words = [
        0,
        1 << 63,
        1,
        0x7FEFFFFFFFFFFFFF,
        0xFFEFFFFFFFFFFFFF,
        0x7FF0000000000000,
        0xFFF0000000000000,
        0x7FF8000000000000,
        0x7FF0000000000001,
        0xFFF8000000000000,
    ]
    return {n: struct.pack(">Q", w) for n, w in zip(names, words, strict=True)}


def _nested(kind: bytes, depth: int, leaf: bytes) -> bytes:
    """``depth`` tables (F) or arrays (A) one in another around ``leaf``, as one header value."""
    value = leaf
    for _ in range(depth):
        value = table(entry(b"n", b"F", value)) if kind == b"F" else table(b"A" + value)
    return value


def boundary_values() -> Iterator[tuple[str, bytes, bytes]]:
    """(name, type byte, value) of the edges of every type."""
    ints = {
        "b": (">b", [-128, 127]),
        "B": (">B", [0, 255]),
        "s": (">h", [-(2**15), 2**15 - 1]),
        "u": (">H", [0, 2**16 - 1]),
        "I": (">i", [-(2**31), 2**31 - 1]),
        "i": (">I", [0, 2**32 - 1]),
        "l": (">q", [-(2**63), 2**63 - 1, 2**40]),
        "L": (">q", [-(2**63), 2**63 - 1, 2**40, -1]),
        "T": (">Q", [0, 2**64 - 1]),
    }
    for letter, (fmt, values) in ints.items():
        for value in values:
            yield f"{letter}={value}", letter.encode(), struct.pack(fmt, value)
    for flag in (0, 1, 2, 255):
        yield f"t={flag}", b"t", bytes([flag])
    for scale, value in ((0, 0), (2, 2**31), (255, 2**32 - 1)):
        yield f"D={value}e-{scale}", b"D", struct.pack(">BI", scale, value)
    for letter in ("f", "d"):
        for name, bits in _float_bits(letter).items():
            yield f"{letter}={name}", letter.encode(), bits
    for size in (0, 5, 255, 65536, 120_000):
        yield f"S-{size}-bytes", b"S", longstr(bytes(range(97, 123)) * (size // 26) + b"a" * (size % 26))
    yield "S-not-utf8", b"S", longstr(b"\xff\xfe\xc3")
    yield "S-length-past-the-end", b"S", struct.pack(">I", 10) + b"abc"
    yield "S-length-cut", b"S", b"\x00\x00"
    yield "x-empty", b"x", longstr(b"")
    yield "x-256-bytes", b"x", longstr(bytes(range(256)))
    yield "x-length-past-the-end", b"x", struct.pack(">I", 2**32 - 1)
    yield "F-empty", b"F", table()
    yield "A-empty", b"A", table()
    for depth in (5, 50):
        yield f"F-nested-{depth}", b"F", _nested(b"F", depth, table(entry(b"v", b"L", struct.pack(">q", 2**40))))
        yield f"A-nested-{depth}", b"A", _nested(b"A", depth, table(b"L" + struct.pack(">q", -(2**40))))
    mixed = table(b"F" + table(entry(b"a", b"A", table(b"F" + table(entry(b"b", b"A", table(b"t\x02")))))))
    yield "A-F-mixed-5", b"A", mixed
    yield "A-every-letter", b"A", table(*(bytes([c]) + bytes(NATURAL[chr(c)]) for c in LETTERS))
    yield "A-1000-ints", b"A", table(*(b"I" + struct.pack(">i", i) for i in range(1000)))
    yield "A-bad-letter", b"A", table(b"I\x00\x00\x00\x01Z")
    yield "A-element-cut", b"A", table(b"l\x00\x00")
    yield "F-inner-past-outer", b"F", struct.pack(">I", 20) + entry(b"a", b"V")
    yield "F-inner-leftover", b"F", table(entry(b"a", b"V"), b"\x03ab")


def cases() -> list[Case]:
    out: list[Case] = []
    # Every type byte in a table and in an array, followed by each plausible number of zeros.
    for byte in range(256):
        for size in SIZES:
            out.append(_publish(f"type-in-table/0x{byte:02x}+{size}", table(entry(b"k", bytes([byte]), bytes(size)))))
    for byte in range(256):
        for size in SIZES:
            out.append(
                _publish(
                    f"type-in-array/0x{byte:02x}+{size}", table(entry(b"k", b"A", table(bytes([byte]) + bytes(size))))
                )
            )
    # The edges of each type, and of keys and tables.
    for name, letter, value in boundary_values():
        out.append(_publish(f"value/{name}", table(entry(b"k", letter, value))))
    keys = {
        "empty": entry(b"", b"V"),
        "255-bytes": entry(b"k" * 255, b"V"),
        "not-utf8": entry(b"\xff\xc3(", b"I", bytes(4)),
        "with-nul": entry(b"a\x00b", b"V"),
        "twice": entry(b"k", b"I", bytes(4)) + entry(b"k", b"S", longstr(b"x")),
        "past-the-end": b"\x05ab",
    }
    for name, body in keys.items():
        out.append(_publish(f"key/{name}", table(body)))
    out.append(_publish("table/empty", table()))
    out.append(
        _publish("table/2000-entries", table(*(entry(b"k%d" % i, b"i", struct.pack(">I", i)) for i in range(2000))))
    )
    out.append(_publish("table/length-past-the-end", struct.pack(">I", 40) + entry(b"k", b"V")))
    out.append(_publish("table/bytes-after-it", table(entry(b"k", b"V")) + b"\x00"))
    out.append(_publish("py-amqp/2**40", table(entry(b"big", b"L", struct.pack(">q", 2**40)))))
    # Where the broker writes headers anew (a BCC header removed, dead-lettering, a direct
    # reply-to address set): how it writes each type back.
    rewritten = table(
        entry(b"L", b"L", struct.pack(">q", 2**40)),
        entry(b"t", b"t", b"\x02"),
        entry(b"D", b"D", b"\x02\xff\xff\xff\xff"),
        entry(b"f", b"f", b"\x3f\xc0\x00\x00"),
        entry(b"d", b"d", struct.pack(">d", -0.0)),
        entry(b"F", b"F", table(entry(b"L", b"L", struct.pack(">q", -1)))),
        entry(b"A", b"A", table(b"L" + bytes(8))),
        entry(b"\xff", b"b", b"\x80"),
        entry(b"x", b"x", longstr(b"\x00\x01")),
        entry(b"T", b"T", b"\xff" * 8),
    )[4:]
    bcc = entry(b"BCC", b"A", table(b"S" + longstr(REWRITTEN.encode())))
    out.append(_publish("rewritten/bcc", table(bcc, rewritten), "fv.nowhere"))
    out.append(_publish("rewritten/dead-lettered", table(rewritten), DLX_QUEUE))
    reply_to = struct.pack(">H", HEADERS | 0x0200) + table(rewritten) + shortstr(REPLY_TO)
    out.append(Case("rewritten/reply-to", "publish", reply_to, REWRITTEN))
    out.append(
        _publish(
            "rewritten/bcc-duplicate-keys",
            table(bcc, entry(b"k", b"I", bytes(4)), entry(b"k", b"L", bytes(8))),
            "fv.nowhere",
        )
    )
    # Method arguments: each type RabbitMQ takes and a few it does not, then edges.
    args = [(f"0x{c:02x}", entry(b"k", bytes([c]), bytes(NATURAL[chr(c)]))) for c in LETTERS]
    args += [(f"0x{c:02x}", entry(b"k", bytes([c]), bytes(4))) for c in b"\x00ZNcUv\xff"]
    args += [
        ("L=2**40", entry(b"k", b"L", struct.pack(">q", 2**40))),
        ("d=nan", entry(b"k", b"d", _float_bits("d")["nan"])),
        ("f=inf", entry(b"k", b"f", _float_bits("f")["inf"])),
        ("key-not-utf8", entry(b"\xff\xfe", b"V")),
        ("nested-5", entry(b"k", b"F", _nested(b"F", 5, table(entry(b"v", b"L", bytes(8)))))),
        ("nested-bad", entry(b"k", b"F", table(entry(b"a", b"A", table(b"Z"))))),
        ("value-cut", entry(b"k", b"I", b"\x00\x00")),
        ("key-past-the-end", b"\x09k"),
    ]
    for where in ("queue.declare", "exchange.declare", "queue.bind", "basic.consume", "connection.start-ok"):
        for name, body in args:
            out.append(Case(f"{where}/{name}", where, table(body)))
        out.append(Case(f"{where}/length-past-the-end", where, struct.pack(">I", 9) + entry(b"k", b"V")))
        out.append(Case(f"{where}/bad-table-then-a-byte", where, table(entry(b"k", b"Z")) + b"\x00"))
    return out


# -- running them ------------------------------------------------------------------------------------------


_PLAIN_METHODS = {  # kind: (frame for the arguments table, the index of the answer)
    "queue.declare": (lambda t: _queue_declare(ARGS_NAME, t), 0x0032000B),
    "exchange.declare": (
        lambda t: method(1, 40, 10, b"\x00\x00" + shortstr(ARGS_NAME.encode()) + shortstr(b"direct") + b"\x00" + t),
        0x0028000B,
    ),
    "queue.bind": (
        lambda t: method(
            1,
            50,
            20,
            b"\x00\x00" + shortstr(ARGS_NAME.encode()) + shortstr(b"amq.headers") + shortstr(b"") + b"\x00" + t,
        ),
        0x00320015,
    ),
    "basic.consume": (
        lambda t: method(1, 60, 20, b"\x00\x00" + shortstr(ARGS_NAME.encode()) + shortstr(b"fv.args") + b"\x02" + t),
        0x003C0015,
    ),
}


class Session:
    """Cases on one connection; a refused case ends it, and the next case opens another."""

    def __init__(self, broker: Broker, rewritten: bool) -> None:
        self.broker = broker
        self.rewritten = rewritten  # this session consumes REWRITTEN
        self.wire: Wire | None = None
        self.own = ""
        self.sequence = 0

    def run(self, case: Case) -> dict[str, Any]:
        try:
            if case.kind == "connection.start-ok":
                return self._start_ok(case)
            if self.wire is None:
                self.wire, self.own = self.broker.open(self.rewritten)
            if case.kind == "publish":
                return self._publish(self.wire, case)
            return self._method(self.wire, case)
        except Refused as exc:
            self._drop()
            return {"refused": exc.reply}
        except Closed:
            self._drop()
            return {"refused": "closed without a word"}
        except TimeoutError:
            self._drop()
            return {"error": f"no answer in {self.broker.timeout} s"}

    def close(self) -> None:
        self._drop()

    def _drop(self) -> None:
        if self.wire is not None:
            self.wire.close()
            self.wire = None

    def _start_ok(self, case: Case) -> dict[str, Any]:
        wire = self.broker.start(case.data)  # Refused/Closed when the properties are
        wire.close()
        return {"accepted": True}

    def _method(self, wire: Wire, case: Case) -> dict[str, Any]:
        encode, answer = _PLAIN_METHODS[case.kind]
        wire.send(encode(case.data))
        wire.expect(answer)
        if case.kind == "basic.consume":
            wire.send(method(1, 60, 30, shortstr(b"fv.args") + b"\x00"))
            wire.expect(0x003C001F)
        return {"accepted": True}

    def _publish(self, wire: Wire, case: Case) -> dict[str, Any]:
        self.sequence += 1
        body = b"%d" % self.sequence  # tells this case's delivery from a late one of another
        header = struct.pack(">HHQ", 60, 0, len(body)) + case.data
        routing_key = (case.routing_key or self.own).encode()
        wire.send(
            method(1, 60, 40, b"\x00\x00" + shortstr(b"") + shortstr(routing_key) + b"\x00")
            + frame(2, 1, header)
            + frame(3, 1, body)
        )
        while True:
            channel, index, args = wire.method()
            if index != 0x003C003C:  # basic.deliver
                raise AssertionError(f"expected basic.deliver, got method {index:#010x}")
            tag_at = 1 + args[0]
            tag = struct.unpack_from(">Q", args, tag_at)[0]
            _, _, content = wire.frame()
            size = struct.unpack_from(">Q", content, 4)[0]
            got = b""
            while len(got) < size:
                got += wire.frame()[2]
            if args[1:tag_at] != b"fv.reply":
                wire.send(method(channel, 60, 80, struct.pack(">QB", tag, 0)))
            if got == body:
                delivered = normalized(content[12:], case.routing_key == DLX_QUEUE)
                return {"accepted": True, "delivered": shown(delivered)}


_PROPERTY_SIZES = (0, 0, -1, 1, 1, 0, 0, 0, 0, 8, 0, 0, 0, 0)  # 0 short string, -1 table
_VALUE_SIZES = {ord(k): v for k, v in NATURAL.items() if k not in "SxFA"}


def normalized(properties: bytes, dead_lettered: bool) -> bytes:
    """A delivered property list with what differs on every run made constant (the channel's
    part of a direct reply-to address).  Of a dead-lettered message's headers only the
    entries the publisher sent are kept, in key order: how x-death is written is not what
    this file is about (RabbitMQ 3.10 sorts the table and writes no x-last-death-*; WarrenMQ
    writes x-death as RabbitMQ 3.13 does, see warrenmq/broker/dead_letter.py)."""
    flags = struct.unpack_from(">H", properties)[0]
    out = [properties[:2]]
    off = 2
    for bit, size in enumerate(_PROPERTY_SIZES):
        if not flags & (1 << (15 - bit)):
            continue
        if size == -1:
            stop = off + 4 + struct.unpack_from(">I", properties, off)[0]
            headers = properties[off:stop]
            if dead_lettered:
                headers = table(*sorted(e for e in _entries(headers[4:]) if not e[1:].startswith(b"x-")))
            out.append(headers)
        elif size == 0:
            stop = off + 1 + properties[off]
            value = properties[off + 1 : stop]
            if bit == 6 and value.startswith(REPLY_TO + b"."):
                value = REPLY_TO + b".*"
            out.append(shortstr(value))
        else:
            stop = off + size
            out.append(properties[off:stop])
        off = stop
    out.append(properties[off:])
    return b"".join(out)


def _entries(body: bytes) -> list[bytes]:
    """The entries (key and value) of a table's contents, as they are."""
    out = []
    off = 0
    while off < len(body):
        start = off
        off += 1 + body[off]
        kind = body[off]
        off += 1
        size = _VALUE_SIZES.get(kind)
        off += 4 + struct.unpack_from(">I", body, off)[0] if size is None else size
        out.append(body[start:off])
    return out


def run(broker: Broker, todo: list[Case], parallel: int = 1) -> float:
    """Fill in every case's result; the seconds it took.  Cases are dealt to ``parallel``
    sessions in turn, each on its own thread and connections (refusals, which cost a new
    connection each, then overlap); those routed to a shared queue all go to the first."""
    broker.clean()
    started = time.monotonic()
    shared = [case for case in todo if case.routing_key != OWN_QUEUE]
    rest = [case for case in todo if case.routing_key == OWN_QUEUE]
    shares = [rest[i::parallel] for i in range(parallel)]
    shares[0] = shared + shares[0]

    def work(share: list[Case], first: bool) -> None:
        session = Session(broker, first)
        for case in share:
            case.result = session.run(case)
        session.close()

    threads = [threading.Thread(target=work, args=(share, i == 0)) for i, share in enumerate(shares)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    took = time.monotonic() - started
    broker.clean()
    return took


def differences(expected: list[dict[str, Any]], got: list[Case]) -> list[str]:
    """What ``got`` answers differently from the recorded ``expected``, one line a case."""
    out = []
    by_id = {c.id: c for c in got}
    for want in expected:
        case = by_id.get(want["id"])
        if case is None:
            out.append(f"{want['id']}: no such case any more (regenerate the data file)")
            continue
        have = case.record()
        if have != want:
            out.append(f"{want['id']}: expected {_answer(want)}, got {_answer(have)}")
    return out


def _answer(record: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in record.items() if k in ("data", "accepted", "delivered", "refused")})


def summary(done: list[Case]) -> dict[str, Any]:
    """The sweep in a few lines: for each type byte taken, how many bytes its value is."""
    taken: dict[str, Any] = {}
    for where in ("type-in-table", "type-in-array"):
        sizes = {}
        for case in done:
            prefix, _, rest = case.id.partition("/")
            if prefix == where and "accepted" in case.result:
                kind, size = rest.split("+")
                sizes[chr(int(kind, 16))] = int(size)
        taken[where] = "".join(f"{k}:{v} " for k, v in sorted(sizes.items())).strip()
    return taken


def write(path: Path, broker_name: str, done: list[Case]) -> None:
    lines = [json.dumps(case.record(), ensure_ascii=False) for case in done]
    head = {
        "broker": broker_name,
        "generated_by": "tools/field_value_oracle.py",
        "taken": summary(done),
    }
    text = "{\n" + "".join(f"  {json.dumps(k)}: {json.dumps(v)},\n" for k, v in head.items())
    text += '  "cases": [\n    ' + ",\n    ".join(lines) + "\n  ]\n}\n"
    path.write_text(text)


def broker_name(broker: Broker) -> str:
    """Product and version from connection.start's server properties."""
    wire = Wire(broker.host, broker.port, broker.timeout)
    wire.send(b"AMQP\x00\x00\x09\x01")
    args = wire.expect(0x000A000A, 0)
    wire.close()
    found = {}
    for key in (b"product", b"version"):
        at = args.find(shortstr(key) + b"S")
        if at >= 0:
            at += len(key) + 2
            n = struct.unpack_from(">I", args, at)[0]
            found[key] = args[at + 4 : at + 4 + n].decode()
    return f"{found.get(b'product', '?')} {found.get(b'version', '?')}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5682/%2F", help="the broker to ask")
    parser.add_argument("--out", type=Path, default=DATA, help="the data file to write (or, with --check, read)")
    parser.add_argument("--check", action="store_true", help="compare the broker with the data file instead")
    parser.add_argument("--parallel", type=int, default=4, help="connections at once")
    options = parser.parse_args(argv)
    broker = Broker.from_url(options.url)
    todo = cases()
    took = run(broker, todo, options.parallel)
    print(f"{len(todo)} cases in {took:.1f} s", file=sys.stderr)
    if options.check:
        found = differences(json.loads(options.out.read_text())["cases"], todo)
        print("\n".join(found) or "no differences")
        return 1 if found else 0
    options.out.parent.mkdir(parents=True, exist_ok=True)
    write(options.out, broker_name(broker), todo)
    print(f"wrote {options.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
