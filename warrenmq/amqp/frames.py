"""Frame layer: split a byte stream into frames and build outgoing frames.

Sans-I/O and bytes-oriented: ``FrameReader.feed`` takes whatever the socket gave and returns
the complete frames in it as ``(type, channel, payload)`` tuples.  Nothing is allocated on
the word of a size field: a frame's payload is sliced only once all of it has arrived, and a
declared size above the negotiated frame-max is refused before waiting for it.
"""

from __future__ import annotations

import struct

from warrenmq.amqp import spec
from warrenmq.amqp.errors import FrameError, ParserCrash
from warrenmq.amqp.properties import property_list_problem

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
FRAME_END = b"\xce"
FRAME_END_BYTE = 0xCE

FRAME_HEADER = struct.Struct(">BHI")
_CONTENT_HEADER = struct.Struct(">HHQ")  # class-id, weight, body-size
_BODY_SIZE = struct.Struct(">Q")
_METHOD_ID = struct.Struct(">I")
_TAG_REDELIVERED = struct.Struct(">QB")

HEARTBEAT_FRAME = b"\x08\x00\x00\x00\x00\x00\x00\xce"

Frame = tuple[int, int, bytes] | tuple[int, int, bytes, bytes, bytes] | tuple[int, int, list[int]]
PUBLISH = -1  # FrameReader.feed(publishes=True): a whole publish (method, header, body)
ACKS = -2  # FrameReader.feed(publishes=True): consecutive basic.acks on one channel


def ack_payload(code: int) -> bytes:
    """The basic.ack method payload for an entry of an ACKS event: a delivery tag, or the
    complement (``~tag``) of one acknowledged with ``multiple``."""
    if code < 0:
        return b"\x00\x3c\x00\x50" + _TAG_REDELIVERED.pack(~code, 1)
    return b"\x00\x3c\x00\x50" + _TAG_REDELIVERED.pack(code, 0)


def erlang_binary(data: bytes) -> str:
    """``data`` as RabbitMQ's error texts print a binary (Erlang's ``~p``): ``<<"abc">>`` when
    every byte is printable ASCII, else ``<<0,60,...>>``."""
    if data and all(32 <= b < 127 for b in data):
        return '<<"' + data.decode().replace("\\", "\\\\").replace('"', '\\"') + '">>'
    return "<<" + ",".join(map(str, data)) + ">>"


def frame_error_text(ftype: int, payload: bytes, reason: str) -> str:
    """RabbitMQ 3.10's FRAME_ERROR detail: the frame type, its first octets, the reason."""
    if len(payload) <= 16:
        octets = f"all octets = {erlang_binary(payload)}"
    else:
        octets = f"first 16 octets = {erlang_binary(payload[:16])}"
    return erlang_wrapped(f"type {ftype}, {octets}: ", reason)


def erlang_wrapped(head: str, term: str) -> str:
    """``head`` then an Erlang tuple ``term`` as RabbitMQ's texts print one after a prefix:
    Erlang's pretty printer breaks a term that would pass column 78 after its first comma,
    indenting the rest under it."""
    if len(head) + len(term) > 78 and "," in term:
        first, rest = term.split(",", 1)
        term = first + ",\n" + " " * (len(head) + 1) + rest
    return head + term


class FrameReader:
    """Incremental frame splitter.  ``frame_max`` 0 means unlimited (as negotiated).

    As RabbitMQ 3.10.8, a payload of up to ``frame_max`` bytes is accepted (the spec counts
    the 8 bytes of framing in frame_max; RabbitMQ allows them as slack) and the error text
    quotes the limit the spec would have (``frame_max - 8``)."""

    __slots__ = ("_buf", "frame_max")

    def __init__(self, frame_max: int) -> None:
        self._buf = b""
        self.frame_max = frame_max

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes, publishes: bool = False) -> list[Frame]:
        """The complete frames in what has arrived so far, as ``(type, channel, payload)``.

        With ``publishes``, a basic.publish whose content header and single body frame are
        all here comes as one ``(PUBLISH, channel, method, header, body)`` event instead of
        three frames: the common case of a publisher in flow, dispatched with one call.  And
        consecutive basic.ack frames of one channel come as one ``(ACKS, channel, codes)``
        event (see ``ack_payload``): a consumer acking each message settles a batch at once.
        """
        buf = self._buf + data if self._buf else data
        frames: list[Frame] = []
        acks: list[int] | None = None  # the codes of the ACKS event being extended
        acks_channel = -1
        off = 0
        n = len(buf)
        limit = self.frame_max or 0xFFFFFFFF
        while n - off >= 7:
            # The header unpacked by hand: as fast as struct in CPython, and compiled
            # (frames.pxd) it becomes plain C.
            ftype = buf[off]
            channel = buf[off + 1] << 8 | buf[off + 2]
            size = buf[off + 3]  # first into the (compiled: 64-bit) variable, then shifted
            size = size << 24 | buf[off + 4] << 16 | buf[off + 5] << 8 | buf[off + 6]
            if size > limit:
                self._buf = b""
                raise FrameError(frame_error_text(ftype, b"", f"{{frame_too_large,{size},{limit - 8}}}"))
            end = off + 7 + size
            if end >= n:
                break
            if buf[end] != FRAME_END_BYTE:
                self._buf = b""
                payload = buf[off + 7 : end]
                raise FrameError(frame_error_text(ftype, payload, f"{{invalid_frame_end_marker,{buf[end]}}}"))
            if publishes and ftype == 1 and size > 4 and buf[off + 10] == 40 and buf[off + 8] == 60 and not (
                buf[off + 7] or buf[off + 9]
            ):
                whole = self._whole_publish(buf, off, end, channel, n, limit)
                if whole > 0:
                    h = end + 1  # the header frame
                    hend = buf[h + 3]
                    hend = h + 7 + (hend << 24 | buf[h + 4] << 16 | buf[h + 5] << 8 | buf[h + 6])
                    frames.append((PUBLISH, channel, buf[off + 7 : end], buf[h + 7 : hend], buf[hend + 8 : whole]))
                    acks = None
                    off = whole + 1
                    continue
            if (
                publishes
                and ftype == 1
                and size == 13
                and buf[off + 10] == 80
                and buf[off + 8] == 60
                and not (buf[off + 7] or buf[off + 9])
            ):
                tag = buf[off + 11]
                for i in range(off + 12, off + 19):
                    tag = tag << 8 | buf[i]
                code = tag  # compiled: a Python int made from the unsigned 64-bit tag
                if buf[off + 19] & 1:
                    code = -1 - code  # ~tag: acknowledged with multiple
                if acks is not None and acks_channel == channel:
                    acks.append(code)
                else:
                    acks = [code]
                    acks_channel = channel
                    frames.append((ACKS, channel, acks))
                off = end + 1
                continue
            acks = None
            frames.append((ftype, channel, buf[off + 7 : end]))
            off = end + 1
        self._buf = buf[off:] if off < n else b""
        return frames

    def _whole_publish(self, buf: bytes, off: int, end: int, channel: int, n: int, limit: int) -> int:
        """The end offset of the body frame when a content header and one body frame of the
        announced size follow the publish at ``off`` on its channel, complete; else 0."""
        h = end + 1
        if n - h < 21 or buf[h] != 2 or (buf[h + 1] << 8 | buf[h + 2]) != channel:
            return 0
        hsize = buf[h + 3]
        hsize = hsize << 24 | buf[h + 4] << 16 | buf[h + 5] << 8 | buf[h + 6]
        hend = h + 7 + hsize
        if hsize < 14 or hsize > limit or hend >= n or buf[hend] != FRAME_END_BYTE:
            return 0
        body_size = _BODY_SIZE.unpack_from(buf, h + 11)[0]
        b = hend + 1
        if body_size == 0 or n - b < 7 or buf[b] != 3 or (buf[b + 1] << 8 | buf[b + 2]) != channel:
            return 0
        bsize = buf[b + 3]
        bsize = bsize << 24 | buf[b + 4] << 16 | buf[b + 5] << 8 | buf[b + 6]
        bend = b + 7 + bsize
        if bsize != body_size or bsize > limit or bend >= n or buf[bend] != FRAME_END_BYTE:
            return 0
        return bend


def method_frame(channel: int, method: spec.Method) -> bytes:
    payload = method.encode()
    return FRAME_HEADER.pack(1, channel, len(payload)) + payload + FRAME_END


def header_frame(channel: int, header: bytes) -> bytes:
    return FRAME_HEADER.pack(2, channel, len(header)) + header + FRAME_END


def body_frames(channel: int, body: bytes, frame_max: int) -> list[bytes]:
    """Body frames for ``body``, each at most frame_max in all (header and end included)."""
    chunk = frame_max - 8 if frame_max else len(body)
    size = len(body)
    if size <= chunk:
        return [FRAME_HEADER.pack(3, channel, size), body, FRAME_END] if size else []
    out: list[bytes] = []
    view = memoryview(body)
    for start in range(0, size, chunk):
        piece = view[start : start + chunk]
        out.append(FRAME_HEADER.pack(3, channel, len(piece)))
        out.append(piece.tobytes())
        out.append(FRAME_END)
    return out


def content_header(properties: spec.BasicProperties, body_size: int) -> bytes:
    """A content header payload (class basic) for properties and a body size."""
    return _CONTENT_HEADER.pack(60, 0, body_size) + properties.encode()


def parse_content_header(payload: bytes) -> tuple[int, int]:
    """Return (class_id, body_size) of a content header payload; checks its length."""
    if len(payload) < 14:
        raise FrameError("content header frame too short")
    class_id, _weight, body_size = _CONTENT_HEADER.unpack_from(payload, 0)
    return class_id, body_size


def method_index(payload: bytes) -> int:
    if len(payload) < 4:
        raise FrameError(frame_error_text(1, payload, "unknown_frame"))  # RabbitMQ's 501
    return int(_METHOD_ID.unpack_from(payload, 0)[0])


def decode_method(payload: bytes) -> spec.Method:
    """Decode a method frame payload; unknown methods are a 503 (as RabbitMQ answers)."""
    index = method_index(payload)
    cls = spec.METHODS.get(index)
    if cls is None:
        from warrenmq.amqp.errors import CommandInvalid

        raise CommandInvalid(f"unknown method class {index >> 16}, method {index & 0xFFFF}")
    return cls.decode(payload, 4, len(payload))


# --- the few fields the broker reads from raw properties -------------------------------------

# Property flag bits (first property is bit 15).
FLAG_CONTENT_TYPE = 1 << 15
FLAG_CONTENT_ENCODING = 1 << 14
FLAG_HEADERS = 1 << 13
FLAG_DELIVERY_MODE = 1 << 12
FLAG_PRIORITY = 1 << 11
FLAG_CORRELATION_ID = 1 << 10
FLAG_REPLY_TO = 1 << 9
FLAG_EXPIRATION = 1 << 8
FLAG_MESSAGE_ID = 1 << 7
FLAG_TIMESTAMP = 1 << 6
FLAG_TYPE = 1 << 5
FLAG_USER_ID = 1 << 4
FLAG_APP_ID = 1 << 3
FLAG_CLUSTER_ID = 1 << 2


# The size of each fixed-size field value RabbitMQ's parser (rabbit_binary_parser) accepts,
# by type letter ('L' is a signed long there, as 'l': py-amqp writes it for 64-bit ints);
# 255: not fixed-size (S, x, F, A, d, f: see _table_end) or not a type.  The letters and
# sizes are RabbitMQ 3.10.8's, probed with raw frames (tests/data/field_values.json).
_FIXED = {"t": 1, "b": 1, "B": 1, "s": 2, "u": 2, "I": 4, "i": 4, "l": 8, "L": 8, "T": 8, "D": 5, "V": 0}
_FIXED_SIZES = bytes(_FIXED.get(chr(i), 255) for i in range(256))


def _malformed() -> ParserCrash:
    return ParserCrash("malformed basic properties")


def _shortstr_end(buf: bytes, off: int, end: int) -> int:
    if off >= end:
        raise _malformed()
    stop = off + 1 + buf[off]
    if stop > end:
        raise _malformed()
    return stop


def _long_end(buf: bytes, off: int, end: int) -> int:
    """Where a value with a 32-bit length prefix (long string, table, array) ends."""
    if off + 4 > end:
        raise _malformed()
    size = buf[off]  # first into the (compiled: 64-bit) variable, then shifted
    stop = off + 4 + (size << 24 | buf[off + 1] << 16 | buf[off + 2] << 8 | buf[off + 3])
    if stop > end:
        raise _malformed()
    return stop


def _table_end(buf: bytes, off: int, stop: int) -> int:
    """``stop``, once the field table whose content is ``buf[off:stop]`` is walked and
    checked as RabbitMQ's parser reads one: every key and typed value complete, every type one it knows.  Nested
    tables and arrays are followed with a stack of their ends, not recursion: any depth that
    fits in a frame is accepted, as RabbitMQ accepts it."""
    table = True  # in a table (keys before values), else in an array
    outer: list[tuple[int, bool]] = []  # the enclosing containers' (end, table)
    while True:
        if off == stop:
            if not outer:
                return stop
            stop, table = outer.pop()
            continue
        if table:
            off = _shortstr_end(buf, off, stop)
        if off >= stop:
            raise _malformed()
        kind = buf[off]
        off += 1
        size = _FIXED_SIZES[kind]
        if size != 255:
            off += size
            if off > stop:
                raise _malformed()
        elif kind == 83 or kind == 120:  # S, x
            off = _long_end(buf, off, stop)
        elif kind == 100 or kind == 102:  # d, f: Erlang's float patterns match no NaN or infinity
            size = 8 if kind == 100 else 4
            mask = 0xF0 if kind == 100 else 0x80  # the exponent's bits in the second byte
            if off + size > stop or (buf[off] & 0x7F == 0x7F and buf[off + 1] & mask == mask):
                raise _malformed()
            off += size
        elif kind == 70 or kind == 65:  # F, A: go in
            inner = _long_end(buf, off, stop)
            outer.append((stop, table))
            off += 4
            stop = inner
            table = kind == 70
        else:
            raise _malformed()


def peek_delivery(header: bytes) -> tuple[int, int, str | None]:
    """(delivery_mode, priority, expiration) from a raw content header, whose whole property
    list is checked on the way as RabbitMQ's parser takes it: a field cut short, a field
    table that does not parse, or bytes left over raise ParserCrash (RabbitMQ's 541), whose
    ``detail`` says what and where for the log.  The delivery mode is as sent (1 when
    absent); the flags' two low bits are ignored, as there.

    Runs once per published message that has properties (the compiled module makes it a C
    walk); nothing is decoded but the three fields returned.
    """
    try:
        return _peek_delivery(header)
    except ParserCrash as exc:
        # Refusals are rare and the walk above says only no: a slower one says why.
        problem = property_list_problem(header) or "the explaining walk finds no fault: a broker bug"
        exc.detail = (
            f"a published message's property list does not parse: {problem}"
            " (offsets from the start of the content header payload)"
        )
        raise


def _peek_delivery(header: bytes) -> tuple[int, int, str | None]:
    end = len(header)
    if end < 14:
        raise _malformed()
    flags = header[12] << 8 | header[13]
    off = 14
    if flags & FLAG_CONTENT_TYPE:
        off = _shortstr_end(header, off, end)
    if flags & FLAG_CONTENT_ENCODING:
        off = _shortstr_end(header, off, end)
    if flags & FLAG_HEADERS:
        off = _table_end(header, off + 4, _long_end(header, off, end))
    mode = 1
    priority = 0
    if flags & (FLAG_DELIVERY_MODE | FLAG_PRIORITY):
        if flags & FLAG_DELIVERY_MODE:
            if off >= end:
                raise _malformed()
            mode = header[off]
            off += 1
        if flags & FLAG_PRIORITY:
            if off >= end:
                raise _malformed()
            priority = header[off]
            off += 1
    for flag in (FLAG_CORRELATION_ID, FLAG_REPLY_TO):
        if flags & flag:
            off = _shortstr_end(header, off, end)
    expiration = None
    if flags & FLAG_EXPIRATION:
        stop = _shortstr_end(header, off, end)
        expiration = header[off + 1 : stop].decode("utf-8", "surrogateescape")  # quoted as sent in a 406
        off = stop
    if flags & FLAG_MESSAGE_ID:
        off = _shortstr_end(header, off, end)
    if flags & FLAG_TIMESTAMP:
        off += 8
        if off > end:
            raise _malformed()
    for flag in (FLAG_TYPE, FLAG_USER_ID, FLAG_APP_ID, FLAG_CLUSTER_ID):
        if flags & flag:
            off = _shortstr_end(header, off, end)
    if off != end:
        raise _malformed()
    return mode, priority, expiration


def decode_properties(header: bytes) -> spec.BasicProperties:
    return spec.BasicProperties.decode(header, 12, len(header))


def replace_properties(header: bytes, properties: spec.BasicProperties) -> bytes:
    """The content header with new properties (same class and body size)."""
    return header[:12] + properties.encode()
