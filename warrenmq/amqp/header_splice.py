"""Add one entry to the headers table of a raw content header, without decoding the rest.

A stream stamps every message with ``x-stream-offset`` once, when it is appended, so that
the stored header is exactly what every consumer receives.  The content header is class,
weight, body size, property flags, then the properties in flag order: content-type and
content-encoding (short strings) come before headers (a table), so the table is found by
skipping at most two short strings, and the entry is appended to it (as RabbitMQ appends
x-stream-offset after the publisher's own headers).

A publisher sends the same properties (and often the same size) again and again, so the
result is remembered per header as the bytes before and after the 8-byte value: stamping a
repeated header is one lookup and two concatenations.
"""

from __future__ import annotations

import struct

from warrenmq.amqp.frames import decode_properties, replace_properties
from warrenmq.amqp.values import FieldTable, encode_shortstr

_U32 = struct.Struct(">I")
_LONG = struct.Struct(">q")
_REMEMBERED = 1024  # headers remembered per key (forgotten all at once past that)

_layouts: dict[str, dict[bytes, tuple[bytes, bytes]]] = {}


def add_long_header(header: bytes, key: str, value: int) -> bytes:
    """``header`` with ``key`` = ``value`` (a signed 64-bit 'l' field) in its headers table."""
    layouts = _layouts.get(key)
    if layouts is None:
        layouts = _layouts[key] = {}
    parts = layouts.get(header)
    if parts is None:
        found = _layout(header, encode_shortstr(key))
        if found is None:
            return _replace(header, key, value)  # the key may already be there: decode properly
        if len(layouts) >= _REMEMBERED:
            layouts.clear()
        parts = layouts[header] = found
    return parts[0] + _LONG.pack(value) + parts[1]


def _layout(header: bytes, name: bytes) -> tuple[bytes, bytes] | None:
    """The new header's bytes before and after the value; None when the table may already
    hold the key."""
    entry_size = len(name) + 9  # name, type, value
    flags = header[12]
    at = 14
    if flags & 0x80:  # content-type
        at += 1 + header[at]
    if flags & 0x40:  # content-encoding
        at += 1 + header[at]
    if not flags & 0x20:  # no headers table yet: one with just the entry
        flag_bytes = bytes((flags | 0x20, header[13]))
        return header[:12] + flag_bytes + header[14:at] + _U32.pack(entry_size) + name + b"l", header[at:]
    size = _U32.unpack_from(header, at)[0]
    table_end = at + 4 + size
    if name in header[at + 4 : table_end]:
        return None
    before = header[:at] + _U32.pack(size + entry_size) + header[at + 4 : table_end] + name + b"l"
    return before, header[table_end:]


def _replace(header: bytes, key: str, value: int) -> bytes:
    properties = decode_properties(header)
    headers = FieldTable(properties.headers or {})
    headers[key] = ("l", value)
    properties.headers = headers
    return replace_properties(header, properties)
