"""Message content: body framing, properties and field tables, the size limit.

Bodies of any size are split into body frames of at most frame_max - 8 bytes of payload and
reassembled byte-for-byte.  The content header a consumer (or basic.get, or basic.return)
receives is byte-for-byte the one published: every property, and field tables with every
type (nested tables, arrays, decimals, timestamps, byte arrays, signed and unsigned integers
of each width, floats, doubles, booleans, void) -- compared as raw frames, since client
libraries would normalise them.  A message over the configured max_message_size is refused
with channel.close 406 (60, 40).  Checked against RabbitMQ 3.10.8 with this same code
(except the tests that configure a server of their own).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator
from typing import Any

import amqp
import amqp.exceptions
import pika
import pika.exceptions
import pika.spec
import pytest

from tests.interop.test_confirms import Confirms
from tests.interop.test_raw_protocol import Raw, content_header, frame, method_payload, shortstr, table
from tests.server import ServerProcess

FRAME_MAX = 131072
CHUNK = FRAME_MAX - 8


@pytest.fixture
def raw(port: int, name: str) -> Iterator[Raw]:
    """Channels 1 and 2; queue ``name`` declared on 1 (exclusive).  Tests publish on channel
    2 and read on channel 1, after a round trip on 2 (or, where RabbitMQ needs it to have
    the message in the queue by then, a confirm)."""
    client = Raw(port).connect(channels=(1, 2))
    client.call(1, pika.spec.Queue.Declare(queue=name, exclusive=True), pika.spec.Queue.DeclareOk)
    yield client
    client.close()


def body_frame_sizes(raw: Raw, channel: int) -> tuple[bytes, list[int], bytes]:
    """After a content method: the header payload, each body frame's size, the body."""
    kind, number, header = raw.read_frame()
    assert (kind, number) == (2, channel)
    size = struct.unpack_from(">Q", header, 4)[0]
    sizes, parts = [], []
    while sum(sizes) < size:
        kind, number, payload = raw.read_frame()
        assert (kind, number) == (3, channel)
        sizes.append(len(payload))
        parts.append(payload)
    return header, sizes, b"".join(parts)


# -- bodies -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size, frames",
    [(0, []), (1, [1]), (CHUNK, [CHUNK]), (CHUNK + 1, [CHUNK, 1]), (3 * CHUNK + 5, [CHUNK, CHUNK, CHUNK, 5])],
    ids=["empty", "one-byte", "frame-max", "frame-max+1", "three-frames-and-a-bit"],
)
def test_body_framing(raw: Raw, name: str, size: int, frames: list[int]) -> None:
    """A body is delivered in frames of frame_max - 8 bytes and a last shorter one; an
    empty body has no body frame at all (the next frame is the reply to our next method)."""
    body = bytes((i * 7) % 256 for i in range(size))
    raw.call(2, pika.spec.Confirm.Select(), pika.spec.Confirm.SelectOk)
    raw.publish(2, "", name, body)
    raw.expect(pika.spec.Basic.Ack, 2)
    raw.send_method(1, pika.spec.Basic.Get(queue=name, no_ack=True))
    raw.expect(pika.spec.Basic.GetOk, 1)
    header, sizes, got = body_frame_sizes(raw, 1)
    assert struct.unpack_from(">Q", header, 4)[0] == size
    assert sizes == frames
    assert got == body
    raw.call(1, pika.spec.Basic.Qos(), pika.spec.Basic.QosOk)


def test_body_sent_in_tiny_and_empty_frames(raw: Raw, name: str) -> None:
    """A body published as 1000 one-byte frames with empty frames among them (RabbitMQ
    3.10.8 accepts empty body frames) is reassembled."""
    body = bytes(range(250)) * 4
    publish = pika.spec.Basic.Publish(exchange="", routing_key=name)
    frames = [frame(1, 2, method_payload(publish)), frame(2, 2, content_header(len(body)))]
    for i in range(len(body)):
        frames.append(frame(3, 2, body[i : i + 1]))
        if i % 100 == 0:
            frames.append(frame(3, 2, b""))
    raw.call(2, pika.spec.Confirm.Select(), pika.spec.Confirm.SelectOk)
    raw.send(b"".join(frames))
    raw.expect(pika.spec.Basic.Ack, 2)
    got = raw.get(1, name)
    assert got is not None and got[2] == body


def test_64_mib_body_with_pika(port: int, name: str) -> None:
    """64 MiB through pika: 513 body frames each way, reassembled byte-for-byte."""
    body = hashlib.sha256(b"seed").digest() * (64 * 1024 * 1024 // 32)
    assert len(body) == 64 * 1024 * 1024
    with pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port)) as conn:
        channel = conn.channel()
        channel.queue_declare(name, exclusive=True)
        channel.confirm_delivery()
        channel.basic_publish("", name, body)
        method, _, got = channel.basic_get(name, auto_ack=True)
        assert method is not None
        assert len(got) == len(body)
        assert hashlib.sha256(got).digest() == hashlib.sha256(body).digest()


# -- properties and field tables --------------------------------------------------------------------

EVERY_TYPE: dict[str, tuple[str, Any]] = {
    "longstr": ("S", "καλημέρα".encode()),
    "bytes": ("x", bytes(range(256))),
    "bool-true": ("t", True),
    "bool-false": ("t", False),
    "int8": ("b", -128),
    "uint8": ("B", 255),
    "int16": ("s", -32768),
    "uint16": ("u", 65535),
    "int32": ("I", -(2**31)),
    "uint32": ("i", 2**32 - 1),
    "int64": ("l", -(2**63)),
    "float": ("f", 1.5),
    "float-nan-free": ("f", -0.0),
    "double": ("d", 3.141592653589793),
    "double-tiny": ("d", 5e-324),
    "decimal": ("D", (2, 31415)),
    "decimal-negative": ("D", (5, -1)),
    "timestamp": ("T", 1_700_000_000),
    "void": ("V", None),
    "table": ("F", {"inner": ("F", {"deep": ("A", [("I", 1), ("F", {}), ("A", [])])}), "n": ("u", 7)}),
    "empty-table": ("F", {}),
    "array": ("A", [("S", b"a"), ("l", 2), ("d", 0.5), ("t", True), ("V", None), ("D", (1, 5)), ("T", 0)]),
    "empty-array": ("A", []),
    "same-key-order": ("S", b"kept"),
    "": ("S", b"empty key"),
}


def every_property(headers: bytes) -> bytes:
    return (
        b"\xff\xfc"
        + shortstr("application/octet-stream")
        + shortstr("identity")
        + headers
        + b"\x01"  # delivery-mode
        + b"\x09"  # priority
        + shortstr("c" * 255)  # correlation-id of the longest short string
        + shortstr("reply")
        + shortstr("3600000")  # expiration
        + shortstr("")  # message-id: empty but present
        + struct.pack(">Q", 2**40)  # timestamp
        + shortstr("t")
        + shortstr("guest")  # user-id (must be the authenticated user)
        + shortstr("app")
        + shortstr("cl")
    )


PROPERTY_CASES = {
    "every-type": every_property(table(EVERY_TYPE)),
    "empty-headers": b"\x20\x00" + table({}),
    "no-properties": b"\x00\x00",
    "only-headers": b"\x20\x00" + table(EVERY_TYPE),
    "some-properties": b"\xb0\x00" + shortstr("text/plain") + table({"a": ("I", 1)}) + b"\x02",
}


@pytest.mark.parametrize("case", list(PROPERTY_CASES))
def test_content_header_delivered_byte_for_byte(raw: Raw, name: str, case: str) -> None:
    """The content header's properties reach basic.get, a consumer's basic.deliver and a
    basic.return exactly as published, byte for byte."""
    properties = PROPERTY_CASES[case]
    raw.call(2, pika.spec.Confirm.Select(), pika.spec.Confirm.SelectOk)
    raw.publish(2, "", name, b"body", properties=properties)
    raw.publish(2, "", name, b"body", properties=properties)
    raw.publish(2, "", name + "-nowhere", b"body", properties=properties, mandatory=True)
    confirms = Confirms(raw, 2)
    confirms.wait_for(3)
    returned, body = confirms.others[1]
    assert isinstance(confirms.others[0][1], pika.spec.Basic.Return)
    assert (returned[12:], body) == (properties, b"body")
    got = raw.get(1, name)
    assert got is not None and got[1] == content_header(4, properties)
    raw.call(1, pika.spec.Basic.Consume(queue=name, no_ack=True, consumer_tag="c"), pika.spec.Basic.ConsumeOk)
    raw.expect(pika.spec.Basic.Deliver, 1)
    assert raw.read_content(1) == (content_header(4, properties), b"body")


def test_pika_properties_round_trip(port: int, name: str) -> None:
    """Every property as pika decodes it, with the header types pika writes."""
    import datetime
    import decimal

    headers = {
        "str": "text",
        "bytes": b"\x00\xff",
        "int": -5,
        "long": 2**40,
        "bool": False,
        "decimal": decimal.Decimal("3.14"),
        "timestamp": datetime.datetime(2024, 1, 2, 3, 4, 5),
        "nested": {"list": [1, "two", {"three": None}]},
        "none": None,
    }
    sent = pika.BasicProperties(
        content_type="application/json",
        content_encoding="utf-8",
        headers=headers,
        delivery_mode=2,
        priority=3,
        correlation_id="corr",
        reply_to="replies",
        expiration="60000",
        message_id="id",
        timestamp=1_700_000_000,
        type="kind",
        user_id="guest",
        app_id="app",
        cluster_id="cluster",
    )
    with pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port)) as conn:
        channel = conn.channel()
        channel.queue_declare(name, exclusive=True)
        channel.confirm_delivery()
        channel.basic_publish("", name, b"{}", sent)
        _, received, _ = channel.basic_get(name, auto_ack=True)
    for attribute in (
        "content_type",
        "content_encoding",
        "delivery_mode",
        "priority",
        "correlation_id",
        "reply_to",
        "expiration",
        "message_id",
        "timestamp",
        "type",
        "user_id",
        "app_id",
        "cluster_id",
    ):
        assert getattr(received, attribute) == getattr(sent, attribute), attribute
    assert received.headers["bytes"] == b"\x00\xff"
    assert received.headers["decimal"] == decimal.Decimal("3.14")
    assert received.headers["timestamp"] == datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    assert received.headers["nested"] == {"list": [1, b"two", {"three": None}]} or received.headers["nested"] == {
        "list": [1, "two", {"three": None}]
    }
    assert {k: v for k, v in received.headers.items() if k not in ("bytes", "decimal", "timestamp", "nested")} == {
        "str": b"text" if isinstance(received.headers["str"], bytes) else "text",
        "int": -5,
        "long": 2**40,
        "bool": False,
        "none": None,
    }


# -- max_message_size --------------------------------------------------------------------------------


def test_message_over_max_message_size_is_406(fresh_server: ServerProcess, name: str) -> None:
    """--max-message-size 100000: a body of exactly that size is taken, one byte more is
    channel.close 406 PRECONDITION_FAILED (60, 40) in RabbitMQ 3.10.8's words; the
    connection's other channel carries on."""
    fresh_server.args = ["--max-message-size", "100000"]
    fresh_server.start()
    client = Raw(fresh_server.port).connect(channels=(1, 2))
    try:
        client.call(1, pika.spec.Queue.Declare(queue=name, exclusive=True), pika.spec.Queue.DeclareOk)
        client.call(1, pika.spec.Confirm.Select(), pika.spec.Confirm.SelectOk)
        client.publish(1, "", name, b"x" * 100000)
        assert client.expect(pika.spec.Basic.Ack, 1).delivery_tag == 1
        client.publish(1, "", name, b"x" * 100001)
        close = client.channel_close(1)
        assert (close.reply_code, close.reply_text) == (
            406,
            "PRECONDITION_FAILED - message size 100001 is larger than configured max size 100000",
        )
        assert (close.class_id, close.method_id) == (60, 40)
        got = client.get(2, name)
        assert got is not None and len(got[2]) == 100000
    finally:
        client.close()

    conn = amqp.Connection(f"127.0.0.1:{fresh_server.port}")
    conn.connect()
    try:
        channel = conn.channel()
        channel.basic_publish(amqp.Message(b"y" * 100001), routing_key=name)
        with pytest.raises(amqp.exceptions.PreconditionFailed) as error:
            channel.queue_declare("", exclusive=True)
        assert error.value.method_sig == (60, 40)
    finally:
        conn.close()
