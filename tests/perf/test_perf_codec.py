"""The codec and the connection's frame loop, without a broker."""

from __future__ import annotations

import asyncio
import random
import struct
import time
from typing import Any

from warrenmq.perf import codec as c
from warrenmq.perf import fields as f
from warrenmq.perf.connection import ACK_EACH, ACK_MULTIPLE, ACK_NONE, AmqpConnection, broker_description
from warrenmq.perf.uri import AmqpUri


def test_table_round_trip() -> None:
    values: dict[str, Any] = {
        "s": "text",
        "i": 7,
        "big": 2**40,
        "neg": -3,
        "t": True,
        "f": False,
        "d": 1.5,
        "nested": {"a": "b"},
        "list": [1, "two"],
        "none": None,
    }
    decoded, end = f.read_table(f.table(values), 0)
    assert decoded == values
    assert end == len(f.table(values))


def test_empty_table() -> None:
    assert f.table(None) == b"\x00\x00\x00\x00"
    assert f.read_table(b"\x00\x00\x00\x00", 0) == ({}, 4)


def test_method_frame_layout() -> None:
    frame = c.queue_declare(3, "q", durable=True)
    ftype, ch, size = c.FRAME_HDR.unpack_from(frame, 0)
    assert (ftype, ch, size + 8) == (c.FRAME_METHOD, 3, len(frame))
    assert c.METHOD_KEY.unpack_from(frame, 7)[0] == c.QUEUE_DECLARE
    assert frame[-1] == c.FRAME_END


def test_basic_ack_frame_matches_generic_encoder() -> None:
    generic = c.method_frame(5, c.BASIC_ACK, struct.pack(">QB", 99, 1))
    assert c.basic_ack(5, 99, multiple=True) == generic


def test_large_bodies_are_split_at_frame_max() -> None:
    frames = c.body_frames(1, bytes(10_000), frame_max=4096)
    sizes = []
    off = 0
    while off < len(frames):
        _, _, size = c.FRAME_HDR.unpack_from(frames, off)
        sizes.append(size)
        off += size + 8
    assert sizes == [4088, 4088, 1824]


def test_persistent_header_sets_delivery_mode_2() -> None:
    prefix = c.publish_prefix(1, "", "q", 16, persistent=True)
    header = prefix[-(7 + 15 + 1) :]
    ftype, _, size = c.FRAME_HDR.unpack_from(header, 0)
    cls, weight, body_size, flags = struct.unpack_from(">HHQH", header, 7)
    assert (ftype, size, cls, weight, body_size) == (c.FRAME_HEADER, 15, 60, 0, 16)
    assert (flags, header[7 + 14]) == (c.FLAG_DELIVERY_MODE, 2)


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


def deliveries(count: int, body_size: int = 16, stamp: int | None = None) -> bytes:
    out = bytearray()
    for tag in range(1, count + 1):
        args = f.shortstr("ctag-1") + c.U64.pack(tag) + b"\x00" + f.shortstr("") + f.shortstr("perf-q")
        out += c.method_frame(1, c.BASIC_DELIVER, args)
        header = struct.pack(">HHQH", 60, 0, body_size, 0)
        out += c.FRAME_HDR.pack(c.FRAME_HEADER, 1, len(header)) + header + c.FRAME_END_BYTE
        body = (c.U64.pack(stamp) if stamp is not None else b"") + bytes(body_size - (8 if stamp is not None else 0))
        out += c.body_frames(1, body, 131072)
    return bytes(out)


def feed(conn: AmqpConnection, stream: bytes, seed: int = 1) -> None:
    rng = random.Random(seed)
    off = 0
    while off < len(stream):
        step = rng.randint(1, 300)
        conn.data_received(stream[off : off + step])
        off += step


def ack_frames(written: list[bytes]) -> list[tuple[int, int]]:
    data = b"".join(written)
    acks = []
    for off in range(0, len(data), c.ACK_FRAME.size):
        _, _, _, key, tag, multiple, _ = c.ACK_FRAME.unpack_from(data, off)
        assert key == c.BASIC_ACK
        acks.append((tag, multiple))
    return acks


def consumer(ack_mode: int, ack_every: int = 1, latency: bool = False) -> tuple[AmqpConnection, FakeTransport]:
    conn = AmqpConnection(AmqpUri())
    transport = FakeTransport()
    conn.transport = transport  # type: ignore[assignment]
    conn.enable_consumer(ack_mode=ack_mode, ack_every=ack_every, measure_latency=latency)
    return conn, transport


def test_fast_path_counts_deliveries_across_arbitrary_chunks() -> None:
    async def run() -> None:
        conn, transport = consumer(ACK_NONE)
        feed(conn, deliveries(500))
        assert conn.delivered == 500
        assert transport.written == []

    asyncio.run(run())


def test_ack_each_acks_every_tag_in_order() -> None:
    async def run() -> None:
        conn, transport = consumer(ACK_EACH)
        feed(conn, deliveries(300), seed=2)
        assert ack_frames(transport.written) == [(t, 0) for t in range(1, 301)]

    asyncio.run(run())


def test_multi_ack_every_n() -> None:
    async def run() -> None:
        conn, transport = consumer(ACK_MULTIPLE, ack_every=100)
        feed(conn, deliveries(350), seed=3)
        assert ack_frames(transport.written) == [(100, 1), (200, 1), (300, 1)]

    asyncio.run(run())


def test_latency_is_read_from_the_body_timestamp() -> None:
    async def run() -> None:
        conn, _ = consumer(ACK_NONE, latency=True)
        sent = time.monotonic_ns() - 5_000_000  # "sent" 5 ms ago
        feed(conn, deliveries(50, stamp=sent), seed=4)
        assert len(conn.latencies) == 50
        assert all(5_000_000 <= v < 5_000_000_000 for v in conn.latencies)

    asyncio.run(run())


def test_confirms_reach_the_listener() -> None:
    class Listener:
        def __init__(self) -> None:
            self.seen: list[tuple[int, bool, bool]] = []

        def on_confirm(self, tag: int, multiple: bool, nack: bool) -> None:
            self.seen.append((tag, multiple, nack))

    async def run() -> None:
        conn, _ = consumer(ACK_NONE)
        listener = Listener()
        conn._confirms = listener
        stream = c.basic_ack(1, 10, multiple=True) + c.method_frame(1, c.BASIC_NACK, struct.pack(">QB", 11, 0))
        feed(conn, stream, seed=5)
        assert listener.seen == [(10, True, False), (11, False, True)]

    asyncio.run(run())


def test_broker_close_fails_waiters() -> None:
    async def run() -> None:
        conn, transport = consumer(ACK_NONE)
        fut = conn._expect(1, c.QUEUE_DECLARE_OK)
        close = c.method_frame(0, c.CONNECTION_CLOSE, struct.pack(">H", 320) + f.shortstr("bye") + b"\0\0\0\0")
        conn.data_received(close)
        assert fut.done() and "320" in str(fut.exception())
        assert transport.written == [c.connection_close_ok()]

    asyncio.run(run())


def test_reports_name_the_broker_by_its_server_properties() -> None:
    assert broker_description({"product": "RabbitMQ", "version": "3.10.8"}) == "RabbitMQ 3.10.8"
    warren = {"product": "RabbitMQ", "version": "3.13.7", "warrenmq_version": "0.1.0"}
    assert broker_description(warren) == "WarrenMQ 0.1.0 (as RabbitMQ 3.13.7)"
    assert broker_description({}) == "unknown broker"
