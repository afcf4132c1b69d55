"""Celery against WarrenMQ: countdown tasks scheduled through delayed messages, and ETA tasks
held longer than the node's consumer timeout by a worker whose queue opts out.

The worker runs in a thread of the test (celery.contrib.testing's solo-pool worker); tasks
record what they saw in this process.
"""

from __future__ import annotations

import datetime
import json
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker
from celery.signals import before_task_publish
from kombu import Exchange, Queue

from warrenmq.testing import EmbeddedBroker, RunningBroker


def celery_app(broker: RunningBroker, name: str) -> Celery:
    app = Celery(name, broker=broker.url.replace("amqp://", "pyamqp://"))
    app.conf.update(
        broker_connection_retry_on_startup=True,
        broker_heartbeat=0,  # else the thread worker's event loop sleeps past its shutdown
        task_serializer="json",
        worker_hijack_root_logger=False,
        worker_prefetch_multiplier=4,
    )
    return app


def countdown_as_x_delay(headers: dict[str, Any] | None = None, **_: Any) -> None:
    """Publish countdown/ETA tasks as delayed messages: the delay goes into x-delay and the
    worker gets the task when it is due (nothing for it to hold until then)."""
    if not headers or not headers.get("eta"):
        return
    eta = datetime.datetime.fromisoformat(headers["eta"])
    now = datetime.datetime.now(eta.tzinfo)
    headers["x-delay"] = max(0, int((eta - now).total_seconds() * 1000))
    headers["eta"] = None


@pytest.fixture
def delayed_publishing() -> Iterator[None]:
    before_task_publish.connect(countdown_as_x_delay)
    yield
    before_task_publish.disconnect(countdown_as_x_delay)


def exchange_info(broker: RunningBroker, name: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{broker.management_url}/api/exchanges/%2F/{name}", headers={"Authorization": "Basic Z3Vlc3Q6Z3Vlc3Q="}
    )
    info: dict[str, Any] = json.load(urllib.request.urlopen(request, timeout=5))
    return info


def test_countdown_tasks_travel_as_delayed_messages(amqp_broker: RunningBroker, delayed_publishing: None) -> None:
    app = celery_app(amqp_broker, "countdown")
    exchange = Exchange("celery-delayed", type="x-delayed-message", arguments={"x-delayed-type": "direct"})
    app.conf.task_queues = [Queue("celery-delayed", exchange, routing_key="celery-delayed")]
    app.conf.task_default_queue = "celery-delayed"
    app.conf.task_default_exchange = "celery-delayed"
    app.conf.task_default_exchange_type = "x-delayed-message"
    app.conf.task_default_routing_key = "celery-delayed"
    ran: dict[str, float] = {}
    done = threading.Event()

    @app.task(name="remember")
    def remember(label: str) -> None:
        ran[label] = time.monotonic()
        if len(ran) == 2:
            done.set()

    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        sent = time.monotonic()
        remember.apply_async(("later",), countdown=1.0)
        remember.apply_async(("now",))
        deadline = time.monotonic() + 5
        while exchange_info(amqp_broker, "celery-delayed")["messages_delayed"] != 1:  # held by the broker
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert "later" not in ran
        assert done.wait(15), ran
    app.close()
    assert ran["now"] < ran["later"]
    assert ran["later"] - sent >= 0.99  # x-delay is whole milliseconds


def test_eta_beyond_the_consumer_timeout_on_a_queue_that_opts_out(
    amqp_broker_factory: Callable[..., EmbeddedBroker],
) -> None:
    """The node times deliveries out after 0.5 s; the task queue declares x-consumer-timeout 0,
    so the worker holds a 1.5 s ETA task unacknowledged and runs it once, not redelivered."""
    broker = amqp_broker_factory(consumer_timeout=500, management=False)
    assert broker.running is not None
    app = celery_app(broker.running, "eta")
    app.conf.task_queues = [Queue("eta-tasks", routing_key="eta-tasks", queue_arguments={"x-consumer-timeout": 0})]
    app.conf.task_default_queue = "eta-tasks"
    runs: list[tuple[float, bool]] = []
    done = threading.Event()

    @app.task(name="slow_eta", bind=True)
    def slow_eta(self: Any) -> None:
        runs.append((time.monotonic(), bool(self.request.delivery_info.get("redelivered"))))
        done.set()

    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        sent = time.monotonic()
        slow_eta.apply_async(countdown=1.5)
        assert done.wait(15)
        time.sleep(0.2)  # a second run would show up here (it would be a redelivery)
    app.close()
    assert len(runs) == 1
    ran_at, redelivered = runs[0]
    assert ran_at - sent >= 1.5 and not redelivered
