#!/usr/bin/env python3
"""Reading a long stream from its first offset: time, rate and the broker's memory.

Appends N messages to a new stream queue (no consumer), then one consumer reads it all
from ``x-stream-offset: first`` (manual acks, a prefetch, one multiple ack every so often)
while the broker's RSS is sampled.  With ``--data-dir`` (WarrenMQ's) and ``--cold``, the
stream's segment files are first dropped from the OS page cache (posix_fadvise on those
files only), so that the read comes from the disk.

    python bench/stream_read.py --uri amqp://guest:guest@127.0.0.1:5673/%2F --broker-pid auto \\
        --messages 10000000 --data-dir /tmp/wd --cold
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from warrenmq.perf import operations as ops  # noqa: E402 - after the path set-up above
from warrenmq.perf.connection import ACK_MULTIPLE, broker_description, connect  # noqa: E402
from warrenmq.perf.options import resolve_broker_pid  # noqa: E402
from warrenmq.perf.procstat import RssSampler, cpu_seconds, tree_rss_bytes  # noqa: E402
from warrenmq.perf.publisher import Publisher, PublishTarget  # noqa: E402
from warrenmq.perf.uri import parse_uri  # noqa: E402

CH = 1


async def count(uri: str, queue: str) -> int:
    conn = await connect(parse_uri(uri), name="stream-read admin")
    try:
        await ops.channel_open(conn, CH)
        return (await ops.queue_declare(conn, CH, queue, passive=True))[1]
    finally:
        await conn.close()


async def fill(uri: str, queue: str, messages: int, size: int, segment: int | None) -> tuple[str, float]:
    conn = await connect(parse_uri(uri), name="stream-read publisher")
    try:
        await ops.channel_open(conn, CH)
        arguments: dict[str, Any] = {"x-queue-type": "stream"}
        if segment:
            arguments["x-stream-max-segment-size-bytes"] = segment
        await ops.queue_declare(conn, CH, queue, durable=True, arguments=arguments)
        publisher = Publisher(conn, CH, [PublishTarget("", queue)], size, limit=messages)
        started = time.monotonic()
        await publisher.run()
        await ops.queue_declare(conn, CH, queue, passive=True)  # a round trip: all were taken
        return broker_description(conn.server_properties), time.monotonic() - started
    finally:
        await conn.close()


async def read(uri: str, queue: str, messages: int, prefetch: int, ack_every: int, timeout: float) -> float:
    conn = await connect(parse_uri(uri), name="stream-read consumer")
    try:
        await ops.channel_open(conn, CH)
        conn.enable_consumer(ack_mode=ACK_MULTIPLE, ack_every=ack_every)
        await ops.basic_qos(conn, CH, prefetch)
        started = time.monotonic()
        await ops.basic_consume(conn, CH, queue, "reader", no_ack=False, arguments={"x-stream-offset": "first"})
        while conn.delivered < messages:
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"read {conn.delivered} of {messages} in {timeout:g} s")
            await asyncio.sleep(0.01)
        return time.monotonic() - started
    finally:
        await conn.close()


async def delete(uri: str, queue: str) -> None:
    conn = await connect(parse_uri(uri), name="stream-read admin")
    try:
        await ops.channel_open(conn, CH)
        await ops.queue_delete(conn, CH, queue)
    finally:
        await conn.close()


def evict(data_dir: Path) -> int:
    """Drop the streams' segment files from the page cache; the bytes they hold."""
    total = 0
    for path in (data_dir / "streams").glob("*/*.seg"):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)  # clean pages only can be dropped
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            total += os.fstat(fd).st_size
        finally:
            os.close(fd)
    return total


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--uri", required=True)
    p.add_argument("--broker-pid", default="auto", help="PID, or 'auto' (whoever listens on the port)")
    p.add_argument("--messages", type=int, default=1_000_000)
    p.add_argument("--size", type=int, default=16)
    p.add_argument("--prefetch", type=int, default=1000)
    p.add_argument("--ack-every", type=int, default=100)
    p.add_argument("--segment-size", type=int, help="x-stream-max-segment-size-bytes (default: the broker's)")
    p.add_argument("--data-dir", type=Path, help="the broker's data directory (WarrenMQ), for --cold")
    p.add_argument("--cold", action="store_true", help="drop the stream's files from the page cache first")
    p.add_argument("--timeout", type=float, default=1800.0)
    p.add_argument("--keep", action="store_true", help="do not delete the stream afterwards")
    args = p.parse_args()
    pid = resolve_broker_pid(args.uri) if args.broker_pid == "auto" else int(args.broker_pid)
    queue = f"stream-read-{secrets.token_hex(4)}"
    result: dict[str, Any] = {"messages": args.messages, "size": args.size, "prefetch": args.prefetch}
    try:
        broker, publish_s = asyncio.run(fill(args.uri, queue, args.messages, args.size, args.segment_size))
        result.update(broker=broker, publish_s=round(publish_s, 2), publish_rate=round(args.messages / publish_s))
        deadline = time.monotonic() + 60
        while (held := asyncio.run(count(args.uri, queue))) < args.messages and time.monotonic() < deadline:
            time.sleep(0.5)  # RabbitMQ counts a stream with a few seconds' lag
        result["held"] = held
        if args.cold:
            if args.data_dir is None:
                p.error("--cold needs --data-dir")
            result["evicted_bytes"] = evict(args.data_dir)
        rss_before = tree_rss_bytes(pid)
        sampler = RssSampler(pid, 0.05).start()
        cpu_before = cpu_seconds(pid) or 0.0
        read_s = asyncio.run(read(args.uri, queue, args.messages, args.prefetch, args.ack_every, args.timeout))
        cpu_after = cpu_seconds(pid) or 0.0
        sampler.stop()
        result.update(
            read_s=round(read_s, 2),
            read_rate=round(args.messages / read_s),
            broker_cpu_pct=round(100 * (cpu_after - cpu_before) / read_s, 1),
            rss_before_read_mib=round((rss_before or 0) / 2**20, 1),
            rss_peak_during_read_mib=round((sampler.peak() or 0) / 2**20, 1),
        )
    finally:
        if not args.keep:
            asyncio.run(delete(args.uri, queue))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
