"""AMQP 0-9-1 field values: short and long strings, bits and field tables.

Decoders take ``(buffer, offset)`` and return ``(value, new_offset)``.
Field-table type tags follow RabbitMQ's errata (e.g. 's' is a short int).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

U8 = struct.Struct(">B")
U32 = struct.Struct(">I")
U64 = struct.Struct(">Q")
I64 = struct.Struct(">q")


class AmqpDecodeError(ValueError):
    """The peer sent something this codec cannot make sense of."""


def shortstr(value: str | bytes) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    if len(raw) > 255:
        raise ValueError(f"shortstr too long ({len(raw)} bytes)")
    return U8.pack(len(raw)) + raw


def longstr(value: str | bytes) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    return U32.pack(len(raw)) + raw


def _field_value(value: Any) -> bytes:
    # bool before int: bool is an int subclass.
    if isinstance(value, bool):
        return b"t" + (b"\x01" if value else b"\x00")
    if isinstance(value, int):
        if -(2**31) <= value < 2**31:
            return b"I" + struct.pack(">i", value)
        return b"l" + I64.pack(value)
    if isinstance(value, float):
        return b"d" + struct.pack(">d", value)
    if isinstance(value, (str, bytes)):
        return b"S" + longstr(value)
    if isinstance(value, Mapping):
        return b"F" + table(value)
    if isinstance(value, (list, tuple)):
        items = b"".join(_field_value(v) for v in value)
        return b"A" + U32.pack(len(items)) + items
    if value is None:
        return b"V"
    raise TypeError(f"cannot encode {type(value).__name__} in a field table")


def table(values: Mapping[str, Any] | None) -> bytes:
    if not values:
        return b"\x00\x00\x00\x00"
    body = b"".join(shortstr(k) + _field_value(v) for k, v in values.items())
    return U32.pack(len(body)) + body


def bits(*flags: bool) -> bytes:
    n = 0
    for i, flag in enumerate(flags):
        if flag:
            n |= 1 << i
    return U8.pack(n)


def read_shortstr(buf: bytes | bytearray | memoryview, off: int) -> tuple[str, int]:
    n = buf[off]
    end = off + 1 + n
    return bytes(buf[off + 1 : end]).decode("utf-8", "replace"), end


def read_longstr(buf: bytes | bytearray | memoryview, off: int) -> tuple[bytes, int]:
    (n,) = U32.unpack_from(buf, off)
    end = off + 4 + n
    return bytes(buf[off + 4 : end]), end


def _read_value(buf: bytes | bytearray | memoryview, off: int) -> tuple[Any, int]:
    kind = chr(buf[off])
    off += 1
    fixed = _FIXED_FIELDS.get(kind)
    if fixed is not None:
        (value,) = fixed.unpack_from(buf, off)
        return value, off + fixed.size
    if kind == "t":
        return bool(buf[off]), off + 1
    if kind == "S" or kind == "x":
        raw, off = read_longstr(buf, off)
        return (raw.decode("utf-8", "replace") if kind == "S" else raw), off
    if kind == "F":
        return read_table(buf, off)
    if kind == "A":
        (n,) = U32.unpack_from(buf, off)
        end = off + 4 + n
        off += 4
        items = []
        while off < end:
            item, off = _read_value(buf, off)
            items.append(item)
        return items, off
    if kind == "D":
        scale = buf[off]
        (raw,) = struct.unpack_from(">i", buf, off + 1)
        return Decimal(raw).scaleb(-scale), off + 5
    if kind == "T":
        (ts,) = U64.unpack_from(buf, off)
        return datetime.fromtimestamp(ts, tz=UTC), off + 8
    if kind == "V":
        return None, off
    raise AmqpDecodeError(f"unknown field type {kind!r}")


_FIXED_FIELDS: dict[str, struct.Struct] = {
    "b": struct.Struct(">b"),
    "B": struct.Struct(">B"),
    "u": struct.Struct(">H"),
    "s": struct.Struct(">h"),  # RabbitMQ's errata: 's' is a short int, not a shortstr
    "i": struct.Struct(">I"),
    "I": struct.Struct(">i"),
    "L": struct.Struct(">Q"),
    "l": struct.Struct(">q"),
    "f": struct.Struct(">f"),
    "d": struct.Struct(">d"),
}


def read_table(buf: bytes | bytearray | memoryview, off: int) -> tuple[dict[str, Any], int]:
    (n,) = U32.unpack_from(buf, off)
    end = off + 4 + n
    off += 4
    result: dict[str, Any] = {}
    while off < end:
        key, off = read_shortstr(buf, off)
        result[key], off = _read_value(buf, off)
    if off != end:
        raise AmqpDecodeError("field table length mismatch")
    return result, end
