"""Resource alarms: a memory high watermark blocks publishers, consumers drain, nothing is lost."""

from __future__ import annotations

import threading
import time

import pika

from tests.server import ServerProcess


def rss(server: ServerProcess) -> int:
    assert server.proc is not None
    with open(f"/proc/{server.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def test_memory_alarm_blocks_publishers_until_consumers_drain() -> None:
    probe = ServerProcess(None).start()
    baseline = rss(probe)
    probe.stop()
    server = ServerProcess(None, "--memory-high-watermark-absolute", str(baseline + 40 * 1024 * 1024)).start()
    events: list[str] = []
    published: list[int] = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def publish() -> None:
        # Confirm mode: basic_publish returns once the broker confirmed; while the broker
        # blocks the connection it simply waits (as against RabbitMQ).
        try:
            conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", server.port, heartbeat=0))
            conn.add_on_connection_blocked_callback(lambda *_: events.append("blocked"))
            conn.add_on_connection_unblocked_callback(lambda *_: events.append("unblocked"))
            ch = conn.channel()
            ch.queue_declare("alarm-q")
            ch.confirm_delivery()
            body = b"x" * (256 * 1024)  # large bodies: freed memory goes straight back to the OS
            n = 0
            while not stop.is_set():
                ch.basic_publish("", "alarm-q", body + b"%08d" % n)
                published.append(n)  # confirmed
                n += 1
                conn.process_data_events(0)
            conn.process_data_events(0.2)
            conn.close()
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    publisher = threading.Thread(target=publish, daemon=True)
    try:
        publisher.start()
        assert server.wait_for_log("memory resource limit alarm set", timeout=60)
        # A consumers-only connection is not blocked: it drains the queue.
        consumer = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", server.port, heartbeat=0))
        cch = consumer.channel()
        received: list[int] = []

        def drain() -> None:
            while True:
                method, _props, got = cch.basic_get("alarm-q", auto_ack=True)
                if method is None:
                    return
                received.append(int(got[-8:]))

        drain()
        assert server.wait_for_log("memory resource limit alarm cleared", timeout=60)
        # Publishing resumes: more messages get confirmed after the alarm cleared.
        resumed_at = len(published)
        deadline = time.monotonic() + 30
        while len(published) < resumed_at + 3 and time.monotonic() < deadline:
            drain()
            time.sleep(0.01)
        stop.set()
        publisher.join(60)
        assert not publisher.is_alive() and not errors, errors
        drain()
        consumer.close()
        assert len(published) >= resumed_at + 3, "publishing did not resume"
        assert received == published, "every confirmed message delivered, in order"
        assert events[:2] == ["blocked", "unblocked"], events
    finally:
        stop.set()
        server.stop()
