"""The cases: what goes in a headers table or a method's arguments, and what each answer was."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .wire import (
    DLX_QUEUE,
    HEADERS_EXCHANGE,
    OWN_QUEUE,
    REPLY_TO,
    REWRITTEN,
    ROUTE,
    entry,
    longstr,
    shortstr,
    table,
)

_SHOWN = 256  # bytes above which a case's bytes are recorded as a digest, not in hex


@dataclass
class Case:
    """One probe.  ``kind`` is "publish" (``data`` is a property list: flags and properties,
    published to ``routing_key``) or a method whose arguments table ``data`` is."""

    id: str
    kind: str
    data: bytes
    routing_key: str = OWN_QUEUE
    exchange: str = ""
    result: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "kind": self.kind, "data": shown(self.data)}
        if self.routing_key != OWN_QUEUE:
            out["routing_key"] = self.routing_key
        if self.exchange:
            out["exchange"] = self.exchange
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


_SHORT_STRINGS = {  # flag: property, of those that are short strings
    0x8000: "content-type",
    0x4000: "content-encoding",
    0x0400: "correlation-id",
    0x0200: "reply-to",
    0x0100: "expiration",
    0x0080: "message-id",
    0x0020: "type",
    0x0010: "user-id",
    0x0008: "app-id",
    0x0004: "cluster-id",
}


def _properties(strings: dict[int, bytes], headers: bytes) -> bytes:
    """A property list of some short strings and a headers table (flag order)."""
    flags = sum(strings) | 0x2000
    out = [struct.pack(">H", flags)]
    for flag in sorted((*strings, 0x2000), reverse=True):
        out.append(headers if flag == 0x2000 else shortstr(strings[flag]))
    return b"".join(out)


def routed_cases() -> list[Case]:
    """Cases that make the broker read the headers, not only pass them on: a headers exchange
    matching a binding ``n`` = signedint 5 against each type, and short-string properties that
    are not UTF-8 on messages routed by a headers exchange or a CC header."""
    out = []
    numbers = {
        "b": b"\x05",
        "B": b"\x05",
        "s": b"\x00\x05",
        "u": b"\x00\x05",
        "I": bytes(3) + b"\x05",
        "i": bytes(3) + b"\x05",
        "l": bytes(7) + b"\x05",
        "L": bytes(7) + b"\x05",
        "T": bytes(7) + b"\x05",
        "f": struct.pack(">f", 5.0),
        "d": struct.pack(">d", 5.0),
        "D": b"\x00" + bytes(3) + b"\x05",
        "S": longstr(b"5"),
        "t": b"\x01",
        "V": b"",
    }
    for letter, value in numbers.items():
        out.append(
            Case(
                f"routed/n-{letter}-5",
                "publish",
                struct.pack(">H", 0x2000) + table(entry(b"n", letter.encode(), value)),
                "",
                HEADERS_EXCHANGE,
            )
        )
    out.append(
        Case(
            "routed/n-L-6",
            "publish",
            struct.pack(">H", 0x2000) + table(entry(b"n", b"L", bytes(7) + b"\x06")),
            "",
            HEADERS_EXCHANGE,
        )
    )
    cc = entry(b"CC", b"A", table(b"S" + longstr(REWRITTEN.encode())))
    for flag, name in _SHORT_STRINGS.items():
        properties = _properties({flag: b"\xff\xfe"}, table(ROUTE))
        out.append(Case(f"routed/{name}-not-utf8", "publish", properties, "", HEADERS_EXCHANGE))
    every = {flag: b"\xc3(" for flag in _SHORT_STRINGS if flag not in (0x0100, 0x0010)}
    out.append(Case("routed/short-strings-not-utf8-by-cc", "publish", _properties(every, table(cc)), "fv.nowhere"))
    out.append(
        Case(
            "routed/short-strings-not-utf8-by-headers",
            "publish",
            _properties(every, table(ROUTE)),
            "",
            HEADERS_EXCHANGE,
        )
    )
    return out


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
    out.extend(routed_cases())
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
