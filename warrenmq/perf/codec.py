"""Just enough AMQP 0-9-1 wire encoding for a load generator.

Builders return complete frames as ``bytes`` so callers can concatenate and
write them in one go.  Field values (strings, tables) live in ``fields``.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any

from .fields import bits, longstr, shortstr, table

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"

FRAME_METHOD = 1
FRAME_HEADER = 2
FRAME_BODY = 3
FRAME_HEARTBEAT = 8
FRAME_END = 0xCE
FRAME_END_BYTE = b"\xce"
FRAME_OVERHEAD = 8  # type(1) + channel(2) + size(4) + frame-end(1)

# Frame header: type, channel, payload size.
FRAME_HDR = struct.Struct(">BHI")
# class-id and method-id read together as one 32-bit key, e.g. BASIC_DELIVER.
METHOD_KEY = struct.Struct(">I")
U16 = struct.Struct(">H")
U64 = struct.Struct(">Q")  # delivery tags, body sizes, timestamps


def method_key(class_id: int, method_id: int) -> int:
    return (class_id << 16) | method_id


CONNECTION_START = method_key(10, 10)
CONNECTION_START_OK = method_key(10, 11)
CONNECTION_TUNE = method_key(10, 30)
CONNECTION_TUNE_OK = method_key(10, 31)
CONNECTION_OPEN = method_key(10, 40)
CONNECTION_OPEN_OK = method_key(10, 41)
CONNECTION_CLOSE = method_key(10, 50)
CONNECTION_CLOSE_OK = method_key(10, 51)
CONNECTION_BLOCKED = method_key(10, 60)
CONNECTION_UNBLOCKED = method_key(10, 61)
CHANNEL_OPEN = method_key(20, 10)
CHANNEL_OPEN_OK = method_key(20, 11)
CHANNEL_FLOW = method_key(20, 20)
CHANNEL_FLOW_OK = method_key(20, 21)
CHANNEL_CLOSE = method_key(20, 40)
CHANNEL_CLOSE_OK = method_key(20, 41)
EXCHANGE_DECLARE = method_key(40, 10)
EXCHANGE_DECLARE_OK = method_key(40, 11)
EXCHANGE_DELETE = method_key(40, 20)
EXCHANGE_DELETE_OK = method_key(40, 21)
QUEUE_DECLARE = method_key(50, 10)
QUEUE_DECLARE_OK = method_key(50, 11)
QUEUE_BIND = method_key(50, 20)
QUEUE_BIND_OK = method_key(50, 21)
QUEUE_PURGE = method_key(50, 30)
QUEUE_PURGE_OK = method_key(50, 31)
QUEUE_DELETE = method_key(50, 40)
QUEUE_DELETE_OK = method_key(50, 41)
BASIC_QOS = method_key(60, 10)
BASIC_QOS_OK = method_key(60, 11)
BASIC_CONSUME = method_key(60, 20)
BASIC_CONSUME_OK = method_key(60, 21)
BASIC_CANCEL = method_key(60, 30)
BASIC_CANCEL_OK = method_key(60, 31)
BASIC_PUBLISH = method_key(60, 40)
BASIC_RETURN = method_key(60, 50)
BASIC_DELIVER = method_key(60, 60)
BASIC_ACK = method_key(60, 80)
BASIC_NACK = method_key(60, 120)
CONFIRM_SELECT = method_key(85, 10)
CONFIRM_SELECT_OK = method_key(85, 11)

# Basic content-header property flags (bit 15 is the first property).
FLAG_CONTENT_TYPE = 1 << 15
FLAG_DELIVERY_MODE = 1 << 12


def method_frame(channel: int, key: int, args: bytes = b"") -> bytes:
    payload = METHOD_KEY.pack(key) + args
    return FRAME_HDR.pack(FRAME_METHOD, channel, len(payload)) + payload + FRAME_END_BYTE


def heartbeat_frame() -> bytes:
    return FRAME_HDR.pack(FRAME_HEARTBEAT, 0, 0) + FRAME_END_BYTE


# -- method builders (client -> server) --------------------------------------


def connection_start_ok(
    username: str,
    password: str,
    client_properties: Mapping[str, Any],
    locale: str = "en_US",
) -> bytes:
    response = b"\x00" + username.encode() + b"\x00" + password.encode()
    args = table(client_properties) + shortstr("PLAIN") + longstr(response) + shortstr(locale)
    return method_frame(0, CONNECTION_START_OK, args)


def connection_tune_ok(channel_max: int, frame_max: int, heartbeat: int) -> bytes:
    return method_frame(0, CONNECTION_TUNE_OK, struct.pack(">HIH", channel_max, frame_max, heartbeat))


def connection_open(vhost: str) -> bytes:
    return method_frame(0, CONNECTION_OPEN, shortstr(vhost) + shortstr("") + b"\x00")


def connection_close(code: int = 200, text: str = "bye") -> bytes:
    return method_frame(0, CONNECTION_CLOSE, U16.pack(code) + shortstr(text) + b"\x00\x00\x00\x00")


def connection_close_ok() -> bytes:
    return method_frame(0, CONNECTION_CLOSE_OK)


def channel_open(channel: int) -> bytes:
    return method_frame(channel, CHANNEL_OPEN, shortstr(""))


def channel_close(channel: int, code: int = 200, text: str = "bye") -> bytes:
    return method_frame(channel, CHANNEL_CLOSE, U16.pack(code) + shortstr(text) + b"\x00\x00\x00\x00")


def channel_close_ok(channel: int) -> bytes:
    return method_frame(channel, CHANNEL_CLOSE_OK)


def channel_flow_ok(channel: int, active: bool) -> bytes:
    return method_frame(channel, CHANNEL_FLOW_OK, bits(active))


def exchange_declare(
    channel: int,
    name: str,
    kind: str,
    *,
    durable: bool = False,
    auto_delete: bool = False,
) -> bytes:
    args = b"\x00\x00" + shortstr(name) + shortstr(kind)
    args += bits(False, durable, auto_delete, False, False) + table(None)
    return method_frame(channel, EXCHANGE_DECLARE, args)


def exchange_delete(channel: int, name: str) -> bytes:
    return method_frame(channel, EXCHANGE_DELETE, b"\x00\x00" + shortstr(name) + bits(False, False))


def queue_declare(
    channel: int,
    name: str,
    *,
    durable: bool = False,
    exclusive: bool = False,
    auto_delete: bool = False,
    passive: bool = False,
    arguments: Mapping[str, Any] | None = None,
) -> bytes:
    args = b"\x00\x00" + shortstr(name)
    args += bits(passive, durable, exclusive, auto_delete, False) + table(arguments)
    return method_frame(channel, QUEUE_DECLARE, args)


def queue_bind(channel: int, queue: str, exchange: str, routing_key: str = "") -> bytes:
    args = b"\x00\x00" + shortstr(queue) + shortstr(exchange) + shortstr(routing_key)
    return method_frame(channel, QUEUE_BIND, args + b"\x00" + table(None))


def queue_purge(channel: int, queue: str) -> bytes:
    return method_frame(channel, QUEUE_PURGE, b"\x00\x00" + shortstr(queue) + b"\x00")


def queue_delete(channel: int, queue: str) -> bytes:
    return method_frame(channel, QUEUE_DELETE, b"\x00\x00" + shortstr(queue) + bits(False, False, False))


def basic_qos(channel: int, prefetch_count: int, global_: bool = False) -> bytes:
    return method_frame(channel, BASIC_QOS, struct.pack(">IH", 0, prefetch_count) + bits(global_))


def basic_consume(
    channel: int, queue: str, consumer_tag: str, *, no_ack: bool, arguments: Mapping[str, Any] | None = None
) -> bytes:
    args = b"\x00\x00" + shortstr(queue) + shortstr(consumer_tag)
    args += bits(False, no_ack, False, False) + table(arguments)
    return method_frame(channel, BASIC_CONSUME, args)


def basic_cancel(channel: int, consumer_tag: str) -> bytes:
    return method_frame(channel, BASIC_CANCEL, shortstr(consumer_tag) + b"\x00")


def basic_cancel_ok(channel: int, consumer_tag: str) -> bytes:
    return method_frame(channel, BASIC_CANCEL_OK, shortstr(consumer_tag))


def confirm_select(channel: int) -> bytes:
    return method_frame(channel, CONFIRM_SELECT, b"\x00")


# basic.ack is written once per delivery (or per N), so it gets its own Struct:
# frame header, class/method, delivery-tag, multiple bit, frame-end.
ACK_FRAME = struct.Struct(">BHIIQBB")
ACK_PAYLOAD_SIZE = 4 + 8 + 1


def basic_ack(channel: int, delivery_tag: int, multiple: bool = False) -> bytes:
    return ACK_FRAME.pack(
        FRAME_METHOD,
        channel,
        ACK_PAYLOAD_SIZE,
        BASIC_ACK,
        delivery_tag,
        int(multiple),
        FRAME_END,
    )


def publish_prefix(
    channel: int,
    exchange: str,
    routing_key: str,
    body_size: int,
    *,
    persistent: bool = False,
    mandatory: bool = False,
) -> bytes:
    """basic.publish method frame + content header frame for one message."""
    args = b"\x00\x00" + shortstr(exchange) + shortstr(routing_key) + bits(mandatory, False)
    method = method_frame(channel, BASIC_PUBLISH, args)
    props = U16.pack(FLAG_DELIVERY_MODE) + b"\x02" if persistent else U16.pack(0)
    header_payload = struct.pack(">HHQ", 60, 0, body_size) + props
    header = FRAME_HDR.pack(FRAME_HEADER, channel, len(header_payload)) + header_payload + FRAME_END_BYTE
    return method + header


def body_frames(channel: int, body: bytes, frame_max: int) -> bytes:
    """Split ``body`` into body frames no larger than ``frame_max``."""
    chunk = frame_max - FRAME_OVERHEAD
    out = bytearray()
    for start in range(0, len(body), chunk):
        piece = body[start : start + chunk]
        out += FRAME_HDR.pack(FRAME_BODY, channel, len(piece))
        out += piece
        out += FRAME_END_BYTE
    return bytes(out)


def publish_message(
    channel: int,
    exchange: str,
    routing_key: str,
    body: bytes,
    frame_max: int,
    *,
    persistent: bool = False,
    mandatory: bool = False,
) -> bytes:
    """Every frame of one published message, ready to be written as is."""
    prefix = publish_prefix(
        channel,
        exchange,
        routing_key,
        len(body),
        persistent=persistent,
        mandatory=mandatory,
    )
    return prefix + body_frames(channel, body, frame_max)
