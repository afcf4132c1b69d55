"""The headers exchange: x-match all/any/all-with-x/any-with-x, and how values compare.

RabbitMQ 3.10.8 compares a header with a binding argument by Erlang's ``==`` on the values
its parser makes (RabbitMQ 3.13 moved to ``=:=``; WarrenMQ follows 3.10.8 here):

* every integer width, timestamps, floats and doubles are numbers compared by value
  (1 as signedint == 1 as long == timestamp 1 == 1.0 double; float 0.1 != double 0.1);
* long strings and byte arrays are binaries (``"abc"`` == ``x"abc"``), and "1" != 1;
* booleans are atoms: true != 1;
* decimals are (scale, value) pairs: 1.0 (scale 1) != 1 (scale 0);
* nested tables and arrays compare item by item, in order, type letters included;
* a void binding value asks only that the header is present.

The typed values are sent over a raw socket (client libraries pick the type letters
themselves); the expected matches were recorded from RabbitMQ 3.10.8 with this same code.
"""

from __future__ import annotations

import asyncio
import decimal
import time
from collections.abc import Iterator
from typing import Any

import aio_pika
import amqp
import kombu
import pika
import pika.spec
import pytest

from tests.interop.test_raw_protocol import Raw, shortstr, table

HEADERS_FLAG = b"\x20\x00"  # property flags: only the headers table


def bind_payload(queue: str, exchange: str, arguments: dict[str, tuple[str, Any]]) -> bytes:
    """queue.bind with typed arguments (ticket, queue, exchange, routing key, nowait, table)."""
    return (
        b"\x00\x32\x00\x14\x00\x00" + shortstr(queue) + shortstr(exchange) + shortstr("") + b"\x00" + table(arguments)
    )


def headers_properties(headers: dict[str, tuple[str, Any]] | None) -> bytes:
    return b"\x00\x00" if headers is None else HEADERS_FLAG + table(headers)


@pytest.fixture
def raw(port: int) -> Iterator[Raw]:
    client = Raw(port).connect()
    yield client
    client.close()


@pytest.fixture
def exchange(raw: Raw, name: str) -> Iterator[str]:
    raw.call(1, pika.spec.Exchange.Declare(exchange=name, type="headers"), pika.spec.Exchange.DeclareOk)
    yield name
    raw.call(1, pika.spec.Exchange.Delete(exchange=name), pika.spec.Exchange.DeleteOk)


def route(raw: Raw, exchange: str, bindings: dict[str, dict], messages: dict[str, dict | None]) -> dict[str, set[str]]:
    """Bind one exclusive queue per binding, publish every message (body = its label), and
    return for each message the bindings whose queue received it."""
    queues = {}
    for label, arguments in bindings.items():
        queue = raw.call(1, pika.spec.Queue.Declare(queue="", exclusive=True), pika.spec.Queue.DeclareOk).queue
        raw.send_frame(1, 1, bind_payload(queue, exchange, arguments))
        raw.expect(pika.spec.Queue.BindOk, 1)
        queues[label] = queue
    for label, headers in messages.items():
        raw.publish(1, exchange, "", label.encode(), properties=headers_properties(headers))
    raw.call(1, pika.spec.Basic.Qos(), pika.spec.Basic.QosOk)  # the publishes have been routed
    matched: dict[str, set[str]] = {label: set() for label in messages}
    for binding, queue in queues.items():
        while (got := raw.get(1, queue)) is not None:
            matched[got[2].decode()].add(binding)
    return matched


# -- value comparison -----------------------------------------------------------------------------

VALUES: dict[str, tuple[str, Any]] = {
    "I1": ("I", 1),
    "T1": ("T", 1),
    "d1": ("d", 1.0),
    "f1": ("f", 1.0),
    "d1.5": ("d", 1.5),
    "f1.5": ("f", 1.5),
    "d0.1": ("d", 0.1),
    "f0.1": ("f", 0.1),
    "Sabc": ("S", b"abc"),
    "xabc": ("x", b"abc"),
    "D0,1": ("D", (0, 1)),
    "D1,10": ("D", (1, 10)),
    "ttrue": ("t", True),
    "tfalse": ("t", False),
    "I0": ("I", 0),
    "void": ("V", None),
    "Fab": ("F", {"x": ("I", 1), "y": ("I", 2)}),
    "Fab_l": ("F", {"x": ("l", 1), "y": ("I", 2)}),
    "A12": ("A", [("I", 1), ("I", 2)]),
    "A12l": ("A", [("l", 1), ("I", 2)]),
    "b-1": ("b", -1),
    "B255": ("B", 255),
    "l-1": ("l", -1),
    "i4294967295": ("i", 4294967295),
    "I-1": ("I", -1),
    "d-0": ("d", -0.0),
    "d0": ("d", 0.0),
}
# Message values beyond the binding values above.
MORE_VALUES: dict[str, tuple[str, Any]] = {
    "Fba": ("F", {"y": ("I", 2), "x": ("I", 1)}),
    "A21": ("A", [("I", 2), ("I", 1)]),
    "u255": ("u", 255),
    "s-1": ("s", -1),
    "Ad1": ("A", [("d", 1.0), ("I", 2)]),
    "Fd1": ("F", {"x": ("d", 1.0), "y": ("I", 2)}),
}
# For each message value of header "a": the binding values (binding {"a": value}) it matches,
# as RabbitMQ 3.10.8 routed them.  Every binding with a void value matches a present header.
NUMBER_1 = {"I1", "T1", "d1", "f1"}
MINUS_1 = {"I-1", "b-1", "l-1"}
ZERO = {"I0", "d0", "d-0"}
MATCHES: dict[str, set[str]] = {
    **dict.fromkeys(NUMBER_1, NUMBER_1),
    "d1.5": {"d1.5", "f1.5"},
    "f1.5": {"d1.5", "f1.5"},
    "d0.1": {"d0.1"},
    "f0.1": {"f0.1"},
    "Sabc": {"Sabc", "xabc"},
    "xabc": {"Sabc", "xabc"},
    "D0,1": {"D0,1"},
    "D1,10": {"D1,10"},
    "ttrue": {"ttrue"},
    "tfalse": {"tfalse"},
    **dict.fromkeys(ZERO, ZERO),
    "void": set(),
    "Fab": {"Fab"},
    "Fba": set(),
    "Fab_l": {"Fab_l"},
    "A12": {"A12"},
    "A21": set(),
    "A12l": {"A12l"},
    "Ad1": set(),
    "Fd1": set(),
    **dict.fromkeys({*MINUS_1, "s-1"}, MINUS_1),
    "B255": {"B255"},
    "u255": {"B255"},
    "i4294967295": {"i4294967295"},
}


def test_header_values_compare_as_rabbitmq_3_10(raw: Raw, exchange: str) -> None:
    """Each binding {a: value} (x-match all) against each message {a: value}: matched exactly
    as RabbitMQ 3.10.8 (see the module docstring for the rules)."""
    bindings = {label: {"a": value} for label, value in VALUES.items()}
    messages = {label: {"a": value} for label, value in {**VALUES, **MORE_VALUES}.items()}
    matched = route(raw, exchange, bindings, messages)
    expected = {label: MATCHES[label] | {"void"} for label in messages}
    assert matched == expected


# -- x-match --------------------------------------------------------------------------------------

S = ("S", b"1")
MODE_BINDINGS: dict[str, dict[str, tuple[str, Any]]] = {
    "all a,b": {"x-match": ("S", b"all"), "a": S, "b": S},
    "any a,b": {"x-match": ("S", b"any"), "a": S, "b": S},
    "default a,b": {"a": S, "b": S},
    "all a,x-c": {"x-match": ("S", b"all"), "a": S, "x-c": S},
    "any x-c": {"x-match": ("S", b"any"), "x-c": S},
    "all-with-x a,x-c": {"x-match": ("S", b"all-with-x"), "a": S, "x-c": S},
    "any-with-x b,x-c": {"x-match": ("S", b"any-with-x"), "b": S, "x-c": S},
    "all-with-x none": {"x-match": ("S", b"all-with-x")},
    "any-with-x none": {"x-match": ("S", b"any-with-x")},
    "any a=void": {"x-match": ("S", b"any"), "a": ("V", None), "b": ("S", b"no")},
    "all-with-x x-c=void": {"x-match": ("S", b"all-with-x"), "x-c": ("V", None)},
    "all x-match only": {"x-match": ("S", b"all")},
    "any x-match only": {"x-match": ("S", b"any")},
}
MODE_MESSAGES: dict[str, dict[str, tuple[str, Any]] | None] = {
    "none": None,
    "empty": {},
    "a": {"a": S},
    "a b": {"a": S, "b": S},
    "a b=2": {"a": S, "b": ("S", b"2")},
    "b": {"b": S},
    "x-c": {"x-c": S},
    "a x-c": {"a": S, "x-c": S},
    "a x-c=2": {"a": S, "x-c": ("S", b"2")},
    "b x-c": {"b": S, "x-c": S},
    "x-match": {"x-match": ("S", b"any")},
}
# message -> bindings that route it, recorded from RabbitMQ 3.10.8
MODE_MATCHES: dict[str, set[str]] = {
    "none": {"all-with-x none", "all x-match only"},
    "empty": {"all-with-x none", "all x-match only"},
    "a": {"any a,b", "all a,x-c", "all-with-x none", "any a=void", "all x-match only"},
    "a b": {"all a,b", "any a,b", "default a,b", "all a,x-c", "all-with-x none", "any-with-x b,x-c", "any a=void",
            "all x-match only"},
    "a b=2": {"any a,b", "all a,x-c", "all-with-x none", "any a=void", "all x-match only"},
    "b": {"any a,b", "all-with-x none", "any-with-x b,x-c", "all x-match only"},
    "x-c": {"any-with-x b,x-c", "all-with-x none", "all-with-x x-c=void", "all x-match only"},
    "a x-c": {"any a,b", "all a,x-c", "all-with-x a,x-c", "any-with-x b,x-c", "all-with-x none", "any a=void",
              "all-with-x x-c=void", "all x-match only"},
    "a x-c=2": {"any a,b", "all a,x-c", "all-with-x none", "any a=void", "all-with-x x-c=void", "all x-match only"},
    "b x-c": {"any a,b", "any-with-x b,x-c", "all-with-x none", "all-with-x x-c=void", "all x-match only"},
    "x-match": {"all-with-x none", "all x-match only"},
}  # fmt: skip


def test_x_match_modes(raw: Raw, exchange: str) -> None:
    """all needs every non-x- binding key to match, any needs one; the -with-x modes count
    x- keys too; no key to match is everything for all and nothing for any; x-match defaults
    to all (RabbitMQ 3.10.8)."""
    matched = route(raw, exchange, MODE_BINDINGS, MODE_MESSAGES)
    assert matched == MODE_MATCHES


def test_queue_bound_by_several_matching_bindings_gets_one_copy(raw: Raw, exchange: str) -> None:
    """A queue bound twice (different arguments) gets a message matching both once; unbinding
    one binding leaves the other."""
    queue = raw.call(1, pika.spec.Queue.Declare(queue="", exclusive=True), pika.spec.Queue.DeclareOk).queue
    first = {"x-match": ("S", b"any"), "a": ("I", 1)}
    second = {"x-match": ("S", b"all"), "b": ("I", 2)}
    for arguments in (first, second):
        raw.send_frame(1, 1, bind_payload(queue, exchange, arguments))
        raw.expect(pika.spec.Queue.BindOk, 1)
    raw.publish(1, exchange, "", b"both", properties=headers_properties({"a": ("I", 1), "b": ("l", 2)}))
    assert [got[2] for got in iter(lambda: raw.get(1, queue), None)] == [b"both"]
    unbind = b"\x00\x32\x00\x32\x00\x00" + shortstr(queue) + shortstr(exchange) + shortstr("") + table(first)
    raw.send_frame(1, 1, unbind)
    raw.expect(pika.spec.Queue.UnbindOk, 1)
    raw.publish(1, exchange, "", b"only a", properties=headers_properties({"a": ("I", 1)}))
    raw.publish(1, exchange, "", b"a and b", properties=headers_properties({"a": ("I", 1), "b": ("I", 2)}))
    assert [got[2] for got in iter(lambda: raw.get(1, queue), None)] == [b"a and b"]


# -- with client libraries ------------------------------------------------------------------------


def test_client_written_types_compare_as_rabbitmq_3_10(port: int, name: str) -> None:
    """Bound and published by py-amqp (ints as signedint, floats as double, str as longstr,
    Decimal as decimal) and pika (bytes as a byte array): 1 == 1.0, "abc" == b"abc",
    True != 1, "1" != 1, decimal 1 != 1 (RabbitMQ 3.10.8)."""
    conn = amqp.Connection(f"127.0.0.1:{port}")
    conn.connect()
    try:
        ch = conn.channel()
        ch.confirm_select()
        ch.exchange_declare(name, "headers", auto_delete=True)
        queue, _, _ = ch.queue_declare("", exclusive=True)
        ch.queue_bind(queue, name, arguments={"x-match": "all", "n": 1, "s": "abc"})
        samples = {
            "int": {"n": 1, "s": "abc"},
            "float": {"n": 1.0, "s": "abc"},
            "bool": {"n": True, "s": "abc"},
            "string": {"n": "1", "s": "abc"},
            "decimal": {"n": decimal.Decimal(1), "s": "abc"},
            "missing": {"n": 1},
        }
        for label, headers in samples.items():
            ch.basic_publish(amqp.Message(label, application_headers=headers), exchange=name)
        with pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port)) as other:
            pika_channel = other.channel()
            pika_channel.confirm_delivery()
            properties = pika.BasicProperties(headers={"n": 1, "s": b"abc"})
            pika_channel.basic_publish(name, "", b"bytes", properties)
        bodies = []
        while (message := ch.basic_get(queue, no_ack=True)) is not None:
            bodies.append(message.body if isinstance(message.body, bytes) else message.body.encode())
        assert bodies == [b"int", b"float", b"bytes"]
    finally:
        conn.close()


def test_aio_pika_headers_exchange(port: int, name: str) -> None:
    async def main() -> list[bytes]:
        connection = await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{port}/")
        async with connection:
            channel = await connection.channel()
            exchange = await channel.declare_exchange(name, aio_pika.ExchangeType.HEADERS, auto_delete=True)
            queue = await channel.declare_queue("", exclusive=True)
            await queue.bind(exchange, arguments={"x-match": "any", "format": "pdf", "type": "report"})
            for body, headers in [
                (b"pdf", {"format": "pdf"}),
                (b"report", {"type": "report", "format": "zip"}),
                (b"neither", {"format": "zip"}),
            ]:
                await exchange.publish(aio_pika.Message(body, headers=headers), routing_key="")
            got = []
            while (message := await queue.get(no_ack=True, fail=False)) is not None:
                got.append(message.body)
            return got

    assert asyncio.run(main()) == [b"pdf", b"report"]


def test_kombu_headers_exchange(port: int, name: str) -> None:
    exchange = kombu.Exchange(name, type="headers", auto_delete=True)
    queue = kombu.Queue(
        name, exchange, binding_arguments={"x-match": "all", "region": "eu", "tier": 2}, auto_delete=True
    )
    with kombu.Connection(f"amqp://guest:guest@127.0.0.1:{port}//") as conn:
        channel = conn.channel()
        bound = queue(channel)
        bound.declare()
        producer = kombu.Producer(channel, exchange=exchange)
        producer.publish(b"eu-2", headers={"region": "eu", "tier": 2}, retry=True)
        producer.publish(b"eu-3", headers={"region": "eu", "tier": 3})
        producer.publish(b"eu-2.0", headers={"region": "eu", "tier": 2.0})
        deadline = time.monotonic() + 5
        got: list[bytes] = []
        while len(got) < 2 and time.monotonic() < deadline:
            message = bound.get(no_ack=True)
            if message is not None:
                got.append(message.body)
        assert got == [b"eu-2", b"eu-2.0"]
        assert bound.get(no_ack=True) is None
        bound.delete()
