"""Delayed messages: how close to its due time a message is delivered, and what a large
number of pending messages costs in memory.

``accuracy``: N (default 1k, 10k, 100k) persistent messages are put on a durable
x-delayed-message exchange, due evenly over a window after the fill (about 4,000 a second,
so that the exchange keeps releasing while its index is large); meanwhile probe messages are
published one at a time, every 10 ms, each due 300 ms later, and a raw no-ack consumer
records when each probe arrives: lateness = arrival - due.  (The probes are sent one by one so
that the broker's due time is the one the publisher computed; in a batched fill the broker
reads a message some milliseconds after it was written, and its due time is that much later.)

``memory``: N (default 1,000,000) persistent 100-byte messages held for an hour; the broker's
RSS before and after, and after a restart (recovery time too).

    python -P bench/delayed.py accuracy [--pending 1000 10000 100000]
    python -P bench/delayed.py memory [--pending 1000000]

It starts its own warren-server with a temporary data directory.  Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pika

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ttl_expiry import _HDR, Client

from warrenmq.perf import codec
from warrenmq.perf.fields import shortstr, table

EXCHANGE, QUEUE = "bench-delayed", "bench-delayed-q"


def start_server(data_dir: str) -> tuple[subprocess.Popen[str], int]:
    cmd = [sys.executable, "-m", "warrenmq.server.main", "--port", "0", "--management-port", "0"]
    cmd += ["--data-dir", data_dir]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    assert proc.stderr is not None
    for line in proc.stderr:
        if "recovered" in line:
            print("   ", line.strip().split(": ", 1)[-1])
        found = re.search(r"Server startup complete; AMQP port (\d+)", line)
        if found:
            threading.Thread(target=lambda: [None for _ in proc.stderr or ()], daemon=True).start()
            return proc, int(found.group(1))
    raise RuntimeError("warren-server did not start")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def declare(port: int) -> None:
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
    ch = conn.channel()
    ch.exchange_declare(EXCHANGE, "x-delayed-message", durable=True, arguments={"x-delayed-type": "direct"})
    ch.queue_declare(QUEUE, durable=True)
    ch.queue_bind(QUEUE, EXCHANGE, "k")
    conn.close()


def frames(delay_ms: int, body: bytes) -> bytes:
    args = b"\x00\x00" + shortstr(EXCHANGE) + shortstr("k") + b"\x00"
    method = codec.method_frame(1, codec.BASIC_PUBLISH, args)
    props = table({"x-delay": delay_ms}) + b"\x02"  # headers, delivery mode 2
    header_payload = struct.pack(">HHQH", 60, 0, len(body), 0x2000 | 0x1000) + props
    header = _HDR.pack(codec.FRAME_HEADER, 1, len(header_payload)) + header_payload + b"\xce"
    return method + header + _HDR.pack(codec.FRAME_BODY, 1, len(body)) + body + b"\xce"


def publish(port: int, messages: list[bytes], batch: int = 2000) -> float:
    client = Client(port)
    started = time.monotonic()
    for i in range(0, len(messages), batch):
        client.sock.sendall(b"".join(messages[i : i + batch]))
    client.declare(QUEUE, passive=True)  # a round trip after every publish on this channel
    elapsed = time.monotonic() - started
    client.close()
    return elapsed


def publish_due(port: int, dues: list[int], batch: int = 100) -> float:
    """Publish one message per due time (epoch ms, also the body), each x-delay computed just
    before its batch is sent, so that the broker's due time matches the body's to within the
    time the broker takes to read one batch."""
    client = Client(port)
    started = time.monotonic()
    for i in range(0, len(dues), batch):
        now = time.time() * 1000
        chunk = [frames(max(1, round(due - now)), str(due).encode()) for due in dues[i : i + batch]]
        client.sock.sendall(b"".join(chunk))
    client.declare(QUEUE, passive=True)  # a round trip after every publish on this channel
    elapsed = time.monotonic() - started
    client.close()
    return elapsed


class Consumer(threading.Thread):
    """A raw no-ack consumer: lateness (arrival - due, ms) of each delivery, timed as soon as
    its body frame is read (no client library in between)."""

    def __init__(self, port: int, expected: int) -> None:
        super().__init__(daemon=True)
        self.client = Client(port)
        self.expected = expected
        self.lateness: list[float] = []
        self.ready = threading.Event()

    def run(self) -> None:
        client = self.client
        client.sock.sendall(codec.basic_consume(1, QUEUE, "bench", no_ack=True))
        client.expect(codec.BASIC_CONSUME_OK)
        self.ready.set()
        client.sock.settimeout(0.2)
        seen = 0
        while not self.expected or seen < self.expected:
            try:
                kind, payload = client.frame()
            except TimeoutError:
                continue
            if kind == codec.FRAME_BODY:
                seen += 1
                if payload.startswith(b"p"):  # a probe: its due time follows
                    self.lateness.append(time.time() * 1000 - int(payload[1:]))
        client.close()


def probe(port: int, until: float, every: float = 0.01, delay_ms: int = 300) -> int:
    """Probe messages, one per ``every`` seconds until ``until`` (monotonic); how many."""
    client = Client(port)
    sent = 0
    while time.monotonic() < until:
        due = int(time.time() * 1000) + delay_ms  # as the broker counts (never later than its own)
        client.sock.sendall(frames(delay_ms, b"p%d" % due))
        sent += 1
        time.sleep(every)
    client.declare(QUEUE, passive=True)
    client.close()
    return sent


def accuracy(pending: int, hold: bool = False) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="delayed-bench-") as data:
        proc, port = start_server(data)
        try:
            declare(port)
            window_s = max(5.0, pending / 4000)
            lead_s = 2.0 + pending / 20_000  # time for the fill
            start = time.time() * 1000 + lead_s * 1000
            if hold:  # all due in an hour: probes meet a large index, no release load
                dues = [int(start + 3_600_000 + i) for i in range(pending)]
            else:
                dues = [int(start + window_s * 1000 * i / pending) for i in range(pending)]
            fill_s = publish_due(port, dues, batch=1000)
            probing = time.monotonic() + max(0.0, start / 1000 - time.time()) + window_s
            consumer = Consumer(port, 0)
            consumer.start()
            consumer.ready.wait(10)
            cpu, wall = cpu_seconds(proc.pid), time.monotonic()
            sent = probe(port, probing)
            consumer.expected = (0 if hold else pending) + sent
            consumer.join()
            busy = (cpu_seconds(proc.pid) - cpu) / (time.monotonic() - wall)
            late = sorted(consumer.lateness)
            assert len(late) == sent, f"{len(late)} of {sent} probes delivered"
            result = {
                "pending": pending,
                "fill_s": fill_s,
                "window_s": window_s,
                "probes": sent,
                "min": late[0],
                "p50": statistics.median(late),
                "p99": late[int(len(late) * 0.99)],
                "max": late[-1],
                "rss": rss_mib(proc.pid),
                "cpu": busy,
            }
            how = "held for an hour" if hold else f"released over {window_s:.0f} s"
            print(
                f"{pending:>8,} pending (filled in {fill_s:.1f} s, {how}), "
                f"{sent} probes: lateness min {late[0]:.1f} ms, p50 {result['p50']:.1f} ms, "
                f"p99 {result['p99']:.1f} ms, max {late[-1]:.1f} ms; RSS {result['rss']:.0f} MiB, "
                f"broker CPU {busy:.0%} meanwhile"
            )
            return result
        finally:
            proc.terminate()
            proc.wait(30)


def memory(pending: int) -> None:
    with tempfile.TemporaryDirectory(prefix="delayed-mem-") as data:
        proc, port = start_server(data)
        try:
            declare(port)
            base = rss_mib(proc.pid)
            body = b"x" * 100
            one = frames(3_600_000, body)
            fill_s = publish(port, [one] * pending)
            time.sleep(2.0)  # the last group commit and page-outs
            held = rss_mib(proc.pid)
            print(
                f"{pending:,} pending 100-byte persistent messages (filled in {fill_s:.1f} s, "
                f"{pending / fill_s:,.0f} msg/s): RSS {base:.0f} MiB empty, {held:.0f} MiB holding them "
                f"({(held - base) * 1024 * 1024 / pending:.0f} B per message)"
            )
        finally:
            proc.terminate()
            proc.wait(60)
        started = time.monotonic()
        proc, port = start_server(data)
        try:
            up_s = time.monotonic() - started
            print(f"after a restart: up in {up_s:.1f} s, RSS {rss_mib(proc.pid):.0f} MiB")
        finally:
            proc.terminate()
            proc.wait(60)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("accuracy", "memory"))
    parser.add_argument("--pending", type=int, nargs="*")
    parser.add_argument("--hold", action="store_true", help="accuracy: the pending ones fall due only in an hour")
    args = parser.parse_args()
    if args.what == "accuracy":
        for n in args.pending or (1000, 10_000, 100_000):
            accuracy(n, args.hold)
    else:
        for n in args.pending or (1_000_000,):
            memory(n)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
