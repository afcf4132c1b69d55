"""A full disk blocks publishers instead of crashing or losing a confirmed message.

The data directory lives on a small tmpfs (mounting needs root; skipped otherwise), partly
filled by a filler file; once the store's writes fail with ENOSPC nothing more is confirmed
and a connection that publishes is blocked ("low on disk"); freeing space lets everything
continue.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pika
import pika.spec
import pytest

from tests.interop.test_raw_protocol import Raw
from tests.server import ServerProcess


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "fs"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_full_disk_blocks_publishers_and_loses_nothing(small_fs: Path) -> None:
    filler = small_fs / "filler"
    filler.write_bytes(b"\0" * (4 * 1024 * 1024))
    server = ServerProcess(small_fs / "data", "--disk-free-limit", "1").start()
    stop = threading.Event()
    confirmed: list[int] = []
    errors: list[BaseException] = []

    def publish() -> None:
        try:
            conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", server.port, heartbeat=0))
            ch = conn.channel()
            ch.queue_declare("full-q", durable=True)
            ch.confirm_delivery()
            body = b"y" * 20_000
            n = 0
            while not stop.is_set():
                ch.basic_publish("", "full-q", body + b"%08d" % n, pika.BasicProperties(delivery_mode=2))
                confirmed.append(n)
                n += 1
                conn.process_data_events(0)
            conn.close()
        except BaseException as exc:
            errors.append(exc)

    publisher = threading.Thread(target=publish, daemon=True)
    try:
        publisher.start()
        assert server.wait_for_log("disk full: publishing blocked", timeout=60), server.log
        assert server.wait_for_log("resource alarm set: disk_full", timeout=10)
        count_at_full = len(confirmed)
        # The server is alive and still serves other clients.
        probe = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", server.port, heartbeat=0))
        assert probe.channel().queue_declare("full-q", durable=True, passive=True).method.message_count >= 1
        probe.close()
        # (The publisher waits for its confirm.)  Another one is blocked when it publishes.
        other = Raw(server.port).connect(capabilities={"connection.blocked": True})
        other.call(1, pika.spec.Confirm.Select(), pika.spec.Confirm.SelectOk)
        other.publish(1, "", "other-q", b"z")
        assert other.expect(pika.spec.Connection.Blocked, 0).reason == "low on disk"
        os.remove(filler)  # space is back
        assert server.wait_for_log("resource alarm cleared", timeout=30)
        other.expect(pika.spec.Connection.Unblocked, 0)
        assert other.expect(pika.spec.Basic.Ack, 1).delivery_tag == 1  # its publish goes through now
        other.close()
        deadline = time.monotonic() + 30
        while len(confirmed) < count_at_full + 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        stop.set()
        publisher.join(60)
        assert not errors, errors
        assert len(confirmed) >= count_at_full + 3, "publishing did not resume"
        assert "Traceback" not in server.log
    finally:
        stop.set()
        server.stop()
    # Every confirmed message survives a restart, in order.
    server.start()
    try:
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", server.port, heartbeat=0))
        ch = conn.channel()
        got: list[int] = []
        while True:
            method, _props, body = ch.basic_get("full-q", auto_ack=True)
            if method is None:
                break
            got.append(int(body[-8:]))
        conn.close()
    finally:
        server.stop()
    assert got[: len(confirmed)] == confirmed
