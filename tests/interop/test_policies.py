"""Policies: queue and exchange settings applied by name pattern, through the management
HTTP API (/api/policies) and warrenctl, as RabbitMQ 3.10.8 applies them (the same code was run
against it, with its rabbitmqctl-compatible API).

One policy applies to an object: the highest-priority match whose ``apply-to`` covers it.
Where a queue argument and the policy both set a value, the lower wins for TTLs, expiry and
length limits, the argument for the rest (dead-lettering, overflow, alternate exchange) —
except that a quorum queue's policy wins for overflow (RabbitMQ 3.13's rule).  A policy
takes effect on existing queues at once and survives a restart with the definitions.
Each test has a vhost of its own, so that policies cannot touch anything else.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pika
import pika.exceptions
import pytest

from tests.cli.conftest import Ctl, free_port
from tests.interop.ext_support import Scratch, connect, wait_until
from tests.management.conftest import Api, q
from tests.server import ServerProcess


@pytest.fixture(scope="module")
def broker() -> Iterator[ServerProcess]:
    """A server with its management API (the session's has none)."""
    proc = ServerProcess(None, "--management-port", str(free_port())).start()
    yield proc
    assert proc.stop() == 0, proc.log
    assert "Traceback" not in proc.log, proc.log


@dataclass
class Env:
    api: Api
    vhost: str
    s: Scratch

    def set(
        self, name: str, pattern: str, definition: dict[str, Any], priority: int = 0, apply_to: str = "all"
    ) -> None:
        body = {"pattern": pattern, "definition": definition, "priority": priority, "apply-to": apply_to}
        reply = self.api.put(f"/api/policies/{q(self.vhost)}/{q(name)}", body)
        assert reply.status in (201, 204), reply

    def clear(self, name: str) -> None:
        assert self.api.delete(f"/api/policies/{q(self.vhost)}/{q(name)}").status == 204

    def policy_is(self, queue: str, expected: str | None) -> bool:
        """The management API shows ``expected`` as the queue's policy (RabbitMQ's shows it
        with the queue's statistics, every 5 s: hence the wait)."""
        path = f"/api/queues/{q(self.vhost)}/{q(queue)}"
        wait_until(lambda: (self.api.ok(path).get("policy") or None) == expected, 8.0, f"policy {expected}")
        return True


@pytest.fixture
def env(broker: ServerProcess, name: str) -> Iterator[Env]:
    server = broker
    api = Api(server.management_port)
    vhost = f"{name}-vhost"
    assert api.put(f"/api/vhosts/{q(vhost)}").status == 201
    try:
        wait_until(lambda: api.get(f"/api/permissions/{q(vhost)}/guest").status == 200, what="permissions")
        with Scratch(server.port, vhost) as scratch:
            yield Env(api, vhost, scratch)
    finally:
        api.delete(f"/api/vhosts/{q(vhost)}")


def refused(s: Scratch, queue: str, body: bytes) -> bool:
    try:
        s.publish("", queue, body)
    except pika.exceptions.NackError:
        return True
    return False


# -- matching ----------------------------------------------------------------------------------


def test_a_policy_applies_to_the_queues_its_pattern_matches(env: Env) -> None:
    env.set("cap", r"^capped\.", {"max-length": 2}, apply_to="queues")
    s = env.s
    capped = s.queue("capped.orders")
    other = s.queue("orders.capped.not")
    for queue in (capped, other):
        s.send(queue, b"1", b"2", b"3")
    assert (s.ready(capped), s.ready(other)) == (2, 3)
    assert env.policy_is(capped, "cap")
    assert env.policy_is(other, None)


def test_the_pattern_is_an_unanchored_regular_expression(env: Env) -> None:
    env.set("anywhere", "limited", {"max-length": 1})
    s = env.s
    queue = s.queue("a.limited.queue")
    s.send(queue, b"1", b"2")
    assert s.ready(queue) == 1


def test_apply_to_selects_queues_or_exchanges(env: Env) -> None:
    s = env.s
    ae = s.exchange("collector", "fanout")
    collected = s.queue("collected")
    s.bind(collected, ae)
    env.set("ex-only", "^target", {"alternate-exchange": ae, "max-length": 1}, apply_to="exchanges")
    target_x = s.exchange("target-x", "direct")
    target_q = s.queue("target-q")
    s.send(target_q, b"1", b"2")
    assert s.ready(target_q) == 2  # max-length did not apply to the queue
    s.publish(target_x, "nowhere", b"m")
    assert s.bodies(collected) == [b"m"]  # the exchange got its alternate
    env.clear("ex-only")
    env.set("q-only", "^target", {"alternate-exchange": ae, "max-length": 1}, apply_to="queues")
    assert s.ready(target_q) == 1  # applies to the existing queue at once
    with pytest.raises(pika.exceptions.UnroutableError):
        s.publish(target_x, "nowhere", b"m", mandatory=True)
    assert s.ready(collected) == 0


def test_apply_to_classic_or_quorum_queues(env: Env) -> None:
    """RabbitMQ 3.12+ apply-to values (3.10 does not know them)."""
    s = env.s
    env.set("classic-only", "^typed", {"max-length": 1}, apply_to="classic_queues")
    classic = s.queue("typed-classic")
    quorum = s.quorum("typed-quorum")
    for queue in (classic, quorum):
        s.send(queue, b"1", b"2")
    assert (s.ready(classic), s.ready(quorum)) == (1, 2)
    env.set("classic-only", "^typed", {"max-length": 1}, apply_to="quorum_queues")
    assert env.policy_is(classic, None) and env.policy_is(quorum, "classic-only")
    assert s.ready(quorum) == 1


def test_the_highest_priority_policy_alone_applies(env: Env) -> None:
    """Definitions are not merged: the winner's keys only."""
    s = env.s
    env.set("low", "^prio", {"max-length": 1}, priority=1)
    env.set("high", "^prio", {"max-length-bytes": 1000}, priority=5)
    queue = s.queue("prio-q")
    s.send(queue, b"1", b"2", b"3")
    assert s.ready(queue) == 3
    assert env.policy_is(queue, "high")
    env.set("high", "^prio", {"max-length-bytes": 1000}, priority=0)
    assert env.policy_is(queue, "low")
    assert s.ready(queue) == 1


# -- definition keys ---------------------------------------------------------------------------


def test_message_ttl_and_dead_lettering_keys(env: Env) -> None:
    s = env.s
    dlx = s.exchange("dlx", "direct")
    dlq = s.queue("dead")
    s.bind(dlq, dlx, "expired-here")
    env.set(
        "ttl",
        "^short-lived$",
        {"message-ttl": 20, "dead-letter-exchange": dlx, "dead-letter-routing-key": "expired-here"},
        apply_to="queues",
    )
    queue = s.queue("short-lived")
    s.send(queue, b"m")
    [(method, props, _)] = s.wait_for(dlq)
    assert method.routing_key == "expired-here"
    assert props.headers["x-death"][0]["reason"] == "expired"


def test_expires_key(env: Env) -> None:
    s = env.s
    env.set("exp", "^temporary$", {"expires": 100})
    queue = s.queue("temporary")
    wait_until(lambda: not s.exists(queue), what="the queue to expire")


def test_max_length_bytes_and_overflow_keys(env: Env) -> None:
    s = env.s
    env.set("bytes", "^bounded$", {"max-length-bytes": 4, "overflow": "reject-publish"})
    queue = s.queue("bounded")
    assert not refused(s, queue, b"1234")
    assert refused(s, queue, b"5")
    assert s.bodies(queue) == [b"1234"]


def test_delivery_limit_key_for_quorum_queues(env: Env) -> None:
    s = env.s
    dlq = s.queue("poison-dlq")
    env.set("limit", "^poison$", {"delivery-limit": 1, "dead-letter-exchange": "", "dead-letter-routing-key": dlq})
    queue = s.quorum("poison")
    s.send(queue, b"m")
    ch = s.channel()
    for _ in range(2):
        method, _, _ = ch.basic_get(queue)
        ch.basic_reject(method.delivery_tag, requeue=True)
    [(_, props, _)] = s.wait_for(dlq)
    assert props.headers["x-death"][0]["reason"] == "delivery_limit"


# -- arguments and policies --------------------------------------------------------------------


@pytest.mark.parametrize(("argument", "policy", "kept"), [(5, 2, 2), (2, 5, 2)])
def test_the_lower_max_length_wins(env: Env, argument: int, policy: int, kept: int) -> None:
    s = env.s
    env.set("len", "^both$", {"max-length": policy})
    queue = s.queue("both", x_max_length=argument)
    s.send(queue, *[b"%d" % i for i in range(6)])
    assert s.ready(queue) == kept


def test_the_lower_message_ttl_wins(env: Env) -> None:
    s = env.s
    env.set("ttl", "^(argument|policy)-lower$", {"message-ttl": 20})
    policy_lower = s.queue("policy-lower", x_message_ttl=600_000)
    argument_lower = s.queue("argument-lower", x_message_ttl=10)
    s.send(policy_lower, b"m")
    s.send(argument_lower, b"m")
    wait_until(lambda: s.ready(policy_lower) + s.ready(argument_lower) == 0, what="both to expire")


def test_the_argument_wins_for_dead_lettering(env: Env) -> None:
    s = env.s
    by_argument = s.queue("by-argument")
    by_policy = s.queue("by-policy")
    env.set("dl", "^work$", {"dead-letter-exchange": "", "dead-letter-routing-key": by_policy})
    queue = s.queue("work", x_dead_letter_exchange="", x_dead_letter_routing_key=by_argument)
    s.send(queue, b"m")
    ch = s.channel()
    method, _, _ = ch.basic_get(queue)
    ch.basic_reject(method.delivery_tag, requeue=False)
    s.wait_for(by_argument)
    assert s.ready(by_policy) == 0


def test_the_argument_wins_for_overflow_on_a_classic_queue(env: Env) -> None:
    s = env.s
    env.set("of", "^flow$", {"overflow": "reject-publish"})
    queue = s.queue("flow", x_max_length=1, x_overflow="drop-head")
    s.send(queue, b"1", b"2")  # no nack: drop-head
    assert s.bodies(queue) == [b"2"]


def test_the_policy_wins_for_overflow_on_a_quorum_queue(env: Env) -> None:
    """rabbit_quorum_queue resolves overflow with policy_has_precedence (3.10.8 as 3.13).  A
    quorum queue refuses once it is over its limit: it takes one message more."""
    s = env.s
    env.set("of", "^qflow$", {"overflow": "reject-publish"})
    queue = s.quorum("qflow", x_max_length=1, x_overflow="drop-head")
    s.send(queue, b"1", b"2")
    assert refused(s, queue, b"3")
    assert s.bodies(queue) == [b"1", b"2"]


def test_expires_lower_wins_on_classic_but_the_policy_wins_on_quorum(env: Env) -> None:
    """Classic queues take the lower x-expires; RabbitMQ 3.13's quorum queues take the
    policy's (rabbit_quorum_queue: policy_has_precedence)."""
    s = env.s
    env.set("exp", "^lease-", {"expires": 60_000})
    classic = s.queue("lease-classic", x_expires=100)
    quorum = s.quorum("lease-quorum", x_expires=100)
    wait_until(lambda: not s.exists(classic), what="the classic queue to expire")
    assert s.exists(quorum)


def test_the_argument_wins_for_the_alternate_exchange(env: Env) -> None:
    s = env.s
    by_argument = s.exchange("ae-argument", "fanout")
    by_policy = s.exchange("ae-policy", "fanout")
    got_argument, got_policy = s.queue("got-argument"), s.queue("got-policy")
    s.bind(got_argument, by_argument)
    s.bind(got_policy, by_policy)
    env.set("ae", "^main$", {"alternate-exchange": by_policy}, apply_to="exchanges")
    main = s.exchange("main", "direct", **{"alternate-exchange": by_argument})
    s.publish(main, "unrouted", b"m")
    assert (s.ready(got_argument), s.ready(got_policy)) == (1, 0)


# -- existing queues -----------------------------------------------------------------------------


def test_a_policy_takes_effect_on_existing_queues_and_clearing_it_undoes_it(env: Env) -> None:
    """The new limit drops the oldest messages at once, dead-lettered under the same policy."""
    s = env.s
    dlq = s.queue("existing-dlq")
    queue = s.queue("existing")
    s.send(queue, *[b"%d" % i for i in range(5)])
    env.set("late", "^existing$", {"max-length": 2, "dead-letter-exchange": "", "dead-letter-routing-key": dlq})
    assert s.ready(queue) == 2
    dropped = s.wait_for(dlq, 3)
    assert [body for _, _, body in dropped] == [b"0", b"1", b"2"]
    assert {props.headers["x-death"][0]["reason"] for _, props, _ in dropped} == {"maxlen"}
    env.clear("late")
    s.send(queue, b"5", b"6")
    assert s.bodies(queue) == [b"3", b"4", b"5", b"6"]
    assert env.policy_is(queue, None)


def test_a_new_message_ttl_applies_to_new_messages(env: Env) -> None:
    """RabbitMQ computes a message's expiry when it is enqueued: a TTL set later by a policy
    leaves the messages already there alone."""
    s = env.s
    queue = s.queue("ttl-later")
    s.send(queue, b"before")
    env.set("ttl", "^ttl-later$", {"message-ttl": 20})
    s.send(queue, b"after")
    clock = s.queue("ttl-later-clock", x_message_ttl=20)
    s.send(clock, b"tick")
    wait_until(lambda: s.ready(clock) == 0, what="the clock")
    assert s.bodies(queue) == [b"before"]  # "after" expired when it reached the head


# -- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("definition", "reason"),
    [
        ({"max-priority": 5}, '[{<<"max-priority">>,5}] are not recognised policy settings'),
        ({"message-ttl": "abc"}, '<<"abc">> is not a valid message TTL'),
        ({"message-ttl": -1}, "-1 is not a valid message TTL"),
        ({"expires": 0}, "0 is not a valid queue expiry"),
        ({"max-length": 1.5}, "1.5 is not a valid maximum length"),
        ({"overflow": "foo"}, '<<"foo">> is not a valid overflow value'),
        ({"dead-letter-exchange": 5}, "5 is not a valid dead letter exchange name"),
        ({"alternate-exchange": 1}, "1 is not a valid alternate exchange name"),
        ({"delivery-limit": -1}, "-1 is not a valid delivery limit"),
        ({}, "no policy provided"),
    ],
)
def test_invalid_definitions_are_refused(env: Env, definition: dict[str, Any], reason: str) -> None:
    """RabbitMQ's texts (its API HTML-escapes them: &lt;&lt; for <<)."""
    reply = env.api.put(f"/api/policies/{q(env.vhost)}/bad", {"pattern": "x", "definition": definition})
    assert reply.status == 400
    assert html.unescape(reply.json["reason"]) == f"Validation failed\n\n{reason}\n"
    assert env.api.get(f"/api/policies/{q(env.vhost)}/bad").status == 404


def test_an_invalid_pattern_is_refused(env: Env) -> None:
    reply = env.api.put(f"/api/policies/{q(env.vhost)}/bad", {"pattern": "(", "definition": {"max-length": 1}})
    assert reply.status == 400
    assert html.unescape(reply.json["reason"]).startswith(
        "Validation failed\n\npattern should be regular expression but is invalid: "
    )


# -- warrenctl -----------------------------------------------------------------------------------


def test_warrenctl_sets_lists_and_clears_policies(env: Env, broker: ServerProcess) -> None:
    ctl = Ctl(broker)
    s = env.s
    queue = s.queue("ctl-capped")
    s.send(queue, b"1", b"2", b"3")
    flags = ("-p", env.vhost, "--apply-to", "queues", "--priority", "7")
    result = ctl("set_policy", *flags, "cap", "^ctl-", '{"max-length":1}')
    assert result.code == 0, result
    assert s.ready(queue) == 1
    listed = ctl("-q", "list_policies", "-p", env.vhost).out.splitlines()
    assert listed[0].split("\t") == ["vhost", "name", "pattern", "apply-to", "definition", "priority"]
    assert listed[1:] == [f'{env.vhost}\tcap\t^ctl-\tqueues\t{{"max-length":1}}\t7']
    assert ctl("clear_policy", "-p", env.vhost, "cap").code == 0
    s.send(queue, b"4")
    assert s.ready(queue) == 2
    assert ctl("-q", "list_policies", "-p", env.vhost).out.strip() == ""


# -- durability ----------------------------------------------------------------------------------


@pytest.fixture
def restartable(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server with a data directory and a management API, restarted by the test."""
    proc = ServerProcess(tmp_path / "data", "--management-port", str(free_port()))
    yield proc
    proc.kill()


def test_policies_survive_a_restart(restartable: ServerProcess) -> None:
    server = restartable.start()
    api = Api(server.management_port)
    body = {"pattern": "^kept", "definition": {"max-length": 2}, "priority": 3, "apply-to": "queues"}
    assert api.put("/api/policies/%2F/keep", body).status == 201
    with connect(server.port) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare("kept-q", durable=True)
        for i in range(4):
            ch.basic_publish("", "kept-q", b"%d" % i, pika.BasicProperties(delivery_mode=2))
    assert server.stop() == 0
    server.start()
    api = Api(server.management_port)
    assert api.ok("/api/policies/%2F/keep") == {"vhost": "/", "name": "keep", **body}
    assert api.ok("/api/queues/%2F/kept-q")["policy"] == "keep"
    with connect(server.port) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish("", "kept-q", b"4", pika.BasicProperties(delivery_mode=2))
        assert ch.queue_declare("kept-q", passive=True).method.message_count == 2
