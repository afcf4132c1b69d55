"""Rates are computed on a timer from cumulative counters: (now - then) / elapsed."""

from __future__ import annotations

from typing import Any

import pytest

from warrenmq import admin
from warrenmq.management import rates as rates_module
from warrenmq.management.rates import Rates


class FakeAdmin:
    """Just what the sampler reads; counters set by the test."""

    def __init__(self) -> None:
        self.published = 0
        self.ready = 0

    def queues(self) -> list[admin.QueueInfo]:
        return [
            admin.QueueInfo(
                name="q", vhost="/", type="classic", durable=True, auto_delete=False, exclusive=False, owner=None,
                arguments={}, policy=None, effective_policy_definition={}, state="running",
                messages_ready=self.ready, messages_unacknowledged=0, messages_paged_out=0, message_bytes_ready=0,
                message_bytes_unacknowledged=0, consumers=0, active_consumers=0, exclusive_consumer_tag=None,
                single_active_consumer_tag=None, memory=0, idle_since=None,
                message_stats={"publish": self.published},
            )
        ]  # fmt: skip

    def exchanges(self) -> list[Any]:
        return []

    def connections(self) -> list[Any]:
        return []

    def channels(self) -> list[Any]:
        return []

    def vhosts(self) -> list[Any]:
        return []

    def overview(self) -> Any:
        class Overview:
            totals = admin.Totals()
            message_stats = {"publish": self.published}

        return Overview()


def test_rates_between_samples(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    monkeypatch.setattr(rates_module.time, "monotonic", lambda: clock[0])
    fake = FakeAdmin()
    rates = Rates(fake)  # type: ignore[arg-type]
    rates.sample()
    assert rates.details(("queue", "/", "q"), "publish") == {"rate": 0.0}  # one sample: no rate yet

    fake.published, fake.ready = 50, 20
    clock[0] += 5.0
    rates.sample()
    assert rates.rate(("queue", "/", "q"), "publish") == 10.0
    assert rates.rate(("queue", "/", "q"), "messages_ready") == 4.0
    assert rates.rate(("overview",), "publish") == 10.0

    fake.ready = 0  # a shrinking queue has a negative rate, as in RabbitMQ
    clock[0] += 5.0
    rates.sample()
    assert rates.rate(("queue", "/", "q"), "publish") == 0.0
    assert rates.rate(("queue", "/", "q"), "messages_ready") == -4.0
    assert rates.rate(("queue", "/", "gone"), "publish") == 0.0
