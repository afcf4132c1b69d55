"""Flow control plumbing: channel.flow and access.request (connection.blocked: test_blocked.py).

RabbitMQ 3.x answers channel.flow(active=true) with flow-ok and refuses active=false (see
test_channels.py); it never sends channel.flow itself, so a client's flow-ok is an
unsolicited method (503).  access.request, for clients of the 0-8 era, is answered with
ticket 1.  Both were checked against RabbitMQ 3.10.8 with this same code.
"""

from __future__ import annotations

import pika
import pika.spec
import pytest

from tests.interop.test_raw_protocol import Raw, content_header, frame, method_payload, shortstr

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
