"""Publisher confirms: confirm.select, basic.ack/nack from the broker, and what each client
library makes of them.

Delivery tags count per channel from 1; every published message is settled exactly once,
by an ack or a nack, possibly with ``multiple``; a message is acked once every queue it was
routed to has it; an unroutable one at once (after its basic.return when mandatory); a
message a queue refuses (x-overflow reject-publish) is nacked.  Checked against RabbitMQ
3.10.8 with this same code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import aio_pika
import aiormq.exceptions
import amqp
import amqp.exceptions
import amqpstorm
import kombu
import pika
import pika.exceptions
import pika.spec
import pytest

from tests.interop.pika_client import connect
from tests.interop.test_raw_protocol import Raw, publish_frames

REJECT_PUBLISH = {"x-max-length": 1, "x-overflow": "reject-publish"}


@pytest.fixture
def raw(port: int) -> Iterator[Raw]:
    client = Raw(port).connect(channels=(1, 2))
    yield client
    client.close()


class Confirms:
    """Reads a raw channel's confirms and checks that each tag is settled once."""

    def __init__(self, raw: Raw, channel: int, settled: int = 0) -> None:
        self.raw = raw
        self.channel = channel
        self.settled: dict[int, str] = dict.fromkeys(range(1, settled + 1), "ack")  # tag -> "ack" / "nack"
        self.frames: list[Any] = []
        self.others: list[Any] = []  # other methods seen meanwhile (a return, then its content)
        self.returns = 0
        self.returns_before: list[int] = []  # per confirm frame: how many returns came before it

    def wait_for(self, count: int) -> dict[int, str]:
        while len(self.settled) < count:
            number, method = self.raw.read_method()
            if not isinstance(method, (pika.spec.Basic.Ack, pika.spec.Basic.Nack)) or number != self.channel:
                self.others.append((number, method))
                if isinstance(method, pika.spec.Basic.Return):
                    self.others.append(self.raw.read_content(number))
                    self.returns += 1
                continue
            self.frames.append(method)
            self.returns_before.append(self.returns)
            kind = "ack" if isinstance(method, pika.spec.Basic.Ack) else "nack"
            tag = method.delivery_tag
            assert tag not in self.settled, f"tag {tag} settled twice"
            assert tag >= 1
            tags = [t for t in range(1, tag + 1) if t not in self.settled] if method.multiple else [tag]
            assert tags, f"{method} settles nothing"
            for t in tags:
                self.settled[t] = kind
        assert sorted(self.settled) == list(range(1, count + 1)), self.settled
        return self.settled


# -- the protocol -------------------------------------------------------------------------------


def test_tags_count_from_1_per_channel_and_each_is_settled_once(raw: Raw, name: str, queues: list[str]) -> None:
    """200 publishes in one write: acks cover tags 1..200 exactly once, in order, using
    ``multiple`` for runs; another channel counts from 1 on its own; a reopened channel
    starts again at 1 (RabbitMQ 3.10.8)."""
    queues.append(name)
    raw.call(1, pika.spec.Queue.Declare(queue=name), pika.spec.Queue.DeclareOk)
    for channel in (1, 2):
        raw.call(channel, pika.spec.Confirm.Select(), pika.spec.Confirm.SelectOk)
    raw.send(b"".join(publish_frames(1, "", name, b"%d" % i) for i in range(200)))
    confirms = Confirms(raw, 1)
    assert set(confirms.wait_for(200).values()) == {"ack"}
    assert any(frame.multiple for frame in confirms.frames), "several messages confirmed at once use multiple"

    raw.publish(2, "", name, b"other channel")
    assert Confirms(raw, 2).wait_for(1) == {1: "ack"}

    raw.call(1, pika.spec.Channel.Close(200, "", 0, 0), pika.spec.Channel.CloseOk)
    raw.open_channel(1)
    raw.call(1, pika.spec.Confirm.Select(), pika.spec.Confirm.SelectOk)
    raw.publish(1, "", name, b"reopened")
    assert Confirms(raw, 1).wait_for(1) == {1: "ack"}
    declare_ok = raw.call(1, pika.spec.Queue.Declare(queue=name, passive=True), pika.spec.Queue.DeclareOk)
    assert declare_ok.message_count == 202


def test_confirm_select_nowait(raw: Raw, name: str) -> None:
    """confirm.select with nowait: no select-ok, and the next publish is acked as tag 1;
    confirm.select again is fine (RabbitMQ 3.10.8)."""
    raw.send_method(1, pika.spec.Confirm.Select(nowait=True))
    raw.publish(1, "", name + "-nowhere", b"unroutable")
    number, method = raw.read_method()
    assert number == 1 and isinstance(method, pika.spec.Basic.Ack), method
    assert (method.delivery_tag, method.multiple) == (1, False)
    raw.call(1, pika.spec.Confirm.Select(), pika.spec.Confirm.SelectOk)


def test_unroutable_is_acked_and_mandatory_is_returned_before_its_ack(raw: Raw, name: str) -> None:
    """Unroutable: acked at once.  Mandatory and unroutable: basic.return 312 NO_ROUTE first,
    then the ack (RabbitMQ 3.10.8)."""
    raw.call(1, pika.spec.Confirm.Select(), pika.spec.Confirm.SelectOk)
    raw.publish(1, "", name + "-nowhere", b"dropped")
    raw.publish(1, "", name + "-nowhere", b"returned", mandatory=True)
    confirms = Confirms(raw, 1)
    assert confirms.wait_for(2) == {1: "ack", 2: "ack"}
    (_, returned), (_, body) = confirms.others
    assert isinstance(returned, pika.spec.Basic.Return), returned
    assert (returned.reply_code, returned.reply_text, returned.routing_key) == (312, "NO_ROUTE", name + "-nowhere")
    assert body == b"returned"
    # The return came before the ack that settled tag 2 (the last frame read).
    assert confirms.frames[-1].delivery_tag == 2 and confirms.returns_before[-1] == 1


def test_refused_message_is_nacked_with_the_requeue_bit(raw: Raw, name: str, queues: list[str]) -> None:
    """A queue at x-max-length with x-overflow reject-publish refuses the message: basic.nack,
    with the requeue bit set as RabbitMQ 3.10.8 sets it; the queue keeps the first one."""
    queues.append(name)
    raw.call(1, pika.spec.Queue.Declare(queue=name, arguments=REJECT_PUBLISH), pika.spec.Queue.DeclareOk)
    raw.call(1, pika.spec.Confirm.Select(), pika.spec.Confirm.SelectOk)
    raw.publish(1, "", name, b"kept")
    assert Confirms(raw, 1).wait_for(1) == {1: "ack"}
    raw.publish(1, "", name, b"refused")
    raw.publish(1, "", name, b"refused too")
    confirms = Confirms(raw, 1, settled=1)
    assert confirms.wait_for(3) == {1: "ack", 2: "nack", 3: "nack"}
    assert all(frame.requeue for frame in confirms.frames)
    got = raw.get(1, name)
    assert got is not None and got[2] == b"kept"


def test_a_message_is_acked_once_every_queue_has_it(raw: Raw, name: str) -> None:
    """Routed to three queues (one durable, the message persistent): when the ack comes, each
    queue holds the message."""
    queue_names = [raw.call(1, pika.spec.Queue.Declare(queue="", exclusive=True), pika.spec.Queue.DeclareOk).queue]
    queue_names.append(raw.call(1, pika.spec.Queue.Declare(queue=name, durable=True), pika.spec.Queue.DeclareOk).queue)
    queue_names.append(raw.call(1, pika.spec.Queue.Declare(queue="", exclusive=True), pika.spec.Queue.DeclareOk).queue)
    try:
        for queue in queue_names:
            raw.call(1, pika.spec.Queue.Bind(queue=queue, exchange="amq.fanout"), pika.spec.Queue.BindOk)
        raw.call(1, pika.spec.Confirm.Select(), pika.spec.Confirm.SelectOk)
        persistent = b"\x10\x00\x02"  # delivery-mode 2
        raw.publish(1, "amq.fanout", "", b"everywhere", properties=persistent)
        assert Confirms(raw, 1).wait_for(1) == {1: "ack"}
        for queue in queue_names:
            got = raw.get(2, queue)
            assert got is not None and got[2] == b"everywhere"
    finally:
        raw.call(1, pika.spec.Queue.Delete(queue=name), pika.spec.Queue.DeleteOk)


def test_persistent_and_transient_confirms(raw: Raw, name: str, queues: list[str]) -> None:
    """Persistent messages to a durable queue (acked once on disk) interleaved with
    unroutable ones (acked at once): every tag is settled once.  (RabbitMQ 3.10.8 may ack the
    unroutable ones first: confirms need not come in tag order.)"""
    queues.append(name)
    raw.call(1, pika.spec.Queue.Declare(queue=name, durable=True), pika.spec.Queue.DeclareOk)
    raw.call(1, pika.spec.Confirm.Select(), pika.spec.Confirm.SelectOk)
    stream = b""
    for i in range(60):
        if i % 2:
            stream += publish_frames(1, "", name + "-nowhere", b"x")
        else:
            stream += publish_frames(1, "", name, b"%d" % i, properties=b"\x10\x00\x02")
    raw.send(stream)
    confirms = Confirms(raw, 1)
    assert set(confirms.wait_for(60).values()) == {"ack"}
    declare_ok = raw.call(1, pika.spec.Queue.Declare(queue=name, passive=True), pika.spec.Queue.DeclareOk)
    assert declare_ok.message_count == 30


@pytest.mark.parametrize(
    "first, second, text, method_sig",
    [
        (
            pika.spec.Tx.Select(),
            pika.spec.Confirm.Select(),
            "PRECONDITION_FAILED - cannot switch from tx to confirm mode",
            (85, 10),
        ),
        (
            pika.spec.Confirm.Select(),
            pika.spec.Tx.Select(),
            "PRECONDITION_FAILED - cannot switch from confirm to tx mode",
            (90, 10),
        ),
    ],
    ids=["confirm-on-tx", "tx-on-confirm"],
)
def test_confirm_and_tx_exclude_each_other(raw: Raw, first: Any, second: Any, text: str, method_sig: tuple) -> None:
    """A channel is transactional or in confirm mode, never both: channel.close 406 with
    RabbitMQ 3.10.8's text; the connection's other channel carries on."""
    raw.send_method(1, first)
    raw.read_method()
    raw.send_method(1, second)
    close = raw.channel_close(1)
    assert (close.reply_code, close.reply_text, (close.class_id, close.method_id)) == (406, text, method_sig)
    raw.call(2, pika.spec.Confirm.Select(), pika.spec.Confirm.SelectOk)
    raw.publish(2, "", "nowhere", b"x")
    assert Confirms(raw, 2).wait_for(1) == {1: "ack"}


def test_channel_error_on_a_confirm_channel_spares_the_others(raw: Raw, name: str, queues: list[str]) -> None:
    """A publish to a missing exchange closes its confirm channel with 404 (no ack for it;
    RabbitMQ 3.10.8 may even close before acking the channel's earlier message); the other
    confirm channel's publishes are acked as before."""
    queues.append(name)
    raw.call(1, pika.spec.Queue.Declare(queue=name), pika.spec.Queue.DeclareOk)
    for channel in (1, 2):
        raw.call(channel, pika.spec.Confirm.Select(), pika.spec.Confirm.SelectOk)
    raw.publish(1, "", name, b"acked")
    raw.publish(2, "", name, b"acked too")
    raw.publish(1, name + "-missing", "k", b"refused")
    seen: dict[int, list[Any]] = {1: [], 2: []}
    while not any(isinstance(m, pika.spec.Channel.Close) for m in seen[1]) or not seen[2]:
        number, method = raw.read_method()
        seen[number].append(method)
    *before, close = seen[1]
    assert [(type(m), m.delivery_tag) for m in before] in ([], [(pika.spec.Basic.Ack, 1)])
    assert (close.reply_code, close.reply_text) == (404, f"NOT_FOUND - no exchange '{name}-missing' in vhost '/'")
    raw.send_method(1, pika.spec.Channel.CloseOk())
    assert seen[2][0].delivery_tag == 1
    raw.publish(2, "", name, b"still confirmed")
    assert Confirms(raw, 2, settled=1).wait_for(2) == {1: "ack", 2: "ack"}


# -- client libraries ---------------------------------------------------------------------------


def test_pika_confirms(port: int, name: str, queues: list[str]) -> None:
    """pika's BlockingChannel: publish returns once acked, raises UnroutableError for a
    returned mandatory message and NackError for a refused one."""
    queues.append(name)
    with connect(port) as conn:
        channel = conn.channel()
        channel.queue_declare(name, arguments=REJECT_PUBLISH)
        channel.confirm_delivery()
        channel.basic_publish("", name, b"acked")
        channel.basic_publish("", name + "-nowhere", b"unroutable, acked")
        with pytest.raises(pika.exceptions.UnroutableError) as returned:
            channel.basic_publish("", name + "-nowhere", b"returned", mandatory=True)
        assert [message.body for message in returned.value.messages] == [b"returned"]
        with pytest.raises(pika.exceptions.NackError):
            channel.basic_publish("", name, b"refused")
        assert channel.queue_declare(name, passive=True).method.message_count == 1


def test_aio_pika_confirms(port: int, name: str) -> None:
    """aio-pika: publish resolves to Basic.Ack; a nack raises DeliveryError; a mandatory
    unroutable message raises PublishError on a channel with on_return_raises."""

    async def main() -> None:
        connection = await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{port}/")
        async with connection:
            channel = await connection.channel(on_return_raises=True)
            queue = await channel.declare_queue(name, arguments=REJECT_PUBLISH, auto_delete=True)
            exchange = channel.default_exchange
            confirmation = await exchange.publish(aio_pika.Message(b"kept"), name, mandatory=False)
            assert isinstance(confirmation, aiormq.spec.Basic.Ack)
            with pytest.raises(aiormq.exceptions.DeliveryError) as nacked:
                await exchange.publish(aio_pika.Message(b"refused"), name, mandatory=False)
            assert isinstance(nacked.value.frame, aiormq.spec.Basic.Nack)
            with pytest.raises(aiormq.exceptions.PublishError) as returned:
                await exchange.publish(aio_pika.Message(b"returned"), name + "-nowhere", mandatory=True)
            assert returned.value.frame.reply_code == 312
            many = await asyncio.gather(
                *(exchange.publish(aio_pika.Message(b"x"), name + "-nowhere", mandatory=False) for _ in range(50))
            )
            assert all(isinstance(c, aiormq.spec.Basic.Ack) for c in many)
            message = await queue.get(no_ack=True)
            assert message.body == b"kept"
            await queue.delete()

    asyncio.run(main())


def test_py_amqp_confirms(port: int, name: str, queues: list[str]) -> None:
    """py-amqp: basic_publish_confirm waits for the ack and raises MessageNacked for a nack."""
    queues.append(name)
    conn = amqp.Connection(f"127.0.0.1:{port}", confirm_publish=True)
    conn.connect()
    try:
        channel = conn.channel()
        channel.queue_declare(name, arguments=REJECT_PUBLISH, auto_delete=False)
        channel.basic_publish(amqp.Message("kept"), routing_key=name)
        with pytest.raises(amqp.exceptions.MessageNacked):
            channel.basic_publish(amqp.Message("refused"), routing_key=name)
        channel.basic_publish(amqp.Message("unroutable"), routing_key=name + "-nowhere")
        _, count, _ = channel.queue_declare(name, passive=True)
        assert count == 1
    finally:
        conn.close()


def test_kombu_confirm_publish(port: int, name: str, queues: list[str]) -> None:
    """kombu with confirm_publish: publish returns once acked; a nack raises."""
    queues.append(name)
    url = f"amqp://guest:guest@127.0.0.1:{port}//"
    with kombu.Connection(url, transport_options={"confirm_publish": True}) as conn:
        queue = kombu.Queue(name, routing_key=name, queue_arguments=REJECT_PUBLISH)
        producer = conn.Producer()
        producer.publish({"n": 1}, routing_key=name, declare=[queue])
        with pytest.raises(amqp.exceptions.MessageNacked):
            producer.publish({"n": 2}, routing_key=name)
        message = queue(conn.channel()).get(no_ack=True)
        assert message is not None and message.payload == {"n": 1}


def test_amqpstorm_confirms(port: int, name: str, queues: list[str]) -> None:
    """amqpstorm: publish returns True for an ack, False for a nack, and raises
    AMQPMessageError for a returned mandatory message."""
    queues.append(name)
    connection = amqpstorm.Connection("127.0.0.1", "guest", "guest", port=port)
    try:
        channel = connection.channel()
        channel.confirm_deliveries()
        channel.queue.declare(name, arguments=REJECT_PUBLISH)
        message = amqpstorm.Message.create(channel, "payload")
        assert message.publish(name) is True
        assert message.publish(name) is False
        assert message.publish(name + "-nowhere") is True
        with pytest.raises(amqpstorm.AMQPMessageError) as returned:
            message.publish(name + "-nowhere", mandatory=True)
        assert "NO_ROUTE (312)" in str(returned.value)
    finally:
        connection.close()
