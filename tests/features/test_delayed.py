"""Delayed messages: the ``x-delayed-message`` exchange with the delayed-message plugin's wire
conventions (``x-delayed-type``, ``x-delay`` in ms, ``x-delay`` negated on delivery), its
durability, mandatory/alternate-exchange behaviour and pending counts.

Most tests use the in-process ``amqp_broker`` of the ``warrenmq.testing`` plugin; the crash
tests run a ``warren-server`` process so that they can kill it.
"""

from __future__ import annotations

import asyncio
import decimal
import io
import json
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aio_pika
import kombu
import pika
import pytest
from pika.adapters.blocking_connection import BlockingChannel

from tests.server import ServerProcess
from warrenmq.cli.main import main as warrenctl
from warrenmq.testing import EmbeddedBroker, RunningBroker

DELAYED = "x-delayed-message"


@pytest.fixture
def conn(amqp_broker: RunningBroker) -> Iterator[pika.BlockingConnection]:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_broker.url))
    yield connection
    if connection.is_open:
        connection.close()


@pytest.fixture
def ch(conn: pika.BlockingConnection) -> BlockingChannel:
    channel = conn.channel()
    channel.confirm_delivery()
    return channel


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def delayed_exchange(ch: BlockingChannel, kind: str = "direct", durable: bool = False, **args: Any) -> str:
    name = unique("dx")
    ch.exchange_declare(name, DELAYED, durable=durable, arguments={"x-delayed-type": kind, **args})
    return name


def bound_queue(ch: BlockingChannel, exchange: str, key: str = "k", durable: bool = False) -> str:
    queue = unique("dq")
    ch.queue_declare(queue, durable=durable)
    ch.queue_bind(queue, exchange, key)
    return queue


def collect(
    conn: pika.BlockingConnection, ch: BlockingChannel, queue: str, count: int, timeout: float = 10.0
) -> list[tuple[float, bytes, Any]]:
    """(arrival time, body, headers) of ``count`` messages consumed from ``queue``."""
    got: list[tuple[float, bytes, Any]] = []
    tag = ch.basic_consume(queue, lambda c, m, p, body: got.append((time.monotonic(), body, p.headers)), auto_ack=True)
    deadline = time.monotonic() + timeout
    while len(got) < count:
        assert time.monotonic() < deadline, f"got {len(got)} of {count}"
        conn.process_data_events(time_limit=0.01)
    ch.basic_cancel(tag)
    return got


def publish(ch: BlockingChannel, exchange: str, body: bytes, delay: Any = None, key: str = "k", **kw: Any) -> None:
    headers = {"x-delay": delay} if delay is not None else None
    ch.basic_publish(exchange, key, body, pika.BasicProperties(headers=headers, **kw), mandatory=kw.pop("m", False))


def test_messages_are_routed_once_their_delay_has_passed_in_due_order(
    conn: pika.BlockingConnection, ch: BlockingChannel
) -> None:
    """The plugin's README example: the message with the shorter delay arrives first, no
    earlier than its delay; x-delay then holds minus the delay."""
    exchange = delayed_exchange(ch)
    queue = bound_queue(ch, exchange)
    start = time.monotonic()
    publish(ch, exchange, b"delayed payload", 400)
    publish(ch, exchange, b"more delayed payload", 150)
    assert ch.queue_declare(queue, passive=True).method.message_count == 0  # nothing yet
    got = collect(conn, ch, queue, 2)
    assert [body for _, body, _ in got] == [b"more delayed payload", b"delayed payload"]
    # Due times are whole milliseconds from the broker's reading of the publish: 1 ms of slack.
    assert got[0][0] - start >= 0.149 and got[1][0] - start >= 0.399
    assert got[1][0] - start < 2.0
    assert [headers["x-delay"] for _, _, headers in got] == [-150, -400]


@pytest.mark.parametrize(
    ("delay", "delayed"),
    [(None, False), (0, False), (-100, False), (4_294_967_296, False), ("200", True), (decimal.Decimal("200.7"), True)],
)
def test_which_x_delay_values_delay_as_the_plugin_reads_them(
    conn: pika.BlockingConnection, ch: BlockingChannel, delay: Any, delayed: bool
) -> None:
    """No header, 0, negative or beyond 2^32-1 ms: routed at once (header untouched); a
    numeric string or a decimal (truncated) delays, as the plugin's conversion does."""
    exchange = delayed_exchange(ch, "fanout")
    queue = bound_queue(ch, exchange, "")
    publish(ch, exchange, b"m", delay)
    now = ch.basic_get(queue, auto_ack=True)
    if not delayed:
        assert now[2] == b"m"
        assert (now[1].headers or {}).get("x-delay") == delay
        return
    assert now[0] is None
    ((_, body, headers),) = collect(conn, ch, queue, 1)
    assert body == b"m" and headers["x-delay"] == -200


def test_topic_routing_and_cc_keys_apply_when_due(conn: pika.BlockingConnection, ch: BlockingChannel) -> None:
    exchange = delayed_exchange(ch, "topic")
    orders = bound_queue(ch, exchange, "orders.*")
    audit = bound_queue(ch, exchange, "audit")
    ch.basic_publish(exchange, "orders.new", b"o", pika.BasicProperties(headers={"x-delay": 100, "CC": ["audit"]}))
    assert collect(conn, ch, orders, 1)[0][1] == b"o"
    assert collect(conn, ch, audit, 1)[0][1] == b"o"  # the CC key routed it too, once
    assert ch.queue_declare(orders, passive=True).method.message_count == 0


def test_mandatory_is_not_returned_and_an_unroutable_one_goes_to_the_alternate_when_due(
    conn: pika.BlockingConnection, ch: BlockingChannel
) -> None:
    """The plugin documents that mandatory is not supported: no basic.return at publish time
    (the plugin's spurious one is not copied), and the alternate exchange takes an unroutable
    message when it falls due, not at publish time."""
    alternate = unique("ae")
    ch.exchange_declare(alternate, "fanout")
    caught = bound_queue(ch, alternate, "")
    exchange = delayed_exchange(ch, "direct", **{"alternate-exchange": alternate})
    returned: list[Any] = []
    ch.add_on_return_callback(lambda *args: returned.append(args))
    ch.basic_publish(exchange, "nowhere", b"x", pika.BasicProperties(headers={"x-delay": 200}), mandatory=True)
    conn.process_data_events(time_limit=0.05)
    assert returned == []
    assert ch.queue_declare(caught, passive=True).method.message_count == 0  # not at publish time
    assert collect(conn, ch, caught, 1)[0][1] == b"x"
    # Not delayed: the usual mandatory return.
    ch.basic_publish(exchange, "nowhere", b"now", mandatory=True)
    conn.process_data_events(time_limit=0.05)
    assert ch.queue_declare(caught, passive=True).method.message_count == 1  # the alternate took it


def test_pending_counts_in_the_management_api_and_warrenctl(amqp_broker: RunningBroker, ch: BlockingChannel) -> None:
    exchange = delayed_exchange(ch)
    bound_queue(ch, exchange)
    for _ in range(3):
        publish(ch, exchange, b"later", 60_000)
    request = urllib.request.Request(
        f"{amqp_broker.management_url}/api/exchanges/%2F/{exchange}",
        headers={"Authorization": "Basic Z3Vlc3Q6Z3Vlc3Q="},
    )
    info = json.load(urllib.request.urlopen(request, timeout=5))
    assert info["type"] == DELAYED and info["messages_delayed"] == 3
    out, err = io.StringIO(), io.StringIO()
    code = warrenctl(
        ["--management-port", str(amqp_broker.management_port), "list_exchanges", "name", "messages_delayed", "-q"],
        out,
        err,
    )
    assert code == 0, err.getvalue()
    assert f"{exchange}\t3" in out.getvalue().splitlines()
    ch.exchange_delete(exchange)  # its pending messages go with it


def test_an_invalid_x_delayed_type_is_refused_as_the_plugin_refuses_it(ch: BlockingChannel) -> None:
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        ch.exchange_declare(unique("bad"), DELAYED, arguments={"x-delayed-type": "x-nope"})
    assert info.value.reply_code == 406
    assert "x-delayed-type" in info.value.reply_text


def test_aio_pika_delayed_publish(amqp_broker: RunningBroker) -> None:
    async def main() -> tuple[float, bytes]:
        connection = await aio_pika.connect(amqp_broker.url)
        async with connection:
            channel = await connection.channel()
            exchange = await channel.declare_exchange(unique("aio"), DELAYED, arguments={"x-delayed-type": "direct"})
            queue = await channel.declare_queue(unique("aioq"), exclusive=True)
            await queue.bind(exchange, "k")
            started = time.monotonic()
            await exchange.publish(aio_pika.Message(b"hi", headers={"x-delay": 250}), "k")
            async with queue.iterator() as messages:
                async for message in messages:
                    async with message.process():
                        return time.monotonic() - started, message.body
        raise AssertionError("no message")

    waited, body = asyncio.run(asyncio.wait_for(main(), 10))
    assert body == b"hi" and waited >= 0.249


def test_kombu_delayed_publish(amqp_broker: RunningBroker) -> None:
    url = amqp_broker.url.replace("amqp://", "pyamqp://")
    exchange = kombu.Exchange(unique("kx"), type=DELAYED, arguments={"x-delayed-type": "direct"})
    queue = kombu.Queue(unique("kq"), exchange, routing_key="k")
    with kombu.Connection(url) as connection:
        with connection.Producer() as producer:
            started = time.monotonic()
            producer.publish({"n": 1}, exchange=exchange, routing_key="k", headers={"x-delay": 200}, declare=[queue])
        with connection.SimpleQueue(queue) as simple:
            message = simple.get(timeout=5)
            assert message.payload == {"n": 1}
            assert time.monotonic() - started >= 0.199
            assert message.headers["x-delay"] == -200
            message.ack()


# -- durability: a real server process, killed -----------------------------------------------


def _connect(server: ServerProcess) -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", server.port, heartbeat=0))


def _drain(server: ServerProcess, queue: str, count: int, timeout: float = 10.0) -> list[bytes]:
    conn = _connect(server)
    channel = conn.channel()
    got: list[bytes] = []
    channel.basic_consume(queue, lambda c, m, p, body: got.append(body), auto_ack=True)
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.02)
    conn.close()
    return got


def test_confirmed_persistent_delayed_messages_survive_kill_9(fresh_server: ServerProcess) -> None:
    """Confirmed = on disk: after SIGKILL and a restart, a message whose delay passed while
    the node was down is routed at once, one still pending is routed when due, and a
    transient one (kept in memory) is gone, as transient messages are."""
    server = fresh_server.start()
    conn = _connect(server)
    ch = conn.channel()
    ch.confirm_delivery()
    ch.exchange_declare("dur-dx", DELAYED, durable=True, arguments={"x-delayed-type": "direct"})
    ch.queue_declare("dur-dq", durable=True)
    ch.queue_bind("dur-dq", "dur-dx", "k")
    persistent = pika.BasicProperties(delivery_mode=2, headers={"x-delay": 300})
    ch.basic_publish("dur-dx", "k", b"overdue", persistent)
    before_pending = time.monotonic()
    ch.basic_publish("dur-dx", "k", b"pending", pika.BasicProperties(delivery_mode=2, headers={"x-delay": 1500}))
    ch.basic_publish("dur-dx", "k", b"transient", pika.BasicProperties(headers={"x-delay": 300}))
    published = time.monotonic()
    server.kill()
    while time.monotonic() - published < 0.4:  # let the first delay pass while the node is down
        time.sleep(0.05)
    server.start()
    conn = _connect(server)
    got: list[tuple[bytes, float]] = []
    conn.channel().basic_consume("dur-dq", lambda c, m, p, body: got.append((body, time.monotonic())), auto_ack=True)
    deadline = time.monotonic() + 10
    while len(got) < 2 and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.02)
    conn.close()
    assert [body for body, _ in got] == [b"overdue", b"pending"]
    # The pending one still waited for its due time (whole milliseconds from its arrival).
    assert got[1][1] - before_pending >= 1.499
    assert _drain(server, "dur-dq", 1, timeout=0.3) == []  # the transient one died with the node


def test_pending_records_stop_keeping_segments_once_released(fresh_server: ServerProcess, tmp_path: Path) -> None:
    """After a clean restart the delayed exchange still holds its messages (counted in the
    management API); once they are released and consumed, nothing of them is recovered again."""
    server = fresh_server.start()
    conn = _connect(server)
    ch = conn.channel()
    ch.confirm_delivery()
    ch.exchange_declare("cnt-dx", DELAYED, durable=True, arguments={"x-delayed-type": "fanout"})
    ch.queue_declare("cnt-dq", durable=True)
    ch.queue_bind("cnt-dq", "cnt-dx", "")
    for i in range(5):
        ch.basic_publish("cnt-dx", "", b"%d" % i, pika.BasicProperties(delivery_mode=2, headers={"x-delay": 500}))
    conn.close()
    assert server.stop() == 0
    server.start()
    assert sorted(_drain(server, "cnt-dq", 5)) == [b"0", b"1", b"2", b"3", b"4"]
    assert server.stop() == 0
    server.start()
    assert _drain(server, "cnt-dq", 1, timeout=1.0) == []  # released records were settled
    assert server.stop() == 0


def test_transient_ones_beyond_the_memory_limit_are_paged_out_and_read_back(
    amqp_broker_factory: Callable[..., EmbeddedBroker],
) -> None:
    """Beyond the exchange's memory limit (lowered to 5 here) transient delayed messages go
    to disk as page-out copies; they come back in due order, bodies intact."""
    broker = amqp_broker_factory(management=False)
    assert broker.running is not None
    conn = pika.BlockingConnection(pika.URLParameters(broker.running.url))
    ch = conn.channel()
    ch.confirm_delivery()
    ch.exchange_declare("paged-dx", DELAYED, arguments={"x-delayed-type": "fanout"})
    ch.queue_declare("paged-dq")
    ch.queue_bind("paged-dq", "paged-dx", "")
    delays = broker.call(lambda: broker.node.broker.vhosts["/"].exchanges["paged-dx"].delays)
    delays.memory_limit = 5
    for i in range(20):
        ch.basic_publish("paged-dx", "", b"body %02d" % i, pika.BasicProperties(headers={"x-delay": 400 + 10 * i}))
    in_memory = broker.call(lambda: len(delays._messages))
    assert in_memory <= 6  # the rest was written out at the end of the loop turn
    got = collect(conn, ch, "paged-dq", 20)
    assert [body for _, body, _ in got] == [b"body %02d" % i for i in range(20)]
    conn.close()
