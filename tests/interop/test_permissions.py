"""Permissions: every AMQP operation checked against the configure/write/read regexes exactly
as RabbitMQ maps operations to them (rabbit_channel.erl of 3.10.8 and 3.13.7, and
rabbit_access_control.erl), over real connections.

Each mapping is shown both ways: the operation succeeds for a user granted only the
permissions listed, and fails with RabbitMQ's 403 text (and class/method ids) for a user granted
everything but one of them.  Users, vhosts and permissions are created through the management
HTTP API, as an operator would.

The expectations were checked against RabbitMQ 3.10.8: ``WARREN_ORACLE=5682:15682`` runs this
file against a RabbitMQ (AMQP port:management port, guest/guest on 127.0.0.1) instead of a
WarrenMQ started here.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import amqp
import amqp.exceptions
import pika.spec
import pytest

from tests.fuzz.harness import Harness
from tests.fuzz.raw import AMQP_0_9_1, frame, method_payload
from tests.management.conftest import Api, q
from tests.server import ServerProcess

ORACLE = os.environ.get("WARREN_ORACLE", "")
PASSWORD = "p7-secret"
NOTHING = ("", "", "")
EVERYTHING = (".*", ".*", ".*")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Broker:
    port: int
    api: Api


@pytest.fixture(scope="module")
def broker() -> Iterator[Broker]:
    if ORACLE:
        amqp_port, mgmt_port = (int(p) for p in ORACLE.split(":"))
        yield Broker(amqp_port, Api(mgmt_port))
        return
    proc = ServerProcess(None, "--management-port", str(free_port())).start()
    yield Broker(proc.port, Api(proc.management_port))
    assert proc.stop() == 0, proc.log
    assert "Traceback" not in proc.log, proc.log


class Tenant:
    """A fresh vhost with a user in it (guest, its creator, may do everything there)."""

    def __init__(self, broker: Broker) -> None:
        tag = uuid.uuid4().hex[:8]
        self.broker = broker
        self.api = broker.api
        self.vhost = f"p7-v-{tag}"
        self.user = f"p7-u-{tag}"
        self.connections: list[amqp.Connection] = []
        assert self.api.put(f"/api/vhosts/{q(self.vhost)}").status == 201
        reply = self.api.put(f"/api/users/{q(self.user)}", {"password": PASSWORD, "tags": ""})
        assert reply.status == 201, reply

    def grant(self, configure: str, write: str, read: str) -> None:
        body = {"configure": configure, "write": write, "read": read}
        reply = self.api.put(f"/api/permissions/{q(self.vhost)}/{q(self.user)}", body)
        assert reply.status in (201, 204), reply

    def connect(self, user: str | None = None, password: str = PASSWORD, vhost: str | None = None) -> amqp.Connection:
        conn = amqp.Connection(
            f"127.0.0.1:{self.broker.port}",
            userid=user or self.user,
            password=password,
            virtual_host=self.vhost if vhost is None else vhost,
            connect_timeout=5,
        )
        self.connections.append(conn)
        conn.connect()
        return conn

    def admin(self) -> amqp.Channel:
        """A channel of guest's in the vhost, to set the scene."""
        return self.connect("guest", "guest").channel()

    def close(self) -> None:
        for conn in self.connections:
            try:
                conn.close()
            except Exception:
                pass
        self.api.delete(f"/api/vhosts/{q(self.vhost)}")
        self.api.delete(f"/api/users/{q(self.user)}")


@pytest.fixture
def tenant(broker: Broker) -> Iterator[Tenant]:
    t = Tenant(broker)
    yield t
    t.close()


def refused(tenant: Tenant, kind: str, name: str) -> str:
    return f"ACCESS_REFUSED - access to {kind} '{name}' in vhost '{tenant.vhost}' refused for user '{tenant.user}'"


def channel_error(action: Callable[[], Any]) -> tuple[int, str, tuple[int, int]]:
    """Run ``action``; the (reply code, reply text, (class, method)) of the channel.close it caused."""
    with pytest.raises(amqp.exceptions.AMQPError) as info:
        action()
    exc = info.value
    return exc.reply_code, exc.reply_text, tuple(exc.method_sig or (0, 0))  # type: ignore[return-value]


def publish(ch: amqp.Channel, exchange: str, routing_key: str) -> None:
    """basic.publish, then a synchronous method so that an asynchronous channel.close shows."""
    ch.basic_publish(amqp.Message(b"p7"), exchange=exchange, routing_key=routing_key)
    ch.basic_qos(0, 0, False)


def names() -> tuple[str, str]:
    tag = uuid.uuid4().hex[:8]
    return f"p7-x-{tag}", f"p7-q-{tag}"


# -- connecting ----------------------------------------------------------------------------


def test_vhost_without_permissions_is_refused_with_530(tenant: Tenant) -> None:
    """connection.open of a vhost the user has no permissions in: 530 NOT_ALLOWED (10,40)."""
    with pytest.raises(amqp.exceptions.NotAllowed) as info:
        tenant.connect()
    assert info.value.reply_code == 530
    assert info.value.reply_text == f"NOT_ALLOWED - access to vhost '{tenant.vhost}' refused for user '{tenant.user}'"
    assert tuple(info.value.method_sig) == (10, 40)


def test_any_permission_entry_opens_the_vhost(tenant: Tenant) -> None:
    """Even three empty patterns let the user open the vhost (RabbitMQ checks the entry exists)."""
    tenant.grant(*NOTHING)
    conn = tenant.connect()
    assert conn.connected


def test_wrong_password_of_a_new_user_is_refused_with_403(tenant: Tenant) -> None:
    tenant.grant(*EVERYTHING)
    with pytest.raises(amqp.exceptions.AccessRefused) as info:
        tenant.connect(password="wrong")
    assert info.value.reply_code == 403
    assert info.value.reply_text == (
        "ACCESS_REFUSED - Login was refused using authentication mechanism AMQPLAIN. "
        "For details see the broker logfile."
    )


def test_wrong_password_without_the_capability_is_a_silent_close(tenant: Tenant) -> None:
    """A client without authentication_failure_close learns nothing: the socket is just closed
    (RabbitMQ 3.10.8 closes it 3 s later, WarrenMQ at once)."""
    from tests.fuzz.raw import RawClient

    tenant.grant(*EVERYTHING)
    with RawClient(tenant.broker.port) as raw:
        raw.send(AMQP_0_9_1)
        raw.expect(pika.spec.Connection.Start)
        response = b"\x00" + tenant.user.encode() + b"\x00wrong"
        raw.send_method(0, pika.spec.Connection.StartOk({"product": "raw"}, "PLAIN", response, "en_US"))
        assert raw.read_until_closed() == b""


def test_user_without_password_cannot_log_in(tenant: Tenant) -> None:
    """A user created without a password (as RabbitMQ's API allows) has no password login."""
    user = f"p7-nopw-{uuid.uuid4().hex[:6]}"
    assert tenant.api.put(f"/api/users/{q(user)}", {"tags": ""}).status == 201
    try:
        with pytest.raises(amqp.exceptions.AccessRefused):
            tenant.connect(user=user, password="")
    finally:
        tenant.api.delete(f"/api/users/{q(user)}")


# -- loopback users: in process, as the only address these tests may use is 127.0.0.1 -------


def test_guest_may_not_log_in_from_another_host() -> None:
    """loopback_users (default ["guest"]): guest from a non-loopback address is refused as a
    failed login (403 with authentication_failure_close), as RabbitMQ; another user is not."""
    harness = Harness()
    try:
        conn, transport = harness.connect(peer="192.0.2.2")
        conn.data_received(AMQP_0_9_1)
        properties = {"capabilities": {"authentication_failure_close": True}}
        start_ok = pika.spec.Connection.StartOk(properties, "PLAIN", b"\x00guest\x00guest", "en_US")
        conn.data_received(frame(1, 0, method_payload(start_ok)))
        harness.run()
        (_, close) = transport.methods()[-1]
        assert close.reply_code == 403
        assert close.reply_text == (
            "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. "
            "For details see the broker logfile."
        )
        conn, transport = harness.connect(peer="::ffff:127.0.0.1")  # loopback over IPv6
        conn.data_received(AMQP_0_9_1 + frame(1, 0, method_payload(start_ok)))
        harness.run()
        assert type(transport.methods()[-1][1]).__name__ == "ConnectionTune"
    finally:
        harness.close()


def test_loopback_users_setting() -> None:
    harness = Harness(loopback_users=[])
    try:
        conn, transport = harness.connect(peer="192.0.2.2")
        start_ok = pika.spec.Connection.StartOk({}, "PLAIN", b"\x00guest\x00guest", "en_US")
        conn.data_received(AMQP_0_9_1 + frame(1, 0, method_payload(start_ok)))
        harness.run()
        assert type(transport.methods()[-1][1]).__name__ == "ConnectionTune"
    finally:
        harness.close()


# -- exchanges -----------------------------------------------------------------------------


def test_exchange_declare_needs_configure(tenant: Tenant) -> None:
    x, _ = names()
    tenant.grant(f"^{x}$", "", "")
    tenant.connect().channel().exchange_declare(x, "direct", auto_delete=False)
    tenant.grant("", ".*", ".*")
    code, text, sig = channel_error(lambda: tenant.connect().channel().exchange_declare(x + "2", "direct"))
    assert (code, text, sig) == (403, refused(tenant, "exchange", x + "2"), (40, 10))


def test_exchange_declare_of_an_existing_exchange_needs_configure(tenant: Tenant) -> None:
    """Redeclaring (not passively) is a configure operation too."""
    x, _ = names()
    tenant.admin().exchange_declare(x, "direct", auto_delete=False)
    tenant.grant("", ".*", ".*")
    code, text, _ = channel_error(lambda: tenant.connect().channel().exchange_declare(x, "direct", auto_delete=False))
    assert (code, text) == (403, refused(tenant, "exchange", x))


def test_passive_exchange_declare_needs_nothing(tenant: Tenant) -> None:
    x, _ = names()
    tenant.admin().exchange_declare(x, "direct", auto_delete=False)
    tenant.grant(*NOTHING)
    tenant.connect().channel().exchange_declare(x, "direct", passive=True)


def test_exchange_declare_with_alternate_exchange_needs_read_on_it_and_write_on_the_ae(tenant: Tenant) -> None:
    """A new exchange naming an alternate exchange: configure and read on the exchange, write
    on the alternate exchange (the user could otherwise publish to it through the new one)."""
    x, _ = names()
    ae = x + "-ae"
    args = {"alternate-exchange": ae}
    tenant.grant(f"^{x}", f"^{ae}$", f"^{x}$")
    tenant.connect().channel().exchange_declare(x, "direct", auto_delete=False, arguments=args)
    tenant.grant(".*", ".*", f"^{x}$")  # everything but read on the new exchange
    code, text, sig = channel_error(
        lambda: tenant.connect().channel().exchange_declare(x + "-b", "direct", arguments=args)
    )
    assert (code, text, sig) == (403, refused(tenant, "exchange", x + "-b"), (40, 10))
    tenant.grant(".*", f"^{x}-c$", ".*")  # everything but write on the alternate exchange
    code, text, _ = channel_error(
        lambda: tenant.connect().channel().exchange_declare(x + "-c", "direct", arguments=args)
    )
    assert (code, text) == (403, refused(tenant, "exchange", ae))


def test_alternate_exchange_permissions_are_checked_only_when_creating(tenant: Tenant) -> None:
    x, _ = names()
    args = {"alternate-exchange": x + "-ae"}
    tenant.admin().exchange_declare(x, "direct", auto_delete=False, arguments=args)
    tenant.grant(f"^{x}$", "", "")
    tenant.connect().channel().exchange_declare(x, "direct", auto_delete=False, arguments=args)


def test_exchange_delete_needs_configure(tenant: Tenant) -> None:
    x, _ = names()
    admin = tenant.admin()
    admin.exchange_declare(x, "direct", auto_delete=False)
    admin.exchange_declare(x + "2", "direct", auto_delete=False)
    tenant.grant(f"^{x}$", "", "")
    tenant.connect().channel().exchange_delete(x)
    tenant.grant("", ".*", ".*")
    code, text, sig = channel_error(lambda: tenant.connect().channel().exchange_delete(x + "2"))
    assert (code, text, sig) == (403, refused(tenant, "exchange", x + "2"), (40, 20))


def test_exchange_delete_of_a_missing_exchange_still_needs_configure(tenant: Tenant) -> None:
    x, _ = names()
    tenant.grant("", ".*", ".*")
    code, text, _ = channel_error(lambda: tenant.connect().channel().exchange_delete(x))
    assert (code, text) == (403, refused(tenant, "exchange", x))


def test_exchange_bind_needs_write_on_destination_and_read_on_source(tenant: Tenant) -> None:
    x, _ = names()
    src, dst = x + "-src", x + "-dst"
    admin = tenant.admin()
    admin.exchange_declare(src, "direct", auto_delete=False)
    admin.exchange_declare(dst, "fanout", auto_delete=False)
    tenant.grant("", f"^{dst}$", f"^{src}$")
    ch = tenant.connect().channel()
    ch.exchange_bind(dst, src, "k")
    ch.exchange_unbind(dst, src, "k")
    tenant.grant(".*", ".*", f"^{dst}$")  # no read on the source
    code, text, sig = channel_error(lambda: tenant.connect().channel().exchange_bind(dst, src, "k"))
    assert (code, text, sig) == (403, refused(tenant, "exchange", src), (40, 30))
    code, text, sig = channel_error(lambda: tenant.connect().channel().exchange_unbind(dst, src, "k"))
    assert (code, text, sig) == (403, refused(tenant, "exchange", src), (40, 40))
    tenant.grant(".*", f"^{src}$", ".*")  # no write on the destination
    code, text, _ = channel_error(lambda: tenant.connect().channel().exchange_bind(dst, src, "k"))
    assert (code, text) == (403, refused(tenant, "exchange", dst))
    code, text, _ = channel_error(lambda: tenant.connect().channel().exchange_unbind(dst, src, "k"))
    assert (code, text) == (403, refused(tenant, "exchange", dst))


# -- queues --------------------------------------------------------------------------------


def test_queue_declare_needs_configure(tenant: Tenant) -> None:
    _, qn = names()
    tenant.grant(f"^{qn}$", "", "")
    tenant.connect().channel().queue_declare(qn, auto_delete=False)
    tenant.grant("", ".*", ".*")
    code, text, sig = channel_error(lambda: tenant.connect().channel().queue_declare(qn + "2", auto_delete=False))
    assert (code, text, sig) == (403, refused(tenant, "queue", qn + "2"), (50, 10))


def test_queue_redeclare_needs_configure(tenant: Tenant) -> None:
    _, qn = names()
    tenant.admin().queue_declare(qn, auto_delete=False)
    tenant.grant("", ".*", ".*")
    code, text, _ = channel_error(lambda: tenant.connect().channel().queue_declare(qn, auto_delete=False))
    assert (code, text) == (403, refused(tenant, "queue", qn))


def test_server_named_queue_needs_configure_on_its_generated_name(tenant: Tenant) -> None:
    """queue.declare with an empty name is checked against the amq.gen-... name it gets."""
    tenant.grant(r"^amq\.gen-", "", "")
    declared = tenant.connect().channel().queue_declare("", exclusive=True)
    assert declared.queue.startswith("amq.gen-")
    tenant.grant("^p7-", ".*", ".*")
    code, text, sig = channel_error(lambda: tenant.connect().channel().queue_declare("", exclusive=True))
    assert code == 403 and sig == (50, 10)
    prefix = "ACCESS_REFUSED - access to queue 'amq.gen-"
    suffix = f"' in vhost '{tenant.vhost}' refused for user '{tenant.user}'"
    assert text.startswith(prefix) and text.endswith(suffix), text
    assert len(text) == len(prefix) + 22 + len(suffix), text


def test_passive_queue_declare_needs_nothing(tenant: Tenant) -> None:
    _, qn = names()
    tenant.admin().queue_declare(qn, auto_delete=False)
    tenant.grant(*NOTHING)
    declared = tenant.connect().channel().queue_declare(qn, passive=True)
    assert declared.queue == qn


def test_queue_declare_with_dead_letter_exchange_needs_read_on_it_and_write_on_the_dlx(tenant: Tenant) -> None:
    """A new queue naming a dead-letter exchange: configure and read on the queue, write on the
    dead-letter exchange (it will publish there on the user's behalf)."""
    x, qn = names()
    args = {"x-dead-letter-exchange": x}
    tenant.grant(f"^{qn}", f"^{x}$", f"^{qn}$")
    tenant.connect().channel().queue_declare(qn, auto_delete=False, arguments=args)
    tenant.grant(".*", ".*", "^$")  # no read on the queue
    code, text, sig = channel_error(
        lambda: tenant.connect().channel().queue_declare(qn + "-b", auto_delete=False, arguments=args)
    )
    assert (code, text, sig) == (403, refused(tenant, "queue", qn + "-b"), (50, 10))
    tenant.grant(".*", "^$", ".*")  # no write on the dead-letter exchange
    code, text, _ = channel_error(
        lambda: tenant.connect().channel().queue_declare(qn + "-c", auto_delete=False, arguments=args)
    )
    assert (code, text) == (403, refused(tenant, "exchange", x))


def test_dead_letter_exchange_default_is_amq_default(tenant: Tenant) -> None:
    """x-dead-letter-exchange "" is the default exchange, checked as amq.default."""
    _, qn = names()
    tenant.grant(".*", "^$", ".*")
    code, text, _ = channel_error(
        lambda: (
            tenant.connect().channel().queue_declare(qn, auto_delete=False, arguments={"x-dead-letter-exchange": ""})
        )
    )
    assert (code, text) == (403, refused(tenant, "exchange", "amq.default"))


def test_queue_delete_needs_configure(tenant: Tenant) -> None:
    _, qn = names()
    admin = tenant.admin()
    admin.queue_declare(qn, auto_delete=False)
    admin.queue_declare(qn + "2", auto_delete=False)
    tenant.grant(f"^{qn}$", "", "")
    tenant.connect().channel().queue_delete(qn)
    tenant.grant("", ".*", ".*")
    code, text, sig = channel_error(lambda: tenant.connect().channel().queue_delete(qn + "2"))
    assert (code, text, sig) == (403, refused(tenant, "queue", qn + "2"), (50, 40))


def test_queue_purge_needs_read(tenant: Tenant) -> None:
    _, qn = names()
    tenant.admin().queue_declare(qn, auto_delete=False)
    tenant.grant("", "", f"^{qn}$")
    tenant.connect().channel().queue_purge(qn)
    tenant.grant(".*", ".*", "^$")
    code, text, sig = channel_error(lambda: tenant.connect().channel().queue_purge(qn))
    assert (code, text, sig) == (403, refused(tenant, "queue", qn), (50, 30))


def test_queue_bind_needs_write_on_the_queue_and_read_on_the_exchange(tenant: Tenant) -> None:
    x, qn = names()
    admin = tenant.admin()
    admin.exchange_declare(x, "direct", auto_delete=False)
    admin.queue_declare(qn, auto_delete=False)
    tenant.grant("", f"^{qn}$", f"^{x}$")
    ch = tenant.connect().channel()
    ch.queue_bind(qn, x, "k")
    ch.queue_unbind(qn, x, "k")
    tenant.grant(".*", ".*", f"^{qn}$")  # no read on the exchange
    code, text, sig = channel_error(lambda: tenant.connect().channel().queue_bind(qn, x, "k"))
    assert (code, text, sig) == (403, refused(tenant, "exchange", x), (50, 20))
    code, text, sig = channel_error(lambda: tenant.connect().channel().queue_unbind(qn, x, "k"))
    assert (code, text, sig) == (403, refused(tenant, "exchange", x), (50, 50))
    tenant.grant(".*", f"^{x}$", ".*")  # no write on the queue
    code, text, _ = channel_error(lambda: tenant.connect().channel().queue_bind(qn, x, "k"))
    assert (code, text) == (403, refused(tenant, "queue", qn))
    code, text, _ = channel_error(lambda: tenant.connect().channel().queue_unbind(qn, x, "k"))
    assert (code, text) == (403, refused(tenant, "queue", qn))


# -- publishing and consuming --------------------------------------------------------------


def test_publish_needs_write_on_the_exchange(tenant: Tenant) -> None:
    x, qn = names()
    admin = tenant.admin()
    admin.exchange_declare(x, "fanout", auto_delete=False)
    admin.queue_declare(qn, auto_delete=False)
    admin.queue_bind(qn, x, "")
    tenant.grant("", f"^{x}$", "")
    publish(tenant.connect().channel(), x, "k")
    assert admin.queue_declare(qn, passive=True).message_count == 1
    tenant.grant(".*", "^$", ".*")
    code, text, _ = channel_error(lambda: publish(tenant.connect().channel(), x, "k"))
    assert (code, text) == (403, refused(tenant, "exchange", x))


def test_refused_publish_names_basic_publish(tenant: Tenant) -> None:
    x, _ = names()
    tenant.admin().exchange_declare(x, "fanout", auto_delete=False)
    tenant.grant(".*", "^$", ".*")
    _, _, sig = channel_error(lambda: publish(tenant.connect().channel(), x, "k"))
    assert sig == (60, 40)


def test_publish_to_the_default_exchange_needs_write_on_amq_default(tenant: Tenant) -> None:
    """The default exchange is named amq.default for permissions; the queue needs nothing."""
    _, qn = names()
    admin = tenant.admin()
    admin.queue_declare(qn, auto_delete=False)
    tenant.grant("", r"^amq\.default$", "")
    publish(tenant.connect().channel(), "", qn)
    assert admin.queue_declare(qn, passive=True).message_count == 1
    tenant.grant(".*", f"^{qn}$", ".*")
    code, text, _ = channel_error(lambda: publish(tenant.connect().channel(), "", qn))
    assert (code, text) == (403, refused(tenant, "exchange", "amq.default"))


def test_consume_needs_read_on_the_queue(tenant: Tenant) -> None:
    _, qn = names()
    tenant.admin().queue_declare(qn, auto_delete=False)
    tenant.grant("", "", f"^{qn}$")
    tenant.connect().channel().basic_consume(qn, callback=lambda m: None)
    tenant.grant(".*", ".*", "^$")
    code, text, sig = channel_error(lambda: tenant.connect().channel().basic_consume(qn, callback=lambda m: None))
    assert (code, text, sig) == (403, refused(tenant, "queue", qn), (60, 20))


def test_get_needs_read_on_the_queue(tenant: Tenant) -> None:
    _, qn = names()
    admin = tenant.admin()
    admin.queue_declare(qn, auto_delete=False)
    admin.basic_publish(amqp.Message(b"hello"), exchange="", routing_key=qn)
    tenant.grant("", "", f"^{qn}$")
    got = tenant.connect().channel().basic_get(qn, no_ack=True)
    assert got is not None and got.body == b"hello"
    tenant.grant(".*", ".*", "^$")
    code, text, sig = channel_error(lambda: tenant.connect().channel().basic_get(qn))
    assert (code, text, sig) == (403, refused(tenant, "queue", qn), (60, 70))


# -- checks before existence -----------------------------------------------------------------


def test_purge_of_a_missing_queue_without_read_is_403_not_404(tenant: Tenant) -> None:
    _, qn = names()
    tenant.grant(".*", ".*", "^$")
    code, text, _ = channel_error(lambda: tenant.connect().channel().queue_purge(qn))
    assert (code, text) == (403, refused(tenant, "queue", qn))


def test_delete_of_a_missing_queue_without_configure_is_403(tenant: Tenant) -> None:
    _, qn = names()
    tenant.grant("^$", ".*", ".*")
    code, text, _ = channel_error(lambda: tenant.connect().channel().queue_delete(qn))
    assert (code, text) == (403, refused(tenant, "queue", qn))


def test_get_from_a_missing_queue_without_read_is_403_not_404(tenant: Tenant) -> None:
    """RabbitMQ checks read permission on the name before looking the queue up."""
    _, qn = names()
    tenant.grant(".*", ".*", "^$")
    code, text, _ = channel_error(lambda: tenant.connect().channel().basic_get(qn))
    assert (code, text) == (403, refused(tenant, "queue", qn))


def test_consume_from_a_missing_queue_without_read_is_403_not_404(tenant: Tenant) -> None:
    _, qn = names()
    tenant.grant(".*", ".*", "^$")
    code, text, _ = channel_error(lambda: tenant.connect().channel().basic_consume(qn, callback=lambda m: None))
    assert (code, text) == (403, refused(tenant, "queue", qn))


def test_publish_to_a_missing_exchange_without_write_is_403_not_404(tenant: Tenant) -> None:
    x, _ = names()
    tenant.grant(".*", "^$", ".*")
    code, text, _ = channel_error(lambda: publish(tenant.connect().channel(), x, "k"))
    assert (code, text) == (403, refused(tenant, "exchange", x))


def test_bind_of_a_missing_queue_without_write_is_403_not_404(tenant: Tenant) -> None:
    x, qn = names()
    tenant.admin().exchange_declare(x, "direct", auto_delete=False)
    tenant.grant(".*", "^$", ".*")
    code, text, _ = channel_error(lambda: tenant.connect().channel().queue_bind(qn, x, "k"))
    assert (code, text) == (403, refused(tenant, "queue", qn))


def test_bind_to_a_missing_exchange_without_read_is_403_not_404(tenant: Tenant) -> None:
    x, qn = names()
    tenant.admin().queue_declare(qn, auto_delete=False)
    tenant.grant(".*", ".*", "^$")
    code, text, _ = channel_error(lambda: tenant.connect().channel().queue_bind(qn, x, "k"))
    assert (code, text) == (403, refused(tenant, "exchange", x))


# -- patterns -------------------------------------------------------------------------------


def test_patterns_are_unanchored_regex_searches(tenant: Tenant) -> None:
    """RabbitMQ runs re:run(Name, Pattern): a match anywhere in the name grants."""
    _, qn = names()
    tenant.grant("q-", "", "")
    tenant.connect().channel().queue_declare(qn, auto_delete=False)  # "p7-q-..." contains "q-"


def test_permission_changes_apply_to_open_connections(tenant: Tenant) -> None:
    """New permissions take effect for the next operation on an open channel."""
    _, qn = names()
    tenant.grant(".*", ".*", ".*")
    ch = tenant.connect().channel()
    ch.queue_declare(qn, auto_delete=False)
    tenant.grant("^$", ".*", ".*")
    code, _, _ = channel_error(lambda: ch.queue_declare(qn + "2", auto_delete=False))
    assert code == 403


# -- topic permissions -----------------------------------------------------------------------


def set_topic_permissions(tenant: Tenant, exchange: str, write: str, read: str) -> None:
    body = {"exchange": exchange, "write": write, "read": read}
    reply = tenant.api.put(f"/api/topic-permissions/{q(tenant.vhost)}/{q(tenant.user)}", body)
    assert reply.status in (201, 204), reply


def test_topic_permissions_through_the_management_api(tenant: Tenant) -> None:
    """PUT, GET and DELETE /api/topic-permissions/{vhost}/{user}, as RabbitMQ's API."""
    path = f"/api/topic-permissions/{q(tenant.vhost)}/{q(tenant.user)}"
    assert tenant.api.put(path, {"exchange": "amq.topic", "write": "^a", "read": "^b"}).status == 201
    assert tenant.api.put(path, {"exchange": "amq.topic", "write": "^a", "read": "^c"}).status == 204
    assert tenant.api.ok(path) == [
        {"user": tenant.user, "vhost": tenant.vhost, "exchange": "amq.topic", "write": "^a", "read": "^c"}
    ]
    assert tenant.api.delete(path).status == 204
    assert tenant.api.get(path).status == 404


def test_topic_write_permission_on_publish(tenant: Tenant) -> None:
    """Publishing to a topic exchange checks the routing key against the topic write pattern."""
    tenant.grant(".*", ".*", ".*")
    set_topic_permissions(tenant, "amq.topic", "^a", ".*")
    ch = tenant.connect().channel()
    publish(ch, "amq.topic", "a.1")
    code, text, sig = channel_error(lambda: publish(ch, "amq.topic", "z.1"))
    assert (code, sig) == (403, (60, 40))
    assert text == (
        f"ACCESS_REFUSED - access to topic 'z.1' in exchange 'amq.topic' in vhost '{tenant.vhost}' "
        f"refused for user '{tenant.user}'"
    )


def test_topic_read_permission_on_bind_with_username_variable(tenant: Tenant) -> None:
    """Binding to a topic exchange checks the binding key against the topic read pattern, in which
    {username} stands for the user's name."""
    _, qn = names()
    tenant.grant(".*", ".*", ".*")
    set_topic_permissions(tenant, "amq.topic", ".*", "^{username}\\.")
    ch = tenant.connect().channel()
    ch.queue_declare(qn, auto_delete=False)
    ch.queue_bind(qn, "amq.topic", f"{tenant.user}.x")
    code, text, sig = channel_error(lambda: ch.queue_bind(qn, "amq.topic", "other.x"))
    assert (code, sig) == (403, (50, 20))
    assert text == (
        f"ACCESS_REFUSED - access to topic 'other.x' in exchange 'amq.topic' in vhost '{tenant.vhost}' "
        f"refused for user '{tenant.user}'"
    )


def test_topic_permissions_do_not_apply_to_other_exchange_types(tenant: Tenant) -> None:
    x, _ = names()
    tenant.grant(".*", ".*", ".*")
    set_topic_permissions(tenant, x, "^a", "^a")
    ch = tenant.connect().channel()
    ch.exchange_declare(x, "direct", auto_delete=False)
    publish(ch, x, "z.1")
