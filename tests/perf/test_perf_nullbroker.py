"""warren-perf end to end against its own null broker: no real broker needed.

The null broker answers set-up methods, discards publishes (confirming them)
and streams deliveries, so these tests check the plumbing (processes,
counters, confirms, acks, reports), not any broker's behaviour.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from warrenmq.perf.options import merge
from warrenmq.perf.report import Report
from warrenmq.perf.runner import execute

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def null_broker() -> Iterator[tuple[str, int]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "warrenmq.perf.nullbroker", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())  # printed once listening
        yield f"amqp://guest:guest@127.0.0.1:{port}/%2F", proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def run(broker: tuple[str, int], **options: Any) -> Report:
    uri, pid = broker
    report = execute(merge({"uri": uri, "broker_pid": pid, "duration": 0.5, "drain_timeout": 5.0, **options}))
    assert report.ok, report.errors
    assert report.broker.startswith("warren-perf null broker")
    return report


def test_publish_and_consume(null_broker: tuple[str, int]) -> None:
    report = run(null_broker, size=16, auto_ack=True)
    m = report.metrics
    assert m["publish_rate"] > 0 and m["consume_rate"] > 0
    assert m["tool_cpu_pct"] > 0 and m["broker_cpu_pct"] > 0
    assert report.timeline and report.timeline[-1]["publish_rate"] > 0


def test_confirms_are_counted(null_broker: tuple[str, int]) -> None:
    m = run(null_broker, producers=2, consumers=0, confirm=64, size=100).metrics
    assert m["confirmed_total"] == m["published_total"] > 0
    assert m["confirm_rate"] > 0


def test_manual_acks_and_multi_acks(null_broker: tuple[str, int]) -> None:
    assert run(null_broker, producers=0, qos=100).metrics["consume_rate"] > 0
    assert run(null_broker, producers=0, qos=1000, multi_ack_every=100).metrics["consume_rate"] > 0


def test_fanout_and_many_queues(null_broker: tuple[str, int]) -> None:
    assert run(null_broker, fanout=3, consumers=3, auto_ack=True).metrics["consumed_total"] > 0
    assert run(null_broker, queues=4, producers=2, consumers=2, auto_ack=True).metrics["published_total"] > 0


def test_rate_limit_holds(null_broker: tuple[str, int]) -> None:
    m = run(null_broker, consumers=0, rate=400.0, duration=1.0, size=16).metrics
    assert 200 <= m["publish_rate"] <= 600


def test_idle_connections(null_broker: tuple[str, int]) -> None:
    m = run(null_broker, idle_connections=30, hold=0.1, settle_timeout=0.2).metrics
    assert m["connections_opened"] == 30 and m["connections_failed"] == 0
