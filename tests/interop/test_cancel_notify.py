"""Consumer cancel notification: a queue deleted under its consumers.

Clients that advertise the ``consumer_cancel_notify`` capability get basic.cancel (consumer
tag, nowait=true) from the server for each of their consumers of the deleted queue; others
get nothing (their consumers are silently gone).  Either way the client's own basic.cancel of
the tag afterwards is answered with cancel-ok, and acknowledging messages it still holds from
the deleted queue is fine.  Checked against RabbitMQ 3.10.8 with this same code.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import aio_pika
import amqpstorm
import pika
import pika.spec
import pytest

from tests.interop.pika_client import connect
from tests.interop.test_raw_protocol import Raw


@pytest.fixture
def deleter(port: int) -> Iterator[Raw]:
    """Another connection, to delete queues with."""
    client = Raw(port).connect()
    yield client
    client.close()


def delete(client: Raw, queue: str) -> int:
    return client.call(1, pika.spec.Queue.Delete(queue=queue), pika.spec.Queue.DeleteOk).message_count


def test_consumers_get_basic_cancel_when_their_queue_is_deleted(port: int, name: str, deleter: Raw) -> None:
    """Two consumers on two channels of a notified connection each get basic.cancel
    (nowait=true); a consumer of another queue on the same channel goes on; the held
    unacked message can still be acked; cancelling the gone tag is cancel-ok (RabbitMQ
    3.10.8)."""
    raw = Raw(port).connect(channels=(1, 2), capabilities={"consumer_cancel_notify": True})
    try:
        other = name + "-other"
        for queue in (name, other):
            raw.call(1, pika.spec.Queue.Declare(queue=queue, auto_delete=False), pika.spec.Queue.DeclareOk)
        raw.publish(1, "", name, b"held")
        raw.call(1, pika.spec.Basic.Consume(queue=name, consumer_tag="first"), pika.spec.Basic.ConsumeOk)
        deliver = raw.expect(pika.spec.Basic.Deliver, 1)
        raw.read_content(1)
        raw.call(2, pika.spec.Basic.Consume(queue=name, consumer_tag="second"), pika.spec.Basic.ConsumeOk)
        raw.call(1, pika.spec.Basic.Consume(queue=other, consumer_tag="other"), pika.spec.Basic.ConsumeOk)

        assert delete(deleter, name) == 0  # ready messages only: the held one does not count
        cancels = {}
        for _ in range(2):
            number, method = raw.read_method()
            assert isinstance(method, pika.spec.Basic.Cancel), method
            cancels[method.consumer_tag] = (number, method.nowait)
        assert cancels == {"first": (1, True), "second": (2, True)}

        raw.send_method(1, pika.spec.Basic.Ack(deliver.delivery_tag))
        raw.call(1, pika.spec.Basic.Cancel(consumer_tag="first"), pika.spec.Basic.CancelOk)
        raw.publish(2, "", other, b"still consuming")
        assert raw.expect(pika.spec.Basic.Deliver, 1).consumer_tag == "other"
        assert raw.read_content(1)[1] == b"still consuming"
        raw.send_method(1, pika.spec.Basic.Ack(deliver.delivery_tag + 1))
        raw.call(1, pika.spec.Basic.Cancel(consumer_tag="other"), pika.spec.Basic.CancelOk)
        delete(deleter, other)
    finally:
        raw.close()


@pytest.mark.parametrize("capabilities", [None, {"consumer_cancel_notify": False}], ids=["absent", "false"])
def test_no_notification_without_the_capability(port: int, name: str, deleter: Raw, capabilities) -> None:
    """Without the capability the server sends nothing: the consumer is silently gone
    (RabbitMQ 3.10.8)."""
    raw = Raw(port).connect(capabilities=capabilities)
    try:
        raw.call(1, pika.spec.Queue.Declare(queue=name), pika.spec.Queue.DeclareOk)
        raw.call(1, pika.spec.Basic.Consume(queue=name, consumer_tag="quiet"), pika.spec.Basic.ConsumeOk)
        delete(deleter, name)
        # The next frame on channel 1 answers our qos: no basic.cancel came before it.
        raw.call(1, pika.spec.Basic.Qos(), pika.spec.Basic.QosOk)
        raw.call(1, pika.spec.Basic.Cancel(consumer_tag="quiet"), pika.spec.Basic.CancelOk)
    finally:
        raw.close()


def test_quorum_queue_deletion_cancels_too(port: int, name: str, deleter: Raw) -> None:
    raw = Raw(port).connect(capabilities={"consumer_cancel_notify": True})
    try:
        declare = pika.spec.Queue.Declare(queue=name, durable=True, arguments={"x-queue-type": "quorum"})
        raw.call(1, declare, pika.spec.Queue.DeclareOk)
        raw.call(1, pika.spec.Basic.Consume(queue=name, consumer_tag="q"), pika.spec.Basic.ConsumeOk)
        delete(deleter, name)
        cancel = raw.expect(pika.spec.Basic.Cancel, 1)
        assert (cancel.consumer_tag, cancel.nowait) == ("q", True)
    finally:
        raw.close()


# -- client libraries -------------------------------------------------------------------------------


def test_pika_on_cancel_callback(port: int, name: str, deleter: Raw) -> None:
    """pika advertises the capability; its on-cancel callback sees the server's cancel and
    the consumer is gone from the channel."""
    with connect(port) as conn:
        channel = conn.channel()
        channel.queue_declare(name)
        cancelled: list[str] = []
        channel.add_on_cancel_callback(lambda frame: cancelled.append(frame.method.consumer_tag))
        tag = channel.basic_consume(name, lambda *args: None)
        delete(deleter, name)
        deadline = time.monotonic() + 5
        while not cancelled:
            assert time.monotonic() < deadline
            conn.process_data_events(time_limit=0.05)
        assert cancelled == [tag]
        assert tag not in channel.consumer_tags


def test_aio_pika_consumer_cancel_callback(port: int, name: str, deleter: Raw) -> None:
    async def main() -> tuple[str, str]:
        connection = await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{port}/")
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(name)
            underlay = await channel.get_underlay_channel()
            cancelled: asyncio.Future[str] = asyncio.get_running_loop().create_future()
            underlay.on_consumer_cancel_callbacks.add(lambda frame: cancelled.set_result(frame.consumer_tag))

            async def ignore(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                pass

            tag = await queue.consume(ignore, consumer_tag="aio")
            await asyncio.to_thread(delete, deleter, name)
            return tag, await asyncio.wait_for(cancelled, 5)

    tag, cancelled = asyncio.run(main())
    assert cancelled == tag == "aio"


def test_amqpstorm_drops_the_cancelled_consumer(port: int, name: str, deleter: Raw) -> None:
    connection = amqpstorm.Connection("127.0.0.1", "guest", "guest", port=port)
    try:
        channel = connection.channel()
        channel.queue.declare(name)
        tag = channel.basic.consume(lambda message: None, name)
        assert channel.consumer_tags == [tag]
        delete(deleter, name)
        deadline = time.monotonic() + 5
        while channel.consumer_tags:
            assert time.monotonic() < deadline
            channel.process_data_events()
        assert channel.is_open
    finally:
        connection.close()


def test_deleting_a_queue_one_consumes_from_answers_delete_ok_before_the_cancel(port: int) -> None:
    """As RabbitMQ 3.10.8: on the channel that deletes a queue, queue.delete-ok comes before
    the basic.cancel of that channel's consumer of it.  py-amqp (kombu's transport) raised
    ConsumerCancelled out of queue_delete when the cancel came first (kombu's
    test_ack_from_another_thread failed on it)."""
    import amqp

    conn = amqp.Connection(f"127.0.0.1:{port}")
    conn.connect()
    try:
        ch = conn.channel()
        ch.queue_declare("deleted-under-me")
        ch.basic_consume("deleted-under-me", callback=lambda message: None)
        assert ch.queue_delete("deleted-under-me") == 0  # no ConsumerCancelled raised here...
        with pytest.raises(amqp.exceptions.ConsumerCancelled):
            conn.drain_events(timeout=5)  # ...the cancel comes after (so it is, on RabbitMQ)
    finally:
        conn.collect()
