"""Peek: ``GET /api/queues/{vhost}/{name}/peek?count=N`` and ``warrenctl peek_queue NAME N``
show the first N ready messages (properties, headers, body as text or base64) without
consuming, redelivering or reordering anything; messages paged out to disk are read as
copies."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

import aio_pika
import kombu
import pika

from warrenmq.cli.main import main as warrenctl
from warrenmq.testing import EmbeddedBroker, RunningBroker


def peek(broker: RunningBroker, queue: str, count: int | str, extra: str = "") -> Any:
    request = urllib.request.Request(
        f"{broker.management_url}/api/queues/%2F/{queue}/peek?count={count}{extra}",
        headers={"Authorization": "Basic Z3Vlc3Q6Z3Vlc3Q="},
    )
    with urllib.request.urlopen(request, timeout=5) as reply:
        return json.load(reply)


def fresh(prefix: str = "peek") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_peek_shows_the_first_ready_messages_and_leaves_them(amqp_broker: RunningBroker) -> None:
    queue = fresh()
    conn = pika.BlockingConnection(pika.URLParameters(amqp_broker.url))
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare(queue)
    ch.basic_publish(
        "", queue, b"hello", pika.BasicProperties(content_type="text/plain", headers={"n": 1}, message_id="m1")
    )
    ch.basic_publish("", queue, b"\xff\x00binary")
    ch.basic_publish("", queue, b"third")
    # One delivered and unacknowledged: not ready, so not shown.
    held, _props, _body = ch.basic_get(queue)
    assert _body == b"hello"
    shown = peek(amqp_broker, queue, 5)
    assert [m["payload"] for m in shown] == [base64.b64encode(b"\xff\x00binary").decode(), "third"]
    assert [m["payload_encoding"] for m in shown] == ["base64", "string"]
    assert all(m["message_count"] == 2 and not m["redelivered"] for m in shown)
    ch.basic_reject(held.delivery_tag, requeue=True)
    first = peek(amqp_broker, queue, 1)[0]
    assert first["payload"] == "hello" and first["redelivered"]  # it was delivered once
    assert first["properties"] == {"content_type": "text/plain", "headers": {"n": 1}, "message_id": "m1"}
    # Peeking took nothing: the consumer sees the same three, in order, the peeked ones not redelivered.
    bodies = []
    while (got := ch.basic_get(queue, auto_ack=True))[0] is not None:
        bodies.append((got[2], got[0].redelivered))
    assert bodies == [(b"hello", True), (b"\xff\x00binary", False), (b"third", False)]
    assert peek(amqp_broker, queue, 3) == []
    conn.close()


def test_peek_reads_paged_out_messages_in_order(amqp_broker_factory: Callable[..., EmbeddedBroker]) -> None:
    """A queue keeping 10 messages in memory: peek reads the rest from disk, in order."""
    broker = amqp_broker_factory(queue_head_limit=10)
    running = broker.running
    assert running is not None
    conn = pika.BlockingConnection(pika.URLParameters(running.url))
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare("paged", durable=True)
    for i in range(40):
        ch.basic_publish("", "paged", b"m%02d" % i, pika.BasicProperties(delivery_mode=2 if i % 2 else 1))
    paged = broker.call(lambda: broker.node.broker.vhosts["/"].queues["paged"].paged_count)
    assert paged > 0
    assert [m["payload"] for m in peek(running, "paged", 35)] == [f"m{i:02d}" for i in range(35)]
    assert [ch.basic_get("paged", auto_ack=True)[2] for _ in range(40)] == [b"m%02d" % i for i in range(40)]
    conn.close()


def test_peek_of_a_priority_queue_is_in_delivery_order(amqp_broker: RunningBroker) -> None:
    queue = fresh()
    conn = pika.BlockingConnection(pika.URLParameters(amqp_broker.url))
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare(queue, arguments={"x-max-priority": 5})
    for body, priority in ((b"low", 1), (b"high", 5), (b"mid", 3)):
        ch.basic_publish("", queue, body, pika.BasicProperties(priority=priority))
    assert [m["payload"] for m in peek(amqp_broker, queue, 3)] == ["high", "mid", "low"]
    conn.close()


def test_warrenctl_peek_queue(amqp_broker: RunningBroker) -> None:
    queue = fresh()
    url = amqp_broker.url.replace("amqp://", "pyamqp://")
    with kombu.Connection(url) as conn:
        conn.SimpleQueue(queue).put({"job": 7}, serializer="json")

    def ctl(*args: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = warrenctl(["--management-port", str(amqp_broker.management_port), *args], out, err)
        return code, out.getvalue(), err.getvalue()

    code, out, _err = ctl("peek_queue", queue, "5", "--formatter", "json")
    assert code == 0
    rows = json.loads(out[out.index("[") :])
    assert len(rows) == 1 and json.loads(rows[0]["payload"]) == {"job": 7}
    assert rows[0]["properties"]["content_type"] == "application/json"
    code, out, _err = ctl("peek_queue", queue, "-q")
    lines = out.splitlines()
    assert lines[0].split("\t") == [
        "position",
        "exchange",
        "routing_key",
        "redelivered",
        "properties",
        "payload_bytes",
        "payload_encoding",
        "payload",
    ]
    assert lines[1].startswith(f"1\t{queue}\t{queue}\tfalse\t")
    code, _out, err = ctl("peek_queue", "no-such-queue")
    assert code != 0 and "not found" in err
    with kombu.Connection(url) as conn:
        assert conn.SimpleQueue(queue).get(timeout=5).payload == {"job": 7}  # still there


def test_peek_after_aio_pika_publishes_and_a_missing_queue_is_404(amqp_broker: RunningBroker) -> None:
    queue = fresh()

    async def publish() -> None:
        connection = await aio_pika.connect(amqp_broker.url)
        async with connection:
            channel = await connection.channel()
            await channel.declare_queue(queue)
            await channel.default_exchange.publish(aio_pika.Message(b"from aio", headers={"k": "v"}), queue)

    asyncio.run(publish())
    (only,) = peek(amqp_broker, queue, 10)
    assert only["payload"] == "from aio" and only["properties"]["headers"] == {"k": "v"}
    try:
        peek(amqp_broker, "no-such-queue", 1)
    except urllib.error.HTTPError as exc:
        assert exc.code == 404
    else:
        raise AssertionError("no 404")
