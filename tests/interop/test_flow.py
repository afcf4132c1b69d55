"""Flow control plumbing: channel.flow, access.request, connection.blocked.

RabbitMQ 3.x answers channel.flow(active=true) with flow-ok and refuses active=false (see
test_channels.py); it never sends channel.flow itself, so a client's flow-ok is an
unsolicited method (503).  access.request, for clients of the 0-8 era, is answered with
ticket 1.  Under a resource alarm a connection is blocked when it publishes: clients with the
``connection.blocked`` capability are told (connection.blocked, reason "low on memory" /
"low on disk"), its socket is no longer read; connections that only consume carry on.  The
channel.flow and access.request replies were checked against RabbitMQ 3.10.8 with this same
code; the alarm tests need a WarrenMQ server of their own with a tiny watermark.
"""

from __future__ import annotations

import time

import amqp
import pika
import pika.exceptions
import pika.spec
import pytest

from tests.interop.test_raw_protocol import Raw, content_header, frame, method_payload, shortstr
from tests.server import ServerProcess

BLOCKED_CAPABILITY = {"connection.blocked": True}


# -- channel.flow and access.request -----------------------------------------------------------------


def test_channel_flow_active_true_keeps_deliveries_flowing(port: int, name: str) -> None:
    """flow-ok(active=true) answers channel.flow(active=true) (RabbitMQ 3.10.8), and a
    consumer on that channel keeps receiving."""
    raw = Raw(port).connect()
    try:
        raw.call(1, pika.spec.Queue.Declare(queue=name, exclusive=True), pika.spec.Queue.DeclareOk)
        raw.call(1, pika.spec.Basic.Consume(queue=name, no_ack=True), pika.spec.Basic.ConsumeOk)
        flow_ok = raw.call(1, pika.spec.Channel.Flow(active=True), pika.spec.Channel.FlowOk)
        assert flow_ok.active is True
        raw.publish(1, "", name, b"flowing")
        raw.expect(pika.spec.Basic.Deliver, 1)
        assert raw.read_content(1)[1] == b"flowing"
    finally:
        raw.close()


def test_pika_channel_flow(port: int) -> None:
    with pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port)) as conn:
        channel = conn.channel()
        assert channel.flow(True) is True
        assert channel.queue_declare("", exclusive=True).method.queue


def test_unsolicited_flow_ok_is_503(port: int) -> None:
    """The server never sends channel.flow, so a flow-ok from the client is an unexpected
    method: connection.close 503 COMMAND_INVALID - unimplemented method (20, 21), as RabbitMQ
    3.10.8."""
    raw = Raw(port).connect()
    try:
        raw.send_method(1, pika.spec.Channel.FlowOk(active=True))
        close = raw.connection_close()
        assert (close.reply_code, close.reply_text) == (503, "COMMAND_INVALID - unimplemented method")
        assert (close.class_id, close.method_id) == (20, 21)
    finally:
        raw.close()


@pytest.mark.parametrize(
    "realm, bits", [("/data", 0b11111), ("", 0), ("/admin", 0b00001)], ids=["all-bits", "empty", "exclusive"]
)
def test_access_request_is_granted_ticket_1(port: int, name: str, realm: str, bits: int) -> None:
    """access.request (removed from 0-9-1, still sent by old clients) is answered with
    access.request-ok ticket 1 whatever the realm and flags (RabbitMQ 3.10.8); later methods
    carrying that ticket work."""
    raw = Raw(port).connect()
    try:
        raw.send_frame(1, 1, b"\x00\x1e\x00\x0a" + shortstr(realm) + bytes([bits]))
        request_ok = raw.expect(pika.spec.Access.RequestOk, 1)
        assert request_ok.ticket == 1
        declare = pika.spec.Queue.Declare(ticket=1, queue=name, exclusive=True)
        raw.call(1, declare, pika.spec.Queue.DeclareOk)
        publish = pika.spec.Basic.Publish(ticket=1, exchange="", routing_key=name)
        raw.send(frame(1, 1, method_payload(publish)) + frame(2, 1, content_header(1)) + frame(3, 1, b"x"))
        got = raw.get(1, name)
        assert got is not None and got[2] == b"x"
    finally:
        raw.close()


# -- connection.blocked ---------------------------------------------------------------------------------


@pytest.fixture
def alarmed(fresh_server: ServerProcess) -> ServerProcess:
    """A server whose memory alarm is on from the start (a 1-byte high watermark)."""
    fresh_server.args = ["--memory-high-watermark-absolute", "1"]
    fresh_server.start()
    assert fresh_server.wait_for_log("memory resource limit alarm set")
    return fresh_server


def stays(condition, seconds: float = 0.5) -> bool:
    """``condition`` holds throughout ``seconds`` (how "nothing happens" is shown)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not condition():
            return False
        time.sleep(0.02)
    return True


def test_publisher_is_blocked_and_told(alarmed: ServerProcess, name: str) -> None:
    """Under an alarm a client with the connection.blocked capability is not blocked until it
    publishes; then it gets connection.blocked("low on memory") and is no longer read: its
    next method goes unanswered.  The message that blocked it was taken."""
    watcher = Raw(alarmed.port).connect()
    raw = Raw(alarmed.port).connect(capabilities=BLOCKED_CAPABILITY)
    try:
        raw.call(1, pika.spec.Queue.Declare(queue=name), pika.spec.Queue.DeclareOk)  # not blocked yet
        raw.publish(1, "", name, b"taken")
        blocked = raw.expect(pika.spec.Connection.Blocked, 0)
        assert blocked.reason == "low on memory"
        raw.publish(1, "", name, b"waits")
        raw.send_method(1, pika.spec.Queue.Declare(queue=name, passive=True))
        raw.sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            raw.read_frame()

        def count() -> int:
            declare = pika.spec.Queue.Declare(queue=name, passive=True)
            return watcher.call(1, declare, pika.spec.Queue.DeclareOk).message_count

        assert stays(lambda: count() == 1)
    finally:
        raw.close()
        watcher.close()


def test_consumer_only_connection_is_not_blocked(alarmed: ServerProcess, name: str) -> None:
    """A connection that does not publish is never blocked nor told: it declares, consumes,
    acks and gets as usual under the alarm, draining what a (now blocked) publisher sent."""
    consumer = Raw(alarmed.port).connect(capabilities=BLOCKED_CAPABILITY)
    publisher = Raw(alarmed.port).connect(capabilities=BLOCKED_CAPABILITY)
    try:
        consumer.call(1, pika.spec.Queue.Declare(queue=name, exclusive=True), pika.spec.Queue.DeclareOk)
        consumer.call(1, pika.spec.Basic.Consume(queue=name, consumer_tag="c"), pika.spec.Basic.ConsumeOk)
        publisher.publish(1, "", name, b"before the block")
        assert publisher.expect(pika.spec.Connection.Blocked, 0).reason == "low on memory"
        deliver = consumer.expect(pika.spec.Basic.Deliver, 1)
        assert consumer.read_content(1)[1] == b"before the block"
        consumer.send_method(1, pika.spec.Basic.Ack(deliver.delivery_tag))
        consumer.call(1, pika.spec.Basic.Cancel(consumer_tag="c"), pika.spec.Basic.CancelOk)
        assert consumer.get(1, name) is None  # get-empty: answered, not blocked
    finally:
        consumer.close()
        publisher.close()


def test_client_without_the_capability_is_blocked_silently(alarmed: ServerProcess, name: str) -> None:
    """No connection.blocked for a client that did not ask for it, but it is blocked all
    the same once its publish was taken: its next method goes unanswered."""
    watcher = Raw(alarmed.port).connect()
    raw = Raw(alarmed.port).connect()
    try:
        raw.call(1, pika.spec.Queue.Declare(queue=name, exclusive=False), pika.spec.Queue.DeclareOk)
        raw.publish(1, "", name, b"taken")
        deadline = time.monotonic() + 5
        declare = pika.spec.Queue.Declare(queue=name, passive=True)
        while watcher.call(1, declare, pika.spec.Queue.DeclareOk).message_count != 1:
            assert time.monotonic() < deadline
        raw.send_method(1, pika.spec.Basic.Qos())
        raw.sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            raw.read_frame()  # neither connection.blocked nor qos-ok
        watcher.call(1, pika.spec.Queue.Delete(queue=name), pika.spec.Queue.DeleteOk)
    finally:
        raw.close()
        watcher.close()


def test_blocked_callbacks_of_pika_and_py_amqp(alarmed: ServerProcess, name: str) -> None:
    """pika and py-amqp advertise connection.blocked: their callbacks are called (pika's with
    the reason).  (A
    blocked connection is not read, so neither can close it politely: pika gives up after its
    blocked_connection_timeout, py-amqp's socket is just dropped.)"""
    params = pika.ConnectionParameters("127.0.0.1", alarmed.port, blocked_connection_timeout=0.5)
    conn = pika.BlockingConnection(params)
    reasons: list[str] = []
    conn.add_on_connection_blocked_callback(lambda c, frame: reasons.append(frame.method.reason))
    conn.channel().basic_publish("", name, b"x")
    with pytest.raises(pika.exceptions.ConnectionBlockedTimeout):
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            conn.process_data_events(time_limit=0.05)
    assert reasons == ["low on memory"]

    blocked: list[str] = []
    connection = amqp.Connection(f"127.0.0.1:{alarmed.port}", on_blocked=blocked.append)
    connection.connect()
    try:
        connection.channel().basic_publish(amqp.Message("x"), routing_key=name)
        deadline = time.monotonic() + 5
        while not blocked:
            assert time.monotonic() < deadline
            try:
                connection.drain_events(timeout=0.2)
            except TimeoutError:
                pass
        assert blocked == ["connection blocked, see broker logs"]  # py-amqp drops the reason
    finally:
        connection.collect()


@pytest.mark.parametrize(
    "extra, reason",
    [([], "low on disk"), (["--memory-high-watermark-absolute", "1"], "low on disk & memory")],
    ids=["disk", "disk-and-memory"],
)
def test_disk_alarm_reason(fresh_server: ServerProcess, name: str, extra: list[str], reason: str) -> None:
    """A free-disk limit above what the disk has: the reason is "low on disk"; with the
    memory alarm too, "low on disk & memory" (RabbitMQ's words)."""
    fresh_server.args = ["--disk-free-limit", str(10**18), *extra]
    fresh_server.start()
    assert fresh_server.wait_for_log("free disk space alarm set")
    raw = Raw(fresh_server.port).connect(capabilities=BLOCKED_CAPABILITY)
    try:
        raw.publish(1, "", name, b"x")
        assert raw.expect(pika.spec.Connection.Blocked, 0).reason == reason
    finally:
        raw.close()
