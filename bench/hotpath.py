"""In-process hot-path benchmark: publish -> route -> enqueue -> deliver -> ack, no sockets.

Two connections with fake transports are driven by feeding them bytes, as the event loop
would, so the figure is the broker's own cost per message (µs/msg), free of client and
kernel noise.  Use it to compare implementations of the hot path; the end-to-end figures
come from warren-perf.

    python bench/hotpath.py [--messages N] [--size B] [--ack] [--profile]
    python bench/hotpath.py --stream --data-dir /tmp/x   # a stream queue, its log on disk
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import struct
import time

from warrenmq.amqp import spec
from warrenmq.amqp.frames import FRAME_HEADER, FrameReader, method_frame
from warrenmq.config import Settings
from warrenmq.server.connection import Connection
from warrenmq.server.node import Node


class FakeTransport:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.closed = False

    def write(self, data: bytes) -> None:
        self.size += len(data)
        self.chunks.append(data)

    def get_extra_info(self, name: str, default: object = None) -> object:
        return {"peername": ("127.0.0.1", 1), "sockname": ("127.0.0.1", 5672)}.get(name, default)

    def set_write_buffer_limits(self, high: int = 0, low: int = 0) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def handshake(conn: Connection, transport: FakeTransport) -> None:
    conn.connection_made(transport)  # type: ignore[arg-type]
    conn.data_received(b"AMQP\x00\x00\x09\x01")
    start_ok = spec.ConnectionStartOk({}, "PLAIN", b"\x00guest\x00guest", "en_US")
    conn.data_received(method_frame(0, start_ok))
    conn.data_received(method_frame(0, spec.ConnectionTuneOk(2047, 131072, 0)))
    conn.data_received(method_frame(0, spec.ConnectionOpen("/")))
    conn.data_received(method_frame(1, spec.ChannelOpen()))


def publish_frames(queue: str, body: bytes, count: int) -> bytes:
    method = method_frame(1, spec.BasicPublish(0, "", queue))
    header_payload = struct.pack(">HHQ", 60, 0, len(body)) + b"\x00\x00"
    header = FRAME_HEADER.pack(2, 1, len(header_payload)) + header_payload + b"\xce"
    frame = method + header + FRAME_HEADER.pack(3, 1, len(body)) + body + b"\xce"
    return frame * count


async def run(
    messages: int,
    size: int,
    manual_ack: bool,
    profile: bool,
    prefetch: int,
    ack_every: int,
    stream: bool = False,
    data_dir: str = "",
) -> None:
    loop = asyncio.get_running_loop()
    node = Node(Settings(data_dir=data_dir) if data_dir else Settings(), loop)
    if data_dir:
        node.open_store()
    node.broker.ensure_default()
    pub_t, con_t = FakeTransport(), FakeTransport()
    publisher, consumer = Connection(node), Connection(node)
    handshake(publisher, pub_t)
    handshake(consumer, con_t)
    if stream:  # a stream: durable, consumed from its first offset with manual acks
        declare = spec.QueueDeclare(queue="bench", durable=True, arguments={"x-queue-type": "stream"})
        consumer.data_received(method_frame(1, declare))
        consume = spec.BasicConsume(queue="bench", consumer_tag="c", arguments={"x-stream-offset": "first"})
    else:
        consumer.data_received(method_frame(1, spec.QueueDeclare(queue="bench")))
        consume = spec.BasicConsume(queue="bench", consumer_tag="c", no_ack=not manual_ack)
    if prefetch:
        consumer.data_received(method_frame(1, spec.BasicQos(0, prefetch, False)))
    consumer.data_received(method_frame(1, consume))
    await asyncio.sleep(0)
    data = publish_frames("bench", b"x" * size, 1000)
    chunk = 256 * 1024
    pieces = [data[i : i + chunk] for i in range(0, len(data), chunk)]
    reader = FrameReader(0)
    rounds = messages // 1000
    profiler = cProfile.Profile() if profile else None
    start = time.perf_counter()
    if profiler:
        profiler.enable()
    delivered = 0
    client_time = 0.0
    for _ in range(rounds):
        for piece in pieces:
            publisher.data_received(piece)
        await asyncio.sleep(0)  # flushes
        while manual_ack:
            client_start = time.perf_counter()
            acks = []
            for chunk_out in con_t.chunks:
                for ftype, _ch, payload in reader.feed(chunk_out):
                    if ftype == 1 and payload[:4] == b"\x00\x3c\x00\x3c":
                        delivered += 1
                        if delivered % ack_every == 0:
                            acks.append(method_frame(1, spec.BasicAck(delivered, ack_every > 1)))
            con_t.chunks.clear()
            data_acks = b"".join(acks)
            client_time += time.perf_counter() - client_start  # the client's work is not the broker's
            if not acks:
                break
            consumer.data_received(data_acks)
            await asyncio.sleep(0)
    if profiler:
        profiler.disable()
    elapsed = time.perf_counter() - start - client_time
    node.store.close()  # waits for the store's fsync thread
    total = rounds * 1000
    print(
        f"{total} messages of {size} B, {'manual ack' if manual_ack else 'auto-ack'}: "
        f"{elapsed / total * 1e6:.2f} µs/msg, {total / elapsed:,.0f} msg/s (one core, no I/O)"
    )
    print(f"consumer received {con_t.size:,} bytes")
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(18)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--ack", action="store_true", help="manual acks")
    parser.add_argument("--ack-every", type=int, default=100, help="with --ack: one ack (multiple) per N deliveries")
    parser.add_argument("--prefetch", type=int, default=0, help="basic.qos prefetch count (0: none)")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument("--stream", action="store_true", help="a stream queue (implies --ack, prefetch 1000)")
    parser.add_argument("--data-dir", default="", help="open a message store there (else none)")
    args = parser.parse_args()
    if args.stream:
        args.ack = True
        args.prefetch = args.prefetch or 1000
    coro = run(
        args.messages, args.size, args.ack, args.profile, args.prefetch, args.ack_every, args.stream, args.data_dir
    )
    if args.uvloop:
        import uvloop

        uvloop.run(coro)
    else:
        asyncio.run(coro)


if __name__ == "__main__":
    main()
