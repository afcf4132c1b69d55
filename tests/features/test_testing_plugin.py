"""The ``warrenmq.testing`` pytest plugin: its fixtures, its scope option and its start time.

This project's own feature tests (tests/features/) use ``amqp_broker`` and
``amqp_broker_factory`` from the plugin, registered by the ``pytest11`` entry point.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request

import aio_pika
import kombu
import pika
import pytest

from warrenmq.testing import EmbeddedBroker, RunningBroker

pytest_plugins = ("pytester",)


def test_amqp_broker_gives_a_url_and_a_management_url(amqp_broker: RunningBroker) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(amqp_broker.url))
    ch = conn.channel()
    ch.queue_declare("plugin-check", exclusive=True)
    conn.close()
    request = urllib.request.Request(
        amqp_broker.management_url + "/api/overview", headers={"Authorization": "Basic Z3Vlc3Q6Z3Vlc3Q="}
    )
    overview = json.load(urllib.request.urlopen(request, timeout=5))
    assert overview["product_name"] == "WarrenMQ"
    assert str(amqp_broker) == amqp_broker.url and amqp_broker.url.startswith("amqp://guest:guest@127.0.0.1:")


def test_aio_pika_and_kombu_on_the_fixture(amqp_broker: RunningBroker) -> None:
    async def with_aio_pika() -> bytes:
        async with await aio_pika.connect(amqp_broker.url) as connection:
            channel = await connection.channel()
            queue = await channel.declare_queue("plugin-aio", exclusive=True)
            await channel.default_exchange.publish(aio_pika.Message(b"hi"), "plugin-aio")
            message = await queue.get(timeout=5)
            assert message is not None
            await message.ack()
            return message.body

    assert asyncio.run(with_aio_pika()) == b"hi"
    with kombu.Connection(amqp_broker.url.replace("amqp://", "pyamqp://")) as connection:
        queue = connection.SimpleQueue("plugin-kombu")
        queue.put({"n": 1})
        message = queue.get(timeout=5)
        message.ack()
        assert message.payload == {"n": 1}
        queue.close()


def test_a_broker_starts_in_under_half_a_second(amqp_broker: RunningBroker) -> None:
    """Once the process has imported WarrenMQ (the session broker did), a broker with its
    management API starts well within 0.5 s, so that a suite can afford one per test."""
    started = time.perf_counter()
    broker = EmbeddedBroker()
    broker.start()
    took = time.perf_counter() - started
    conn = pika.BlockingConnection(pika.URLParameters(broker.running.url))  # type: ignore[union-attr]
    conn.close()
    broker.stop()
    assert took < 0.5, took


def test_function_scope_gives_each_test_its_own_broker(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pika

        def declare_and_count(url):
            conn = pika.BlockingConnection(pika.URLParameters(url))
            ch = conn.channel()
            count = ch.queue_declare("shared").method.message_count
            ch.basic_publish("", "shared", b"x")
            conn.close()
            return count

        def test_one(amqp_broker):
            assert declare_and_count(amqp_broker.url) == 0

        def test_two(amqp_broker):
            assert declare_and_count(amqp_broker.url) == 0  # a fresh broker: nothing left over
        """
    )
    # With the default session scope test_two would see test_one's message.
    pytester.runpytest_inprocess("--warrenmq-scope=function", "-q").assert_outcomes(passed=2)
