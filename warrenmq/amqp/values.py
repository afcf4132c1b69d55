"""AMQP 0-9-1 value codec: short/long strings, field tables and arrays.

Tables come in two shapes:

* plain: ``dict[str, Any]`` of Python values, for method arguments (queue arguments,
  client properties).  Encoding infers a field type from the Python type.
* typed: ``dict[str, tuple[str, Any]]`` whose values keep RabbitMQ's field-type tag, for
  the places that must compare or re-encode values exactly (headers exchange matching,
  dead-letter headers).  Nested tables and arrays are typed too.

The type letters are RabbitMQ's (rabbit_binary_parser), which differ from the 0-9-1 spec
for short ints ('s' is a signed 16-bit int, not a short string).
"""

from __future__ import annotations

import datetime
import decimal
import struct
from typing import Any

from warrenmq.amqp.errors import SyntaxErrorAMQP

_B = struct.Struct(">B")
_b = struct.Struct(">b")
_H = struct.Struct(">H")
_h = struct.Struct(">h")
_I = struct.Struct(">I")
_i = struct.Struct(">i")
_Q = struct.Struct(">Q")
_q = struct.Struct(">q")
_f = struct.Struct(">f")
_d = struct.Struct(">d")
_DEC = struct.Struct(">Bi")

Table = dict[str, Any]
TypedValue = tuple[str, Any]

# Erlang's names for the field types (used in RabbitMQ's error texts).
TYPE_NAMES = {
    "S": "longstr",
    "I": "signedint",
    "l": "long",
    "b": "byte",
    "B": "unsignedbyte",
    "s": "short",
    "u": "unsignedshort",
    "i": "unsignedint",
    "t": "bool",
    "D": "decimal",
    "T": "timestamp",
    "F": "table",
    "A": "array",
    "V": "void",
    "f": "float",
    "d": "double",
    "x": "binary",
}
INTEGER_TAGS = frozenset("IlbBsui")


class FieldTable(dict[str, TypedValue]):
    """A decoded table that keeps each value's field type, so it re-encodes byte-for-byte.

    Every table decoded off the wire is one of these; ``plain()`` gives the Python values.
    """

    def plain(self) -> dict[str, Any]:
        return {k: untype(v) for k, v in self.items()}

    def value(self, key: str, default: Any = None) -> Any:
        item = self.get(key)
        return default if item is None else untype(item)

    @classmethod
    def of(cls, table: dict[str, Any] | None) -> FieldTable:
        """Typed view of a plain (or already typed) table."""
        if table is None:
            return cls()
        if isinstance(table, FieldTable):
            return table
        return cls({k: typed(v) for k, v in table.items()})


TypedTable = FieldTable


class DecodeError(SyntaxErrorAMQP):
    """Malformed encoded value (a 502 SYNTAX_ERROR on the connection)."""


def decode_str(raw: bytes) -> str | bytes:
    """Long strings are binary on the wire; give text when it is text."""
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return raw


def encode_shortstr(value: str | bytes) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    if len(raw) > 255:
        raise ValueError(f"short string too long ({len(raw)} > 255 bytes)")
    return _B.pack(len(raw)) + raw


def encode_longstr(value: str | bytes) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    return _I.pack(len(raw)) + raw


def read_shortstr(buf: bytes, off: int, end: int) -> tuple[str, int]:
    if off >= end:
        raise DecodeError("short string truncated")
    n = buf[off]
    off += 1
    stop = off + n
    if stop > end:
        raise DecodeError("short string truncated")
    try:
        return buf[off:stop].decode(), stop
    except UnicodeDecodeError as exc:
        raise DecodeError("short string is not valid UTF-8") from exc


# --- typed decoding ---------------------------------------------------------------------


def _decode_value(buf: bytes, off: int, end: int) -> tuple[TypedValue, int]:
    if off >= end:
        raise DecodeError("field value truncated")
    tag = chr(buf[off])
    off += 1
    try:
        if tag == "S":
            n = _I.unpack_from(buf, off)[0]
            off += 4
            stop = off + n
            if stop > end:
                raise DecodeError("long string truncated")
            return (tag, decode_str(buf[off:stop])), stop
        if tag == "I":
            if off + 4 > end:
                raise DecodeError("int truncated")
            return (tag, _i.unpack_from(buf, off)[0]), off + 4
        if tag == "F":
            n = _I.unpack_from(buf, off)[0]
            off += 4
            stop = off + n
            if stop > end:
                raise DecodeError("table truncated")
            return (tag, decode_table_typed(buf, off, stop)), stop
        if tag == "t":
            if off + 1 > end:
                raise DecodeError("boolean truncated")
            return (tag, buf[off] != 0), off + 1
        if tag == "l":
            if off + 8 > end:
                raise DecodeError("long truncated")
            return (tag, _q.unpack_from(buf, off)[0]), off + 8
        if tag == "A":
            n = _I.unpack_from(buf, off)[0]
            off += 4
            stop = off + n
            if stop > end:
                raise DecodeError("array truncated")
            return (tag, decode_array_typed(buf, off, stop)), stop
        if tag == "T":
            if off + 8 > end:
                raise DecodeError("timestamp truncated")
            return (tag, _Q.unpack_from(buf, off)[0]), off + 8
        if tag == "V":
            return (tag, None), off
        if tag == "b":
            if off + 1 > end:
                raise DecodeError("byte truncated")
            return (tag, _b.unpack_from(buf, off)[0]), off + 1
        if tag == "B":
            if off + 1 > end:
                raise DecodeError("byte truncated")
            return (tag, buf[off]), off + 1
        if tag == "s":
            if off + 2 > end:
                raise DecodeError("short truncated")
            return (tag, _h.unpack_from(buf, off)[0]), off + 2
        if tag == "u":
            if off + 2 > end:
                raise DecodeError("short truncated")
            return (tag, _H.unpack_from(buf, off)[0]), off + 2
        if tag == "i":
            if off + 4 > end:
                raise DecodeError("int truncated")
            return (tag, _I.unpack_from(buf, off)[0]), off + 4
        if tag == "f":
            if off + 4 > end:
                raise DecodeError("float truncated")
            return (tag, _f.unpack_from(buf, off)[0]), off + 4
        if tag == "d":
            if off + 8 > end:
                raise DecodeError("double truncated")
            return (tag, _d.unpack_from(buf, off)[0]), off + 8
        if tag == "D":
            if off + 5 > end:
                raise DecodeError("decimal truncated")
            scale, value = _DEC.unpack_from(buf, off)
            return (tag, decimal.Decimal(value).scaleb(-scale)), off + 5
        if tag == "x":
            n = _I.unpack_from(buf, off)[0]
            off += 4
            stop = off + n
            if stop > end:
                raise DecodeError("byte array truncated")
            return (tag, buf[off:stop]), stop
    except struct.error as exc:
        raise DecodeError("field value truncated") from exc
    raise DecodeError(f"unknown field type {tag!r}")


def decode_table_typed(buf: bytes, off: int, end: int) -> FieldTable:
    """Decode the table occupying buf[off:end] (without its length prefix)."""
    table = FieldTable()
    while off < end:
        key, off = read_shortstr(buf, off, end)
        table[key], off = _decode_value(buf, off, end)
    return table


def decode_array_typed(buf: bytes, off: int, end: int) -> list[TypedValue]:
    items: list[TypedValue] = []
    while off < end:
        item, off = _decode_value(buf, off, end)
        items.append(item)
    return items


def read_table(buf: bytes, off: int, end: int) -> tuple[FieldTable, int]:
    """Read a length-prefixed table starting at off."""
    if off + 4 > end:
        raise DecodeError("table length truncated")
    n = _I.unpack_from(buf, off)[0]
    off += 4
    stop = off + n
    if stop > end:
        raise DecodeError("table truncated")
    return decode_table_typed(buf, off, stop), stop


# --- plain views --------------------------------------------------------------------------


def untype(value: TypedValue) -> Any:
    tag, v = value
    if tag == "F":
        return {k: untype(x) for k, x in v.items()}
    if tag == "A":
        return [untype(x) for x in v]
    if tag == "T":
        try:
            return datetime.datetime.fromtimestamp(v, datetime.UTC)
        except (OverflowError, OSError, ValueError):
            return v  # beyond datetime's range: the seconds as they came
    return v


# --- encoding -----------------------------------------------------------------------------


def typed(value: Any) -> TypedValue:
    """Infer the field type RabbitMQ clients use for a Python value."""
    if isinstance(value, bool):
        return ("t", value)
    if isinstance(value, int):
        if -(2**31) <= value < 2**31:
            return ("I", value)
        return ("l", value)
    if isinstance(value, float):
        return ("d", value)
    if isinstance(value, str):
        return ("S", value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return ("x", bytes(value))
    if isinstance(value, dict):
        return ("F", FieldTable.of(value))
    if isinstance(value, (list, tuple)):
        return ("A", [typed(v) for v in value])
    if value is None:
        return ("V", None)
    if isinstance(value, decimal.Decimal):
        return ("D", value)
    if isinstance(value, datetime.datetime):
        return ("T", int(value.timestamp()))
    raise ValueError(f"cannot encode {type(value).__name__} in a field table")


def _encode_value(value: TypedValue, out: list[bytes]) -> None:
    tag, v = value
    out.append(tag.encode())
    if tag == "S":
        out.append(encode_longstr(v))
    elif tag in ("I",):
        out.append(_i.pack(v))
    elif tag == "F":
        out.append(encode_table_typed(v))
    elif tag == "t":
        out.append(b"\x01" if v else b"\x00")
    elif tag == "l":
        out.append(_q.pack(v))
    elif tag == "A":
        out.append(encode_array_typed(v))
    elif tag == "T":
        out.append(_Q.pack(v))
    elif tag == "V":
        pass
    elif tag == "b":
        out.append(_b.pack(v))
    elif tag == "B":
        out.append(_B.pack(v))
    elif tag == "s":
        out.append(_h.pack(v))
    elif tag == "u":
        out.append(_H.pack(v))
    elif tag == "i":
        out.append(_I.pack(v))
    elif tag == "f":
        out.append(_f.pack(v))
    elif tag == "d":
        out.append(_d.pack(v))
    elif tag == "D":
        exponent = v.as_tuple().exponent
        scale = -exponent if isinstance(exponent, int) and exponent < 0 else 0
        unscaled = int(v.scaleb(scale))
        out.append(_DEC.pack(scale, unscaled))
    elif tag == "x":
        out.append(_I.pack(len(v)) + v)
    else:
        raise ValueError(f"unknown field type {tag!r}")


def encode_table_typed(table: FieldTable) -> bytes:
    out: list[bytes] = []
    for key, value in table.items():
        out.append(encode_shortstr(key))
        _encode_value(value, out)
    body = b"".join(out)
    return _I.pack(len(body)) + body


def encode_array_typed(items: list[TypedValue]) -> bytes:
    out: list[bytes] = []
    for item in items:
        _encode_value(item, out)
    body = b"".join(out)
    return _I.pack(len(body)) + body


def encode_table(table: Table | None) -> bytes:
    """Encode a FieldTable exactly, or a plain dict with inferred field types."""
    if not table:
        return b"\x00\x00\x00\x00"
    return encode_table_typed(FieldTable.of(table))
