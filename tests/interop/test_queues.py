"""Queues: naming, declare and its equivalence checks, quorum queues, bindings, purge,
delete, exclusive and auto-delete queues.

Reply codes and texts were checked against RabbitMQ 3.10.8 with the same code.  Where a
queue disappears as a consequence of something else (its connection closing, its last
consumer going), the test waits for it to be gone with a timeout, as RabbitMQ too removes
such queues asynchronously.
"""

from __future__ import annotations

import re
import time

import amqp
import amqp.exceptions
import pika
import pika.exceptions
import pytest

from tests.interop.pika_client import connect

GENERATED_NAME = re.compile(r"^amq\.gen-[A-Za-z0-9_-]{22}$")
LOCKED = (
    "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{}' in vhost '/'. It could be originally "
    "declared on another connection or the exclusive property value does not match that of the original declaration."
)
QUORUM = {"x-queue-type": "quorum"}


def refused(conn: pika.BlockingConnection, action, code: int) -> str:
    """Run ``action(channel)`` on a new channel; it must close the channel with ``code``."""
    channel = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as error:
        action(channel)
    assert error.value.reply_code == code, error.value
    return error.value.reply_text


def counts(conn: pika.BlockingConnection, queue: str) -> tuple[int, int]:
    """(ready messages, consumers) from a passive declare."""
    ok = conn.channel().queue_declare(queue, passive=True).method
    return ok.message_count, ok.consumer_count


def wait_gone(conn: pika.BlockingConnection, queue: str, timeout: float = 5.0) -> None:
    """Wait until a passive declare of ``queue`` answers 404."""
    deadline = time.monotonic() + timeout
    while True:
        channel = conn.channel()
        try:
            channel.queue_declare(queue, passive=True)
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code == 404:
                return
            assert exc.reply_code == 405, exc  # still there, exclusive to another connection
        else:
            channel.close()
        assert time.monotonic() < deadline, f"queue {queue} still exists after {timeout}s"
        conn.sleep(0.02)


def publish(ch, queue: str, *bodies: bytes, headers: dict | None = None) -> None:
    for body in bodies:
        ch.basic_publish("", queue, body, pika.BasicProperties(headers=headers))


def drain(ch, queue: str) -> list[bytes]:
    bodies = []
    while True:
        method, _, body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            return bodies
        bodies.append(body)


# -- names ------------------------------------------------------------------------------


def test_server_named_queues(conn: pika.BlockingConnection) -> None:
    """queue.declare with an empty name: a fresh name of RabbitMQ's shape every time."""
    ch = conn.channel()
    names = [ch.queue_declare("", exclusive=True).method.queue for _ in range(5)]
    names.append(ch.queue_declare("", auto_delete=True).method.queue)
    assert all(GENERATED_NAME.match(n) for n in names), names
    assert len(set(names)) == len(names)
    ch.queue_delete(names[-1])


def test_empty_name_means_the_last_declared_queue(conn: pika.BlockingConnection, ch) -> None:
    """On a channel that declared a queue, "" names that queue (bind, get, purge, delete);
    on a fresh channel it is 404 "no previously declared queue" (RabbitMQ 3.10.8)."""
    queue = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind("", "amq.direct", queue)
    ch.basic_publish("amq.direct", queue, b"via the binding")
    method, _, body = ch.basic_get("", auto_ack=True)
    assert method is not None and body == b"via the binding"
    text = refused(conn, lambda c: c.basic_get(""), 404)
    assert text == "NOT_FOUND - no previously declared queue"


@pytest.mark.parametrize("reserved", ["amq.foo", "amq.gen-abc", "amq."])
def test_reserved_queue_names(conn: pika.BlockingConnection, reserved: str) -> None:
    text = refused(conn, lambda c: c.queue_declare(reserved), 403)
    assert text == f"ACCESS_REFUSED - queue name '{reserved}' contains reserved prefix 'amq.*'"


def test_names_resembling_reserved_ones(conn: pika.BlockingConnection, queues: list[str], name: str) -> None:
    for allowed in ("AMQ." + name, "amq" + name):
        queues.append(allowed)
        assert conn.channel().queue_declare(allowed).method.queue == allowed


# -- declare ----------------------------------------------------------------------------


def test_declare_ok_counts(conn: pika.BlockingConnection, ch, queues: list[str], name: str) -> None:
    """declare-ok reports ready messages (not unacknowledged ones) and consumers."""
    queues.append(name)
    ok = ch.queue_declare(name).method
    assert (ok.queue, ok.message_count, ok.consumer_count) == (name, 0, 0)
    publish(ch, name, b"1", b"2", b"3")
    assert counts(conn, name) == (3, 0)
    consumer = conn.channel()
    consumer.basic_qos(prefetch_count=2)
    consumer.basic_consume(name, lambda *args: None)
    deadline = time.monotonic() + 5
    while counts(conn, name) != (1, 1):
        assert time.monotonic() < deadline, counts(conn, name)
        conn.process_data_events(0.02)


def test_passive_declare(conn: pika.BlockingConnection, ch, queues: list[str], name: str) -> None:
    """A passive declare only checks existence: flags and arguments are not compared."""
    queues.append(name)
    text = refused(conn, lambda c: c.queue_declare(name, passive=True), 404)
    assert text == f"NOT_FOUND - no queue '{name}' in vhost '/'"
    ch.queue_declare(name)
    ok = ch.queue_declare(name, passive=True, durable=True, arguments={"x-message-ttl": 5}).method
    assert ok.queue == name


INEQUIVALENT = {
    "durable": (
        {"durable": True},
        "inequivalent arg 'durable' for queue '{q}' in vhost '/': received 'true' but current is 'false'",
    ),
    "auto_delete": (
        {"auto_delete": True},
        "inequivalent arg 'auto_delete' for queue '{q}' in vhost '/': received 'true' but current is 'false'",
    ),
    "ttl-added": (
        {"arguments": {"x-message-ttl": 1000}},
        "inequivalent arg 'x-message-ttl' for queue '{q}' in vhost '/': received the value '1000' of type "
        "'signedint' but current is none",
    ),
    "quorum-over-classic": (
        {"durable": True, "arguments": QUORUM},
        "inequivalent arg 'durable' for queue '{q}' in vhost '/': received 'true' but current is 'false'",
    ),
    "type-quorum": (
        {"arguments": QUORUM},
        "inequivalent arg 'x-queue-type' for queue '{q}' in vhost '/': received the value 'quorum' of type "
        "'longstr' but current is none",
    ),
}


@pytest.mark.parametrize("case", list(INEQUIVALENT))
def test_redeclare_must_be_equivalent(conn: pika.BlockingConnection, queues: list[str], name: str, case: str) -> None:
    queues.append(name)
    conn.channel().queue_declare(name)
    options, text = INEQUIVALENT[case]
    assert refused(conn, lambda c: c.queue_declare(name, **options), 406) == "PRECONDITION_FAILED - " + text.format(
        q=name
    )


def test_redeclare_with_arguments(conn: pika.BlockingConnection, queues: list[str], name: str) -> None:
    """Arguments are compared by value; unknown arguments and an explicit classic type do not
    count; the first difference in RabbitMQ's order is reported (durable before arguments,
    x-message-ttl before x-max-length)."""
    queues.append(name)
    ch = conn.channel()
    ch.queue_declare(name, arguments={"x-message-ttl": 1000, "x-max-length": 10})
    ch.queue_declare(name, arguments={"x-message-ttl": 1000, "x-max-length": 10, "x-queue-type": "classic"})
    ch.queue_declare(name, arguments={"x-message-ttl": 1000, "x-max-length": 10, "x-foo": "bar"})
    prefix = f"PRECONDITION_FAILED - inequivalent arg '{{}}' for queue '{name}' in vhost '/': "
    assert refused(
        conn, lambda c: c.queue_declare(name, arguments={"x-message-ttl": 2000, "x-max-length": 10}), 406
    ) == prefix.format("x-message-ttl") + "received '2000' but current is '1000'"
    assert refused(conn, lambda c: c.queue_declare(name), 406) == prefix.format(
        "x-message-ttl"
    ) + "received none but current is the value '1000' of type 'signedint'"
    assert refused(
        conn, lambda c: c.queue_declare(name, durable=True, arguments={"x-message-ttl": 2000}), 406
    ) == prefix.format("durable") + "received 'true' but current is 'false'"


CLASSIC_ARGUMENTS = {
    "x-expires": 100000,
    "x-message-ttl": 1000,
    "x-dead-letter-exchange": "dlx",
    "x-dead-letter-routing-key": "k",
    "x-max-length": 10,
    "x-max-length-bytes": 1000,
    "x-max-priority": 5,
    "x-overflow": "reject-publish",
    "x-queue-mode": "lazy",
    "x-queue-version": 2,
    "x-single-active-consumer": True,
    "x-queue-master-locator": "min-masters",
}
QUORUM_ARGUMENTS = {
    "x-dead-letter-exchange": "dlx",
    "x-dead-letter-routing-key": "k",
    "x-dead-letter-strategy": "at-most-once",
    "x-expires": 100000,
    "x-max-length": 10,
    "x-max-length-bytes": 1000,
    "x-max-in-memory-length": 5,
    "x-max-in-memory-bytes": 500,
    "x-overflow": "reject-publish",
    "x-single-active-consumer": True,
    "x-quorum-initial-group-size": 1,
    "x-delivery-limit": 5,
    "x-message-ttl": 1000,
    "x-queue-leader-locator": "balanced",
}


@pytest.mark.parametrize("kind", ["classic", "quorum"])
def test_redeclare_reports_arguments_in_rabbitmq_order(
    conn: pika.BlockingConnection, queues: list[str], name: str, kind: str
) -> None:
    """A queue declared with every argument of its type, redeclared with fewer and fewer of
    them: each refusal names the first missing argument in the order RabbitMQ 3.10.8 checks
    them (the order of CLASSIC_ARGUMENTS / QUORUM_ARGUMENTS, recorded from it)."""
    queues.append(name)
    arguments = CLASSIC_ARGUMENTS if kind == "classic" else QUORUM_ARGUMENTS
    fixed = QUORUM if kind == "quorum" else {}
    durable = kind == "quorum"
    conn.channel().queue_declare(name, durable=durable, arguments={**fixed, **arguments})
    reported = []
    while True:
        kept = {key: arguments[key] for key in reported}
        channel = conn.channel()
        try:
            channel.queue_declare(name, durable=durable, arguments={**fixed, **kept})
        except pika.exceptions.ChannelClosedByBroker as error:
            found = re.search(r"inequivalent arg '([^']+)'", error.reply_text)
            assert found, error.reply_text
            reported.append(found.group(1))
        else:
            break
    assert reported == list(arguments)


@pytest.mark.parametrize(
    "arguments, error",
    [
        ({"x-message-ttl": -1}, "invalid arg 'x-message-ttl' for queue '{q}' in vhost '/': {{value_negative,-1}}"),
        (
            {"x-message-ttl": "1000"},
            "invalid arg 'x-message-ttl' for queue '{q}' in vhost '/': \"expected integer, got longstr\"",
        ),
        ({"x-expires": 0}, "invalid arg 'x-expires' for queue '{q}' in vhost '/': {{value_zero,0}}"),
        ({"x-max-length": -1}, "invalid arg 'x-max-length' for queue '{q}' in vhost '/': {{value_negative,-1}}"),
        ({"x-overflow": "foo"}, "invalid arg 'x-overflow' for queue '{q}' in vhost '/': invalid_overflow"),
        (
            {"x-queue-type": "foo"},
            "invalid arg 'x-queue-type' for queue '{q}' in vhost '/': \"unsupported queue type 'foo'\"",
        ),
        (
            {"x-dead-letter-routing-key": "k"},
            "invalid arg 'x-dead-letter-routing-key' for queue '{q}' in vhost '/': routing_key_but_no_dlx_defined",
        ),
        (
            {"x-delivery-limit": 5},
            "invalid arg 'x-delivery-limit' for queue '{q}' in vhost '/' of queue type rabbit_classic_queue",
        ),
    ],
    ids=[
        "ttl-negative",
        "ttl-string",
        "expires-zero",
        "max-length-negative",
        "overflow",
        "queue-type",
        "dlrk-without-dlx",
        "quorum-arg-on-classic",
    ],
)
def test_invalid_arguments(conn: pika.BlockingConnection, name: str, arguments: dict, error: str) -> None:
    text = refused(conn, lambda c: c.queue_declare(name, arguments=arguments), 406)
    assert text == "PRECONDITION_FAILED - " + error.format(q=name)


def test_durable_and_transient_queues(conn: pika.BlockingConnection, queues: list[str], name: str) -> None:
    """Both kinds work alike while the server runs (restarts are another test's business)."""
    durable, transient = name + "-durable", name + "-transient"
    queues += [durable, transient]
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare(durable, durable=True)
    ch.queue_declare(transient, durable=False)
    ch.basic_publish("", durable, b"p", pika.BasicProperties(delivery_mode=2))
    ch.basic_publish("", transient, b"t")
    assert drain(ch, durable) == [b"p"]
    assert drain(ch, transient) == [b"t"]


# -- quorum queues ----------------------------------------------------------------------


def test_quorum_queue_declare(conn: pika.BlockingConnection, queues: list[str], name: str) -> None:
    """A durable quorum queue is accepted; redeclaring it must name the same type."""
    queues.append(name)
    ch = conn.channel()
    ch.queue_declare(name, durable=True, arguments=QUORUM)
    ch.queue_declare(name, durable=True, arguments=QUORUM)
    prefix = f"PRECONDITION_FAILED - inequivalent arg '{{}}' for queue '{name}' in vhost '/': "
    assert refused(conn, lambda c: c.queue_declare(name, durable=True), 406) == prefix.format(
        "x-queue-type"
    ) + "received none but current is the value 'quorum' of type 'longstr'"
    assert refused(
        conn, lambda c: c.queue_declare(name, durable=True, arguments={"x-queue-type": "classic"}), 406
    ) == prefix.format("x-queue-type") + "received 'classic' but current is 'quorum'"
    assert refused(conn, lambda c: c.queue_declare(name, durable=False, arguments=QUORUM), 406) == prefix.format(
        "durable"
    ) + "received 'false' but current is 'true'"


@pytest.mark.parametrize(
    "flags, property_",
    [
        ({"durable": False}, "non-durable"),
        ({"durable": True, "exclusive": True}, "exclusive-owner"),
        ({"durable": True, "auto_delete": True}, "auto-delete"),
        ({"durable": False, "exclusive": True, "auto_delete": True}, "auto-delete"),
    ],
)
def test_quorum_queue_refuses_transient_properties(
    conn: pika.BlockingConnection, name: str, flags: dict, property_: str
) -> None:
    text = refused(conn, lambda c: c.queue_declare(name, arguments=QUORUM, **flags), 406)
    assert text == f"PRECONDITION_FAILED - invalid property '{property_}' for queue '{name}' in vhost '/'"


def test_quorum_queue_refuses_classic_only_argument(conn: pika.BlockingConnection, name: str) -> None:
    arguments = {**QUORUM, "x-max-priority": 5}
    text = refused(conn, lambda c: c.queue_declare(name, durable=True, arguments=arguments), 406)
    assert text == (
        f"PRECONDITION_FAILED - invalid arg 'x-max-priority' for queue '{name}' in vhost '/' "
        "of queue type rabbit_quorum_queue"
    )


def test_quorum_redelivery_carries_x_delivery_count(
    conn: pika.BlockingConnection, ch, queues: list[str], name: str
) -> None:
    """A quorum queue counts returns: a redelivered message carries x-delivery-count (1, 2,
    ...) beside its own headers; a first delivery to a consumer has none (RabbitMQ 3.10.8)."""
    queues.append(name)
    ch.queue_declare(name, durable=True, arguments=QUORUM)
    publish(ch, name, b"counted", headers={"app": "kept"})
    consumer = conn.channel()
    seen = []
    for method, props, _ in consumer.consume(name, inactivity_timeout=5):
        assert method is not None, "no delivery"
        seen.append((method.redelivered, props.headers))
        if len(seen) == 3:
            consumer.basic_ack(method.delivery_tag)
            break
        consumer.basic_nack(method.delivery_tag, requeue=True)
    consumer.cancel()
    assert seen == [
        (False, {"app": "kept"}),
        (True, {"app": "kept", "x-delivery-count": 1}),
        (True, {"app": "kept", "x-delivery-count": 2}),
    ]


def test_quorum_redelivery_after_channel_close_carries_x_delivery_count(
    conn: pika.BlockingConnection, ch, queues: list[str], name: str
) -> None:
    queues.append(name)
    ch.queue_declare(name, durable=True, arguments=QUORUM)
    publish(ch, name, b"held")
    holder = conn.channel()
    method, props, _ = holder.basic_get(name)
    assert method is not None and not method.redelivered
    holder.close()  # unacknowledged: back to the queue
    method, props, body = ch.basic_get(name, auto_ack=True)
    assert method is not None and method.redelivered and body == b"held"
    assert props.headers == {"x-delivery-count": 1}


def test_classic_redelivery_has_no_x_delivery_count(ch, queues: list[str], name: str) -> None:
    queues.append(name)
    ch.queue_declare(name, durable=True)
    publish(ch, name, b"classic")
    method, _, _ = ch.basic_get(name)
    ch.basic_nack(method.delivery_tag, requeue=True)
    method, props, _ = ch.basic_get(name, auto_ack=True)
    assert method.redelivered and props.headers is None


def test_quorum_queue_returns_messages_to_the_back(ch, queues: list[str], name: str) -> None:
    """In a quorum queue a rejected (requeued) message goes behind the messages waiting
    (RabbitMQ 3.10.8: get 1, reject it, get -> 2); a classic queue puts it back in front."""
    queues.append(name)
    ch.queue_declare(name, durable=True, arguments=QUORUM)
    publish(ch, name, b"1", b"2", b"3")
    method, _, body = ch.basic_get(name)
    assert body == b"1"
    ch.basic_reject(method.delivery_tag, requeue=True)
    assert drain(ch, name) == [b"2", b"3", b"1"]


def test_quorum_queue_refuses_global_qos(port: int, queues: list[str], name: str) -> None:
    """RabbitMQ 3.x: consuming from a quorum queue on a channel with global QoS (prefetch
    shared by the channel) is connection.close 540; per-consumer QoS is fine."""
    queues.append(name)
    conn = amqp.Connection(f"127.0.0.1:{port}")
    conn.connect()
    channel = conn.channel()
    channel.queue_declare(name, durable=True, auto_delete=False, arguments=QUORUM)
    channel.basic_qos(0, 5, False)
    channel.basic_consume(name, consumer_tag="per-consumer")
    other = conn.channel()
    other.basic_qos(0, 5, True)
    try:
        with pytest.raises(amqp.exceptions.AMQPNotImplementedError) as error:
            other.basic_consume(name)
    finally:
        conn.collect()
    assert error.value.reply_text == f"NOT_IMPLEMENTED - queue '{name}' in vhost '/' does not support global qos"
    assert error.value.method_sig == (60, 20)


# -- bindings ---------------------------------------------------------------------------


def test_bind_and_unbind(ch, queues: list[str], name: str) -> None:
    """A queue with several bindings; the same key bound to several queues; binding twice is
    one binding; unbinding removes only that binding, and unbinding what is not bound is
    fine."""
    first, second = name + "-1", name + "-2"
    queues += [first, second]
    for queue in (first, second):
        ch.queue_declare(queue)
        ch.queue_bind(queue, "amq.direct", name + ".shared")
    ch.queue_bind(first, "amq.direct", name + ".own")
    ch.queue_bind(first, "amq.direct", name + ".own")
    ch.basic_publish("amq.direct", name + ".shared", b"shared")
    ch.basic_publish("amq.direct", name + ".own", b"own")
    assert drain(ch, first) == [b"shared", b"own"]
    assert drain(ch, second) == [b"shared"]

    ch.queue_unbind(first, "amq.direct", name + ".shared")
    ch.queue_unbind(first, "amq.direct", name + ".never-bound")
    ch.basic_publish("amq.direct", name + ".shared", b"shared again")
    ch.basic_publish("amq.direct", name + ".own", b"own again")
    assert drain(ch, first) == [b"own again"]
    assert drain(ch, second) == [b"shared again"]


def test_bind_missing_queue_or_exchange(conn: pika.BlockingConnection, queues: list[str], name: str) -> None:
    """Binding a missing queue or to a missing exchange is 404; with both missing the
    exchange is named (RabbitMQ 3.10.8)."""
    queues.append(name)
    conn.channel().queue_declare(name)
    missing = name + "-missing"
    assert refused(conn, lambda c: c.queue_bind(missing, "amq.direct", "k"), 404) == (
        f"NOT_FOUND - no queue '{missing}' in vhost '/'"
    )
    assert refused(conn, lambda c: c.queue_bind(name, missing, "k"), 404) == (
        f"NOT_FOUND - no exchange '{missing}' in vhost '/'"
    )
    assert refused(conn, lambda c: c.queue_bind(missing, missing, "k"), 404) == (
        f"NOT_FOUND - no exchange '{missing}' in vhost '/'"
    )


def test_unbind_missing_queue_or_exchange_is_fine(conn: pika.BlockingConnection, name: str) -> None:
    """RabbitMQ 3.10.8 answers unbind-ok when the queue or the exchange does not exist."""
    ch = conn.channel()
    ch.queue_unbind(name + "-missing", "amq.direct", "k")
    queue = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_unbind(queue, name + "-missing", "k")
    assert ch.is_open


# -- purge and delete -------------------------------------------------------------------


def test_purge(conn: pika.BlockingConnection, ch, queues: list[str], name: str) -> None:
    """purge-ok counts the ready messages removed; unacknowledged ones stay with their
    consumer and come back if it lets them go."""
    queues.append(name)
    ch.queue_declare(name)
    publish(ch, name, b"1", b"2", b"3", b"4")
    holder = conn.channel()
    method, _, _ = holder.basic_get(name)
    assert method is not None
    assert ch.queue_purge(name).method.message_count == 3
    assert ch.queue_purge(name).method.message_count == 0
    holder.basic_nack(method.delivery_tag, requeue=True)
    assert counts(conn, name) == (1, 0)
    text = refused(conn, lambda c: c.queue_purge(name + "-missing"), 404)
    assert text == f"NOT_FOUND - no queue '{name}-missing' in vhost '/'"


def test_delete_returns_ready_count(conn: pika.BlockingConnection, ch, name: str) -> None:
    ch.queue_declare(name)
    publish(ch, name, b"1", b"2")
    assert ch.queue_delete(name).method.message_count == 2
    assert ch.queue_delete(name).method.message_count == 0  # already gone: fine
    text = refused(conn, lambda c: c.queue_declare(name, passive=True), 404)
    assert text == f"NOT_FOUND - no queue '{name}' in vhost '/'"


def test_delete_if_empty(conn: pika.BlockingConnection, ch, queues: list[str], name: str) -> None:
    """if-empty refuses a queue with ready messages (406 "not empty"); unacknowledged ones
    do not count (RabbitMQ 3.10.8)."""
    queues.append(name)
    ch.queue_declare(name)
    publish(ch, name, b"1")
    text = refused(conn, lambda c: c.queue_delete(name, if_empty=True), 406)
    assert text == f"PRECONDITION_FAILED - queue '{name}' in vhost '/' not empty"
    method, _, _ = ch.basic_get(name)
    assert method is not None
    assert ch.queue_delete(name, if_empty=True).method.message_count == 0
    wait_gone(conn, name)


def test_delete_if_unused(conn: pika.BlockingConnection, ch, queues: list[str], name: str) -> None:
    """if-unused refuses a queue with consumers (406 "in use")."""
    queues.append(name)
    ch.queue_declare(name)
    consumer = conn.channel()
    tag = consumer.basic_consume(name, lambda *args: None)
    text = refused(conn, lambda c: c.queue_delete(name, if_unused=True), 406)
    assert text == f"PRECONDITION_FAILED - queue '{name}' in vhost '/' in use"
    consumer.basic_cancel(tag)
    assert ch.queue_delete(name, if_unused=True).method.message_count == 0


def test_deleting_a_queue_cancels_its_consumers(port: int, name: str) -> None:
    """Consumers of a deleted queue get basic.cancel (consumer_cancel_notify)."""
    conn = amqp.Connection(f"127.0.0.1:{port}")
    conn.connect()
    try:
        channel = conn.channel()
        channel.queue_declare(name, auto_delete=False)
        cancelled: list[str] = []
        channel.basic_consume(name, consumer_tag="doomed", callback=lambda m: None, on_cancel=cancelled.append)
        with pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port)) as other:
            other.channel().queue_delete(name)
        deadline = time.monotonic() + 5
        while not cancelled and time.monotonic() < deadline:
            try:
                conn.drain_events(timeout=0.5)
            except TimeoutError:
                pass
        assert cancelled == ["doomed"]
    finally:
        conn.close()


# -- exclusive queues -------------------------------------------------------------------


def test_exclusive_queue_belongs_to_its_connection(port: int, conn: pika.BlockingConnection, name: str) -> None:
    """Another connection gets 405 RESOURCE_LOCKED for every use of the queue, yet may
    publish to it; the queue outlives the channel that declared it and goes with its
    connection."""
    owner = connect(port)
    declaring = owner.channel()
    declaring.queue_declare(name, exclusive=True)
    declaring.close()
    locked = LOCKED.format(name)
    attempts = {
        "declare": lambda c: c.queue_declare(name, exclusive=True),
        "declare-non-exclusive": lambda c: c.queue_declare(name),
        "passive": lambda c: c.queue_declare(name, passive=True),
        "get": lambda c: c.basic_get(name),
        "consume": lambda c: c.basic_consume(name, lambda *args: None),
        "purge": lambda c: c.queue_purge(name),
        "delete": lambda c: c.queue_delete(name),
        "bind": lambda c: c.queue_bind(name, "amq.direct", "k"),
    }
    for what, attempt in attempts.items():
        assert refused(conn, attempt, 405) == locked, what
    publisher = conn.channel()
    publisher.confirm_delivery()
    publisher.basic_publish("", name, b"from outside")
    assert counts(owner, name) == (1, 0)

    owner.close()
    wait_gone(conn, name)


def test_exclusive_redeclare_on_the_same_connection(
    conn: pika.BlockingConnection, queues: list[str], name: str
) -> None:
    """The owner may redeclare its exclusive queue, but not as non-exclusive (405), and a
    shared queue cannot be redeclared exclusive (405)."""
    ch = conn.channel()
    ch.queue_declare(name, exclusive=True)
    ch.queue_declare(name, exclusive=True)
    assert refused(conn, lambda c: c.queue_declare(name), 405) == LOCKED.format(name)
    shared = name + "-shared"
    queues.append(shared)
    ch.queue_declare(shared)
    assert refused(conn, lambda c: c.queue_declare(shared, exclusive=True), 405) == LOCKED.format(shared)


# -- auto-delete queues -----------------------------------------------------------------


def test_auto_delete_queue_goes_with_its_last_consumer(port: int, conn: pika.BlockingConnection, name: str) -> None:
    """An auto-delete queue stays while it never had a consumer (even after its declaring
    channel closes), stays while one of its consumers remains, and goes when the last one is
    cancelled."""
    declaring = conn.channel()
    declaring.queue_declare(name, auto_delete=True)
    declaring.close()
    assert counts(conn, name) == (0, 0)

    first, second = conn.channel(), conn.channel()
    first_tag = first.basic_consume(name, lambda *args: None)
    second_tag = second.basic_consume(name, lambda *args: None)
    first.basic_cancel(first_tag)
    assert counts(conn, name) == (0, 1)
    second.basic_cancel(second_tag)
    wait_gone(conn, name)


def test_auto_delete_queue_goes_when_its_consumer_channel_closes(conn: pika.BlockingConnection, name: str) -> None:
    ch = conn.channel()
    ch.queue_declare(name, auto_delete=True)
    consumer = conn.channel()
    consumer.basic_consume(name, lambda *args: None)
    assert counts(conn, name) == (0, 1)
    consumer.close()
    wait_gone(conn, name)
