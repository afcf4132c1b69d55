"""Exchanges: the default exchange, the predeclared ones, declare/delete and routing.

Routing is observed as a user would: publish with publisher confirms (so that routing is
done when the publish returns), then basic.get from each queue.  Every reply code and text,
and every routing table here, was checked against RabbitMQ 3.10.8 with the same code.
"""

from __future__ import annotations

import amqp
import amqp.exceptions
import pika
import pika.exceptions
import pytest

DEFAULT_REFUSED = "ACCESS_REFUSED - operation not permitted on the default exchange"


def temp_queue(ch, exchange: str = "", routing_key: str = "", arguments: dict | None = None) -> str:
    queue = ch.queue_declare("", exclusive=True).method.queue
    if exchange:
        ch.queue_bind(queue, exchange, routing_key, arguments=arguments)
    return queue


def drain(ch, queue: str) -> list[bytes]:
    """Every message ready in ``queue``, in order."""
    bodies = []
    while True:
        method, _, body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            return bodies
        bodies.append(body)


def refused(conn: pika.BlockingConnection, action, code: int) -> str:
    """Run ``action(channel)`` on a new channel; it must close the channel with ``code``.
    Returns the reply text."""
    channel = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as error:
        action(channel)
    assert error.value.reply_code == code, error.value
    return error.value.reply_text


# -- the default exchange ---------------------------------------------------------------


def test_default_exchange_routes_by_queue_name(ch, name: str) -> None:
    ch.queue_declare(name, exclusive=True)
    ch.basic_publish("", name, b"direct to the queue")
    ch.basic_publish("", name + "-nowhere", b"dropped")
    assert drain(ch, name) == [b"direct to the queue"]


def test_default_exchange_returns_unroutable_mandatory(conn: pika.BlockingConnection, ch, name: str) -> None:
    """mandatory to a queue that does not exist: basic.return 312 NO_ROUTE with the content."""
    returned = []
    ch.add_on_return_callback(lambda _ch, method, props, body: returned.append((method, props, body)))
    with pytest.raises(pika.exceptions.UnroutableError):
        ch.basic_publish("", name, b"back", pika.BasicProperties(content_type="text/plain"), mandatory=True)
    conn.process_data_events(0)
    assert len(returned) == 1
    method, props, body = returned[0]
    assert (method.reply_code, method.reply_text, method.exchange, method.routing_key) == (312, "NO_ROUTE", "", name)
    assert (props.content_type, body) == ("text/plain", b"back")


@pytest.mark.parametrize(
    "operation",
    ["queue.bind", "queue.unbind", "exchange.delete", "exchange.declare", "exchange.declare-passive",
     "exchange.bind-source", "exchange.bind-destination"],
)
def test_default_exchange_refuses_changes(
    conn: pika.BlockingConnection, exchanges: list[str], operation: str, name: str
) -> None:
    """Nothing may bind to, declare or delete the default exchange: 403 ACCESS_REFUSED, as in
    RabbitMQ 3.10.8 (which refuses even a passive declare of "")."""
    exchanges.append(name)
    setup = conn.channel()
    queue = temp_queue(setup)
    setup.exchange_declare(name, "direct")
    actions = {
        "queue.bind": lambda c: c.queue_bind(queue, "", queue),
        "queue.unbind": lambda c: c.queue_unbind(queue, "", queue),
        "exchange.delete": lambda c: c.exchange_delete(""),
        "exchange.declare": lambda c: c.exchange_declare("", "direct"),
        "exchange.declare-passive": lambda c: c.exchange_declare("", "direct", passive=True),
        "exchange.bind-source": lambda c: c.exchange_bind(name, "", "k"),
        "exchange.bind-destination": lambda c: c.exchange_bind("", name, "k"),
    }
    assert refused(conn, actions[operation], 403) == DEFAULT_REFUSED


# -- predeclared exchanges --------------------------------------------------------------

PREDECLARED = [
    ("amq.direct", "direct"),
    ("amq.fanout", "fanout"),
    ("amq.topic", "topic"),
    ("amq.headers", "headers"),
    ("amq.match", "headers"),
]


@pytest.mark.parametrize("exchange, kind", PREDECLARED)
def test_predeclared_exchange(conn: pika.BlockingConnection, exchange: str, kind: str) -> None:
    """Each predeclared exchange exists, is durable and of its type: redeclaring it the same
    way is fine, differently is 406; deleting it is 403."""
    ch = conn.channel()
    ch.exchange_declare(exchange, passive=True)
    ch.exchange_declare(exchange, kind, durable=True)
    other = "fanout" if kind != "fanout" else "direct"
    text = refused(conn, lambda c: c.exchange_declare(exchange, other, durable=True), 406)
    assert text == (
        f"PRECONDITION_FAILED - inequivalent arg 'type' for exchange '{exchange}' in vhost '/': "
        f"received '{other}' but current is '{kind}'"
    )
    text = refused(conn, lambda c: c.exchange_declare(exchange, kind, durable=False), 406)
    assert text == (
        f"PRECONDITION_FAILED - inequivalent arg 'durable' for exchange '{exchange}' in vhost '/': "
        "received 'false' but current is 'true'"
    )
    text = refused(conn, lambda c: c.exchange_delete(exchange), 403)
    assert text == f"ACCESS_REFUSED - deletion of system exchange '{exchange}' in vhost '/' not allowed"


def test_the_trace_exchange_is_predeclared_and_internal(conn: pika.BlockingConnection) -> None:
    """amq.rabbitmq.trace (RabbitMQ's firehose target) exists in every vhost: a durable internal
    topic exchange, redeclared alike without error, not deletable, not published to."""
    ch = conn.channel()
    ch.exchange_declare("amq.rabbitmq.trace", passive=True)
    ch.exchange_declare("amq.rabbitmq.trace", "topic", durable=True, internal=True)
    text = refused(conn, lambda c: c.exchange_delete("amq.rabbitmq.trace"), 403)
    assert text == "ACCESS_REFUSED - deletion of system exchange 'amq.rabbitmq.trace' in vhost '/' not allowed"

    def publish(c: pika.adapters.blocking_connection.BlockingChannel) -> None:
        c.confirm_delivery()
        c.basic_publish("amq.rabbitmq.trace", "publish.x", b"m")

    text = refused(conn, publish, 403)
    assert text == "ACCESS_REFUSED - cannot publish to internal exchange 'amq.rabbitmq.trace' in vhost '/'"


def test_predeclared_exchanges_route(ch) -> None:
    direct = temp_queue(ch, "amq.direct", "key")
    fanout = temp_queue(ch, "amq.fanout")
    topic = temp_queue(ch, "amq.topic", "a.*")
    headers = temp_queue(ch, "amq.headers", arguments={"x-match": "all", "h": "v"})
    match = temp_queue(ch, "amq.match", arguments={"x-match": "any", "h": "w"})
    ch.basic_publish("amq.direct", "key", b"d")
    ch.basic_publish("amq.fanout", "whatever", b"f")
    ch.basic_publish("amq.topic", "a.b", b"t")
    ch.basic_publish("amq.headers", "", b"h", pika.BasicProperties(headers={"h": "v"}))
    ch.basic_publish("amq.match", "", b"m", pika.BasicProperties(headers={"h": "w"}))
    assert [drain(ch, q) for q in (direct, fanout, topic, headers, match)] == [[b"d"], [b"f"], [b"t"], [b"h"], [b"m"]]


def test_reserved_exchange_names(conn: pika.BlockingConnection, name: str) -> None:
    """Names starting with "amq." are reserved: declaring one is 403, a passive declare of a
    missing one 404, deleting one 403 even when missing (RabbitMQ 3.10.8)."""
    text = refused(conn, lambda c: c.exchange_declare("amq." + name, "direct"), 403)
    assert text == f"ACCESS_REFUSED - exchange name 'amq.{name}' contains reserved prefix 'amq.*'"
    text = refused(conn, lambda c: c.exchange_declare("amq." + name, "direct", passive=True), 404)
    assert text == f"NOT_FOUND - no exchange 'amq.{name}' in vhost '/'"


# -- declare ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["direct", "fanout", "topic", "headers"])
def test_declare_each_type(conn: pika.BlockingConnection, exchanges: list[str], name: str, kind: str) -> None:
    exchanges.append(name)
    ch = conn.channel()
    ch.exchange_declare(name, kind, durable=True)
    ch.exchange_declare(name, kind, durable=True)  # identical: fine
    ch.exchange_declare(name, passive=True)
    # A passive declare checks existence only.
    ch.exchange_declare(name, "fanout" if kind != "fanout" else "topic", passive=True, auto_delete=True)


@pytest.mark.parametrize(
    "kind, adjective",
    [
        ("foo", "invalid"),
        ("Direct", "invalid"),
        ("", "invalid"),
        ("x-consistent-hash", "unknown"),
        ("ZZwwInvalid", "unknown"),  # pika's acceptance test
        ("Fanout", "unknown"),
        ("custom", "unknown"),
    ],
)
def test_declare_unknown_type_is_a_connection_error(port: int, name: str, kind: str, adjective: str) -> None:
    """An exchange type the server does not know: connection.close 503 COMMAND_INVALID for
    exchange.declare (40, 10), as RabbitMQ 3.10.8 (which says "invalid" when the name is an
    atom its VM knows, else "unknown")."""
    conn = amqp.Connection(f"127.0.0.1:{port}")
    conn.connect()
    with pytest.raises(amqp.exceptions.InvalidCommand) as error:
        conn.channel().exchange_declare(name, kind, auto_delete=True)
    assert error.value.reply_text == f"COMMAND_INVALID - {adjective} exchange type '{kind}'"
    assert error.value.method_sig == (40, 10)
    assert not conn.connected


def test_passive_declare_of_missing_exchange(conn: pika.BlockingConnection, name: str) -> None:
    text = refused(conn, lambda c: c.exchange_declare(name, passive=True), 404)
    assert text == f"NOT_FOUND - no exchange '{name}' in vhost '/'"


EQUIVALENCE = {
    "type": ({"exchange_type": "fanout"}, "'type'", "received 'fanout' but current is 'direct'"),
    "durable": ({"durable": True}, "'durable'", "received 'true' but current is 'false'"),
    "auto_delete": ({"auto_delete": True}, "'auto_delete'", "received 'true' but current is 'false'"),
    "internal": ({"internal": True}, "'internal'", "received 'true' but current is 'false'"),
    "alternate-exchange": (
        {"arguments": {"alternate-exchange": "x"}},
        "'alternate-exchange'",
        "received the value 'x' of type 'longstr' but current is none",
    ),
    "type-before-durable": (
        {"exchange_type": "fanout", "durable": True},
        "'type'",
        "received 'fanout' but current is 'direct'",
    ),
    "durable-before-auto_delete": (
        {"durable": True, "auto_delete": True},
        "'durable'",
        "received 'true' but current is 'false'",
    ),
}


@pytest.mark.parametrize("case", list(EQUIVALENCE))
def test_redeclare_must_be_equivalent(
    conn: pika.BlockingConnection, exchanges: list[str], name: str, case: str
) -> None:
    """Redeclaring with a different type, flag or alternate exchange: 406 with RabbitMQ's
    text, naming the first difference in RabbitMQ's order."""
    exchanges.append(name)
    conn.channel().exchange_declare(name, "direct")
    changes, arg, detail = EQUIVALENCE[case]
    options = {"exchange_type": "direct", **changes}
    text = refused(conn, lambda c: c.exchange_declare(name, **options), 406)
    assert text == f"PRECONDITION_FAILED - inequivalent arg {arg} for exchange '{name}' in vhost '/': {detail}"


def test_redeclare_ignores_unknown_arguments(conn: pika.BlockingConnection, exchanges: list[str], name: str) -> None:
    exchanges.append(name)
    ch = conn.channel()
    ch.exchange_declare(name, "direct", arguments={"foo": 1})
    ch.exchange_declare(name, "direct", arguments={"foo": 2})
    ch.exchange_declare(name, "direct")


def test_auto_delete_exchange_goes_with_its_last_binding(conn: pika.BlockingConnection, ch, name: str) -> None:
    """An auto-delete exchange lives until its last binding is removed (not before it had
    one); removing a queue removes its bindings."""
    ch.exchange_declare(name, "direct", auto_delete=True)
    ch.exchange_declare(name, passive=True)  # no binding yet: still there
    first = temp_queue(ch, name, "a")
    second = temp_queue(ch, name, "b")
    ch.queue_unbind(first, name, "a")
    ch.exchange_declare(name, passive=True)
    ch.queue_delete(second)
    text = refused(conn, lambda c: c.exchange_declare(name, passive=True), 404)
    assert text == f"NOT_FOUND - no exchange '{name}' in vhost '/'"


def test_internal_exchange(conn: pika.BlockingConnection, ch, exchanges: list[str], name: str) -> None:
    """Clients cannot publish to an internal exchange (403), but it routes what reaches it
    through an exchange-to-exchange binding."""
    inner, outer = name + "-internal", name + "-public"
    exchanges += [inner, outer]
    ch.exchange_declare(inner, "fanout", internal=True)
    ch.exchange_declare(outer, "direct")
    ch.exchange_bind(inner, outer, "k")
    queue = temp_queue(ch, inner)
    ch.basic_publish(outer, "k", b"via the public exchange")
    ch.basic_publish(outer, "other", b"not bound")
    assert drain(ch, queue) == [b"via the public exchange"]

    def publish(c) -> None:
        c.confirm_delivery()
        c.basic_publish(inner, "", b"refused")

    text = refused(conn, publish, 403)
    assert text == f"ACCESS_REFUSED - cannot publish to internal exchange '{inner}' in vhost '/'"


def test_exchange_to_exchange_bindings(ch, exchanges: list[str], name: str) -> None:
    source, destination = name + "-src", name + "-dst"
    exchanges += [source, destination]
    ch.exchange_declare(source, "topic")
    ch.exchange_declare(destination, "direct")
    ch.exchange_bind(destination, source, "logs.#")
    queue = temp_queue(ch, destination, "logs.error")
    ch.basic_publish(source, "logs.error", b"routed twice")
    ch.basic_publish(source, "logs.info", b"no queue for it")
    ch.basic_publish(source, "other", b"no binding for it")
    assert drain(ch, queue) == [b"routed twice"]
    ch.exchange_unbind(destination, source, "logs.#")
    ch.basic_publish(source, "logs.error", b"unbound")
    assert drain(ch, queue) == []


def test_exchange_bind_and_unbind_of_missing_exchanges(conn: pika.BlockingConnection, name: str) -> None:
    """exchange.bind with both ends missing names the source (404); exchange.unbind with
    either end missing is fine (RabbitMQ 3.10.8)."""
    source, destination = name + "-src", name + "-dst"
    text = refused(conn, lambda c: c.exchange_bind(destination, source, "k"), 404)
    assert text == f"NOT_FOUND - no exchange '{source}' in vhost '/'"
    text = refused(conn, lambda c: c.exchange_bind(destination, "amq.direct", "k"), 404)
    assert text == f"NOT_FOUND - no exchange '{destination}' in vhost '/'"
    ch = conn.channel()
    ch.exchange_unbind(destination, "amq.direct", "k")
    ch.exchange_unbind("amq.fanout", source, "k")
    ch.exchange_unbind(destination, source, "k")
    assert ch.is_open


def test_alternate_exchange(ch, exchanges: list[str], name: str) -> None:
    """Messages the exchange cannot route go to its alternate exchange."""
    primary, alternate = name, name + "-ae"
    exchanges += [primary, alternate]
    ch.exchange_declare(alternate, "fanout")
    ch.exchange_declare(primary, "direct", arguments={"alternate-exchange": alternate})
    routed = temp_queue(ch, primary, "known")
    unrouted = temp_queue(ch, alternate)
    ch.basic_publish(primary, "known", b"routed")
    ch.basic_publish(primary, "unknown", b"to the alternate")
    assert drain(ch, routed) == [b"routed"]
    assert drain(ch, unrouted) == [b"to the alternate"]


# -- delete -----------------------------------------------------------------------------


def test_delete_exchange(conn: pika.BlockingConnection, ch, name: str) -> None:
    """Deleting removes the exchange and its bindings; deleting a missing exchange is fine."""
    ch.exchange_declare(name, "fanout")
    queue = temp_queue(ch, name)
    ch.exchange_delete(name)
    ch.exchange_delete(name)
    text = refused(conn, lambda c: c.exchange_declare(name, passive=True), 404)
    assert text == f"NOT_FOUND - no exchange '{name}' in vhost '/'"
    # A new exchange of the same name does not inherit the old bindings.
    ch.exchange_declare(name, "fanout", auto_delete=True)
    ch.basic_publish(name, "", b"nobody")
    assert drain(ch, queue) == []
    ch.exchange_delete(name)


def test_delete_if_unused(conn: pika.BlockingConnection, ch, exchanges: list[str], name: str) -> None:
    """if-unused refuses an exchange with bindings, also one that is only the source of an
    exchange-to-exchange binding: 406 "in use"."""
    other = name + "-dst"
    exchanges += [name, other]
    ch.exchange_declare(name, "direct")
    ch.exchange_declare(other, "direct")
    queue = temp_queue(ch, name, "k")
    in_use = f"PRECONDITION_FAILED - exchange '{name}' in vhost '/' in use"
    assert refused(conn, lambda c: c.exchange_delete(name, if_unused=True), 406) == in_use
    ch.queue_unbind(queue, name, "k")
    ch.exchange_bind(other, name, "k")
    assert refused(conn, lambda c: c.exchange_delete(name, if_unused=True), 406) == in_use
    ch.exchange_unbind(other, name, "k")
    ch.exchange_delete(name, if_unused=True)
    assert refused(conn, lambda c: c.exchange_declare(name, passive=True), 404)


# -- routing ----------------------------------------------------------------------------


def test_direct_routing(ch, exchanges: list[str], name: str) -> None:
    """A direct exchange routes by exact key: several queues may share a key, a queue may
    have several keys, and it gets each message once."""
    exchanges.append(name)
    ch.exchange_declare(name, "direct")
    both = temp_queue(ch, name, "black")
    ch.queue_bind(both, name, "green")
    black = temp_queue(ch, name, "black")
    for key in ("black", "green", "orange", "Black", "", "black.x"):
        ch.basic_publish(name, key, key.encode())
    assert drain(ch, both) == [b"black", b"green"]
    assert drain(ch, black) == [b"black"]


def test_direct_routing_empty_key(ch, exchanges: list[str], name: str) -> None:
    exchanges.append(name)
    ch.exchange_declare(name, "direct")
    queue = temp_queue(ch, name, "")
    ch.basic_publish(name, "", b"empty")
    ch.basic_publish(name, "x", b"x")
    assert drain(ch, queue) == [b"empty"]


def test_fanout_routing(ch, exchanges: list[str], name: str) -> None:
    """A fanout exchange ignores routing and binding keys; a queue bound twice gets one copy."""
    exchanges.append(name)
    ch.exchange_declare(name, "fanout")
    first = temp_queue(ch, name, "ignored")
    second = temp_queue(ch, name)
    ch.queue_bind(second, name, "another key")
    ch.basic_publish(name, "anything", b"1")
    ch.basic_publish(name, "", b"2")
    assert drain(ch, first) == [b"1", b"2"]
    assert drain(ch, second) == [b"1", b"2"]


# Binding key -> the routing keys (of TOPIC_KEYS) it matches.  Recorded from RabbitMQ 3.10.8:
# words are split at every ".", so "a." is two words ("a" and ""), "" has none; "*" is one
# word, empty or not; "#" is zero or more.
TOPIC_KEYS = ["", "a", "b", "c", "a.b", "a.b.c", "a.c", "a..c", "a..b", ".", "a.", ".a", "..",
              "a.b.b.c", "x.a.b", "a.x.y.c", "b.a", "a.b.a.b"]  # fmt: skip
ALL = TOPIC_KEYS
TOPIC_TABLE: dict[str, list[str]] = {
    "": [""],
    "#": ALL,
    "#.#": ALL,
    "*": ["a", "b", "c"],
    "a": ["a"],
    "a.b": ["a.b"],
    "a.*": ["a.b", "a.c", "a."],
    "a.#": ["a", "a.b", "a.b.c", "a.c", "a..c", "a..b", "a.", "a.b.b.c", "a.x.y.c", "a.b.a.b"],
    "#.b": ["b", "a.b", "a..b", "x.a.b", "a.b.a.b"],
    "*.b": ["a.b"],
    "a.*.c": ["a.b.c", "a..c"],
    "a.#.c": ["a.b.c", "a.c", "a..c", "a.b.b.c", "a.x.y.c"],
    "a.#.#.c": ["a.b.c", "a.c", "a..c", "a.b.b.c", "a.x.y.c"],
    "*.*": ["a.b", "a.c", ".", "a.", ".a", "b.a"],
    "*.*.*": ["a.b.c", "a..c", "a..b", "..", "x.a.b"],
    "a..b": ["a..b"],
    ".": ["."],
    "a.": ["a."],
    ".a": [".a"],
    "*.": [".", "a."],
    "#.": [".", "a.", ".."],
    "#.*": [k for k in ALL if k],
    "*.#": [k for k in ALL if k],
    "#.a.#": [k for k in ALL if "a" in k.split(".")],
    "a.*.#": ["a.b", "a.b.c", "a.c", "a..c", "a..b", "a.", "a.b.b.c", "a.x.y.c", "a.b.a.b"],
    "#.c": ["c", "a.b.c", "a.c", "a..c", "a.b.b.c", "a.x.y.c"],
    "a.b.#": ["a.b", "a.b.c", "a.b.b.c", "a.b.a.b"],
    "a.#.b": ["a.b", "a..b", "a.b.a.b"],
    "b.#": ["b", "b.a"],
}


def test_topic_routing_matches_rabbitmq(ch, exchanges: list[str], name: str) -> None:
    """One queue per binding key of TOPIC_TABLE; every routing key of TOPIC_KEYS published
    once; each queue holds exactly what RabbitMQ 3.10.8 routed to it, in publish order."""
    exchanges.append(name)
    ch.exchange_declare(name, "topic")
    queues = {pattern: temp_queue(ch, name, pattern) for pattern in TOPIC_TABLE}
    for key in TOPIC_KEYS:
        ch.basic_publish(name, key, key.encode())
    got = {pattern: [body.decode() for body in drain(ch, queue)] for pattern, queue in queues.items()}
    assert got == TOPIC_TABLE


def test_topic_queue_bound_by_overlapping_patterns_gets_one_copy(ch, exchanges: list[str], name: str) -> None:
    exchanges.append(name)
    ch.exchange_declare(name, "topic")
    queue = temp_queue(ch, name, "*.orange.*")
    for pattern in ("#", "quick.#", "*.*.rabbit"):
        ch.queue_bind(queue, name, pattern)
    ch.basic_publish(name, "quick.orange.rabbit", b"once")
    assert drain(ch, queue) == [b"once"]
    ch.queue_unbind(queue, name, "#")
    ch.queue_unbind(queue, name, "quick.#")
    ch.basic_publish(name, "lazy.brown.fox", b"no longer matched")
    ch.basic_publish(name, "lazy.pink.rabbit", b"still matched")
    assert drain(ch, queue) == [b"still matched"]


# (binding arguments, headers of the messages it receives) -- recorded from RabbitMQ 3.10.8.
HEADER_MESSAGES: list[dict | None] = [
    None,
    {},
    {"a": 1},
    {"a": 1, "b": "x"},
    {"a": "1"},
    {"b": "x"},
    {"x-foo": "bar"},
    {"a": 2, "x-foo": "baz"},
    {"a": 1, "b": "y", "c": 3},
    {"a": True},
    {"a": 2, "x-foo": "bar"},
]
HEADER_TABLE: list[tuple[dict, list[int]]] = [
    ({"x-match": "all", "a": 1, "b": "x"}, [3]),
    ({"x-match": "any", "a": 1, "b": "x"}, [2, 3, 5, 8]),
    ({"a": 1}, [2, 3, 8]),  # x-match defaults to all
    ({}, list(range(11))),  # nothing to match: everything matches
    ({"x-match": "any"}, []),  # nothing to match: nothing matches
    ({"x-match": "all", "x-foo": "bar"}, list(range(11))),  # x- keys are ignored...
    ({"x-match": "all-with-x", "x-foo": "bar"}, [6, 10]),  # ...unless asked for
    ({"x-match": "any-with-x", "x-foo": "bar", "a": 2}, [6, 7, 10]),
    ({"x-match": "any", "x-foo": "bar", "a": 2}, [7, 10]),
    ({"a": "1"}, [4]),  # types matter: the string "1" is not the integer 1
    ({"a": None}, [2, 3, 4, 7, 8, 9, 10]),  # void: the header must be present
    ({"x-match": "any", "a": 1, "c": 3}, [2, 3, 8]),
]


def test_headers_routing_matches_rabbitmq(ch, exchanges: list[str], name: str) -> None:
    exchanges.append(name)
    ch.exchange_declare(name, "headers")
    queues = [temp_queue(ch, name, "", arguments) for arguments, _ in HEADER_TABLE]
    for i, headers in enumerate(HEADER_MESSAGES):
        ch.basic_publish(name, "ignored", str(i).encode(), pika.BasicProperties(headers=headers))
    got = [[int(body) for body in drain(ch, queue)] for queue in queues]
    assert got == [expected for _, expected in HEADER_TABLE]


@pytest.mark.parametrize(
    "x_match, text",
    [
        (
            "foo",
            'PRECONDITION_FAILED - Invalid x-match field value <<"foo">>; expected all, any, all-with-x, or any-with-x',
        ),
        (1, "PRECONDITION_FAILED - Invalid x-match field type signedint (value 1); expected longstr"),
    ],
)
def test_headers_binding_with_invalid_x_match(conn: pika.BlockingConnection, x_match, text: str) -> None:
    ch = conn.channel()
    queue = temp_queue(ch)
    assert refused(conn, lambda c: c.queue_bind(queue, "amq.headers", "", arguments={"x-match": x_match}), 406) == text
