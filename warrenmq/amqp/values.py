"""AMQP 0-9-1 value codec: short/long strings, field tables and arrays.

Tables come in two shapes:

* plain: ``dict[str, Any]`` of Python values, for method arguments (queue arguments,
  client properties).  Encoding infers a field type from the Python type.
* typed: ``dict[str, tuple[str, Any]]`` whose values keep RabbitMQ's field-type tag, for
  the places that must compare or re-encode values exactly (headers exchange matching,
  dead-letter headers).  Nested tables and arrays are typed too.

The type letters are RabbitMQ's (rabbit_binary_parser), which differ from the 0-9-1 spec
for short ints ('s' is a signed 16-bit int, not a short string) and take 'L' (what py-amqp
writes for a 64-bit int) as a signed long, kept as 'l'.
"""

from __future__ import annotations

import datetime
import decimal
import math
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
_DEC = struct.Struct(">BI")  # scale, then an unsigned value (as RabbitMQ reads and writes it)

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


class RepeatedKey(str):
    """A key met again in the same table.  RabbitMQ keeps a table as a list: every entry is
    kept and written back, and a lookup finds the first.  Equal only to itself, a repeated key
    is a dict entry of its own in place, while looking up the plain key finds the first."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)


class DecodeError(SyntaxErrorAMQP):
    """Malformed encoded value (a 502 SYNTAX_ERROR on the connection)."""


class MalformedTable(DecodeError):
    """A field table whose own length fits but whose contents RabbitMQ's parser does not take.

    RabbitMQ tells the two apart in method arguments: the method's fields must fit the frame
    exactly (else 501 "cannot decode"), and only then is each table parsed, a failure there
    crashing the connection's reader, which closes the socket without a connection.close.  In
    a content header either is a 541.  ``path`` names the field, outermost first; ``offset`` is
    where the bad key or type byte is in the buffer; ``stop`` is where the outermost table ends.
    """

    def __init__(self, reason: str, offset: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.offset = offset
        self.path: list[str] = []
        self.stop = -1

    def __str__(self) -> str:
        field = f"field {' / '.join(self.path)}: " if self.path else ""
        return f"{field}{self.reason} at offset {self.offset}"


def decode_str(raw: bytes) -> str | bytes:
    """Long strings are binary on the wire; give text when it is text."""
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return raw


def encode_shortstr(value: str | bytes) -> bytes:
    # surrogateescape: a table key that came as bytes that are not UTF-8 goes back as they came
    raw = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
    if len(raw) > 255:
        raise ValueError(f"short string too long ({len(raw)} > 255 bytes)")
    return _B.pack(len(raw)) + raw


def encode_longstr(value: str | bytes) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    return _I.pack(len(raw)) + raw


# --- typed decoding ---------------------------------------------------------------------
#
# What RabbitMQ 3.10.8's parser (rabbit_binary_parser) takes, checked against it with raw frames
# (python -m tools.field_values, tests/data/field_values.json): the type letters below and no
# other; 'L' is a signed 64-bit long like 'l' (and RabbitMQ writes it back as 'l'); a decimal's
# value is unsigned; NaN and the infinities are refused in both float widths (Erlang's float
# patterns do not match them); keys are any bytes.

_FIXED: dict[str, tuple[struct.Struct, str]] = {  # letter: (layout, the letter it is kept as)
    "b": (_b, "b"),
    "B": (_B, "B"),
    "s": (_h, "s"),
    "u": (_H, "u"),
    "I": (_i, "I"),
    "i": (_I, "i"),
    "l": (_q, "l"),
    "L": (_q, "l"),
    "T": (_Q, "T"),
    "f": (_f, "f"),
    "d": (_d, "d"),
}


def _letter(kind: int) -> str:
    """A type byte as a log line shows it: 'L' (0x4c), or 0x00 when it is not printable."""
    return f"'{chr(kind)}' (0x{kind:02x})" if 32 < kind < 127 else f"0x{kind:02x}"


def _decode_value(buf: bytes, off: int, end: int) -> tuple[TypedValue, int]:
    """The value whose type byte is at ``off``; ``end`` bounds its container."""
    if off >= end:
        raise MalformedTable("no type byte after the key", off)
    kind = buf[off]
    tag = chr(kind)
    at = off
    off += 1
    fixed = _FIXED.get(tag)
    if fixed is not None:
        layout, kept = fixed
        stop = off + layout.size
        if stop > end:
            raise MalformedTable(f"a value of type {_letter(kind)} needs {layout.size} bytes, {end - off} left", at)
        value = layout.unpack_from(buf, off)[0]
        if (kind == 100 or kind == 102) and not math.isfinite(value):  # d, f
            raise MalformedTable(f"a value of type {_letter(kind)} is NaN or infinite", at)
        return (kept, value), stop
    if tag == "t":
        if off >= end:
            raise MalformedTable("a value of type 't' (0x74) needs 1 byte, 0 left", at)
        return (tag, buf[off] != 0), off + 1
    if tag == "V":
        return (tag, None), off
    if tag == "D":
        if off + 5 > end:
            raise MalformedTable(f"a value of type 'D' (0x44) needs 5 bytes, {end - off} left", at)
        scale, value = _DEC.unpack_from(buf, off)
        return (tag, decimal.Decimal(value).scaleb(-scale)), off + 5
    if tag in "SxFA":
        if off + 4 > end:
            raise MalformedTable(f"a value of type {_letter(kind)} needs a 4-byte length, {end - off} left", at)
        n = _I.unpack_from(buf, off)[0]
        off += 4
        stop = off + n
        if stop > end:
            raise MalformedTable(f"a value of type {_letter(kind)} of {n} bytes runs past its container", at)
        if tag == "S":
            return (tag, decode_str(buf[off:stop])), stop
        if tag == "x":
            return (tag, buf[off:stop]), stop
        if tag == "F":
            return (tag, decode_table_typed(buf, off, stop)), stop
        return (tag, decode_array_typed(buf, off, stop)), stop
    raise MalformedTable(f"unknown type {_letter(kind)}", at)


def decode_table_typed(buf: bytes, off: int, end: int) -> FieldTable:
    """Decode the table occupying buf[off:end] (without its length prefix)."""
    table = FieldTable()
    while off < end:
        n = buf[off]
        stop = off + 1 + n
        if stop > end:
            raise MalformedTable(f"a key of {n} bytes runs past its table", off)
        # Keys are bytes to RabbitMQ: one that is not UTF-8 is kept, and written back as it came.
        key = buf[off + 1 : stop].decode("utf-8", "surrogateescape")
        if key in table:
            key = RepeatedKey(key)
        try:
            table[key], off = _decode_value(buf, stop, end)
        except MalformedTable as exc:
            exc.path.insert(0, repr(key))
            raise
    return table


def decode_array_typed(buf: bytes, off: int, end: int) -> list[TypedValue]:
    items: list[TypedValue] = []
    while off < end:
        try:
            item, off = _decode_value(buf, off, end)
        except MalformedTable as exc:
            exc.path.insert(0, f"[{len(items)}]")
            raise
        items.append(item)
    return items


def read_table(buf: bytes, off: int, end: int) -> tuple[FieldTable, int]:
    """Read a length-prefixed table starting at off.  A length that runs past ``end`` is a
    DecodeError; contents that do not parse are a MalformedTable (RabbitMQ tells the two apart:
    see MalformedTable)."""
    if off + 4 > end:
        raise DecodeError("table length truncated")
    n = _I.unpack_from(buf, off)[0]
    off += 4
    stop = off + n
    if stop > end:
        raise DecodeError("table truncated")
    try:
        return decode_table_typed(buf, off, stop), stop
    except MalformedTable as exc:
        exc.stop = stop
        raise


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
        out.append(_DEC.pack(scale, unscaled & 0xFFFFFFFF))  # a negative one wraps, as in Erlang's <<V:32>>
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
