"""The records of a stream's segment files (pure functions, no I/O).

A stream record has the message store's framing (``records.py``: magic "WQ", size, CRC of
the payload) and its own payload kind:

    u8 kind (3) | u64 offset | u64 timestamp (ms) | u16 route size | route
    | u32 header size | content header | body

The content header is stored as consumers receive it (with ``x-stream-offset`` already in
its headers), so reading a record back is slicing, never re-encoding.

Index file (``.idx``, one per segment): fixed 24-byte entries ``u64 offset | u64 position |
i64 timestamp``, one every INDEX_BYTES of records (and for the segment's first record).
It is not fsynced: recovery checks it against the segment and rebuilds what is missing.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator

from warrenmq.store.records import MAGIC, RECORD_PREFIX

KIND_STREAM = 3
HEAD = struct.Struct(">2sIIBQQH")  # magic, size, crc | kind, offset, timestamp, route size
HEAD_SIZE = HEAD.size  # 29
_PAYLOAD_HEAD = struct.Struct(">BQQH")
_U32 = struct.Struct(">I")
INDEX_ENTRY = struct.Struct(">QQq")
INDEX_BYTES = 64 * 1024  # record bytes between index entries: a seek reads at most this much


def encode(offset: int, timestamp: int, route: bytes, header: bytes, body: bytes) -> bytes:
    head = _PAYLOAD_HEAD.pack(KIND_STREAM, offset, timestamp, len(route)) + route + _U32.pack(len(header)) + header
    crc = zlib.crc32(body, zlib.crc32(head))
    return RECORD_PREFIX.pack(MAGIC, len(head) + len(body), crc) + head + body


def record_length(data: bytes, at: int) -> int:
    """Bytes of the record starting at ``at`` (its prefix must be there), framing included."""
    return RECORD_PREFIX.size + int(RECORD_PREFIX.unpack_from(data, at)[1])


def valid_at(data: bytes | memoryview, at: int) -> bool:
    """Whether a whole, undamaged stream record starts at ``at``."""
    if at + HEAD_SIZE > len(data):
        return False
    magic, size, crc, kind, _offset, _stamp, route_size = HEAD.unpack_from(data, at)
    stop = at + RECORD_PREFIX.size + size
    if magic != MAGIC or kind != KIND_STREAM or stop > len(data) or HEAD_SIZE + route_size + 4 > stop - at:
        return False
    return zlib.crc32(memoryview(data)[at + RECORD_PREFIX.size : stop]) == crc


def scan(data: bytes, at: int = 0) -> Iterator[tuple[int, int, int, int]]:
    """(position, offset, timestamp, length) of each valid record from ``at`` until the first
    that is not whole and valid (a torn tail, or damage: the caller decides)."""
    end = len(data)
    while at < end and valid_at(data, at):
        _magic, size, _crc, _kind, offset, stamp, _route = HEAD.unpack_from(data, at)
        length = RECORD_PREFIX.size + size
        yield at, offset, stamp, length
        at += length


def find_next_valid(data: bytes, at: int) -> int:
    """The position of the next valid record after damage at ``at`` (-1: none)."""
    found = data.find(MAGIC, at + 1)
    while found != -1 and not valid_at(data, found):
        found = data.find(MAGIC, found + 1)
    return found
