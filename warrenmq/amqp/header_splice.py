"""Add one entry to the headers table of a raw content header, without decoding the rest.

A stream stamps every message with ``x-stream-offset`` once, when it is appended, so that
the stored header is exactly what every consumer receives.  The content header is class,
weight, body size, property flags, then the properties in flag order: content-type and
content-encoding (short strings) come before headers (a table), so the table is found by
skipping at most two short strings, and the entry is appended to it (as RabbitMQ appends
x-stream-offset after the publisher's own headers).
"""

from __future__ import annotations

import struct

from warrenmq.amqp.frames import decode_properties, replace_properties
from warrenmq.amqp.values import FieldTable, encode_shortstr

_U32 = struct.Struct(">I")
_LONG = struct.Struct(">q")


def add_long_header(header: bytes, key: str, value: int) -> bytes:
    """``header`` with ``key`` = ``value`` (a signed 64-bit 'l' field) in its headers table."""
    name = _names.get(key)
    if name is None:
        name = _names[key] = encode_shortstr(key)
    entry = name + b"l" + _LONG.pack(value)
    flags = header[12]
    if not flags and not header[13]:
        # No properties at all (the common bare publish): the table is the whole list.
        return header[:12] + b"\x20\x00" + _U32.pack(len(entry)) + entry
    at = 14
    if flags & 0x80:  # content-type
        at += 1 + header[at]
    if flags & 0x40:  # content-encoding
        at += 1 + header[at]
    if not flags & 0x20:  # no headers table yet
        flag_bytes = bytes((flags | 0x20, header[13]))
        return header[:12] + flag_bytes + header[14:at] + _U32.pack(len(entry)) + entry + header[at:]
    size = _U32.unpack_from(header, at)[0]
    table_end = at + 4 + size
    if name in header[at + 4 : table_end]:
        return _replace(header, key, value)  # the key may already be there: decode properly
    return header[:at] + _U32.pack(size + len(entry)) + header[at + 4 : table_end] + entry + header[table_end:]


_names: dict[str, bytes] = {}


def _replace(header: bytes, key: str, value: int) -> bytes:
    properties = decode_properties(header)
    headers = FieldTable(properties.headers or {})
    headers[key] = ("l", value)
    properties.headers = headers
    return replace_properties(header, properties)
