"""Bad input over real sockets: each malformed frame, method out of order, content on the wrong
channel or declared size gets RabbitMQ's answer (the connection error and its text, or, before
tune-ok, a close without a word), never a traceback in the broker's log, and never an effect on
another connection.

Expected answers are RabbitMQ 3.10.8's, observed with the same bytes (research catalogue §4-§6);
``WARREN_ORACLE=5682:15682`` runs the file against a RabbitMQ to check them (tests marked
``warren_only`` are where WarrenMQ deliberately answers sooner, and are skipped then).  Where
RabbitMQ waits 3 s before its silent close, WarrenMQ closes at once.
"""

from __future__ import annotations

import os
import re
import struct
import threading
import time
import uuid
from collections.abc import Iterator

import pika
import pika.spec
import pytest

from tests.fuzz.raw import AMQP_0_9_1, Closed, RawClient, frame, header_payload, method_payload
from tests.server import ServerProcess

ORACLE = os.environ.get("WARREN_ORACLE", "")
warren_only = pytest.mark.skipif(bool(ORACLE), reason="WarrenMQ answers this differently from RabbitMQ, on purpose")

QOS = method_payload(pika.spec.Basic.Qos(prefetch_count=1))  # <<0,60,0,10,0,0,0,0,0,1,0>>


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess | None]:
    if ORACLE:
        yield None
        return
    proc = ServerProcess(None).start()
    yield proc
    assert proc.stop() == 0, proc.log
    assert "Traceback" not in proc.log, proc.log


@pytest.fixture(scope="module")
def port(server: ServerProcess | None) -> int:
    return int(ORACLE.split(":")[0]) if ORACLE else server.port  # type: ignore[union-attr]


class Bystander:
    """A consumer on another connection that must not notice anything."""

    def __init__(self, port: int) -> None:
        self.queue = f"p7-bystander-{uuid.uuid4().hex[:8]}"
        self.conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port, heartbeat=0))
        self.ch = self.conn.channel()
        self.ch.queue_declare(self.queue, exclusive=True)

    def still_fine(self) -> None:
        self.ch.basic_publish("", self.queue, b"ping")
        _, _, body = self.ch.basic_get(self.queue, auto_ack=True)
        assert body == b"ping"

    def close(self) -> None:
        self.conn.close()


@pytest.fixture(scope="module")
def bystander(port: int) -> Iterator[Bystander]:
    b = Bystander(port)
    yield b
    b.still_fine()
    b.close()


def opened(port: int) -> RawClient:
    raw = RawClient(port)
    raw.handshake()
    raw.open_channel()
    return raw


def close_after(port: int, data: bytes) -> tuple[int, str, int, int]:
    """Send ``data`` on an opened connection (channel 1 open); the connection.close it gets."""
    with opened(port) as raw:
        raw.send(data)
        return raw.expect_connection_close()


# -- before tune-ok: a close without a word -------------------------------------------------------------


START_OK = method_payload(pika.spec.Connection.StartOk({}, "PLAIN", b"\x00guest\x00guest", "en_US"))


@pytest.mark.parametrize(
    "after_header",
    [
        b"\xff" * 8,  # not a frame
        frame(1, 0, method_payload(pika.spec.Connection.TuneOk(2047, 131072, 0))),  # tune-ok for start-ok
        frame(1, 0, method_payload(pika.spec.Connection.Open("/"))),
        frame(1, 1, method_payload(pika.spec.Channel.Open())),
        frame(1, 0, method_payload(pika.spec.Connection.Close(200, "", 0, 0))),
        frame(2, 1, b"\x00\x3c" + b"\x00" * 12),
        frame(1, 0, START_OK, end=0x00),  # start-ok with a bad frame end
        frame(1, 0, START_OK[:20]),  # start-ok cut short
    ],
    ids=["garbage", "tune-ok", "open", "channel-open", "close", "content-header", "bad-frame-end", "truncated"],
)
def test_bad_start_ok_is_a_silent_close(port: int, bystander: Bystander, after_header: bytes) -> None:
    """Anything but a good connection.start-ok after connection.start: no frame, the socket
    closed (RabbitMQ 3.10.8: the same, 3 s later)."""
    with RawClient(port) as raw:
        raw.send(AMQP_0_9_1)
        raw.expect(pika.spec.Connection.Start)
        raw.send(after_header)
        assert raw.read_until_closed() == b""
    bystander.still_fine()


@pytest.mark.parametrize(
    ("mechanism", "response"),
    [
        ("FOO", b"\x00guest\x00guest"),
        ("plain", b"\x00guest\x00guest"),
        ("PLAIN", b"guestguest"),
        ("PLAIN", b""),
        ("PLAIN", b"guest\x00guest\x00guest"),
        ("AMQPLAIN", b"\x05LOGINS\x00\x00\x00\x05guest"),  # no PASSWORD
        ("AMQPLAIN", b"\x05LOGINZ"),  # not a table
        ("EXTERNAL", b""),  # not offered without a client certificate
    ],
    ids=[
        "unknown",
        "lower-case",
        "no-nuls",
        "empty",
        "authzid",
        "amqplain-no-password",
        "amqplain-garbage",
        "external",
    ],
)
def test_malformed_login_is_a_silent_close(port: int, mechanism: str, response: bytes) -> None:
    """Even with authentication_failure_close, a response that does not parse (or an unknown
    mechanism) gets no close frame (RabbitMQ 3.10.8 §4)."""
    with RawClient(port) as raw:
        raw.send(AMQP_0_9_1)
        raw.expect(pika.spec.Connection.Start)
        properties = {"capabilities": {"authentication_failure_close": True}}
        raw.send_method(0, pika.spec.Connection.StartOk(properties, mechanism, response, "en_US"))
        assert raw.read_until_closed() == b""


def test_open_before_tune_ok_is_a_silent_close(port: int) -> None:
    """connection.open before tune-ok: the tune was sent, then the socket closes (§5)."""
    with RawClient(port) as raw:
        assert isinstance(raw.start(), pika.spec.Connection.Tune)
        raw.send_method(0, pika.spec.Connection.Open("/"))
        assert raw.read_until_closed() == b""


# -- after tune-ok ---------------------------------------------------------------------------------------


def test_channel_open_before_connection_open_is_505(port: int) -> None:
    """RabbitMQ 3.10.8: 505 UNEXPECTED_FRAME (0,0), the frame shown as Erlang prints it."""
    with RawClient(port) as raw:
        tune = raw.start()
        raw.send_method(0, pika.spec.Connection.TuneOk(tune.channel_max, tune.frame_max, 0))
        raw.send_method(1, pika.spec.Channel.Open())
        assert raw.expect_connection_close() == (505, "UNEXPECTED_FRAME - type 1, all octets = <<0,20,0,10,0>>", 0, 0)


# -- frames on an opened connection ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            frame(1, 1, QOS, end=0x00),
            (501, "FRAME_ERROR - type 1, all octets = <<0,60,0,10,0,0,0,0,0,1,0>>: {invalid_frame_end_marker,0}"),
        ),
        (frame(4, 1, b"abc"), (501, 'FRAME_ERROR - type 4, all octets = <<"abc">>: unknown_frame')),
        (frame(9, 0, b""), (501, "FRAME_ERROR - type 9, all octets = <<>>: unknown_frame")),
        (frame(0, 0, b""), (501, "FRAME_ERROR - type 0, all octets = <<>>: unknown_frame")),
        (frame(255, 1, b"x"), (501, 'FRAME_ERROR - type 255, all octets = <<"x">>: unknown_frame')),
        (frame(8, 0, b"x"), (501, 'FRAME_ERROR - type 8, all octets = <<"x">>: unknown_frame')),
        (frame(8, 1, b""), (505, "UNEXPECTED_FRAME - type 8, all octets = <<>>")),
        (
            frame(2, 0, header_payload(1)),
            (505, "UNEXPECTED_FRAME - type 2, all octets = <<0,60,0,0,0,0,0,0,0,0,0,1,0,0>>"),
        ),
        (frame(3, 0, b"x"), (505, 'UNEXPECTED_FRAME - type 3, all octets = <<"x">>')),
        (frame(1, 1, b"\x00\x3c"), (501, "FRAME_ERROR - type 1, all octets = <<0,60>>: unknown_frame")),
        (frame(1, 1, b""), (501, "FRAME_ERROR - type 1, all octets = <<>>: unknown_frame")),
        (
            frame(1, 1, QOS)[:3] + struct.pack(">I", 0x7FFFFFFF),
            (501, "FRAME_ERROR - type 1, all octets = <<>>: {frame_too_large,2147483647,131064}"),
        ),
        (
            frame(2, 1, header_payload(1)),
            (505, "UNEXPECTED_FRAME - expected method frame, got non method frame instead"),
        ),
        (frame(3, 5, b"x"), (505, "UNEXPECTED_FRAME - expected method frame, got non method frame instead")),
    ],
    ids=[
        "frame-end",
        "type-4",
        "type-9",
        "type-0",
        "type-255",
        "heartbeat-payload",
        "heartbeat-channel-1",
        "header-channel-0",
        "body-channel-0",
        "method-2-bytes",
        "method-empty",
        "size-2GiB",
        "header-without-publish",
        "body-unopened-channel",
    ],
)
def test_bad_frame_is_a_connection_error(port: int, bystander: Bystander, data: bytes, expected: tuple) -> None:
    code, text, class_id, method_id = close_after(port, data)
    assert (code, text, class_id, method_id) == (*expected, 0, 0)
    bystander.still_fine()


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        (pika.spec.Connection.StartOk({}, "PLAIN", b"\x00guest\x00guest", "en_US"), (504, 10, 11)),
        (pika.spec.Connection.TuneOk(2047, 131072, 0), (504, 10, 31)),
        (pika.spec.Connection.Open("/"), (504, 10, 40)),
        (pika.spec.Queue.Declare(queue="x"), (504, 50, 10)),
    ],
    ids=["start-ok", "tune-ok", "open", "queue-declare"],
)
def test_method_out_of_order_on_channel_0(port: int, method: object, expected: tuple[int, int, int]) -> None:
    """After the handshake, handshake methods (or channel methods) on channel 0: 504 CHANNEL_ERROR
    "unexpected method in connection state running" naming the method (§6.4)."""
    with opened(port) as raw:
        raw.send_method(0, method)
        code, text, class_id, method_id = raw.expect_connection_close()
    assert (code, class_id, method_id) == expected
    assert text == "CHANNEL_ERROR - unexpected method in connection state running"


def test_connection_close_on_a_channel_is_503(port: int) -> None:
    with opened(port) as raw:
        raw.send_method(1, pika.spec.Connection.Close(200, "", 0, 0))
        assert raw.expect_connection_close() == (503, "COMMAND_INVALID - unimplemented method", 10, 50)


@pytest.mark.parametrize(
    ("arguments", "closed_without_a_word"),
    [
        (b"\x00\x00\x00\x05\x01kZ\x00\x00", True),  # an unknown field type
        (b"\x00\x00\x00\x04\x01kI\x00", True),  # a value cut short inside its table
        (b"\x00\x00\x10\x00\x01kS\x00\x00", False),  # a table longer than the frame
        (b"\x00\x00\x00\x08\x01kS\xff\xff\xff\xff", False),  # ... as its string says too
        (b"\x00\x00\x00\x05\x01kZ\x00\x00\x00", False),  # a bad table, then a byte too many
    ],
    ids=["bad-type", "value-cut-short", "table-overrun", "string-overrun", "bad-table-and-leftover"],
)
def test_bad_field_table_in_arguments(
    server: ServerProcess | None, port: int, bystander: Bystander, arguments: bytes, closed_without_a_word: bool
) -> None:
    """queue.declare with a malformed arguments table, as RabbitMQ 3.10.8 answers it: when the
    method's fields do not fit the frame, 501 "cannot decode <<fields>>"; when they do but the
    table inside does not parse, its reader process crashes and the socket is closed without
    a connection.close (WarrenMQ logs what did not parse, and where)."""
    declare = method_payload(pika.spec.Queue.Declare(queue="p7-bad-table"))[:-4] + arguments
    with opened(port) as raw:
        raw.send(frame(1, 1, declare))
        if closed_without_a_word:
            assert raw.read_until_closed() == b""
            if server is not None:
                assert server.wait_for_log(r"the arguments of queue.declare on channel 1 do not parse: field 'k'")
        else:
            assert raw.expect_connection_close() == (501, f"FRAME_ERROR - cannot decode {_erlang(declare[4:])}", 50, 10)
    bystander.still_fine()


def _erlang(data: bytes) -> str:
    return "<<" + ",".join(map(str, data)) + ">>"


def _table(inner: bytes) -> bytes:
    return struct.pack(">I", len(inner)) + inner


def _nested(depth: int) -> bytes:
    inner = _table(b"")
    for _ in range(depth):
        inner = _table(b"\x01aF" + inner)
    return inner


EVERY_FIELD_TYPE = (
    b"\x01at\x01\x01bb\x01\x01cB\x01\x01ds\x00\x01\x01eu\x00\x01\x01fI\x00\x00\x00\x01\x01gi\x00\x00\x00\x01"
    + b"\x01hl"
    + bytes(8)
    + b"\x01jf\x7f\x7f\xff\xff\x01kd\x7f\xef"
    + b"\xff" * 6
    + b"\x01mD\x01\x00\x00\x00\x01\x01nS\x00\x00\x00\x00\x01ox\x00\x00\x00\x00\x01pA\x00\x00\x00\x02t\x01"
    + b"\x01qT"
    + bytes(8)
    + b"\x01rF\x00\x00\x00\x00\x01sV"
)

# (property flags, property bytes): lists RabbitMQ 3.10.8's parser crashes on (541, checked
# with these bytes), then lists it takes.
MALFORMED_PROPERTIES = {
    "content-type-missing": (0x8000, b"\x05ab"),
    "unknown-field-type": (0x2000, _table(b"\x01aZ\x00")),
    "table-longer-than-header": (0x2000, struct.pack(">I", 50) + b"\x01aS"),
    "value-cut-short": (0x2000, _table(b"\x01aI\x00\x00")),
    "key-cut-short": (0x2000, _table(b"\x09a")),
    "nested-table-bad": (0x2000, _table(b"\x01aF" + _table(b"\x01bQ"))),
    "array-element-bad": (0x2000, _table(b"\x01aA" + _table(b"Q"))),
    "double-nan": (0x2000, _table(b"\x01ad\x7f\xf8" + bytes(6))),
    "double-infinity": (0x2000, _table(b"\x01ad\xff\xf0" + bytes(6))),
    "float-nan": (0x2000, _table(b"\x01af\x7f\xc0\x00\x00")),
    "timestamp-cut-short": (0x0040, b"\x00\x00\x00"),
    "bytes-left-over": (0x1000, b"\x02garbage"),
    "continuation-flag-with-bytes": (0x0001, b"\x00\x00"),
}
WELL_FORMED_PROPERTIES = {
    "every-field-type": (0x2000, _table(EVERY_FIELD_TYPE)),
    "every-property": (
        0xFFE8,
        b"\x01a\x01b" + _table(b"") + b"\x02\x05\x01c\x01d\x0560000\x01f" + bytes(8) + b"\x01g\x01i",
    ),
    "tables-nested-150-deep": (0x2000, _nested(150)),
    "low-flag-bits-without-bytes": (0x0003, b""),
    "content-type-not-utf8": (0x8000, b"\x02\xff\xfe"),
}


def _publish_with_properties(raw: RawClient, flags: int, properties: bytes, queue: str = "p7-nowhere") -> None:
    publish = method_payload(pika.spec.Basic.Publish(exchange="", routing_key=queue))
    header = struct.pack(">HHQH", 60, 0, 1, flags) + properties
    raw.send(frame(1, 1, publish) + frame(2, 1, header) + frame(3, 1, b"x"))


@pytest.mark.parametrize("case", list(MALFORMED_PROPERTIES))
def test_malformed_property_list_is_541(port: int, bystander: Bystander, case: str) -> None:
    """A content header whose property list does not parse: RabbitMQ 3.10.8's parser crashes
    and closes the connection with a bare 541 INTERNAL_ERROR (0,0), whether or not the message
    would be routed anywhere; WarrenMQ answers the same, and logs no traceback."""
    with opened(port) as raw:
        raw.sock.settimeout(2)
        _publish_with_properties(raw, *MALFORMED_PROPERTIES[case])
        assert raw.expect_connection_close() == (541, "INTERNAL_ERROR", 0, 0)
    bystander.still_fine()


@warren_only
@pytest.mark.parametrize(
    ("properties", "logged"),
    [
        (
            _table(b"\x02okI\x00\x00\x00\x01\x03badZ"),
            "property headers, field 'bad': unknown type 'Z' (0x5a) at offset 30",
        ),
        (
            _table(b"\x01aF" + _table(b"\x01bA" + _table(b"t\x01d\x7f\xf0" + bytes(6)))),
            "property headers, field 'a' / 'b' / [1]: a value of type 'd' (0x64) is NaN or infinite at offset 34",
        ),
        (_table(b"\x01aS\x00\x00\x00\x09abc"), "field 'a': a value of type 'S' (0x53) of 9 bytes runs past"),
    ],
    ids=["unknown-letter", "nested-nan", "string-overrun"],
)
def test_a_refused_property_list_is_logged_with_field_letter_and_offset(
    server: ServerProcess, port: int, properties: bytes, logged: str
) -> None:
    """The client gets RabbitMQ's bare 541; the operator's log names the property, the table
    field (path), the type letter and the offset in the content header."""
    with opened(port) as raw:
        raw.sock.settimeout(2)
        _publish_with_properties(raw, 0x2000, properties)
        assert raw.expect_connection_close() == (541, "INTERNAL_ERROR", 0, 0)
    assert server.wait_for_log(re.escape(logged)), server.log[-2000:]


@pytest.mark.parametrize("case", list(WELL_FORMED_PROPERTIES))
def test_well_formed_property_lists_are_taken_and_delivered_as_sent(port: int, case: str) -> None:
    flags, properties = WELL_FORMED_PROPERTIES[case]
    queue = f"p7-props-{uuid.uuid4().hex[:8]}"
    with opened(port) as raw:
        raw.sock.settimeout(2)
        raw.send(frame(1, 1, method_payload(pika.spec.Queue.Declare(queue=queue, exclusive=True))))
        assert isinstance(raw.read_method()[1], pika.spec.Queue.DeclareOk)
        _publish_with_properties(raw, flags, properties, queue)
        raw.send(frame(1, 1, method_payload(pika.spec.Basic.Get(queue=queue, no_ack=True))))
        assert isinstance(raw.read_method()[1], pika.spec.Basic.GetOk)
        kind, _, payload = raw.read_frame()
        assert kind == 2 and payload == struct.pack(">HHQH", 60, 0, 1, flags) + properties


# (property flags, property bytes, RabbitMQ 3.10.8's channel.close text): values the parser
# takes but basic.publish refuses (406, class 60 method 40; checked with these bytes).
REFUSED_PROPERTIES = {
    "delivery-mode-0": (0x1000, b"\x00", "invalid message: {delivery_mode_unknown,0}"),
    "delivery-mode-3": (0x1000, b"\x03", "invalid message: {delivery_mode_unknown,3}"),
    "expiration-not-a-number": (0x0100, b"\x03abc", "invalid expiration 'abc': no_integer"),
    "expiration-empty": (0x0100, b"\x00", "invalid expiration '': no_integer"),
    "expiration-space-first": (0x0100, b"\x02 5", "invalid expiration ' 5': no_integer"),
    "expiration-fraction": (0x0100, b"\x031.5", 'invalid expiration \'1.5\': {leftover_string,".5"}'),
    "expiration-hex": (0x0100, b"\x040x10", 'invalid expiration \'0x10\': {leftover_string,"x10"}'),
    "expiration-negative": (0x0100, b"\x02-5", "invalid expiration '-5': {value_negative,-5}"),
    "expiration-above-ten-years": (
        0x0100,
        b"\x0c315360000001",
        "invalid expiration '315360000001': {value_too_large,315360000001}",
    ),
    "expiration-wrapped-as-erlang-prints-it": (
        0x0100,
        b"\x1499999999999999999999",
        "invalid expiration '99999999999999999999': {value_too_large,\n" + " " * 44 + "99999999999999999999}",
    ),
}


@pytest.mark.parametrize("case", list(REFUSED_PROPERTIES))
def test_refused_property_values_close_the_channel(port: int, case: str) -> None:
    flags, properties, text = REFUSED_PROPERTIES[case]
    with opened(port) as raw:
        raw.sock.settimeout(2)
        _publish_with_properties(raw, flags, properties)
        close = raw.read_method()[1]
        assert isinstance(close, pika.spec.Channel.Close), close
        assert (close.reply_code, close.reply_text, close.class_id, close.method_id) == (
            406,
            f"PRECONDITION_FAILED - {text}",
            60,
            40,
        )


@pytest.mark.parametrize("expiration", [b"+5", b"-0", b"007", b"315360000000"])
def test_expirations_rabbitmq_takes(port: int, expiration: bytes) -> None:
    with opened(port) as raw:
        raw.sock.settimeout(2)
        _publish_with_properties(raw, 0x0100, bytes([len(expiration)]) + expiration)
        raw.send(frame(1, 1, QOS))
        assert isinstance(raw.read_method()[1], pika.spec.Basic.QosOk)


def test_property_list_cut_short_where_routing_reads_it_is_541(port: int, bystander: Bystander) -> None:
    """Property flags announcing a delivery-mode that is not there: 541 INTERNAL_ERROR (0,0), as
    RabbitMQ 3.10.8 (checked); WarrenMQ logs one line saying where, no traceback."""
    with opened(port) as raw:
        publish = method_payload(pika.spec.Basic.Publish(exchange="", routing_key="p7-nowhere"))
        header = struct.pack(">HHQ", 60, 0, 1) + b"\x10\x00"
        raw.send(frame(1, 1, publish) + frame(2, 1, header) + frame(3, 1, b"x"))
        assert raw.expect_connection_close() == (541, "INTERNAL_ERROR", 0, 0)
    bystander.still_fine()


# -- declared sizes ------------------------------------------------------------------------------------------


@warren_only
def test_huge_declared_body_is_refused_before_it_arrives(server: ServerProcess, port: int) -> None:
    """A content header announcing 2**63 bytes: WarrenMQ refuses it at once (406, the channel
    only), allocating nothing; RabbitMQ waits for the body before refusing.  Many at once."""
    before = _rss(server)
    raws = []
    for _ in range(20):
        raw = opened(port)
        publish = method_payload(pika.spec.Basic.Publish(exchange="", routing_key="p7-nowhere"))
        raw.send(frame(1, 1, publish) + frame(2, 1, header_payload(2**63)) + frame(3, 1, b"x" * 1000))
        _, close = raw.read_method()
        assert isinstance(close, pika.spec.Channel.Close)
        assert (close.reply_code, close.class_id, close.method_id) == (406, 60, 40)
        assert close.reply_text == (
            "PRECONDITION_FAILED - message size 9223372036854775808 is larger than configured max size 134217728"
        )
        raw.send_method(1, pika.spec.Channel.CloseOk())
        raw.open_channel(1)  # the connection goes on
        raws.append(raw)
    assert _rss(server) - before < 32 * 1024 * 1024
    for raw in raws:
        raw.close()


def test_body_arriving_slowly_is_buffered_only_as_it_comes(server: ServerProcess | None, port: int) -> None:
    """A 100 MB message whose body never finishes: the broker holds what arrived, no more."""
    if server is None:
        pytest.skip("needs the broker's RSS")
    before = _rss(server)
    with opened(port) as raw:
        publish = method_payload(pika.spec.Basic.Publish(exchange="", routing_key="p7-nowhere"))
        raw.send(frame(1, 1, publish) + frame(2, 1, header_payload(100_000_000)))
        for _ in range(10):
            raw.send(frame(3, 1, b"y" * 100_000))
        raw.send_method(2, pika.spec.Channel.Open())
        raw.expect(pika.spec.Channel.OpenOk, 2)  # everything sent so far was read
        assert _rss(server) - before < 20 * 1024 * 1024


def _rss(server: ServerProcess) -> int:
    assert server.proc is not None
    with open(f"/proc/{server.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


# -- many bad clients at once, one good one ----------------------------------------------------------------


@warren_only  # 30 connections at a time: too many for the shared RabbitMQ
def test_a_storm_of_bad_clients_does_not_disturb_a_consumer(port: int, bystander: Bystander) -> None:
    """While 30 threads open connections and send broken frames as fast as they can, a consumer
    on another connection gets every one of 200 messages."""
    stop = threading.Event()
    garbage = [
        frame(1, 1, QOS, end=0x00),
        frame(4, 1, b"abc"),
        b"\xff" * 64,
        frame(2, 0, header_payload(1)),
        frame(1, 1, QOS)[:3] + struct.pack(">I", 0x7FFFFFFF),
    ]

    def attack(n: int) -> None:
        while not stop.is_set():
            try:
                with RawClient(port, timeout=2) as raw:
                    raw.handshake()
                    raw.send(garbage[n % len(garbage)])
                    raw.read_until_closed(timeout=2)
            except (OSError, AssertionError, Closed):
                pass
            n += 1

    threads = [threading.Thread(target=attack, args=(i,), daemon=True) for i in range(30)]
    for t in threads:
        t.start()
    try:
        received: list[bytes] = []
        queue = f"p7-storm-{uuid.uuid4().hex[:8]}"
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port, heartbeat=0))
        ch = conn.channel()
        ch.queue_declare(queue, exclusive=True)
        ch.confirm_delivery()
        for i in range(200):
            ch.basic_publish("", queue, b"%d" % i)
        deadline = time.monotonic() + 30
        for _, _, body in ch.consume(queue, auto_ack=True, inactivity_timeout=1):
            if body is not None:
                received.append(body)
            if len(received) == 200 or time.monotonic() > deadline:
                break
        conn.close()
        assert received == [b"%d" % i for i in range(200)]
    finally:
        stop.set()
        for t in threads:
            t.join(5)
    bystander.still_fine()
