"""Connections: protocol header, server properties, login, tuning, heartbeats, closing.

Most tests use real client libraries (pika, py-amqp, kombu); where a library hides what the
server sends, a raw socket speaks the protocol with pika's frame codec (``RawClient``).
Replies that RabbitMQ's behaviour decides were checked against RabbitMQ 3.10.8 with the same
code; the docstrings say so.
"""

from __future__ import annotations

import signal
import struct
import threading
import time

import amqp
import amqp.exceptions
import kombu
import pika
import pika.data
import pika.exceptions
import pika.frame
import pika.spec
import pytest

from tests.fuzz.raw import AMQP_0_9_1, RawClient
from tests.server import ServerProcess

RABBITMQ_CAPABILITIES = {
    "publisher_confirms",
    "exchange_exchange_bindings",
    "basic.nack",
    "consumer_cancel_notify",
    "connection.blocked",
    "consumer_priorities",
    "authentication_failure_close",
    "per_consumer_qos",
    "direct_reply_to",
}
LOGIN_REFUSED = (
    "ACCESS_REFUSED - Login was refused using authentication mechanism {}. For details see the broker logfile."
)


def connect(port: int, **params) -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port, **params))


# -- protocol header --------------------------------------------------------------------


def test_protocol_header_starts_the_handshake(port: int) -> None:
    """AMQP 0-9-1's header gets connection.start: version 0-9, PLAIN and AMQPLAIN, en_US
    (as RabbitMQ 3.10.8)."""
    raw = RawClient(port)
    try:
        raw.send(AMQP_0_9_1)
        start = raw.expect(pika.spec.Connection.Start)
        assert (start.version_major, start.version_minor) == (0, 9)
        mechanisms = start.mechanisms.encode() if isinstance(start.mechanisms, str) else start.mechanisms
        assert set(mechanisms.split()) == {b"PLAIN", b"AMQPLAIN"}
        locales = start.locales.encode() if isinstance(start.locales, str) else start.locales
        assert locales == b"en_US"
    finally:
        raw.close()


@pytest.mark.parametrize(
    "header",
    [
        b"AMQP\x00\x00\x09\x00",
        b"AMQP\x00\x00\x08\x00",
        b"AMQP\x00\x00\x0a\x00",
        b"AMQP\x00\x01\x00\x00",
        b"AMQP\x03\x01\x00\x00",
        b"AMQX\x00\x00\x09\x01",
        b"HTTP/1.1",
        b"GET / HTTP/1.1\r\n\r\n",
    ],
    ids=["0-9-0", "0-8-0", "0-10", "amqp-1.0", "amqp-1.0-sasl", "not-amqp", "http-8-bytes", "http-request"],
)
def test_wrong_protocol_header_gets_the_supported_header_and_close(port: int, header: bytes) -> None:
    """Any other header is answered with the header of the protocol spoken, then the socket
    is closed (as RabbitMQ 3.10.8 does)."""
    raw = RawClient(port)
    try:
        raw.send(header)
        assert raw.read_until_closed() == AMQP_0_9_1
    finally:
        raw.close()


# -- server properties ------------------------------------------------------------------


def test_server_properties_seen_by_pika(port: int) -> None:
    """pika sees RabbitMQ's product name, a 3.x version (clients choose semantics by it),
    the same informational keys and all of RabbitMQ 3.10.8's capabilities, each true."""
    with connect(port) as conn:
        properties = conn._impl.server_properties
    assert properties["product"] == "RabbitMQ"
    major, minor = (int(part) for part in properties["version"].split(".")[:2])
    assert major == 3 and minor >= 3
    for key in ("cluster_name", "copyright", "information", "platform"):
        assert isinstance(properties[key], str) and properties[key]
    capabilities = properties["capabilities"]
    assert set(capabilities) >= RABBITMQ_CAPABILITIES
    assert all(capabilities[key] is True for key in RABBITMQ_CAPABILITIES)


def test_server_properties_name_warrenmq(port: int) -> None:
    """Besides the compatible product/version, the server says what it really is."""
    with connect(port) as conn:
        properties = conn._impl.server_properties
    assert properties["warrenmq_version"]
    assert "WarrenMQ" in properties["information"]
    assert properties["version"] == "3.13.7"


# -- login ------------------------------------------------------------------------------


def test_login_plain_with_pika(port: int) -> None:
    with connect(port, credentials=pika.PlainCredentials("guest", "guest")) as conn:
        assert conn.is_open
        assert conn.channel().queue_declare("", exclusive=True).method.queue


def test_login_amqplain_is_py_amqp_default(port: int) -> None:
    """py-amqp prefers AMQPLAIN when the server offers it: it logs in with it, and a refused
    login names AMQPLAIN (RabbitMQ 3.10.8 gives the same 403 text)."""
    conn = amqp.Connection(f"127.0.0.1:{port}", userid="guest", password="guest")
    conn.connect()
    try:
        channel = conn.channel()
        assert channel.queue_declare("", exclusive=True).queue.startswith("amq.gen-")
    finally:
        conn.close()

    refused = amqp.Connection(f"127.0.0.1:{port}", userid="guest", password="wrong")
    with pytest.raises(amqp.exceptions.AccessRefused) as error:
        refused.connect()
    assert error.value.reply_text == LOGIN_REFUSED.format("AMQPLAIN")
    assert error.value.code == 403


def test_login_amqplain_raw(port: int) -> None:
    """AMQPLAIN's response is a field table without its length prefix."""
    table: list[bytes] = []
    pika.data.encode_table(table, {"LOGIN": "guest", "PASSWORD": "guest"})
    raw = RawClient(port)
    try:
        reply = raw.start("AMQPLAIN", b"".join(table)[4:])
        assert isinstance(reply, pika.spec.Connection.Tune), reply
    finally:
        raw.close()


@pytest.mark.parametrize("login_method", [None, "PLAIN", "AMQPLAIN"])
def test_login_with_kombu(port: int, login_method: str | None) -> None:
    """kombu (py-amqp transport) logs in with PLAIN by default, AMQPLAIN when asked."""
    options = {"login_method": login_method} if login_method else {}
    with kombu.Connection(f"amqp://guest:guest@127.0.0.1:{port}//", **options) as conn:
        conn.connect()
        assert conn.connected
        with (
            kombu.Connection(f"amqp://guest:wrong@127.0.0.1:{port}//", **options) as bad,
            pytest.raises(amqp.exceptions.AccessRefused) as error,
        ):
            bad.connect()
        assert error.value.reply_text == LOGIN_REFUSED.format(login_method or "PLAIN")


@pytest.mark.parametrize("user", ["guest", "no-such-user"])
def test_wrong_password_is_refused_with_403(port: int, user: str) -> None:
    """A wrong password or an unknown user: connection.close 403 ACCESS_REFUSED, which pika
    reports as ProbableAuthenticationError (as against RabbitMQ 3.10.8)."""
    credentials = pika.PlainCredentials(user, "wrong-password")
    with pytest.raises(pika.exceptions.ProbableAuthenticationError) as error:
        connect(port, credentials=credentials)
    assert "(403) 'ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN." in str(error.value)


def test_wrong_password_raw_close_frame(port: int) -> None:
    """To a client with the authentication_failure_close capability the server sends
    connection.close 403 with class 0, method 0, and closes (RabbitMQ 3.10.8's frame)."""
    raw = RawClient(port)
    try:
        close = raw.start(response=b"\x00guest\x00wrong")
        assert isinstance(close, pika.spec.Connection.Close), close
        assert (close.reply_code, close.reply_text) == (403, LOGIN_REFUSED.format("PLAIN"))
        assert (close.class_id, close.method_id) == (0, 0)
        raw.send_method(0, pika.spec.Connection.CloseOk())
        raw.read_until_closed()
    finally:
        raw.close()


def test_unknown_vhost_is_refused_with_530(port: int) -> None:
    """connection.open of a vhost that does not exist: 530 NOT_ALLOWED, naming the vhost and
    connection.open (10, 40), as RabbitMQ 3.10.8."""
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as error:
        connect(port, virtual_host="no-such-vhost")
    assert "(530) 'NOT_ALLOWED - vhost no-such-vhost not found'" in str(error.value)

    conn = amqp.Connection(f"127.0.0.1:{port}", virtual_host="no-such-vhost")
    with pytest.raises(amqp.exceptions.NotAllowed) as refused:
        conn.connect()
    assert refused.value.reply_text == "NOT_ALLOWED - vhost no-such-vhost not found"
    assert refused.value.method_sig == (10, 40)


# -- tuning -----------------------------------------------------------------------------


def test_tune_offers_rabbitmq_defaults(port: int) -> None:
    """connection.tune offers channel_max 2047, frame_max 131072, heartbeat 60 (RabbitMQ's
    defaults, and what RabbitMQ 3.10.8 sends)."""
    raw = RawClient(port)
    try:
        tune = raw.start()
        assert isinstance(tune, pika.spec.Connection.Tune)
        assert (tune.channel_max, tune.frame_max, tune.heartbeat) == (2047, 131072, 60)
    finally:
        raw.close()


def test_tune_negotiated_by_pika(port: int) -> None:
    """pika takes the lower of its wishes and the server's offer."""
    with connect(port) as conn:
        params = conn._impl.params
        assert (params.channel_max, params.frame_max, params.heartbeat) == (2047, 131072, 60)
    with connect(port, channel_max=10, frame_max=8192, heartbeat=5) as conn:
        params = conn._impl.params
        assert (params.channel_max, params.frame_max, params.heartbeat) == (10, 8192, 5)
        # A big message crosses a connection with small frames intact.
        channel = conn.channel()
        queue = channel.queue_declare("", exclusive=True).method.queue
        body = bytes(range(256)) * 200
        channel.basic_publish("", queue, body)
        method, _, got = next(channel.consume(queue, auto_ack=True, inactivity_timeout=5))
        assert method is not None and got == body


def test_heartbeat_negotiated_by_py_amqp(port: int) -> None:
    conn = amqp.Connection(f"127.0.0.1:{port}", heartbeat=7)
    conn.connect()
    try:
        assert (conn.heartbeat, conn.channel_max, conn.frame_max) == (7, 2047, 131072)
    finally:
        conn.close()


def test_negotiated_frame_max_bounds_every_frame_sent(port: int, name: str) -> None:
    """With frame_max 4096 agreed, a 10,000-byte message comes as several body frames, none
    longer than 4096 bytes in all."""
    body = bytes(i % 251 for i in range(10_000))
    with connect(port) as conn:
        channel = conn.channel()
        channel.queue_declare(name, auto_delete=False)
        channel.confirm_delivery()
        channel.basic_publish("", name, body)
    raw = RawClient(port)
    try:
        raw.handshake(frame_max=4096)
        raw.open_channel()
        raw.send_method(1, pika.spec.Basic.Get(queue=name, no_ack=True))
        raw.expect(pika.spec.Basic.GetOk, 1)
        kind, _, header = raw.read_frame()
        assert kind == 2 and struct.unpack_from(">Q", header, 4)[0] == len(body)
        received = b""
        sizes = []
        while len(received) < len(body):
            kind, channel_number, payload = raw.read_frame()
            assert (kind, channel_number) == (3, 1)
            sizes.append(len(payload) + 8)
            received += payload
        assert received == body
        assert max(sizes) <= 4096 and len(sizes) >= 3
    finally:
        raw.close()
        with connect(port) as conn:
            conn.channel().queue_delete(name)


# -- heartbeats -------------------------------------------------------------------------


def test_idle_client_with_heartbeat_1_stays_connected(port: int) -> None:
    """pika with heartbeat 1 and nothing to say for 3.5 s: the server's heartbeats keep
    arriving (pika counts them) and the connection still works afterwards."""
    with connect(port, heartbeat=1) as conn:
        assert conn._impl.params.heartbeat == 1
        conn.sleep(3.5)  # pika answers heartbeats while it sleeps
        assert conn.is_open
        assert conn._impl._heartbeat_checker._heartbeat_frames_received >= 2
        assert conn.channel().queue_declare("", exclusive=True).method.queue


def test_silent_client_is_dropped_after_missed_heartbeats(port: int) -> None:
    """A raw client that agrees on heartbeat 1 and then says nothing gets heartbeats, and is
    disconnected after about two missed intervals (RabbitMQ 3.10.8: heartbeats every
    interval, the socket closed a few intervals later)."""
    raw = RawClient(port)
    try:
        raw.handshake(heartbeat=1)
        opened = time.monotonic()
        heartbeats = 0
        raw.sock.settimeout(10)
        with pytest.raises((EOFError, ConnectionResetError)):
            while True:
                kind, channel, payload = raw.read_frame()
                assert (kind, channel, payload) == (8, 0, b"")
                heartbeats += 1
        lasted = time.monotonic() - opened
        assert heartbeats >= 1
        assert 1.5 <= lasted <= 8, lasted
    finally:
        raw.close()


# -- closing ----------------------------------------------------------------------------


def test_client_close_gets_close_ok(port: int) -> None:
    """connection.close from the client is answered with close-ok (RabbitMQ 3.10.8)."""
    raw = RawClient(port)
    try:
        raw.handshake()
        raw.open_channel()
        raw.send_method(0, pika.spec.Connection.Close(200, "Goodbye", 0, 0))
        raw.expect(pika.spec.Connection.CloseOk)
    finally:
        raw.close()


def test_after_close_ok_the_client_closes_the_socket(port: int) -> None:
    """As RabbitMQ 3.10.8: after close-ok the server leaves the socket for the client to close
    (amqpstorm, still reading, takes a server-side close for an error); the connection is
    still listed as closing meanwhile.  With a heartbeat negotiated, the server closes it
    after that interval."""
    raw = RawClient(port)
    try:
        raw.handshake()
        raw.send_method(0, pika.spec.Connection.Close(200, "Goodbye", 0, 0))
        raw.expect(pika.spec.Connection.CloseOk)
        raw.sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            raw.sock.recv(1)  # not closed by the server
    finally:
        raw.close()
    raw = RawClient(port)
    try:
        raw.handshake(heartbeat=1)
        raw.send_method(0, pika.spec.Connection.Close(200, "Goodbye", 0, 0))
        raw.expect(pika.spec.Connection.CloseOk)
        assert raw.read_until_closed(timeout=5).replace(b"\x08\x00\x00\x00\x00\x00\x00\xce", b"") == b""
    finally:
        raw.close()


def test_pika_close_and_reopen(port: int) -> None:
    """A clean close with open channels and a consumer, then a fresh connection works."""
    conn = connect(port)
    channel = conn.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.basic_consume(queue, lambda *args: None)
    conn.channel()
    conn.close()
    assert conn.is_closed
    with connect(port) as again:
        assert again.channel().queue_declare("", exclusive=True).method.queue


def test_server_close_then_close_ok_ends_the_socket(port: int) -> None:
    """A connection error makes the server send connection.close; once the client answers
    close-ok the server closes the socket (RabbitMQ 3.10.8 does at once)."""
    raw = RawClient(port)
    try:
        raw.handshake()
        raw.send_method(5, pika.spec.Queue.Declare(queue="x"))  # channel 5 was never opened
        close = raw.expect(pika.spec.Connection.Close)
        assert close.reply_code == 504
        raw.send_method(0, pika.spec.Connection.CloseOk())
        assert raw.read_until_closed(timeout=3) == b""
    finally:
        raw.close()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_sigterm_closes_connections_with_320(fresh_server: ServerProcess, signum: int) -> None:
    """SIGTERM (or SIGINT): every client gets connection.close 320 CONNECTION_FORCED
    (RabbitMQ's text for a shutdown) and the server exits 0."""
    fresh_server.start()
    port = fresh_server.port
    consumer = connect(port)
    channel = consumer.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.basic_consume(queue, lambda *args: None)
    other = amqp.Connection(f"127.0.0.1:{port}")
    other.connect()

    fresh_server.proc.send_signal(signum)

    # py-amqp reads in a thread so that both clients answer close-ok promptly.
    py_amqp_error: list[BaseException] = []

    def drain() -> None:
        try:
            other.drain_events(timeout=10)
        except BaseException as exc:  # the close is what we are waiting for
            py_amqp_error.append(exc)

    reader = threading.Thread(target=drain)
    reader.start()
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as closed:
        channel.start_consuming()
    reader.join(10)
    assert closed.value.reply_code == 320
    assert closed.value.reply_text == "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'"
    assert len(py_amqp_error) == 1 and isinstance(py_amqp_error[0], amqp.exceptions.ConnectionForced)
    assert py_amqp_error[0].reply_code == 320

    assert fresh_server.stop() == 0
    assert "Traceback" not in fresh_server.log
