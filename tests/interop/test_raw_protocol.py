"""The wire itself, over raw sockets: what client libraries never let one send.

Frame splitting and coalescing across TCP writes, frames on channels that are not open,
frames larger than frame_max, content frames out of place, a method on a channel the server
is closing.  Codes, texts and class/method ids are RabbitMQ 3.10.8's, checked against it with
this same code; the docstrings say where RabbitMQ's behaviour decides.

``Raw`` (a RawClient that can send any frame, encode any field-table type and read content)
is shared by the other raw-socket tests of this directory.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from typing import Any

import pika
import pika.data
import pika.frame
import pika.spec
import pytest

from tests.fuzz.raw import RawClient

FRAME_END = 0xCE
EMPTY_PROPERTIES = b"\x00\x00"

# -- encoding helpers (field values of every type, with explicit type letters) ------------------------


def shortstr(value: str | bytes) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    return struct.pack(">B", len(raw)) + raw


def longstr(value: str | bytes) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    return struct.pack(">I", len(raw)) + raw


def field(tag: str, value: Any) -> bytes:
    """One field value with its type letter as RabbitMQ reads them ('s' is a signed short,
    'b' a signed byte, 'B' unsigned, 'x' a byte array, 'D' a (scale, unscaled) pair)."""
    letter = tag.encode()
    if tag == "t":
        return letter + struct.pack(">B", 1 if value else 0)
    formats = {"b": ">b", "B": ">B", "s": ">h", "u": ">H", "I": ">i", "i": ">I", "l": ">q", "f": ">f", "d": ">d"}
    if tag in formats:
        return letter + struct.pack(formats[tag], value)
    if tag == "T":
        return letter + struct.pack(">Q", value)
    if tag in ("S", "x"):
        return letter + longstr(value)
    if tag == "D":
        scale, unscaled = value
        return letter + struct.pack(">Bi", scale, unscaled)
    if tag == "F":
        return letter + table(value)
    if tag == "A":
        inner = b"".join(field(*item) for item in value)
        return letter + struct.pack(">I", len(inner)) + inner
    if tag == "V":
        return letter
    raise ValueError(f"unknown field type {tag!r}")


def table(items: dict[str, tuple[str, Any]]) -> bytes:
    """A field table (with its length) from ``{key: (type letter, value)}``, in that order."""
    inner = b"".join(shortstr(key) + field(*item) for key, item in items.items())
    return struct.pack(">I", len(inner)) + inner


def frame(kind: int, channel: int, payload: bytes, end: int = FRAME_END) -> bytes:
    return struct.pack(">BHI", kind, channel, len(payload)) + payload + bytes([end])


def method_payload(method: pika.spec.amqp_object.Method) -> bytes:
    return pika.frame.Method(0, method).marshal()[7:-1]


def content_header(body_size: int, properties: bytes = EMPTY_PROPERTIES, class_id: int = 60, weight: int = 0) -> bytes:
    """A content header payload: class, weight, body size, then flags and properties."""
    return struct.pack(">HHQ", class_id, weight, body_size) + properties


def publish_frames(
    channel: int,
    exchange: str,
    routing_key: str,
    body: bytes = b"",
    properties: bytes = EMPTY_PROPERTIES,
    mandatory: bool = False,
    chunk: int = 131072 - 8,
) -> bytes:
    """basic.publish, its content header and the body in frames of ``chunk`` bytes."""
    publish = pika.spec.Basic.Publish(exchange=exchange, routing_key=routing_key, mandatory=mandatory)
    out = [frame(1, channel, method_payload(publish)), frame(2, channel, content_header(len(body), properties))]
    out += [frame(3, channel, body[i : i + chunk]) for i in range(0, len(body), chunk)]
    return b"".join(out)


def erlang_binary(data: bytes) -> str:
    """A binary as RabbitMQ's texts print it (printable ASCII as a string, else decimals)."""
    if data and all(32 <= b < 127 for b in data):
        return '<<"' + data.decode() + '">>'
    return "<<" + ",".join(map(str, data)) + ">>"


class Raw(RawClient):
    """A RawClient that sends any frame and reads content-bearing methods whole."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        super().__init__(port, timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connect(
        self,
        channels: tuple[int, ...] = (1,),
        frame_max: int = 131072,
        capabilities: dict[str, bool] | None = None,
        heartbeat: int = 0,
    ) -> Raw:
        tune = self.start(capabilities=capabilities)
        assert isinstance(tune, pika.spec.Connection.Tune), tune
        self.send_method(0, pika.spec.Connection.TuneOk(2047, frame_max, heartbeat))
        self.send_method(0, pika.spec.Connection.Open("/"))
        self.expect(pika.spec.Connection.OpenOk)
        for number in channels:
            self.open_channel(number)
        return self

    def send_frame(self, kind: int, channel: int, payload: bytes, end: int = FRAME_END) -> None:
        self.send(frame(kind, channel, payload, end))

    def publish(self, channel: int, exchange: str, routing_key: str, body: bytes = b"", **options: Any) -> None:
        self.send(publish_frames(channel, exchange, routing_key, body, **options))

    def call(self, channel: int, method: pika.spec.amqp_object.Method, reply: type) -> Any:
        self.send_method(channel, method)
        return self.expect(reply, channel)

    def read_content(self, channel: int) -> tuple[bytes, bytes]:
        """The content header payload and the whole body that follow a content method."""
        kind, number, header = self.read_frame()
        assert (kind, number) == (2, channel), (kind, number, header)
        size = struct.unpack_from(">Q", header, 4)[0]
        parts = []
        received = 0
        while received < size:
            kind, number, payload = self.read_frame()
            assert (kind, number) == (3, channel), (kind, number)
            parts.append(payload)
            received += len(payload)
        body = b"".join(parts)
        assert len(body) == size
        return header, body

    def get(self, channel: int, queue: str, no_ack: bool = True) -> tuple[Any, bytes, bytes] | None:
        """basic.get: (get-ok, content header payload, body), or None when the queue is empty."""
        self.send_method(channel, pika.spec.Basic.Get(queue=queue, no_ack=no_ack))
        number, method = self.read_method()
        assert number == channel
        if isinstance(method, pika.spec.Basic.GetEmpty):
            return None
        assert isinstance(method, pika.spec.Basic.GetOk), method
        header, body = self.read_content(channel)
        return method, header, body

    def connection_close(self) -> pika.spec.Connection.Close:
        """The server's connection.close; answer close-ok and see the socket end."""
        close = self.expect(pika.spec.Connection.Close, 0)
        self.send_method(0, pika.spec.Connection.CloseOk())
        self.read_until_closed(timeout=5)
        return close

    def channel_close(self, channel: int) -> pika.spec.Channel.Close:
        """The server's channel.close on ``channel``, answered with close-ok."""
        close = self.expect(pika.spec.Channel.Close, channel)
        self.send_method(channel, pika.spec.Channel.CloseOk())
        return close


@pytest.fixture
def raw(port: int) -> Iterator[Raw]:
    client = Raw(port).connect(channels=(1, 2))
    yield client
    client.close()


@pytest.fixture
def queue(port: int, name: str) -> Iterator[str]:
    """A durable-enough queue of the test's name, deleted afterwards."""
    with pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port)) as conn:
        conn.channel().queue_declare(name)
    yield name
    with pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port)) as conn:
        conn.channel().queue_delete(name)


def sync(raw: Raw, channel: int = 1) -> None:
    """A round trip on ``channel``: everything sent before it has been processed."""
    raw.call(channel, pika.spec.Basic.Qos(prefetch_count=0), pika.spec.Basic.QosOk)


def assert_close(close: Any, code: int, text: str, method_sig: tuple[int, int]) -> None:
    assert (close.reply_code, close.reply_text, (close.class_id, close.method_id)) == (code, text, method_sig)


# -- splitting and coalescing ---------------------------------------------------------------------


class Trickle(Raw):
    """Sends every byte in a write of its own."""

    writes = 0

    def send(self, data: bytes) -> None:
        for i in range(len(data)):
            self.sock.sendall(data[i : i + 1])
            self.writes += 1


def test_every_byte_in_its_own_tcp_write(port: int, queue: str) -> None:
    """Protocol header, handshake, channel.open, a publish and a get, sent one byte per
    write (TCP_NODELAY): the server reassembles every frame and the message comes back
    byte-for-byte."""
    client = Trickle(port)
    body = bytes(range(256)) * 3
    try:
        client.connect()
        client.publish(1, "", queue, body)
        got = client.get(1, queue)
        assert got is not None
        assert got[2] == body
        assert client.writes > len(body)
    finally:
        client.close()


@pytest.mark.parametrize("piece", [2, 3, 7, 13, 4099])
def test_frames_split_at_arbitrary_points(port: int, queue: str, piece: int) -> None:
    """Several publishes sent as one byte stream cut into pieces of a fixed odd size, so that
    the cuts fall inside frame headers, payloads and frame-end bytes alike."""
    client = Raw(port).connect()
    try:
        bodies = [bytes([i]) * (i * 97) for i in range(1, 8)]
        stream = b"".join(publish_frames(1, "", queue, body, chunk=300) for body in bodies)
        for start in range(0, len(stream), piece):
            client.send(stream[start : start + piece])
        received = []
        for _ in bodies:
            got = client.get(1, queue)
            assert got is not None
            received.append(got[2])
        assert received == bodies
        assert client.get(1, queue) is None
    finally:
        client.close()


def test_many_frames_in_one_write(raw: Raw, queue: str) -> None:
    """A hundred publishes and a declare coalesced into one write are all processed, in
    order."""
    stream = b"".join(publish_frames(1, "", queue, b"%03d" % i) for i in range(100))
    stream += frame(1, 1, method_payload(pika.spec.Queue.Declare(queue=queue, passive=True)))
    raw.send(stream)
    # (declare-ok's count may lag behind publishes in RabbitMQ; the gets below may not.)
    assert raw.expect(pika.spec.Queue.DeclareOk, 1).queue == queue
    got = [raw.get(1, queue) for _ in range(100)]
    assert [g[2] for g in got if g is not None] == [b"%03d" % i for i in range(100)]


def test_protocol_header_split_across_writes(port: int) -> None:
    client = Raw(port)
    try:
        for piece in (b"AM", b"QP\x00", b"\x00\x09", b"\x01"):
            client.send(piece)
        start = client.expect(pika.spec.Connection.Start)
        assert (start.version_major, start.version_minor) == (0, 9)
    finally:
        client.close()


def test_heartbeats_between_content_frames_are_fine(raw: Raw, queue: str) -> None:
    """Heartbeat frames on channel 0 may come between a publish's frames (RabbitMQ 3.10.8
    takes the message)."""
    heartbeat = frame(8, 0, b"")
    publish = pika.spec.Basic.Publish(exchange="", routing_key=queue)
    raw.send(
        frame(1, 1, method_payload(publish))
        + heartbeat
        + frame(2, 1, content_header(4))
        + heartbeat
        + frame(3, 1, b"ab")
        + heartbeat
        + frame(3, 1, b"cd")
    )
    got = raw.get(1, queue)
    assert got is not None and got[2] == b"abcd"


def test_content_of_two_channels_interleaved(raw: Raw, queue: str) -> None:
    """Each channel assembles its own content: two publishes whose frames alternate between
    channels 1 and 2 both arrive whole, and a method on channel 2 while channel 1 awaits its
    content header is answered (RabbitMQ 3.10.8)."""
    first = publish_frames(1, "", queue, b"one-" * 50, chunk=50)
    second = publish_frames(2, "", queue, b"two-" * 50, chunk=70)
    frames_1 = split_frames(first)
    frames_2 = split_frames(second)
    raw.send(frames_1[0])
    raw.call(2, pika.spec.Queue.Declare(queue=queue, passive=True), pika.spec.Queue.DeclareOk)
    interleaved = []
    for i in range(max(len(frames_1), len(frames_2))):
        if i + 1 < len(frames_1):
            interleaved.append(frames_1[i + 1])
        if i < len(frames_2):
            interleaved.append(frames_2[i])
    raw.send(b"".join(interleaved))
    sync(raw, 1)
    sync(raw, 2)
    bodies = set()
    for _ in range(2):
        got = raw.get(1, queue)
        assert got is not None
        bodies.add(got[2])
    assert bodies == {b"one-" * 50, b"two-" * 50}


def split_frames(stream: bytes) -> list[bytes]:
    out = []
    offset = 0
    while offset < len(stream):
        size = struct.unpack_from(">I", stream, offset + 3)[0]
        out.append(stream[offset : offset + 8 + size])
        offset += 8 + size
    return out


# -- the protocol header --------------------------------------------------------------------------


def test_legacy_0_9_protocol_header_is_accepted(port: int) -> None:
    """RabbitMQ 3.10.8 answers the old-style 0-9 header (``AMQP\\x01\\x01\\x00\\x09``) with
    connection.start 0-9 and carries on."""
    client = Raw(port)
    try:
        client.send(b"AMQP\x01\x01\x00\x09")
        start = client.expect(pika.spec.Connection.Start)
        assert (start.version_major, start.version_minor) == (0, 9)
    finally:
        client.close()


# -- channels that are not open -------------------------------------------------------------------


@pytest.mark.parametrize(
    "frames, method_sig",
    [
        ([frame(1, 5, method_payload(pika.spec.Basic.Qos(prefetch_count=1)))], (60, 10)),
        ([publish_frames(5, "", "q", b"body")], (60, 40)),
        ([frame(1, 5, method_payload(pika.spec.Channel.Close(200, "", 0, 0)))], (20, 40)),
        ([frame(1, 5, method_payload(pika.spec.Channel.CloseOk()))], (20, 41)),
        ([frame(1, 5, method_payload(pika.spec.Basic.Ack(1)))], (60, 80)),
    ],
    ids=["basic.qos", "basic.publish", "channel.close", "channel.close-ok", "basic.ack"],
)
def test_method_on_an_unopened_channel_is_504(port: int, frames: list[bytes], method_sig: tuple[int, int]) -> None:
    """Any method but channel.open on a channel that is not open: connection.close
    504 CHANNEL_ERROR - expected 'channel.open', naming that method (RabbitMQ 3.10.8); other
    connections carry on."""
    client = Raw(port).connect()
    bystander = Raw(port).connect()
    try:
        client.send(b"".join(frames))
        assert_close(client.connection_close(), 504, "CHANNEL_ERROR - expected 'channel.open'", method_sig)
        sync(bystander)
    finally:
        client.close()
        bystander.close()


@pytest.mark.parametrize("kind", [2, 3], ids=["header", "body"])
def test_content_on_an_unopened_channel_is_505(port: int, kind: int) -> None:
    """A content frame on a channel never opened: 505 UNEXPECTED_FRAME (0, 0) (RabbitMQ 3.10.8)."""
    client = Raw(port).connect()
    try:
        client.send_frame(kind, 5, content_header(1) if kind == 2 else b"x")
        close = client.connection_close()
        assert_close(close, 505, "UNEXPECTED_FRAME - expected method frame, got non method frame instead", (0, 0))
    finally:
        client.close()


# -- frame size -----------------------------------------------------------------------------------


def test_frame_payload_of_exactly_frame_max_is_accepted(raw: Raw, queue: str) -> None:
    """RabbitMQ 3.10.8 takes a body frame whose payload is frame_max bytes (its 8 bytes of
    slack over the spec's frame_max - 8), and so a message in one such frame."""
    body = bytes(range(256)) * 512  # 131072 bytes
    raw.publish(1, "", queue, body, chunk=131072)
    got = raw.get(1, queue)
    assert got is not None and got[2] == body


@pytest.mark.parametrize(
    "frame_max, kind, size", [(131072, 3, 131073), (131072, 1, 0x7FFFFFFF), (4096, 3, 4097), (4096, 1, 4097)]
)
def test_frame_larger_than_frame_max_is_501(port: int, frame_max: int, kind: int, size: int) -> None:
    """A frame header announcing a payload over frame_max: connection.close 501 FRAME_ERROR
    (0, 0) as soon as the 7-byte header arrives, in RabbitMQ 3.10.8's words."""
    client = Raw(port).connect(frame_max=frame_max)
    bystander = Raw(port).connect()
    try:
        client.send(struct.pack(">BHI", kind, 1, size))
        close = client.connection_close()
        text = f"FRAME_ERROR - type {kind}, all octets = <<>>: {{frame_too_large,{size},{frame_max - 8}}}"
        assert_close(close, 501, text, (0, 0))
        sync(bystander)
    finally:
        client.close()
        bystander.close()


def test_negotiated_frame_max_bounds_what_the_client_may_send(port: int, queue: str) -> None:
    """With frame_max 4096 agreed, a 4096-byte body frame is accepted (RabbitMQ 3.10.8)."""
    client = Raw(port).connect(frame_max=4096)
    try:
        body = b"z" * 10000
        client.publish(1, "", queue, body, chunk=4096)
        got = client.get(1, queue)
        assert got is not None and got[2] == body
    finally:
        client.close()


# -- malformed frames -----------------------------------------------------------------------------

QOS = method_payload(pika.spec.Basic.Qos(prefetch_count=1))


@pytest.mark.parametrize(
    "data, text",
    [
        (frame(1, 1, QOS, end=0), f"type 1, all octets = {erlang_binary(QOS)}: {{invalid_frame_end_marker,0}}"),
        (
            frame(1, 1, QOS, end=0xCF),
            f"type 1, all octets = {erlang_binary(QOS)}: {{invalid_frame_end_marker,\n{' ' * 51}207}}",
        ),
        (frame(1, 1, b"\x00\x3c"), "type 1, all octets = <<0,60>>: unknown_frame"),
        (frame(1, 1, b""), "type 1, all octets = <<>>: unknown_frame"),
        (frame(2, 1, b"\x00\x3c\x00\x00\x00\x00\x00\x01"), "type 2, all octets = <<0,60,0,0,0,0,0,1>>: unknown_frame"),
    ],
    ids=["frame-end-0", "frame-end-0xcf", "method-2-bytes", "method-empty", "header-8-bytes"],
)
def test_malformed_frame_is_501(raw: Raw, data: bytes, text: str) -> None:
    """Malformed frames: 501 FRAME_ERROR (0, 0) with RabbitMQ 3.10.8's text, which quotes the
    frame's octets as Erlang prints them (and breaks a long line as Erlang does)."""
    raw.send(data)
    assert_close(raw.connection_close(), 501, "FRAME_ERROR - " + text, (0, 0))


def test_arguments_that_do_not_decode_are_501(raw: Raw) -> None:
    """A queue.declare cut short: 501 FRAME_ERROR - cannot decode <<arguments>> (50, 10), as
    RabbitMQ 3.10.8."""
    payload = method_payload(pika.spec.Queue.Declare(queue="p"))[:8]
    raw.send_frame(1, 1, payload)
    assert_close(raw.connection_close(), 501, "FRAME_ERROR - cannot decode <<0,0,1,112>>", (50, 10))


def test_unknown_frame_type_is_501(raw: Raw) -> None:
    """A frame of unknown type 4: 501 quoting the frame, as RabbitMQ 3.10.8."""
    raw.send_frame(4, 1, b"abc")
    assert_close(raw.connection_close(), 501, 'FRAME_ERROR - type 4, all octets = <<"abc">>: unknown_frame', (0, 0))


# -- content out of place -------------------------------------------------------------------------

PUBLISH = frame(1, 1, method_payload(pika.spec.Basic.Publish(exchange="", routing_key="nowhere")))
EXPECTED_HEADER = "UNEXPECTED_FRAME - expected content header for class 60, got non content header frame instead"
EXPECTED_BODY = "UNEXPECTED_FRAME - expected content body, got non content body frame instead"
EXPECTED_METHOD = "UNEXPECTED_FRAME - expected method frame, got non method frame instead"
QOS_FRAME = frame(1, 1, QOS)

CONTENT_OUT_OF_PLACE = {
    "body-instead-of-header": (PUBLISH + frame(3, 1, b"x"), EXPECTED_HEADER, (60, 40)),
    "header-of-class-50": (
        PUBLISH + frame(2, 1, content_header(1, class_id=50)),
        "UNEXPECTED_FRAME - expected content header for class 60, got one for class 50 instead",
        (60, 40),
    ),
    "header-with-weight-1": (PUBLISH + frame(2, 1, content_header(1, weight=1)), EXPECTED_HEADER, (60, 40)),
    "method-instead-of-body": (
        PUBLISH + frame(2, 1, content_header(5)) + frame(3, 1, b"ab") + QOS_FRAME,
        EXPECTED_BODY,
        (60, 40),
    ),
    "header-instead-of-body": (
        PUBLISH + frame(2, 1, content_header(5)) + frame(3, 1, b"ab") + frame(2, 1, content_header(5)),
        EXPECTED_BODY,
        (60, 40),
    ),
    "body-after-empty-content": (PUBLISH + frame(2, 1, content_header(0)) + frame(3, 1, b"x"), EXPECTED_METHOD, (0, 0)),
    "body-overrun-then-method": (
        PUBLISH + frame(2, 1, content_header(5)) + frame(3, 1, b"abcdef") + QOS_FRAME,
        EXPECTED_BODY,
        (60, 40),
    ),
    "header-on-another-channel": (PUBLISH + frame(2, 2, content_header(1)), EXPECTED_METHOD, (0, 0)),
    "body-on-another-channel": (
        PUBLISH + frame(2, 1, content_header(3)) + frame(3, 2, b"abc"),
        EXPECTED_METHOD,
        (0, 0),
    ),
    "header-without-publish": (frame(2, 1, content_header(1)), EXPECTED_METHOD, (0, 0)),
}


@pytest.mark.parametrize("case", list(CONTENT_OUT_OF_PLACE))
def test_content_frame_out_of_place_is_505(port: int, raw: Raw, case: str) -> None:
    """Content frames where another frame was due, or another frame where content was due:
    connection.close 505 UNEXPECTED_FRAME with RabbitMQ 3.10.8's text and ids.  (A body longer
    than its header said never completes; RabbitMQ notices at the next non-body frame.)"""
    data, text, method_sig = CONTENT_OUT_OF_PLACE[case]
    bystander = Raw(port).connect()
    try:
        raw.send(data)
        assert_close(raw.connection_close(), 505, text, method_sig)
        sync(bystander)
    finally:
        bystander.close()


def test_overlong_body_is_not_taken(raw: Raw, queue: str) -> None:
    """A body frame longer than the header announced does not complete the message; other
    channels go on (RabbitMQ 3.10.8)."""
    publish = pika.spec.Basic.Publish(exchange="", routing_key=queue)
    raw.send(frame(1, 1, method_payload(publish)) + frame(2, 1, content_header(5)) + frame(3, 1, b"abcdef"))
    declare_ok = raw.call(2, pika.spec.Queue.Declare(queue=queue, passive=True), pika.spec.Queue.DeclareOk)
    assert declare_ok.message_count == 0


# -- a channel the server is closing --------------------------------------------------------------


def test_methods_on_a_closing_channel_are_ignored_until_close_ok(raw: Raw, name: str) -> None:
    """After the server's channel.close (here 404 for a missing queue) the channel ignores
    everything but close/close-ok: a declare, a publish with content, a qos and an ack of an
    unknown tag have no effect and no reply.  After close-ok the number opens again and the
    queue was never created (RabbitMQ 3.10.8)."""
    raw.send_method(1, pika.spec.Queue.Declare(queue=name, passive=True))
    close = raw.expect(pika.spec.Channel.Close, 1)
    assert (close.reply_code, close.class_id, close.method_id) == (404, 50, 10)
    raw.send(
        frame(1, 1, method_payload(pika.spec.Queue.Declare(queue=name)))
        + publish_frames(1, "", name, b"ignored")
        + QOS_FRAME
        + frame(1, 1, method_payload(pika.spec.Basic.Ack(99)))
    )
    sync(raw, 2)  # channel 2 answers: everything sent on channel 1 before has been seen
    raw.send_method(1, pika.spec.Channel.CloseOk())
    raw.open_channel(1)
    raw.send_method(1, pika.spec.Queue.Declare(queue=name, passive=True))
    close = raw.channel_close(1)
    assert (close.reply_code, close.reply_text) == (404, f"NOT_FOUND - no queue '{name}' in vhost '/'")
    sync(raw, 2)


def test_channel_close_crossing_the_servers_close(raw: Raw, name: str) -> None:
    """A client that answers the server's channel.close with a channel.close of its own gets
    close-ok (RabbitMQ 3.10.8); the connection goes on."""
    raw.send_method(1, pika.spec.Queue.Declare(queue=name, passive=True))
    raw.expect(pika.spec.Channel.Close, 1)
    raw.send_method(1, pika.spec.Channel.Close(200, "", 0, 0))
    raw.expect(pika.spec.Channel.CloseOk, 1)
    sync(raw, 2)


def test_close_ok_after_crossing_closes_is_taken(raw: Raw, name: str) -> None:
    """The client closes a channel while the server is closing it for an error (the two
    channel.close cross), then answers the server's close with close-ok, as the Go client does:
    the close-ok is taken, the connection and its other channels go on, and the channel number
    can be opened again (RabbitMQ 3.10.8; amqp091-go's TestChannelExceptionWithCloseIssue43)."""
    raw.send(
        frame(1, 1, method_payload(pika.spec.Queue.Declare(queue=name, passive=True)))
        + frame(1, 1, method_payload(pika.spec.Channel.Close(200, "bye", 0, 0)))
    )
    assert raw.expect(pika.spec.Channel.Close, 1).reply_code == 404
    raw.expect(pika.spec.Channel.CloseOk, 1)
    raw.send_method(1, pika.spec.Channel.CloseOk())
    sync(raw, 2)
    raw.open_channel(1)
    sync(raw, 1)


def test_channel_open_on_a_closing_channel_is_504(raw: Raw, name: str) -> None:
    """channel.open on a channel the server is closing (before close-ok): connection.close
    504 CHANNEL_ERROR - second 'channel.open' seen (20, 10) (RabbitMQ 3.10.8)."""
    raw.send_method(1, pika.spec.Queue.Declare(queue=name, passive=True))
    raw.expect(pika.spec.Channel.Close, 1)
    raw.send_method(1, pika.spec.Channel.Open())
    assert_close(raw.connection_close(), 504, "CHANNEL_ERROR - second 'channel.open' seen", (20, 10))


def test_other_channels_are_untouched_by_a_channel_error(raw: Raw, queue: str, name: str) -> None:
    """A channel error on channel 1 leaves channel 2's consumer and unacked message alone."""
    raw.call(2, pika.spec.Basic.Consume(queue=queue, consumer_tag="c2"), pika.spec.Basic.ConsumeOk)
    raw.publish(1, "", queue, b"before")
    deliver = raw.expect(pika.spec.Basic.Deliver, 2)
    assert raw.read_content(2)[1] == b"before"
    raw.send_method(1, pika.spec.Queue.Declare(queue=name + "-missing", passive=True))
    raw.channel_close(1)
    raw.open_channel(1)
    raw.publish(1, "", queue, b"after")
    assert raw.expect(pika.spec.Basic.Deliver, 2).delivery_tag == deliver.delivery_tag + 1
    assert raw.read_content(2)[1] == b"after"
    raw.send_method(2, pika.spec.Basic.Ack(0, multiple=True))
    raw.call(2, pika.spec.Basic.Cancel(consumer_tag="c2"), pika.spec.Basic.CancelOk)
    declare_ok = raw.call(2, pika.spec.Queue.Declare(queue=queue, passive=True), pika.spec.Queue.DeclareOk)
    assert declare_ok.message_count == 0


def test_field_table_helper_matches_pika() -> None:
    """The hand encoder agrees with pika for the types pika writes."""
    items = {"s": ("S", "x"), "i": ("I", -5), "l": ("l", 2**40), "t": ("t", True), "v": ("V", None)}
    pieces: list[bytes] = []
    pika.data.encode_table(pieces, {"s": "x", "i": -5, "l": 2**40, "t": True, "v": None})
    assert table(items) == b"".join(pieces)
    assert field("D", (2, 314)) == b"D\x02\x00\x00\x01\x3a"
