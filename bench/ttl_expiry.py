"""Expiry of a million messages must not stall the event loop: the longest pause, measured.

A queue is filled with N messages (default 1,000,000) that all become due together, then
they expire while a probe connection does a basic.get round trip on an empty queue every
10 ms and records the worst one: every connection shares the broker's one event loop, so
the worst probe round trip is the longest pause the expiry caused.  The same probe is run
before the fill (the idle baseline) so the figure can be read against it.

Two ways to make the messages due at once:

``--mode blocked`` (default): one message without a TTL at the head, then N messages with a
per-message ``expiration``.  Expiry is head-only (as RabbitMQ), so they wait behind it, all
due, until a basic.get takes the head message: then N messages expire at once.

``--mode queue-ttl``: a queue with ``x-message-ttl`` (``--ttl-ms``, longer than the fill);
the messages expire in publish order as their deadlines pass, while nothing else happens.

    python -P bench/ttl_expiry.py [--messages N] [--mode blocked|queue-ttl] [--persistent]
                                  [--dead-letter] [--no-persistence] [--port P]

By default it starts its own warren-server (with a temporary data directory, so that the
backlog pages to disk as it would in production; ``--no-persistence`` keeps it in memory)
and stops it afterwards; ``--port`` uses a broker that is already running.  Not part of
``make test``.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from warrenmq.perf import codec
from warrenmq.perf.fields import shortstr, table

FRAME_MAX = 131072
_HDR = struct.Struct(">BHI")


class Client:
    """A blocking AMQP connection speaking just what this benchmark needs."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.sock.sendall(codec.PROTOCOL_HEADER)
        self.expect(codec.CONNECTION_START)
        self.sock.sendall(codec.connection_start_ok("guest", "guest", {"product": "ttl_expiry"}))
        self.expect(codec.CONNECTION_TUNE)
        self.sock.sendall(codec.connection_tune_ok(2047, FRAME_MAX, 0) + codec.connection_open("/"))
        self.expect(codec.CONNECTION_OPEN_OK)
        self.sock.sendall(codec.channel_open(1))
        self.expect(codec.CHANNEL_OPEN_OK)

    def frame(self) -> tuple[int, bytes]:
        while True:
            if len(self.buf) >= 7:
                kind, _channel, size = _HDR.unpack_from(self.buf)
                if len(self.buf) >= size + 8:
                    payload = bytes(self.buf[7 : 7 + size])
                    del self.buf[: size + 8]
                    return kind, payload
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise EOFError("the broker closed the connection")
            self.buf += chunk

    def method(self) -> tuple[int, bytes]:
        """The next method frame (content frames and heartbeats skipped)."""
        while True:
            kind, payload = self.frame()
            if kind == codec.FRAME_METHOD:
                key = codec.METHOD_KEY.unpack_from(payload)[0]
                if key == codec.CHANNEL_CLOSE or key == codec.CONNECTION_CLOSE:
                    raise RuntimeError(f"closed by the broker: {payload[6:]!r}")
                return key, payload

    def expect(self, key: int) -> bytes:
        got, payload = self.method()
        assert got == key, f"expected method {key:#x}, got {got:#x}"
        return payload

    def declare(self, queue: str, arguments: dict[str, object] | None = None, passive: bool = False) -> int:
        """queue.declare; returns the ready message count."""
        bits = 1 if passive else 0
        args = b"\x00\x00" + shortstr(queue) + bytes([bits]) + table(arguments or {})
        self.sock.sendall(codec.method_frame(1, codec.QUEUE_DECLARE, args))
        payload = self.expect(codec.QUEUE_DECLARE_OK)
        n = payload[4]
        return int(struct.unpack_from(">I", payload, 5 + n)[0])

    def get(self, queue: str) -> bool:
        """basic.get (no-ack); True when a message came."""
        self.sock.sendall(codec.method_frame(1, codec.method_key(60, 70), b"\x00\x00" + shortstr(queue) + b"\x01"))
        key, _ = self.method()
        return key == codec.method_key(60, 71)

    def close(self) -> None:
        self.sock.close()


def publish_frames(queue: str, body: bytes, expiration: str | None, persistent: bool) -> bytes:
    """Every frame of one message, with an expiration property when given."""
    args = b"\x00\x00" + shortstr("") + shortstr(queue) + b"\x00"
    method = codec.method_frame(1, codec.BASIC_PUBLISH, args)
    flags = 0
    props = b""
    if persistent:
        flags |= 0x1000
        props += b"\x02"
    if expiration is not None:
        flags |= 0x0100
        props += shortstr(expiration)
    header_payload = struct.pack(">HHQH", 60, 0, len(body), flags) + props
    header = _HDR.pack(codec.FRAME_HEADER, 1, len(header_payload)) + header_payload + b"\xce"
    return method + header + _HDR.pack(codec.FRAME_BODY, 1, len(body)) + body + b"\xce"


def fill(port: int, queue: str, count: int, frames: bytes, batch: int = 2000) -> float:
    """Publish ``count`` copies of ``frames``; returns the seconds it took (until enqueued)."""
    client = Client(port)
    started = time.monotonic()
    chunk = frames * batch
    sent = 0
    while sent < count:
        n = min(batch, count - sent)
        client.sock.sendall(chunk if n == batch else frames * n)
        sent += n
    client.declare(queue, passive=True)  # after every publish on this channel
    elapsed = time.monotonic() - started
    client.close()
    return elapsed


class Probe(threading.Thread):
    """basic.get round trips on an empty queue every ``interval`` s; keeps the durations."""

    def __init__(self, port: int, queue: str, interval: float = 0.01) -> None:
        super().__init__(daemon=True)
        self.client = Client(port)
        self.client.declare(queue)
        self.queue = queue
        self.interval = interval
        self.rtts: list[float] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            started = time.perf_counter()
            self.client.get(self.queue)
            self.rtts.append(time.perf_counter() - started)
            self.halt.wait(self.interval)

    def stop(self) -> list[float]:
        self.halt.set()
        self.join()
        self.client.close()
        return self.rtts


def summary(rtts: list[float]) -> str:
    ordered = sorted(rtts)
    p99 = ordered[int(len(ordered) * 0.99)] if ordered else 0.0
    return (
        f"{len(rtts)} probes, median {statistics.median(rtts) * 1000:.2f} ms, "
        f"p99 {p99 * 1000:.2f} ms, max {max(rtts) * 1000:.2f} ms"
    )


def start_server(persistence: bool) -> tuple[subprocess.Popen[str], int, tempfile.TemporaryDirectory[str] | None]:
    data = tempfile.TemporaryDirectory(prefix="ttl-expiry-") if persistence else None
    cmd = [sys.executable, "-m", "warrenmq.server.main", "--port", "0", "--management-port", "0"]
    cmd += ["--data-dir", data.name] if data is not None else ["--no-persistence"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    assert proc.stderr is not None
    for line in proc.stderr:
        found = re.search(r"Server startup complete; AMQP port (\d+)", line)
        if found:
            threading.Thread(target=lambda: [None for _ in proc.stderr or ()], daemon=True).start()
            return proc, int(found.group(1)), data
    raise RuntimeError("warren-server did not start")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--mode", choices=("blocked", "queue-ttl"), default="blocked")
    parser.add_argument(
        "--ttl-ms", type=int, default=0, help="queue-ttl mode: x-message-ttl (default: from a trial fill)"
    )
    parser.add_argument("--size", type=int, default=16, help="body bytes")
    parser.add_argument("--persistent", action="store_true", help="persistent messages (delivery mode 2)")
    parser.add_argument("--dead-letter", action="store_true", help="dead-letter the expired messages to another queue")
    parser.add_argument("--no-persistence", action="store_true", help="start the broker without a data directory")
    parser.add_argument("--port", type=int, default=0, help="use the broker already listening on this port")
    parser.add_argument(
        "--trigger",
        choices=("get", "consume"),
        default="get",
        help="blocked mode: take the head message with basic.get or with a (no-ack) consumer",
    )
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()

    proc = data = None
    port = args.port
    if not port:
        proc, port, data = start_server(not args.no_persistence)
    tag = os.urandom(4).hex()
    queue, probe_queue, dlq = f"ttl-bench-{tag}", f"ttl-probe-{tag}", f"ttl-dead-{tag}"
    admin = Client(port)
    try:
        arguments: dict[str, object] = {}
        if args.dead_letter:
            admin.declare(dlq)
            arguments.update({"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq})
        body = b"x" * args.size
        baseline = Probe(port, probe_queue)
        baseline.start()
        time.sleep(1.0)
        idle = baseline.stop()

        if args.mode == "blocked":
            admin.declare(queue, arguments)
            fill(port, queue, 1, publish_frames(queue, b"head", None, args.persistent))
            fill_s = fill(port, queue, args.messages, publish_frames(queue, body, "1", args.persistent))
        else:
            ttl = args.ttl_ms
            if not ttl:
                trial = f"{queue}-trial"
                admin.declare(trial)
                n = min(50_000, args.messages)
                seconds = fill(port, trial, n, publish_frames(trial, body, None, args.persistent))
                admin.sock.sendall(codec.queue_delete(1, trial))
                admin.expect(codec.method_key(50, 41))
                ttl = int(seconds / n * args.messages * 1000 * 1.5) + 2000
            arguments["x-message-ttl"] = ttl
            admin.declare(queue, arguments)
            fill_s = fill(port, queue, args.messages, publish_frames(queue, body, None, args.persistent))
        ready = admin.declare(queue, passive=True)
        print(
            f"filled {ready:,} messages ({args.size} B, {'persistent' if args.persistent else 'transient'}) "
            f"in {fill_s:.1f} s; mode {args.mode}{' + dead-lettering' if args.dead_letter else ''}"
        )

        probe = Probe(port, probe_queue)
        probe.start()
        started = time.monotonic()
        if args.mode == "blocked" and args.trigger == "get":
            assert admin.get(queue), "the head message"  # from now on the rest is expired
        elif args.mode == "blocked":
            consumer = Client(port)
            consumer.sock.sendall(codec.basic_consume(1, queue, "ttl-bench", no_ack=True))
            consumer.expect(codec.method_key(60, 21))
        remaining = ready
        while remaining > 0 and time.monotonic() - started < args.timeout:
            time.sleep(0.05)
            remaining = admin.declare(queue, passive=True)
        expiry_s = time.monotonic() - started
        rtts = probe.stop()
        print(f"idle baseline:   {summary(idle)}")
        print(f"during expiry:   {summary(rtts)}")
        print(f"expired {ready - remaining:,} messages in {expiry_s:.2f} s")
        print(f"LONGEST EVENT-LOOP PAUSE WHILE EXPIRING: {max(rtts) * 1000:.1f} ms")
        if args.dead_letter:
            print(f"dead-lettered: {admin.declare(dlq, passive=True):,}")
        return 0 if remaining == 0 else 1
    finally:
        admin.close()
        if proc is not None:
            proc.terminate()
            proc.wait(30)
        if data is not None:
            data.cleanup()


if __name__ == "__main__":
    raise SystemExit(main())
