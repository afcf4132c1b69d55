"""Clients fail over with what they already have: nothing WarrenMQ-specific in them.

- kombu's failover URLs (``amqp://a;amqp://b;...``) move a producer and a consumer to a
  surviving node when theirs is killed;
- aio-pika's robust connection comes back when its node restarts, with its consumer, and a
  consumer on a node that stays up does not notice a quorum queue's leader dying.
"""

from __future__ import annotations

import asyncio
import json
import time

import aio_pika
import kombu

from tests.cluster.harness import Cluster, wait_until
from tests.cluster.load import QUORUM, declare_queue


def leader_of(cluster: Cluster, queue: str) -> str:
    key = f"{cluster.prefix}leader/%2F/{queue}"
    return str(json.loads(cluster.etcd.get_prefix(key)[key])["node"])


def test_kombu_failover_urls_reach_a_surviving_node(cluster: Cluster) -> None:
    declare_queue(cluster.amqp_urls, "kombu-q", QUORUM)
    url = ";".join(cluster.amqp_urls)
    queue = kombu.Queue("kombu-q", durable=True, queue_arguments=QUORUM)
    # Publisher confirms (py-amqp's confirm_publish): a confirmed message must survive the kill.
    with kombu.Connection(
        url, failover_strategy="round-robin", heartbeat=2, transport_options={"confirm_publish": True}
    ) as conn:
        producer = conn.Producer()
        publish = conn.ensure(producer, producer.publish, max_retries=20, interval_start=0.2, interval_step=0.2)
        for i in range(10):
            publish({"n": i}, routing_key="kombu-q", declare=[queue], delivery_mode=2)
        first = conn.as_uri()
        victim = next(n for n in cluster.nodes if f":{n.port}/" in first)
        victim.kill()
        for i in range(10, 20):
            publish({"n": i}, routing_key="kombu-q", declare=[queue], delivery_mode=2)
        assert conn.as_uri() != first  # it moved on to another node
    got: list[int] = []
    survivors = ";".join(u for u in cluster.amqp_urls if u != victim.url())

    def take(body: dict[str, int], message: kombu.Message) -> None:
        got.append(body["n"])
        message.ack()

    with kombu.Connection(survivors) as conn, conn.Consumer(queue, callbacks=[take]):
        deadline = time.monotonic() + 20
        while len(got) < 20 and time.monotonic() < deadline:
            try:
                conn.drain_events(timeout=0.5)
            except TimeoutError:
                pass
    assert sorted(got) == list(range(20))


def test_aio_pika_robust_connection_comes_back_with_its_consumer(cluster: Cluster) -> None:
    declare_queue(cluster.amqp_urls, "aio-q", QUORUM)
    leader = leader_of(cluster, "aio-q")
    others = [n for n in cluster.nodes if n.name != leader]
    consumer_node, restarted = others  # one stays up throughout, one restarts

    async def run() -> tuple[list[bytes], list[bytes]]:
        steady: list[bytes] = []
        roaming: list[bytes] = []
        a = await aio_pika.connect_robust(consumer_node.url(), reconnect_interval=0.2)
        b = await aio_pika.connect_robust(restarted.url(), reconnect_interval=0.2)
        try:
            qa = await (await a.channel()).declare_queue("aio-q", passive=True)
            await qa.consume(lambda m: _take(m, steady))
            channel_b = await b.channel()
            await channel_b.set_qos(prefetch_count=1)
            qb = await channel_b.declare_queue("aio-q-b", durable=True, arguments=QUORUM)
            await qb.consume(lambda m: _take(m, roaming))
            publisher = await aio_pika.connect_robust(consumer_node.url())
            pch = await publisher.channel(publisher_confirms=True)
            await pch.default_exchange.publish(aio_pika.Message(b"before"), "aio-q")
            await pch.default_exchange.publish(aio_pika.Message(b"b-before"), "aio-q-b")
            await _wait(lambda: steady == [b"before"] and roaming == [b"b-before"])
            # The queue's leader dies: the consumer on another node just goes on.
            cluster.node(leader).kill()
            await pch.default_exchange.publish(aio_pika.Message(b"after", delivery_mode=2), "aio-q")
            await _wait(lambda: b"after" in steady, timeout=20)
            # The consumer's own node restarts: the robust connection returns with its consumer.
            restarted.kill()
            await asyncio.get_running_loop().run_in_executor(None, restarted.restart)
            await pch.default_exchange.publish(aio_pika.Message(b"b-after", delivery_mode=2), "aio-q-b")
            await _wait(lambda: b"b-after" in roaming, timeout=30)
            await publisher.close()
        finally:
            await a.close()
            await b.close()
        return steady, roaming

    steady, roaming = asyncio.run(run())
    assert steady[0] == b"before" and b"after" in steady
    assert roaming[0] == b"b-before" and b"b-after" in roaming
    wait_until(lambda: leader_of(cluster, "aio-q") != leader, 10, "a new leader")


async def _take(message: aio_pika.abc.AbstractIncomingMessage, into: list[bytes]) -> None:
    into.append(message.body)
    await message.ack()


async def _wait(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)
