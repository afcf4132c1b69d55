"""Channels: open and close, channel.flow, and which errors close what.

A channel error (403, 404, 405, 406) closes only its channel, with RabbitMQ's reply code and
text: the connection's other channels and other connections carry on.  A connection error
(503, 504, 505, 530, 540) closes the whole connection and nothing else.  Codes, texts and
method ids were checked against RabbitMQ 3.10.8.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator

import amqp
import amqp.exceptions
import pika
import pika.exceptions
import pika.frame
import pika.spec
import pytest

from tests.fuzz.raw import RawClient
from tests.interop.pika_client import connect


def py_amqp(port: int) -> amqp.Connection:
    conn = amqp.Connection(f"127.0.0.1:{port}")
    conn.connect()
    return conn


@pytest.fixture
def cleanup(port: int) -> Iterator[list[str]]:
    """Queue names to delete after the test."""
    names: list[str] = []
    yield names
    with connect(port) as conn:
        channel = conn.channel()
        for queue in names:
            channel.queue_delete(queue)


def assert_usable(conn: pika.BlockingConnection, channel=None) -> None:
    """A round trip through a queue on ``channel`` (or a new channel) of ``conn``."""
    channel = channel or conn.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.basic_publish("", queue, b"still working")
    for method, _, body in channel.consume(queue, auto_ack=True, inactivity_timeout=5):
        assert method is not None, "no delivery"
        assert body == b"still working"
        break
    channel.cancel()


# -- open and close ---------------------------------------------------------------------


def test_channels_open_and_close_independently(port: int) -> None:
    with connect(port) as conn:
        channels = [conn.channel() for _ in range(5)]
        assert len({c.channel_number for c in channels}) == 5
        channels[1].close()
        channels[3].close()
        assert channels[1].is_closed and channels[3].is_closed
        for channel in (channels[0], channels[2], channels[4]):
            assert channel.is_open
            assert_usable(conn, channel)
        assert_usable(conn)  # a new channel, perhaps reusing a closed one's number


def test_raw_channel_open_close_and_reopen(port: int) -> None:
    """channel.open-ok carries an empty channel id; after close/close-ok the number can be
    opened again (as RabbitMQ 3.10.8)."""
    raw = RawClient(port)
    try:
        raw.handshake()
        raw.send_method(1, pika.spec.Channel.Open())
        open_ok = raw.expect(pika.spec.Channel.OpenOk, 1)
        assert open_ok.channel_id in ("", b"")
        raw.send_method(1, pika.spec.Channel.Close(200, "done", 0, 0))
        raw.expect(pika.spec.Channel.CloseOk, 1)
        raw.open_channel(1)
        raw.open_channel(2047)  # the highest channel number negotiated
    finally:
        raw.close()


def test_channel_flow_active_true(port: int) -> None:
    """channel.flow(active=true) is answered with flow-ok(active=true), and the channel goes on
    delivering."""
    conn = py_amqp(port)
    try:
        channel = conn.channel()
        channel.flow(True)
        queue, _, _ = channel.queue_declare("", exclusive=True)
        channel.basic_publish(amqp.Message("flowing"), routing_key=queue)
        got: list[str] = []
        channel.basic_consume(queue, callback=lambda m: got.append(m.body), no_ack=True)
        while not got:
            conn.drain_events(timeout=5)
        assert got == ["flowing"]
    finally:
        conn.close()


def test_channel_flow_active_false_is_not_implemented(port: int) -> None:
    """RabbitMQ 3.x refuses channel.flow(active=false) from a client: connection.close 540
    NOT_IMPLEMENTED - active=false, for channel.flow (20, 20)."""
    conn = py_amqp(port)
    channel = conn.channel()
    with pytest.raises(amqp.exceptions.AMQPNotImplementedError) as error:
        channel.flow(False)
    assert error.value.reply_text == "NOT_IMPLEMENTED - active=false"
    assert error.value.method_sig == (20, 20)
    assert not conn.connected


# -- channel errors ---------------------------------------------------------------------


def _missing_queue(ch, name: str) -> None:
    ch.queue_declare(name, passive=True)


def _inequivalent(ch, name: str) -> None:
    ch.queue_declare(name)
    ch.queue_declare(name, durable=True)


def _reserved_name(ch, name: str) -> None:
    ch.queue_declare("amq." + name)


def _missing_exchange(ch, name: str) -> None:
    ch.basic_publish(name, "key", b"lost")
    ch.queue_declare("", exclusive=True)  # the error surfaces at the next round trip


def _unknown_delivery_tag(ch, name: str) -> None:
    ch.basic_ack(99)
    ch.queue_declare("", exclusive=True)


CHANNEL_ERRORS: dict[str, tuple[Callable, int, str]] = {
    "404-missing-queue": (_missing_queue, 404, "NOT_FOUND - no queue '{name}' in vhost '/'"),
    "406-inequivalent": (
        _inequivalent,
        406,
        "PRECONDITION_FAILED - inequivalent arg 'durable' for queue '{name}' in vhost '/': "
        "received 'true' but current is 'false'",
    ),
    "403-reserved-name": (
        _reserved_name,
        403,
        "ACCESS_REFUSED - queue name 'amq.{name}' contains reserved prefix 'amq.*'",
    ),
    "404-publish-missing-exchange": (_missing_exchange, 404, "NOT_FOUND - no exchange '{name}' in vhost '/'"),
    "406-unknown-delivery-tag": (_unknown_delivery_tag, 406, "PRECONDITION_FAILED - unknown delivery tag 99"),
}


@pytest.mark.parametrize("case", list(CHANNEL_ERRORS))
def test_channel_error_closes_only_its_channel(port: int, name: str, case: str, cleanup: list[str]) -> None:
    """The failing channel is closed by the server with RabbitMQ's code and text; a sibling
    channel (with a consumer and an unacknowledged message), the connection and another
    connection are unaffected."""
    cleanup.append(name)
    action, code, text = CHANNEL_ERRORS[case]
    with connect(port) as conn, connect(port) as other:
        sibling = conn.channel()
        held = sibling.queue_declare("", exclusive=True).method.queue
        sibling.basic_publish("", held, b"unacked")
        method, _, _ = next(sibling.consume(held, inactivity_timeout=5))
        assert method is not None

        failing = conn.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as error:
            action(failing, name)
        assert (error.value.reply_code, error.value.reply_text) == (code, text.format(name=name))
        assert failing.is_closed

        assert conn.is_open and sibling.is_open
        sibling.basic_ack(method.delivery_tag)  # the sibling's delivery tags are intact
        assert_usable(conn)
        assert_usable(other)
        sibling.cancel()


def test_exclusive_queue_of_another_connection_is_405(port: int, name: str) -> None:
    """Using another connection's exclusive queue: 405 RESOURCE_LOCKED with RabbitMQ's long
    text; the owner is unaffected."""
    with connect(port) as owner, connect(port) as intruder:
        owner_channel = owner.channel()
        owner_channel.queue_declare(name, exclusive=True)
        channel = intruder.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as error:
            channel.queue_declare(name, exclusive=True)
        assert error.value.reply_code == 405
        assert error.value.reply_text == (
            f"RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{name}' in vhost '/'. "
            "It could be originally declared on another connection or the exclusive property value does not "
            "match that of the original declaration."
        )
        assert_usable(intruder)
        assert owner_channel.queue_declare(name, passive=True).method.queue == name


@pytest.mark.parametrize(
    "action, method_sig",
    [("passive-declare", (50, 10)), ("basic-get", (60, 70)), ("purge", (50, 30)), ("consume", (60, 20))],
)
def test_channel_error_names_the_failing_method(port: int, name: str, action: str, method_sig: tuple) -> None:
    """channel.close carries the class and method that failed (py-amqp shows them)."""
    conn = py_amqp(port)
    try:
        channel = conn.channel()
        calls = {
            "passive-declare": lambda: channel.queue_declare(name, passive=True),
            "basic-get": lambda: channel.basic_get(name),
            "purge": lambda: channel.queue_purge(name),
            "consume": lambda: channel.basic_consume(name),
        }
        with pytest.raises(amqp.exceptions.NotFound) as error:
            calls[action]()
        assert error.value.reply_text == f"NOT_FOUND - no queue '{name}' in vhost '/'"
        assert error.value.method_sig == method_sig
        assert conn.connected
        assert conn.channel().queue_declare("", exclusive=True).queue
    finally:
        conn.close()


def test_raw_channel_close_then_reopen_same_number(port: int, name: str) -> None:
    """After a channel error and the client's close-ok, the same channel number opens again."""
    raw = RawClient(port)
    try:
        raw.handshake()
        raw.open_channel(1)
        raw.send_method(1, pika.spec.Queue.Declare(queue=name, passive=True))
        close = raw.expect(pika.spec.Channel.Close, 1)
        assert (close.reply_code, close.class_id, close.method_id) == (404, 50, 10)
        raw.send_method(1, pika.spec.Channel.CloseOk())
        raw.open_channel(1)
        raw.send_method(1, pika.spec.Queue.Declare(queue="", exclusive=True))
        assert raw.expect(pika.spec.Queue.DeclareOk, 1).queue.startswith("amq.gen-")
    finally:
        raw.close()


# -- connection errors ------------------------------------------------------------------


def test_consumer_tag_reuse_closes_the_connection_with_530(port: int) -> None:
    """A consumer tag used twice on one channel: connection.close 530 NOT_ALLOWED (60, 20).
    The same tag on another channel is fine; other connections are unaffected (RabbitMQ
    3.10.8)."""
    conn = py_amqp(port)
    with connect(port) as bystander:
        channel = conn.channel()
        queue, _, _ = channel.queue_declare("", exclusive=True)
        channel.basic_consume(queue, consumer_tag="dup")
        conn.channel().basic_consume(queue, consumer_tag="dup")
        with pytest.raises(amqp.exceptions.NotAllowed) as error:
            channel.basic_consume(queue, consumer_tag="dup")
        assert error.value.reply_code == 530
        assert error.value.reply_text == "NOT_ALLOWED - attempt to reuse consumer tag 'dup'"
        assert error.value.method_sig == (60, 20)
        assert not conn.connected
        assert_usable(bystander)


def test_prefetch_size_is_not_implemented_540(port: int) -> None:
    """basic.qos with prefetch_size != 0: connection.close 540 (RabbitMQ 3.10.8)."""
    conn = py_amqp(port)
    channel = conn.channel()
    with pytest.raises(amqp.exceptions.AMQPNotImplementedError) as error:
        channel.basic_qos(prefetch_size=1000, prefetch_count=10, a_global=False)
    assert error.value.reply_text == "NOT_IMPLEMENTED - prefetch_size!=0 (1000)"
    assert error.value.method_sig == (60, 10)
    assert not conn.connected


def _raw_close(raw: RawClient) -> pika.spec.Connection.Close:
    """The server's connection.close; the client answers close-ok and the socket ends."""
    close = raw.expect(pika.spec.Connection.Close, 0)
    raw.send_method(0, pika.spec.Connection.CloseOk())
    raw.read_until_closed(timeout=3)
    return close


RAW_CONNECTION_ERRORS = {
    # A method only the server sends.
    "503-server-method": (
        lambda raw: raw.send_method(1, pika.spec.Queue.DeclareOk(queue="q", message_count=0, consumer_count=0)),
        503,
        "COMMAND_INVALID - unimplemented method",
        (50, 11),
    ),
    "504-unopened-channel": (
        lambda raw: raw.send_method(5, pika.spec.Queue.Declare(queue="q")),
        504,
        "CHANNEL_ERROR - expected 'channel.open'",
        (50, 10),
    ),
    "504-second-open": (
        lambda raw: raw.send_method(1, pika.spec.Channel.Open()),
        504,
        "CHANNEL_ERROR - second 'channel.open' seen",
        (20, 10),
    ),
    "505-header-without-publish": (
        lambda raw: raw.send(pika.frame.Header(1, 1, pika.spec.BasicProperties()).marshal()),
        505,
        "UNEXPECTED_FRAME - expected method frame, got non method frame instead",
        (0, 0),
    ),
    "505-method-instead-of-header": (
        lambda raw: raw.send(
            pika.frame.Method(1, pika.spec.Basic.Publish(exchange="", routing_key="q")).marshal()
            + pika.frame.Method(1, pika.spec.Queue.Declare(queue="q")).marshal()
        ),
        505,
        "UNEXPECTED_FRAME - expected content header for class 60, got non content header frame instead",
        (60, 40),
    ),
    "504-connection-method-after-open": (
        lambda raw: raw.send_method(0, pika.spec.Connection.TuneOk(2047, 131072, 0)),
        504,
        "CHANNEL_ERROR - unexpected method in connection state running",
        (10, 31),
    ),
    "505-heartbeat-on-a-channel": (
        lambda raw: raw.send(struct.pack(">BHI", 8, 1, 0) + b"\xce"),
        505,
        "UNEXPECTED_FRAME - type 8, all octets = <<>>",
        (0, 0),
    ),
}


@pytest.mark.parametrize("case", list(RAW_CONNECTION_ERRORS))
def test_connection_error_closes_only_the_connection(port: int, case: str) -> None:
    """Protocol violations close the connection with RabbitMQ 3.10.8's code, text and method
    ids; other connections are unaffected."""
    send, code, text, method_sig = RAW_CONNECTION_ERRORS[case]
    with connect(port) as bystander:
        raw = RawClient(port)
        try:
            raw.handshake()
            raw.open_channel(1)
            send(raw)
            close = _raw_close(raw)
        finally:
            raw.close()
        assert (close.reply_code, close.reply_text) == (code, text)
        assert (close.class_id, close.method_id) == method_sig
        assert_usable(bystander)


def test_channel_max_limits_open_channels_not_numbers(port: int) -> None:
    """channel_max bounds how many channels are open at once, not their numbers: with 2
    negotiated, channel 100 opens beside channel 1, a third channel is connection.close 530
    (RabbitMQ 3.10.8's text)."""
    raw = RawClient(port)
    try:
        raw.handshake(channel_max=2)
        raw.open_channel(1)
        raw.open_channel(100)
        raw.send_method(3, pika.spec.Channel.Open())
        close = _raw_close(raw)
    finally:
        raw.close()
    assert (close.reply_code, close.reply_text) == (
        530,
        "NOT_ALLOWED - number of channels opened (2) has reached the negotiated channel_max (2)",
    )
