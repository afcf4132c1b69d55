"""Every standard scenario, shrunk to a second or so, against a real broker.

Needs WARREN_PERF_TEST_URI; memory figures are checked when the broker PID
is known (see conftest.py).  The figures are checked for sanity only.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from warrenmq.perf.cli import main
from warrenmq.perf.options import merge
from warrenmq.perf.report import Report
from warrenmq.perf.runner import execute
from warrenmq.perf.scenarios import SCENARIOS

pytestmark = pytest.mark.timeout(180)

THROUGHPUT = [
    "transient-16b",
    "transient-1k",
    "manual-ack-100",
    "manual-ack-1000-multi",
    "persistent-confirm",
    "fanout-10",
    "stream",
    "stream-confirm",
]


def run(uri: str, pid: int | None = None, **options: Any) -> Report:
    given: dict[str, Any] = {"uri": uri, "smoke": True, **options}
    if pid is not None:
        given["broker_pid"] = pid
    report = execute(merge(given))
    assert report.ok, report.errors
    return report


def assert_all_delivered(m: dict[str, Any], per_message: int = 1) -> None:
    assert m["published_total"] > 0
    assert m["drained"] is True
    assert m["consumed_total"] == m["published_total"] * per_message == m["expected_deliveries"]


@pytest.mark.parametrize("name", THROUGHPUT)
def test_throughput_scenarios(name: str, broker_uri: str, broker_pid: int | None) -> None:
    report = run(broker_uri, broker_pid, scenario=name)
    m = report.metrics
    assert report.broker
    assert m["publish_rate"] > 0 and m["consume_rate"] > 0
    assert m["published"] > 0 and m["consumed"] > 0
    assert_all_delivered(m, SCENARIOS[name].options.get("fanout") or 1)
    assert m["tool_cpu_pct"] > 0
    if name in ("persistent-confirm", "stream-confirm"):
        assert m["confirmed_total"] == m["published_total"]
        assert m["nacked_total"] == 0
        assert m["confirm_rate"] > 0
    if broker_pid is not None:
        assert m["broker_cpu_pct"] > 0
        assert m["broker_rss_peak_bytes"] > 0


def test_latency_scenario(broker_uri: str) -> None:
    report = run(broker_uri, scenario="latency-1000")
    m = report.metrics
    assert_all_delivered(m)
    # Rate-limited to the smoke rate (200/s for ~1 s): not flat out.
    assert m["publish_rate"] < 400
    assert m["latency_samples"] == m["consumed_total"]
    order = ["latency_min_ms", "latency_p50_ms", "latency_p99_ms", "latency_p999_ms", "latency_max_ms"]
    values = [m[k] for k in order]
    assert values == sorted(values) and values[0] >= 0


def test_queued_memory_scenario(broker_uri: str, broker_pid: int | None) -> None:
    report = run(broker_uri, broker_pid, scenario="queued-memory")
    m = report.metrics
    n = SCENARIOS["queued-memory"].smoke["backlog"]
    assert m["backlog_messages"] == m["published_total"] == n
    assert m["backlog_publish_rate"] > 0
    assert "drain_rate" not in m
    if broker_pid is not None:
        assert m["bytes_per_message"] is not None


@pytest.mark.parametrize("name", ["backlog-1m", "stream-read-1m"])
def test_backlog_scenario(name: str, broker_uri: str, broker_pid: int | None) -> None:
    report = run(broker_uri, broker_pid, scenario=name)
    m = report.metrics
    n = SCENARIOS[name].smoke["backlog"]
    assert m["published_total"] == n
    assert_all_delivered(m)
    assert m["drain_rate"] > 0 and m["backlog_publish_rate"] > 0
    if broker_pid is not None:
        assert m["broker_rss_peak_bytes"] >= m["broker_rss_before_bytes"] > 0
        assert m["drain_rss_peak_bytes"] > 0


@pytest.mark.parametrize("name", ["idle-connections", "connections-10k"])
def test_idle_connection_scenarios(name: str, broker_uri: str, broker_pid: int | None) -> None:
    report = run(broker_uri, broker_pid, scenario=name)
    m = report.metrics
    n = SCENARIOS[name].smoke["idle_connections"]
    assert m["connections_requested"] == m["connections_opened"] == n
    assert m["connections_failed"] == m["connections_lost"] == 0
    assert m["connect_rate"] > 0
    if broker_pid is not None:
        assert m["bytes_per_connection"] is not None


def test_many_queues_with_manual_multi_ack(broker_uri: str) -> None:
    report = run(
        broker_uri, producers=2, consumers=3, queues=5, size=64, qos=50, multi_ack_every=10, confirm=32, duration=1.0
    )
    m = report.metrics
    assert_all_delivered(m)
    assert m["confirmed_total"] == m["published_total"]


def test_backlog_with_two_producers_and_confirms(broker_uri: str) -> None:
    report = run(broker_uri, producers=2, consumers=2, backlog=1001, confirm=100, size=20, auto_ack=False, qos=10)
    m = report.metrics
    assert m["published_total"] == 1001
    assert_all_delivered(m)


def test_large_messages_span_frames(broker_uri: str) -> None:
    # 300 KB bodies need several body frames at the default frame_max.
    report = run(broker_uri, size=300_000, auto_ack=True, rate=50.0, duration=1.0)
    m = report.metrics
    assert_all_delivered(m)
    assert m["latency_samples"] == m["consumed_total"]


def test_consumers_only_and_producers_only(broker_uri: str) -> None:
    m = run(broker_uri, producers=0, consumers=1, duration=0.5).metrics
    assert m["consume_rate"] == 0 and m["publish_rate"] is None
    m = run(broker_uri, producers=1, consumers=0, duration=0.5, rate=100.0).metrics
    assert m["published_total"] > 0 and "drained" not in m


def test_cli_json_output(broker_uri: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--uri", broker_uri, "--scenario", "transient-16b", "--smoke", "-z", "0.5", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["scenario"] == "transient-16b" and out["errors"] == []
    assert out["metrics"]["consumed_total"] == out["metrics"]["published_total"] > 0
    assert out["command"].startswith("warren-perf ")
    assert "guest:guest" not in out["uri"]


def test_cli_table_output(broker_uri: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--uri", broker_uri, "-x", "1", "-y", "1", "-a", "-z", "0.5", "--rate", "100"]) == 0
    out = capsys.readouterr().out
    assert "publish rate" in out and "latency p99.9" in out


def test_unreachable_broker_is_reported_not_raised() -> None:
    report = execute(merge({"uri": "amqp://guest:guest@127.0.0.1:1/%2F", "duration": 0.5}))
    assert not report.ok and report.errors
