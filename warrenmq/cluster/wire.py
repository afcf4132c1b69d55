"""The node-to-node link's frames: ``u32 size | u8 type | payload``, sans I/O.

Frames that carry messages (publish, deliver, replicate) are packed by hand with ``struct``
and keep the message in wire form (route, content header, body exactly as a client sent
them); control frames (requests, replies, stats) are JSON.  A queue is named on the wire by
its key ``vhost \\0 name``.
"""

from __future__ import annotations

import json
import struct
from typing import Any

HELLO = 1  # json {node, incarnation}: the dialling node introduces itself
PUBLISH = 2  # a message for queues this side leads
PUB_RESULT = 3  # publishes taken up to a token, and the tokens refused
DELIVER = 4  # a delivery to a consumer of the other side
SETTLE = 5  # acks / rejects / requeues of deliveries
REQUEST = 6  # json request (consume, cancel, get, query, purge, delete...)
REPLY = 7  # json reply to a request
GET_OK = 8  # a basic.get answered with a message
CANCELLED = 9  # the queue dropped a consumer (deleted, or its leader stepped down)
REPL_APPEND = 10  # a quorum queue's leader appends an entry at its members
REPL_SETTLE = 11  # ...and settles entries
REPL_ACK = 12  # a member has the stream up to an index on disk
REPL_SYNC = 13  # the leader's live entries, in order: a member drops the rest, fetches what it lacks
REPL_FETCH = 14  # a member asks for entries it lacks
STATS = 15  # json: the queues a node leads, with their counts (for the management API)

SETTLE_ACK, SETTLE_REJECT, SETTLE_REQUEUE = 0, 1, 2

_HEAD = struct.Struct(">IB")
_PUBLISH = struct.Struct(">QBBH")  # token, persistent, priority, queue count
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_DELIVER = struct.Struct(">IQH")  # consumer, delivery, returns
_GET_OK = struct.Struct(">IQHI")  # request, delivery, returns, message count
_SETTLE = struct.Struct(">BI")  # kind, count
_RESULT = struct.Struct(">QI")  # acked up to, nack count
_APPEND = struct.Struct(">QQQH")  # epoch, stream index, entry id, returns
_EPOCH = struct.Struct(">Q")
_ACK = struct.Struct(">QQ")  # epoch, stream index


class WireError(ValueError):
    """A frame that does not decode: the link is dropped."""


def frame(kind: int, payload: bytes) -> bytes:
    return _HEAD.pack(len(payload) + 1, kind) + payload


def control(kind: int, body: dict[str, Any]) -> bytes:
    return frame(kind, json.dumps(body, separators=(",", ":")).encode())


def request(req_id: int, body: dict[str, Any]) -> bytes:
    return frame(REQUEST, _U32.pack(req_id) + json.dumps(body, separators=(",", ":")).encode())


def reply(req_id: int, body: dict[str, Any]) -> bytes:
    return frame(REPLY, _U32.pack(req_id) + json.dumps(body, separators=(",", ":")).encode())


def decode_numbered_json(payload: bytes) -> tuple[int, dict[str, Any]]:
    if len(payload) < 4:
        raise WireError("short request")
    body = json.loads(payload[4:])
    if not isinstance(body, dict):
        raise WireError("request is not an object")
    return _U32.unpack_from(payload, 0)[0], body


def decode_json(payload: bytes) -> dict[str, Any]:
    body = json.loads(payload)
    if not isinstance(body, dict):
        raise WireError("control frame is not an object")
    return body


def queue_key(vhost: str, name: str) -> bytes:
    return vhost.encode() + b"\x00" + name.encode()


def split_key(key: bytes) -> tuple[str, str]:
    vhost, _, name = key.partition(b"\x00")
    return vhost.decode(), name.decode()


def _content(route: bytes, header: bytes, body: bytes) -> list[bytes]:
    return [_U16.pack(len(route)), route, _U32.pack(len(header)), header, body]


def _read_content(payload: bytes, off: int) -> tuple[bytes, bytes, bytes]:
    n = _U16.unpack_from(payload, off)[0]
    off += 2
    route = payload[off : off + n]
    off += n
    m = _U32.unpack_from(payload, off)[0]
    off += 4
    header = payload[off : off + m]
    return route, header, payload[off + m :]


def _framed(kind: int, pieces: list[bytes]) -> list[bytes]:
    size = sum(len(p) for p in pieces)
    return [_HEAD.pack(size + 1, kind), *pieces]


# -- publish ---------------------------------------------------------------------------------


def publish(
    token: int, persistent: bool, priority: int, keys: list[bytes], route: bytes, header: bytes, body: bytes
) -> list[bytes]:
    pieces = [_PUBLISH.pack(token, persistent, priority, len(keys))]
    for key in keys:
        pieces.append(_U16.pack(len(key)))
        pieces.append(key)
    pieces.extend(_content(route, header, body))
    return _framed(PUBLISH, pieces)


def decode_publish(payload: bytes) -> tuple[int, bool, int, list[bytes], bytes, bytes, bytes]:
    token, persistent, priority, n = _PUBLISH.unpack_from(payload, 0)
    off = _PUBLISH.size
    keys = []
    for _ in range(n):
        size = _U16.unpack_from(payload, off)[0]
        keys.append(payload[off + 2 : off + 2 + size])
        off += 2 + size
    route, header, body = _read_content(payload, off)
    return token, bool(persistent), priority, keys, route, header, body


def pub_result(upto: int, nacks: list[int]) -> bytes:
    return frame(PUB_RESULT, _RESULT.pack(upto, len(nacks)) + b"".join(_U64.pack(t) for t in nacks))


def decode_pub_result(payload: bytes) -> tuple[int, list[int]]:
    upto, n = _RESULT.unpack_from(payload, 0)
    return upto, [_U64.unpack_from(payload, _RESULT.size + 8 * i)[0] for i in range(n)]


# -- deliveries and settlement ------------------------------------------------------------


def deliver(consumer: int, delivery: int, returns: int, route: bytes, header: bytes, body: bytes) -> list[bytes]:
    return _framed(DELIVER, [_DELIVER.pack(consumer, delivery, min(returns, 0xFFFF)), *_content(route, header, body)])


def decode_deliver(payload: bytes) -> tuple[int, int, int, bytes, bytes, bytes]:
    consumer, delivery, returns = _DELIVER.unpack_from(payload, 0)
    route, header, body = _read_content(payload, _DELIVER.size)
    return consumer, delivery, returns, route, header, body


def get_ok(
    req_id: int, delivery: int, returns: int, count: int, route: bytes, header: bytes, body: bytes
) -> list[bytes]:
    return _framed(
        GET_OK, [_GET_OK.pack(req_id, delivery, min(returns, 0xFFFF), count), *_content(route, header, body)]
    )


def decode_get_ok(payload: bytes) -> tuple[int, int, int, int, bytes, bytes, bytes]:
    req_id, delivery, returns, count = _GET_OK.unpack_from(payload, 0)
    route, header, body = _read_content(payload, _GET_OK.size)
    return req_id, delivery, returns, count, route, header, body


def settle(kind: int, ids: list[int]) -> bytes:
    return frame(SETTLE, _SETTLE.pack(kind, len(ids)) + struct.pack(f">{len(ids)}Q", *ids))


def decode_settle(payload: bytes) -> tuple[int, list[int]]:
    kind, n = _SETTLE.unpack_from(payload, 0)
    return kind, list(struct.unpack_from(f">{n}Q", payload, _SETTLE.size))


def cancelled(consumer: int) -> bytes:
    return frame(CANCELLED, _U32.pack(consumer))


def decode_u32(payload: bytes) -> int:
    return int(_U32.unpack_from(payload, 0)[0])


# -- replication ------------------------------------------------------------------------------


def _keyed(key: bytes) -> list[bytes]:
    return [_U16.pack(len(key)), key]


def _read_key(payload: bytes) -> tuple[bytes, int]:
    n = _U16.unpack_from(payload, 0)[0]
    return payload[2 : 2 + n], 2 + n


def repl_append(
    key: bytes, epoch: int, index: int, entry: int, returns: int, route: bytes, header: bytes, body: bytes
) -> list[bytes]:
    return _framed(
        REPL_APPEND,
        [*_keyed(key), _APPEND.pack(epoch, index, entry, min(returns, 0xFFFF)), *_content(route, header, body)],
    )


def decode_repl_append(payload: bytes) -> tuple[bytes, int, int, int, int, bytes, bytes, bytes]:
    key, off = _read_key(payload)
    epoch, index, entry, returns = _APPEND.unpack_from(payload, off)
    route, header, body = _read_content(payload, off + _APPEND.size)
    return key, epoch, index, entry, returns, route, header, body


def repl_ids(kind: int, key: bytes, epoch: int, ids: list[int]) -> list[bytes]:
    """REPL_SETTLE, REPL_SYNC and REPL_FETCH: a queue, an epoch and entry ids."""
    return _framed(kind, [*_keyed(key), _EPOCH.pack(epoch), _U32.pack(len(ids)), struct.pack(f">{len(ids)}Q", *ids)])


def decode_repl_ids(payload: bytes) -> tuple[bytes, int, list[int]]:
    key, off = _read_key(payload)
    epoch = _EPOCH.unpack_from(payload, off)[0]
    n = _U32.unpack_from(payload, off + 8)[0]
    return key, epoch, list(struct.unpack_from(f">{n}Q", payload, off + 12))


def repl_ack(key: bytes, epoch: int, index: int) -> list[bytes]:
    return _framed(REPL_ACK, [*_keyed(key), _ACK.pack(epoch, index)])


def decode_repl_ack(payload: bytes) -> tuple[bytes, int, int]:
    key, off = _read_key(payload)
    epoch, index = _ACK.unpack_from(payload, off)
    return key, epoch, index


class FrameSplitter:
    """Bytes in, ``(type, payload)`` frames out."""

    __slots__ = ("_buf",)

    MAX_FRAME = 512 * 1024 * 1024

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        buf = self._buf + data if self._buf else data
        out: list[tuple[int, bytes]] = []
        off = 0
        n = len(buf)
        while n - off >= 5:
            size, kind = _HEAD.unpack_from(buf, off)
            if size < 1 or size > self.MAX_FRAME:
                raise WireError(f"bad frame size {size}")
            end = off + 4 + size
            if end > n:
                break
            out.append((kind, buf[off + 5 : end]))
            off = end
        self._buf = buf[off:] if off < n else b""
        return out
