"""Socket-level fuzzer: many connections sending random and mutated AMQP to a running broker.

    python -m tests.fuzz.socket_fuzz [--duration 60] [--connections 40] [--seed N] [--port P]

Without ``--port`` it starts a WarrenMQ of its own (persistent, in a temporary directory) and
afterwards checks that its log holds no traceback.  Either way it checks at the end that the
broker still serves a well-behaved client (declare, publish with confirms, get) and that its
memory stayed bounded.  Each connection plays one of these, chosen at random:

* garbage from the first byte, or a protocol header followed by garbage;
* a handshake abandoned, stalled, or answered out of order;
* a full handshake, then a stream of frames: well-formed methods on a few channels (declares,
  binds, publishes with content, consumes, gets, acks, tx, confirms...), some of them mutated
  (a byte flipped, cut short, a lying size field, a wrong frame-end byte), some with sizes
  announcing gigabytes, interleaved with random frames; cut into random pieces.

The frames are built with pika's codec, not WarrenMQ's.  Exit status 0 when the broker came
through; the counts of what it answered are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import struct
import sys
import tempfile
import time
from collections import Counter
from typing import Any

import pika
import pika.frame
import pika.spec

HEADER = b"AMQP\x00\x00\x09\x01"
QUEUES = [f"fz-q{i}" for i in range(6)] + ["", "amq.foo", "amq.rabbitmq.reply-to"]
EXCHANGES = [f"fz-x{i}" for i in range(4)] + ["", "amq.direct", "amq.topic", "amq.fanout", "amq.headers", "amq.nope"]
ARGS: list[dict[str, Any]] = [
    {},
    {"x-message-ttl": 100},
    {"x-max-length": 3, "x-overflow": "reject-publish"},
    {"x-dead-letter-exchange": "fz-x0", "x-dead-letter-routing-key": "dl"},
    {"x-queue-type": "quorum"},
    {"x-max-priority": 5},
    {"x-expires": 500},
    {"x-message-ttl": "x"},
    {"x-match": "any", "a": 1},
    {"alternate-exchange": "fz-x1"},
    {"x-single-active-consumer": True},
]


def frame(kind: int, channel: int, payload: bytes, end: int = 0xCE) -> bytes:
    return struct.pack(">BHI", kind, channel, len(payload)) + payload + bytes([end])


def method(channel: int, m: Any) -> bytes:
    return pika.frame.Method(channel, m).marshal()


class Generator:
    """Frames for one connection, from a seeded random source."""

    def __init__(self, rng: random.Random) -> None:
        self.r = rng

    def name(self, pool: list[str]) -> str:
        return self.r.choice(pool)

    def properties(self) -> pika.spec.BasicProperties:
        r = self.r
        return pika.spec.BasicProperties(
            delivery_mode=r.choice([None, 1, 2, 7]),
            priority=r.choice([None, 0, 9, 255]),
            expiration=r.choice([None, "0", "50", "abc", "-1"]),
            headers=r.choice(
                [None, {}, {"a": 1, "CC": ["fz-q1"]}, {"x-delay": 5}, {"BCC": ["fz-q2"], "n": [1, {"t": True}]}]
            ),
            reply_to=r.choice([None, "amq.rabbitmq.reply-to", "fz-q3"]),
            user_id=r.choice([None, None, "guest", "bob"]),
            timestamp=r.choice([None, 0, 2**63 - 1]),
        )

    def publish(self, channel: int) -> bytes:
        r = self.r
        body = r.randbytes(r.choice([0, 1, 10, 1000, 20000]))
        m = pika.spec.Basic.Publish(
            exchange=self.name(EXCHANGES),
            routing_key=self.name(QUEUES),
            mandatory=r.random() < 0.3,
            immediate=r.random() < 0.02,
        )
        out = method(channel, m)
        size = len(body)
        if r.random() < 0.05:
            size = r.choice([size + 1, max(size - 1, 0), 2**62, 2**31])  # a lying header
        header = pika.frame.Header(channel, size, self.properties()).marshal()
        out += header
        step = r.choice([len(body) or 1, 100, 4096])
        for i in range(0, len(body), step):
            out += frame(3, channel, body[i : i + step])
        return out

    def one_method(self, channel: int) -> bytes:
        r, s = self.r, pika.spec
        q, x = self.name(QUEUES), self.name(EXCHANGES)
        flag = r.random() < 0.3
        choices = [
            lambda: method(channel, s.Channel.Open()),
            lambda: method(channel, s.Channel.Close(reply_code=200, reply_text="bye", class_id=0, method_id=0)),
            lambda: method(channel, s.Channel.CloseOk()),
            lambda: method(channel, s.Channel.Flow(active=flag)),
            lambda: method(
                channel,
                s.Queue.Declare(
                    queue=q,
                    passive=flag,
                    durable=r.random() < 0.3,
                    exclusive=r.random() < 0.3,
                    auto_delete=r.random() < 0.3,
                    arguments=r.choice(ARGS),
                ),
            ),
            lambda: method(
                channel, s.Queue.Bind(queue=q, exchange=x, routing_key=self.name(QUEUES), arguments=r.choice(ARGS))
            ),
            lambda: method(channel, s.Queue.Unbind(queue=q, exchange=x, routing_key=self.name(QUEUES))),
            lambda: method(channel, s.Queue.Purge(queue=q)),
            lambda: method(channel, s.Queue.Delete(queue=q, if_unused=flag, if_empty=r.random() < 0.3)),
            lambda: method(
                channel,
                s.Exchange.Declare(
                    exchange=x,
                    type=r.choice(["direct", "topic", "fanout", "headers", "foo"]),
                    passive=flag,
                    arguments=r.choice(ARGS),
                ),
            ),
            lambda: method(channel, s.Exchange.Delete(exchange=x, if_unused=flag)),
            lambda: method(channel, s.Exchange.Bind(destination=self.name(EXCHANGES), source=x, routing_key="k")),
            lambda: method(channel, s.Exchange.Unbind(destination=self.name(EXCHANGES), source=x, routing_key="k")),
            lambda: self.publish(channel),
            lambda: self.publish(channel),
            lambda: self.publish(channel),
            lambda: method(
                channel,
                s.Basic.Consume(
                    queue=q,
                    consumer_tag=r.choice(["", "t1", "t2"]),
                    no_ack=flag,
                    exclusive=r.random() < 0.1,
                    arguments=r.choice([{}, {"x-priority": 3}, {"x-priority": "x"}]),
                ),
            ),
            lambda: method(channel, s.Basic.Cancel(consumer_tag=r.choice(["", "t1", "t2"]))),
            lambda: method(channel, s.Basic.Get(queue=q, no_ack=flag)),
            lambda: method(channel, s.Basic.Ack(delivery_tag=r.choice([0, 1, 2, 5, 99]), multiple=flag)),
            lambda: method(
                channel, s.Basic.Nack(delivery_tag=r.choice([0, 1, 2, 99]), multiple=flag, requeue=r.random() < 0.5)
            ),
            lambda: method(channel, s.Basic.Reject(delivery_tag=r.choice([1, 2, 99]), requeue=flag)),
            lambda: method(channel, s.Basic.Qos(prefetch_count=r.choice([0, 1, 10]), global_qos=flag)),
            lambda: method(channel, s.Basic.Recover(requeue=True)),
            lambda: method(channel, s.Confirm.Select()),
            lambda: method(channel, s.Tx.Select()),
            lambda: method(channel, s.Tx.Commit()),
            lambda: method(channel, s.Tx.Rollback()),
            lambda: method(0, s.Connection.UpdateSecret(new_secret=b"x", reason="r")),
            lambda: frame(8, 0, b""),
        ]
        return r.choice(choices)()

    def mutate(self, data: bytes) -> bytes:
        r = self.r
        out = bytearray(data)
        op = r.randrange(7)
        if not out:
            return bytes(r.randbytes(r.randrange(1, 20)))
        at = r.randrange(len(out))
        if op == 0:
            out[at] = r.randrange(256)
        elif op == 1:
            del out[at:]
        elif op == 2:
            out[at:at] = r.randbytes(r.randrange(1, 8))
        elif op == 3 and len(out) >= 7:
            out[3:7] = struct.pack(">I", r.choice([0, 1, 2**31 - 1, 2**32 - 1, 131073, len(out)]))  # size field
        elif op == 4:
            out[-1] = r.choice([0x00, 0xCF, 0xFF])  # frame end
        elif op == 5 and len(out) >= 3:
            out[0] = r.choice([0, 2, 3, 4, 8, 9, 255])  # frame type
        else:
            out[1:3] = struct.pack(">H", r.choice([0, 1, 2, 5, 2047, 65535]))  # channel
        return bytes(out)

    def stream(self, damage: float) -> bytes:
        """Up to 40 methods; each mutated with probability ``damage``, or replaced by garbage."""
        r = self.r
        out = b""
        for _ in range(r.randrange(1, 40)):
            channel = r.choice([1, 1, 1, 2, 3])
            data = self.one_method(channel)
            p = r.random()
            if p < damage:
                data = self.mutate(data)
            elif p < damage * 1.25:
                data = r.randbytes(r.randrange(1, 40))
            out += data
        return out


async def drain(reader: asyncio.StreamReader, counts: Counter[str]) -> None:
    """Read and classify what the broker sends until it closes."""
    buffer = b""
    try:
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                counts["server closed"] += 1
                return
            buffer += chunk
            if buffer.startswith(HEADER):
                counts["protocol header back"] += 1
                buffer = buffer[8:]
            while len(buffer) >= 7:
                kind, _channel, size = struct.unpack_from(">BHI", buffer)
                if len(buffer) < size + 8:
                    break
                payload, buffer = buffer[7 : 7 + size], buffer[8 + size :]
                if kind == 1 and payload[:4] == b"\x00\x0a\x00\x32":
                    counts[f"connection.close {struct.unpack_from('>H', payload, 4)[0]}"] += 1
                elif kind == 1 and payload[:4] == b"\x00\x14\x00\x28":
                    counts[f"channel.close {struct.unpack_from('>H', payload, 4)[0]}"] += 1
            if len(buffer) > 1 << 20:
                buffer = b""
    except (ConnectionError, OSError):
        counts["reset"] += 1


async def one_connection(port: int, rng: random.Random, counts: Counter[str]) -> None:
    gen = Generator(rng)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        counts["connect failed"] += 1
        return
    drainer = asyncio.create_task(drain(reader, counts))
    kind = rng.random()
    try:
        if kind < 0.1:
            counts["garbage"] += 1
            data = rng.randbytes(rng.randrange(1, 400))
            if rng.random() < 0.5:
                data = HEADER + data
            writer.write(data)
        elif kind < 0.2:
            counts["handshake abuse"] += 1
            start_ok = method(
                0,
                pika.spec.Connection.StartOk(
                    client_properties={"capabilities": {"authentication_failure_close": True}},
                    mechanism=rng.choice(["PLAIN", "AMQPLAIN", "EXTERNAL", "FOO"]),
                    response=rng.choice([b"\x00guest\x00guest", b"\x00guest\x00wrong", b"", rng.randbytes(20)]),
                    locale="en_US",
                ),
            )
            tune_ok = method(
                0,
                pika.spec.Connection.TuneOk(
                    channel_max=rng.choice([0, 1, 2047, 4000]),
                    frame_max=rng.choice([0, 4095, 4096, 131072, 200000]),
                    heartbeat=0,
                ),
            )
            opening = method(0, pika.spec.Connection.Open(virtual_host=rng.choice(["/", "nope", ""])))
            parts = [HEADER, start_ok, tune_ok, opening, method(1, pika.spec.Channel.Open())]
            if rng.random() < 0.3:
                rng.shuffle(parts)
            parts = parts[: rng.randrange(1, len(parts) + 1)]
            writer.write(b"".join(gen.mutate(p) if rng.random() < 0.2 else p for p in parts))
        else:
            counts["session"] += 1
            capabilities = {"authentication_failure_close": True, "consumer_cancel_notify": True}
            start_ok = method(
                0,
                pika.spec.Connection.StartOk(
                    client_properties={"capabilities": capabilities},
                    mechanism="PLAIN",
                    response=b"\x00guest\x00guest",
                    locale="en_US",
                ),
            )
            tune_ok = method(0, pika.spec.Connection.TuneOk(channel_max=2047, frame_max=131072, heartbeat=0))
            writer.write(HEADER + start_ok + tune_ok + method(0, pika.spec.Connection.Open(virtual_host="/")))
            writer.write(b"".join(method(n, pika.spec.Channel.Open()) for n in (1, 2, 3)))
            damage = rng.choice([0.0, 0.005, 0.02, 0.1])  # how broken this client is
            for _ in range(rng.randrange(1, 6)):
                data = gen.stream(damage)
                while data:
                    cut = rng.choice([len(data), rng.randrange(1, 64), rng.randrange(1, 4096)])
                    writer.write(data[:cut])
                    data = data[cut:]
                    await writer.drain()
                await asyncio.sleep(rng.choice([0, 0, 0.001, 0.01]))
        await writer.drain()
        await asyncio.wait_for(asyncio.shield(drainer), timeout=rng.choice([0.01, 0.05, 0.3]))
    except (TimeoutError, ConnectionError, OSError):
        pass
    finally:
        drainer.cancel()
        if rng.random() < 0.3:
            transport = writer.transport
            transport.abort()
        else:
            writer.close()


async def fuzz(port: int, duration: float, connections: int, seed: int) -> Counter[str]:
    counts: Counter[str] = Counter()
    deadline = time.monotonic() + duration

    async def worker(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        while time.monotonic() < deadline:
            await one_connection(port, random.Random(rng.random()), counts)
            counts["connections"] += 1

    await asyncio.gather(*(worker(i) for i in range(connections)))
    return counts


def healthy(port: int) -> None:
    """A normal client still gets everything done."""
    conn = pika.BlockingConnection(
        pika.ConnectionParameters("127.0.0.1", port, connection_attempts=3, socket_timeout=10)
    )
    ch = conn.channel()
    ch.confirm_delivery()
    declared = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", declared, b"still here")
    _, _, body = ch.basic_get(declared, auto_ack=True)
    assert body == b"still here", body
    conn.close()


def rss_of(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of fuzzing (default 60)")
    parser.add_argument("--connections", type=int, default=40, help="connections at once (default 40)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--port", type=int, default=0, help="fuzz a broker already running here")
    parser.add_argument("--max-rss-mb", type=int, default=1024, help="fail if the broker's RSS passes this")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    print(f"seed {seed}, {args.duration:.0f} s, {args.connections} connections at once", flush=True)
    server = None
    data_dir = None
    port = args.port
    if not port:
        from tests.server import ServerProcess

        data_dir = tempfile.TemporaryDirectory(prefix="warren-fuzz-")
        server = ServerProcess(__import__("pathlib").Path(data_dir.name), "--fsync", "false").start()
        port = server.port
    peak = 0
    failures: list[str] = []
    try:
        pid = server.proc.pid if server is not None and server.proc is not None else 0

        async def run() -> Counter[str]:
            task = asyncio.create_task(fuzz(port, args.duration, args.connections, seed))
            nonlocal peak
            while not task.done():
                if pid:
                    peak = max(peak, rss_of(pid))
                await asyncio.sleep(0.2)
            return await task

        counts = asyncio.run(run())
        for key, value in sorted(counts.items()):
            print(f"  {key}: {value}")
        try:
            healthy(port)
            print("a well-behaved client is still served")
        except Exception as exc:  # report, do not trace
            failures.append(f"the broker no longer serves a normal client: {exc!r}")
        if peak:
            print(f"broker peak RSS {peak >> 20} MiB")
            if peak > args.max_rss_mb << 20:
                failures.append(f"broker RSS reached {peak >> 20} MiB")
    finally:
        if server is not None:
            code = server.stop()
            if code != 0:
                failures.append(f"the broker exited with {code}")
            log = server.log
            if "Traceback" in log:
                at = log.index("Traceback")
                failures.append("a traceback in the broker's log:\n" + log[max(0, at - 300) : at + 3000])
            odd = [line for line in log.splitlines() if "did not decode" in line or "internal error" in line]
            if odd:
                print(f"{len(odd)} connections closed with 541 on input that did not decode, e.g.:")
                for line in sorted(set(line.split(": ", 2)[-1] for line in odd))[:10]:
                    print("   ", line)
        if data_dir is not None:
            data_dir.cleanup()
    for failure in failures:
        print("FAIL:", failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
