"""Rates are computed on a timer from cumulative counters: (now - then) / elapsed."""

from __future__ import annotations

from typing import Any

import pytest

from tests.management.conftest import Api
from warrenmq import admin
from warrenmq.management import history
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


def test_history_samples(monkeypatch: pytest.MonkeyPatch) -> None:
    """The node's counters of the last ten minutes, for the charts (RabbitMQ's *_age/*_incr)."""
    clock = [1000.0]
    monkeypatch.setattr(rates_module.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(rates_module.time, "time", lambda: clock[0])
    fake = FakeAdmin()
    rates = Rates(fake)  # type: ignore[arg-type]
    overview = [("overview",)]
    assert rates.samples(overview, "publish", 600, 5) == []
    for published in (0, 50, 100):
        fake.published = published
        rates.sample()
        clock[0] += 5.0
    assert rates.samples(overview, "publish", 600, 5) == [(1010000, 100), (1005000, 50), (1000000, 0)]
    assert rates.samples(overview, "publish", 600, 10) == [(1010000, 100), (1000000, 0)]
    assert rates.samples(overview, "publish", 5, 5) == [(1010000, 100), (1005000, 50)]
    assert rates.samples([("vhost", "none")], "publish", 600, 5)[0] == (1010000, 0)
    assert history.series(rates.samples(overview, "publish", 600, 5)) == {
        "samples": [
            {"sample": 100, "timestamp": 1010000},
            {"sample": 50, "timestamp": 1005000},
            {"sample": 0, "timestamp": 1000000},
        ],
        "avg": 50.0,
        "avg_rate": 10.0,
    }
    for _ in range(200):  # ten minutes and more later: the oldest are gone
        rates.sample()
        clock[0] += 5.0
    kept = rates.samples(overview, "publish", 10_000, 5)
    assert len(kept) <= 122 and kept[-1][0] >= (clock[0] - 5 - 605) * 1000


def test_overview_samples_over_the_api(api: Api) -> None:
    data = api.ok("/api/overview?lengths_age=60&lengths_incr=5&msg_rates_age=60&msg_rates_incr=5")
    details = data["queue_totals"]["messages_details"]
    assert {"rate", "samples", "avg", "avg_rate"} <= details.keys() and details["samples"]
    assert {"sample", "timestamp"} == details["samples"][0].keys()
    stats = data["message_stats"]
    assert all("samples" in stats[f"{k}_details"] for k in stats if not k.endswith("_details"))
    assert "samples" not in api.ok("/api/overview")["queue_totals"]["messages_details"]  # only when asked
