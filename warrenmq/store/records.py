"""On-disk record formats of the message store (pure functions, no I/O).

Message segment (``NNNNNNNN.seg``): a sequence of records

    magic "WQ" | u32 size | u32 crc32 | payload[size]
    payload = u8 kind | u64 message id | u16 n | n x u32 queue id
              | u16 route size | route (exchange + routing key as short strings)
              | u32 header size | content header | body

The message is stored once, in wire form, whatever the number of queues it went to; the
CRC covers the payload, so a torn or flipped record is detected and skipped.  A delayed
message (kind 3, held by a delayed exchange) has ``u64 due`` (epoch ms) after the queue ids:
its one "queue" id is the exchange's.

Ack file (``NNNNNNNN.ack``, one per segment): fixed 16-byte records

    u32 queue id (top bit set: "delivered" mark, else "acknowledged") | u64 message id | u32 crc32

Acks of a message go into the ack file of the message's segment, so that a segment and its
ack file are deleted together once every message in it is settled.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

MAGIC = b"WQ"
RECORD_PREFIX = struct.Struct(">2sII")  # magic, size, crc
PAYLOAD_HEAD = struct.Struct(">BQH")  # kind, message id, queue count
_QUEUE_ID = struct.Struct(">I")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
ACK_RECORD = struct.Struct(">IQI")
ACK_SIZE = ACK_RECORD.size
DELIVERED_FLAG = 0x8000_0000
MAX_RECORD = 1 << 31

KIND_MESSAGE = 1  # a persistent message of durable queues: recovered after a restart
KIND_PAGED = 2  # a copy written only to free memory: never recovered
KIND_DELAYED = 3  # a persistent message a durable delayed exchange holds until it is due
_KINDS = (KIND_MESSAGE, KIND_PAGED, KIND_DELAYED)
_DUE = struct.Struct(">Q")


def encode_message(
    msg_id: int,
    queue_ids: list[int],
    route: bytes,
    header: bytes,
    body: bytes,
    kind: int = KIND_MESSAGE,
    due: int = 0,
) -> list[bytes]:
    """The record as pieces for ``os.writev`` (the body is not copied)."""
    n = len(queue_ids)
    head = PAYLOAD_HEAD.pack(kind, msg_id, n) + struct.pack(f">{n}I", *queue_ids)
    if kind == KIND_DELAYED:
        head += _DUE.pack(due)
    middle = _U16.pack(len(route)) + route + _U32.pack(len(header)) + header
    size = len(head) + len(middle) + len(body)
    crc = zlib.crc32(body, zlib.crc32(middle, zlib.crc32(head)))
    return [RECORD_PREFIX.pack(MAGIC, size, crc), head, middle, body]


def encode_ack(queue_id: int, msg_id: int, delivered: bool = False) -> bytes:
    word = queue_id | DELIVERED_FLAG if delivered else queue_id
    crc = zlib.crc32(struct.pack(">IQ", word, msg_id))
    return ACK_RECORD.pack(word, msg_id, crc)


@dataclass(slots=True)
class MessageRecord:
    offset: int
    kind: int
    msg_id: int
    queue_ids: list[int]
    route: bytes
    header: bytes
    body: bytes
    due: int = 0  # a delayed message's due time (epoch ms)


@dataclass
class ScanResult:
    records: list[MessageRecord]
    good_end: int  # offset after the last valid record (what to truncate to)
    corrupt: list[tuple[int, str]]  # (offset, what) of skipped damage
    torn_tail: int  # bytes after good_end that could not be read as records


def decode_payload(payload: bytes | memoryview, offset: int) -> MessageRecord:
    kind, msg_id, n = PAYLOAD_HEAD.unpack_from(payload, 0)
    if kind not in _KINDS:
        raise ValueError(f"unknown record kind {kind}")
    at = PAYLOAD_HEAD.size
    queue_ids = list(struct.unpack_from(f">{n}I", payload, at))
    at += 4 * n
    due = 0
    if kind == KIND_DELAYED:
        due = _DUE.unpack_from(payload, at)[0]
        at += 8
    route_size = _U16.unpack_from(payload, at)[0]
    at += 2
    route = bytes(payload[at : at + route_size])
    at += route_size
    header_size = _U32.unpack_from(payload, at)[0]
    at += 4
    header = bytes(payload[at : at + header_size])
    at += header_size
    if at > len(payload):
        raise ValueError("record fields overrun the record")
    return MessageRecord(offset, kind, msg_id, queue_ids, route, header, bytes(payload[at:]), due)


def read_record_at(data: bytes | memoryview, offset: int) -> MessageRecord | None:
    """The valid record at ``offset``, or None."""
    if offset + RECORD_PREFIX.size > len(data):
        return None
    magic, size, crc = RECORD_PREFIX.unpack_from(data, offset)
    start = offset + RECORD_PREFIX.size
    if magic != MAGIC or size > MAX_RECORD or start + size > len(data):
        return None
    payload = memoryview(data)[start : start + size]
    if zlib.crc32(payload) != crc:
        return None
    try:
        return decode_payload(payload, offset)
    except (ValueError, struct.error):
        return None


def scan(data: bytes) -> ScanResult:
    """Read every valid record; skip damaged ones by searching for the next valid record."""
    records: list[MessageRecord] = []
    corrupt: list[tuple[int, str]] = []
    offset = 0
    good_end = 0
    end = len(data)
    prefix = RECORD_PREFIX.size
    while offset < end:
        record = read_record_at(data, offset)
        if record is not None:
            records.append(record)
            offset += prefix + RECORD_PREFIX.unpack_from(data, offset)[1]
            good_end = offset
            continue
        # Damage: find the next offset where a whole valid record starts.
        found = data.find(MAGIC, offset + 1)
        while found != -1 and read_record_at(data, found) is None:
            found = data.find(MAGIC, found + 1)
        if found == -1:
            break  # nothing valid follows: a torn tail
        corrupt.append((offset, f"{found - offset} bytes unreadable"))
        offset = found
    return ScanResult(records, good_end, corrupt, end - good_end)


def scan_acks(data: bytes) -> tuple[list[tuple[int, int, bool]], int]:
    """(queue id, message id, delivered?) of each valid ack record, and the damaged count."""
    out: list[tuple[int, int, bool]] = []
    damaged = 0
    usable = len(data) - len(data) % ACK_SIZE
    for offset in range(0, usable, ACK_SIZE):
        word, msg_id, crc = ACK_RECORD.unpack_from(data, offset)
        if zlib.crc32(data[offset : offset + 12]) != crc:
            damaged += 1
            continue
        out.append((word & ~DELIVERED_FLAG, msg_id, bool(word & DELIVERED_FLAG)))
    return out, damaged


def scan_index(data: bytes) -> tuple[list[tuple[int, int, int, tuple[int, ...], int, int]], ScanResult]:
    """Like ``scan`` but without copying content: (offset, kind, id, queue ids, body size, due)
    per record (due: a delayed message's due time, else 0).

    Recovery reads segments with this; message content is read back only when delivered.
    """
    index: list[tuple[int, int, int, tuple[int, ...], int, int]] = []
    corrupt: list[tuple[int, str]] = []
    view = memoryview(data)
    end = len(data)
    offset = good_end = 0
    prefix_unpack = RECORD_PREFIX.unpack_from
    head_unpack = PAYLOAD_HEAD.unpack_from
    head_size = PAYLOAD_HEAD.size
    crc32 = zlib.crc32
    while offset < end:
        valid = False
        if offset + 10 <= end:
            magic, size, crc = prefix_unpack(data, offset)
            start = offset + 10
            stop = start + size
            if magic == MAGIC and stop <= end and crc32(view[start:stop]) == crc:
                try:
                    kind, msg_id, n = head_unpack(data, start)
                    at = start + head_size
                    queue_ids = struct.unpack_from(f">{n}I", data, at) if n else ()
                    at += 4 * n
                    due = 0
                    if kind == KIND_DELAYED:
                        due = _DUE.unpack_from(data, at)[0]
                        at += 8
                    at += 2 + _U16.unpack_from(data, at)[0]
                    at += 4 + _U32.unpack_from(data, at)[0]
                    if at <= stop and kind in _KINDS:
                        index.append((offset, kind, msg_id, queue_ids, stop - at, due))
                        valid = True
                except struct.error:
                    valid = False
        if valid:
            offset = good_end = stop
            continue
        found = data.find(MAGIC, offset + 1)
        while found != -1 and read_record_at(data, found) is None:
            found = data.find(MAGIC, found + 1)
        if found == -1:
            break
        corrupt.append((offset, f"{found - offset} bytes unreadable"))
        offset = found
    return index, ScanResult([], good_end, corrupt, end - good_end)
