"""Faults under load: a quorum queue's leader SIGKILLed or SIGSTOPped, etcd restarted.

Publishers (confirm mode, one message at a time) and consumers (manual ack) run on every node
and fail over between them as a user's pika program would (a list of nodes).  The history of
every publish, confirm, delivery and ack is checked afterwards: no confirmed message lost, no
message delivered as new twice, nothing delivered that was never published.  The time the
queue took to serve again after the fault is printed (and must be under 5 s).

The short runs are in ``make test``; ``make cluster-test`` runs the long ones too (``slow``).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.cluster.harness import Cluster, wait_until
from tests.cluster.history import History
from tests.cluster.load import QUORUM, Load, declare_queue

FAILOVER_LIMIT = 5.0  # s: the bound on a quorum queue serving again


def leader_of(cluster: Cluster, queue: str) -> str:
    key = f"{cluster.prefix}leader/%2F/{queue}"
    found = cluster.etcd.get_prefix(key)
    assert key in found, f"no leader key for {queue}: {found}"
    return str(json.loads(found[key])["node"])


def run_fault(cluster: Cluster, queue: str, fault: str, before: float, after: float) -> None:
    """Load on ``queue`` for ``before`` s, the fault on its leader, load for ``after`` s more."""
    history = History()
    declare_queue(cluster.amqp_urls, queue, QUORUM)
    names = [n.name for n in cluster.nodes]
    with Load(cluster.amqp_urls, queue, history, names=names, publishers=3, consumers=2) as load:
        assert load.wait_running(30), "the load did not start"
        time.sleep(before)  # load before the fault: a backlog, deliveries in flight
        leader = cluster.node(leader_of(cluster, queue))
        fault_at = history.mark(f"{fault} {leader.name}")
        if fault == "SIGKILL":
            leader.kill()
        else:
            leader.stop_process()
            # Paused for longer than its lease: the others take over meanwhile.
            wait_until(lambda: leader_of(cluster, queue) != leader.name, 20, "a new leader")
            time.sleep(1.0)
            leader.cont()
        time.sleep(after)
        assert load.stop_publishers() == []
        assert load.wait_settled(60), f"unsettled: {sorted(history.unsettled())[:10]}"
    assert load.unexpected == [], load.unexpected
    verdict = history.check()
    outage = history.outage(fault_at)
    print(f"\n{fault} of the leader ({leader.name}): {verdict.summary()} | {outage.describe()}")
    verdict.assert_ok()
    assert verdict.figures["confirmed"] > 0
    assert outage.served_again_after is not None and outage.served_again_after < FAILOVER_LIMIT, outage.describe()
    if fault == "SIGSTOP":
        # Woken up, the old leader found its lease gone and stepped down: fenced.
        assert leader.wait_for_log("stepped down as leader of quorum queue", 20)


def test_declare_on_one_node_publish_on_another_consume_on_a_third(cluster: Cluster) -> None:
    import pika

    first, second, third = (pika.BlockingConnection(pika.URLParameters(u)) for u in cluster.amqp_urls)
    try:
        ch1 = first.channel()
        ch1.queue_declare("across", durable=True)
        ch1.queue_declare("across-q", durable=True, arguments=QUORUM)
        ch1.exchange_declare("across-x", "topic", durable=True)
        ch1.queue_bind("across", "across-x", "a.#")
        ch1.queue_bind("across-q", "across-x", "a.#")
        ch2 = second.channel()
        ch2.confirm_delivery()
        for i in range(20):
            ch2.basic_publish("across-x", "a.b", b"m%d" % i, pika.BasicProperties(delivery_mode=2))
        ch3 = third.channel()
        for queue in ("across", "across-q"):
            assert ch3.queue_declare(queue, passive=True).method.message_count == 20
            got: list[bytes] = []

            def take(ch: Any, method: Any, props: Any, body: bytes, got: list[bytes] = got) -> None:
                got.append(body)
                ch.basic_ack(method.delivery_tag)

            ch3.basic_qos(prefetch_count=5)
            tag = ch3.basic_consume(queue, take)
            deadline = time.monotonic() + 10
            while len(got) < 20 and time.monotonic() < deadline:
                third.process_data_events(0.1)
            ch3.basic_cancel(tag)
            assert got == [b"m%d" % i for i in range(20)], queue
            assert ch3.queue_declare(queue, passive=True).method.message_count == 0
    finally:
        for conn in (first, second, third):
            conn.close()


def test_sigkill_of_a_quorum_leader_short(cluster: Cluster) -> None:
    run_fault(cluster, "qq-kill", "SIGKILL", before=1.5, after=5.0)


def test_sigstop_of_a_quorum_leader_short(cluster: Cluster) -> None:
    run_fault(cluster, "qq-stop", "SIGSTOP", before=1.5, after=3.0)


@pytest.mark.slow
def test_sigkill_of_a_quorum_leader(cluster: Cluster) -> None:
    run_fault(cluster, "qq-kill-long", "SIGKILL", before=10.0, after=15.0)


@pytest.mark.slow
def test_sigstop_of_a_quorum_leader(cluster: Cluster) -> None:
    run_fault(cluster, "qq-stop-long", "SIGSTOP", before=10.0, after=15.0)


def test_etcd_restart_under_load(cluster: Cluster) -> None:
    """etcd itself restarted: the cluster carries on (nothing lost, the load goes on, and a
    declare after it works)."""
    history = History()
    declare_queue(cluster.amqp_urls, "qq-etcd", QUORUM)
    names = [n.name for n in cluster.nodes]
    with Load(cluster.amqp_urls, "qq-etcd", history, names=names, publishers=2, consumers=2) as load:
        assert load.wait_running(30)
        time.sleep(1.0)
        history.mark("etcd restart")
        cluster.etcd.restart()
        confirmed = history.count("confirm")
        assert history.wait_for(lambda: history.count("confirm") > confirmed + 50, 20), "publishing stopped"
        assert load.stop_publishers() == []
        assert load.wait_settled(60), f"unsettled: {sorted(history.unsettled())[:10]}"
    verdict = history.check()
    print(f"\netcd restart: {verdict.summary()}")
    verdict.assert_ok()
    declare_queue(cluster.amqp_urls[1:], "after-etcd-restart")
    assert {n.name for n in cluster.nodes} == cluster.registered_nodes()  # no node lost its lease
