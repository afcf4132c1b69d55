"""Durability: what survives a restart and a SIGKILL, as RabbitMQ promises it.

"Mark both the queue and messages as durable", use publisher confirms, and no confirmed
message is ever lost.  Each test runs its own server on its own data directory.
"""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pika
import pytest

from tests.server import ServerProcess

PERSISTENT = pika.BasicProperties(delivery_mode=2)


def connect(server: ServerProcess) -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", server.port, heartbeat=0))


def drain(server: ServerProcess, queue: str, ack: bool = True) -> list[tuple[bytes, bool]]:
    """Every message in the queue as (body, redelivered), in delivery order."""
    conn = connect(server)
    ch = conn.channel()
    out: list[tuple[bytes, bool]] = []
    while True:
        method, _props, body = ch.basic_get(queue, auto_ack=ack)
        if method is None:
            break
        out.append((body, method.redelivered))
    conn.close()
    return out


def test_definitions_survive_restart_and_transient_ones_do_not(fresh_server: ServerProcess) -> None:
    server = fresh_server.start()
    conn = connect(server)
    ch = conn.channel()
    ch.exchange_declare("dur-x", "topic", durable=True)
    ch.exchange_declare("tmp-x", "fanout", durable=False)
    ch.queue_declare("dur-q", durable=True, arguments={"x-max-length": 100})
    ch.queue_declare("tmp-q", durable=False)
    ch.queue_declare("quorum-q", durable=True, arguments={"x-queue-type": "quorum"})
    ch.queue_declare("excl-q", durable=True, exclusive=True)
    ch.queue_bind("dur-q", "dur-x", "a.*")
    conn.close()
    assert server.stop() == 0
    server.start()
    conn = connect(server)
    ch = conn.channel()
    ch.exchange_declare("dur-x", "topic", durable=True, passive=True)
    ch.queue_declare("dur-q", durable=True, passive=True)
    ch.queue_declare("quorum-q", durable=True, passive=True)
    # Redeclaring with the same arguments is still equivalent after the restart.
    ch.queue_declare("dur-q", durable=True, arguments={"x-max-length": 100})
    ch.queue_declare("quorum-q", durable=True, arguments={"x-queue-type": "quorum"})
    # The binding came back: a message routed through it arrives.
    ch.basic_publish("dur-x", "a.b", b"via binding")
    assert ch.basic_get("dur-q", auto_ack=True)[2] == b"via binding"
    for kind, name in (("exchange", "tmp-x"), ("queue", "tmp-q"), ("queue", "excl-q")):
        ch2 = conn.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
            if kind == "exchange":
                ch2.exchange_declare(name, passive=True)
            else:
                ch2.queue_declare(name, passive=True)
        assert info.value.reply_code == 404
    conn.close()


def test_persistent_messages_survive_restart_transient_do_not(fresh_server: ServerProcess) -> None:
    server = fresh_server.start()
    conn = connect(server)
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare("mixed", durable=True)
    for i in range(20):
        props = PERSISTENT if i % 2 == 0 else pika.BasicProperties(delivery_mode=1)
        ch.basic_publish("", "mixed", f"m{i}".encode(), props)
    conn.close()
    server.stop()
    server.start()
    got = drain(server, "mixed")
    assert [body for body, _ in got] == [f"m{i}".encode() for i in range(0, 20, 2)]
    assert not any(redelivered for _, redelivered in got)


def test_unacked_messages_come_back_redelivered_in_order(fresh_server: ServerProcess) -> None:
    server = fresh_server.start()
    conn = connect(server)
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare("work", durable=True)
    for i in range(10):
        ch.basic_publish("", "work", f"job{i}".encode(), PERSISTENT)
    # Take three without acknowledging them, acknowledge one more.
    for _ in range(3):
        assert ch.basic_get("work", auto_ack=False)[0] is not None
    method, _, body = ch.basic_get("work", auto_ack=False)
    assert body == b"job3"
    ch.basic_ack(method.delivery_tag)
    # The server stops while they are still unacknowledged.
    assert server.stop() == 0
    server.start()
    got = drain(server, "work")
    assert [b for b, _ in got] == [b"job0", b"job1", b"job2", *(f"job{i}".encode() for i in range(4, 10))]
    assert [r for _, r in got] == [True, True, True] + [False] * 6


@pytest.mark.parametrize("stop", ["SIGTERM", "SIGKILL"])
def test_messages_delivered_before_they_were_written_come_back_redelivered(
    fresh_server: ServerProcess, stop: str
) -> None:
    """A persistent message handed straight to a waiting consumer (before the store wrote it)
    and not acknowledged comes back redelivered after a restart or a crash, as in RabbitMQ
    3.10.8 (same test there: redelivered=True)."""
    server = fresh_server.start()
    conn = connect(server)
    consumer = conn.channel()
    consumer.queue_declare("straight", durable=True)
    consumer.basic_qos(prefetch_count=10)
    got: list[bytes] = []
    consumer.basic_consume("straight", lambda ch, m, p, body: got.append(body))
    publisher = conn.channel()
    publisher.confirm_delivery()
    for i in range(5):
        publisher.basic_publish("", "straight", f"m{i}".encode(), PERSISTENT)
    deadline = time.monotonic() + 10
    while len(got) < 5 and time.monotonic() < deadline:
        conn.process_data_events(0.05)
    assert len(got) == 5  # delivered, none acknowledged
    if stop == "SIGKILL":
        server.kill()
    else:
        assert server.stop() == 0
    server.start()
    again = drain(server, "straight")
    assert again == [(f"m{i}".encode(), True) for i in range(5)]


def test_acked_messages_do_not_come_back(fresh_server: ServerProcess) -> None:
    server = fresh_server.start()
    conn = connect(server)
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare("acked", durable=True)
    for i in range(500):
        ch.basic_publish("", "acked", b"%d" % i, PERSISTENT)
    for taken, (method, _props, _body) in enumerate(ch.consume("acked", inactivity_timeout=5), 1):
        assert method is not None
        if taken == 300:
            ch.basic_ack(method.delivery_tag, multiple=True)
            break
    ch.cancel()
    conn.close()
    server.stop()
    server.start()
    got = drain(server, "acked")
    assert [b for b, _ in got] == [b"%d" % i for i in range(300, 500)]


PUBLISHER = textwrap.dedent(
    """
    import asyncio, sys
    import aio_pika

    async def main(port):
        conn = await aio_pika.connect_robust(f"amqp://guest:guest@127.0.0.1:{port}/", reconnect_interval=60)
        channel = await conn.channel(publisher_confirms=True)
        await channel.declare_queue("crash", durable=True)
        i = 0
        while True:
            batch = range(i, i + 50)
            await asyncio.gather(*(
                channel.default_exchange.publish(
                    aio_pika.Message(b"%08d" % n, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                    routing_key="crash",
                ) for n in batch
            ))
            print(batch[-1], flush=True)  # everything up to here is confirmed
            i += 50

    asyncio.run(main(int(sys.argv[1])))
    """
)


@pytest.mark.parametrize("round_", range(3))
def test_confirmed_messages_survive_sigkill(tmp_path: Path, round_: int) -> None:
    """Kill -9 at a random moment while a confirm-mode publisher runs; every confirmed
    message is delivered after the restart, none twice, in order."""
    server = ServerProcess(tmp_path / "data").start()
    script = tmp_path / "publisher.py"
    script.write_text(PUBLISHER)
    publisher = subprocess.Popen(
        [sys.executable, str(script), str(server.port)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    confirmed = -1
    target = random.randint(300, 3000)
    deadline = time.monotonic() + 60
    try:
        assert publisher.stdout is not None
        while confirmed < target and time.monotonic() < deadline:
            line = publisher.stdout.readline()
            if not line:
                break
            confirmed = int(line)
        assert confirmed >= target, "publisher stalled"
        server.kill()  # SIGKILL while the publisher is mid-stream
    finally:
        publisher.kill()
        publisher.wait(10)
    server.start()
    try:
        got = drain(server, "crash")
    finally:
        server.stop()
    bodies = [int(b) for b, _ in got]
    assert bodies == sorted(set(bodies)), "order kept, nothing twice"
    assert set(range(confirmed + 1)) <= set(bodies), "every confirmed message is there"
    assert bodies[: confirmed + 1] == list(range(confirmed + 1))


def test_second_server_on_same_data_dir_refuses(tmp_path: Path) -> None:
    first = ServerProcess(tmp_path / "data").start()
    try:
        second = subprocess.run(
            [
                sys.executable,
                "-m",
                "warrenmq.server.main",
                "--port",
                "0",
                "--management-port",
                "0",
                "--data-dir",
                str(tmp_path / "data"),
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert second.returncode != 0
        assert "in use by another WarrenMQ server" in second.stderr
    finally:
        first.stop()


def test_damaged_store_is_recovered_around(tmp_path: Path) -> None:
    """Flip bytes inside one record and tear the tail: the server starts, keeps every intact
    message, and says what it dropped."""
    server = ServerProcess(tmp_path / "data").start()
    conn = connect(server)
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare("fragile", durable=True)
    for i in range(100):
        ch.basic_publish("", "fragile", b"msg-%03d-" % i + b"x" * 200, PERSISTENT)
    conn.close()
    server.stop()
    segment = sorted((tmp_path / "data" / "msgs").glob("*.seg"))[0]
    data = bytearray(segment.read_bytes())
    record = len(data) // 100  # records are the same size: damage the 50th one's body
    damaged_at = 50 * record + record // 2
    data[damaged_at] ^= 0xFF
    data[damaged_at + 1] ^= 0xFF
    data.extend(data[:37])  # a torn, partial record at the tail
    segment.write_bytes(bytes(data))
    server.start()
    try:
        got = drain(server, "fragile")
        assert server.wait_for_log("damaged record at offset")
        assert server.wait_for_log("torn write")
    finally:
        server.stop()
    bodies = [b[:8] for b, _ in got]
    assert bodies == [b"msg-%03d-" % i for i in range(100) if i != 50]
