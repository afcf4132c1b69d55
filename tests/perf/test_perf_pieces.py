"""Confirm tracking, statistics, topology sharing and /proc readers."""

from __future__ import annotations

import asyncio
import os
from array import array

import pytest

from warrenmq.perf import procstat
from warrenmq.perf.config import PerfConfig
from warrenmq.perf.publisher import ConfirmTracker
from warrenmq.perf.report import Report, render_table
from warrenmq.perf.stats import latency_summary, percentile
from warrenmq.perf.topology import Topology


def tracker() -> ConfirmTracker:
    return ConfirmTracker(asyncio.new_event_loop())


def test_confirms_single_and_multiple() -> None:
    t = tracker()
    t.on_confirm(1, False, False)
    t.on_confirm(3, False, False)  # out of order
    assert t.confirmed == 2
    t.on_confirm(2, False, False)
    assert (t.low, t.confirmed) == (3, 3)
    t.on_confirm(10, True, False)
    assert t.confirmed == 10
    t.on_confirm(12, False, True)
    t.on_confirm(11, True, True)  # covers 11 only; 12 already counted
    assert (t.confirmed, t.nacked) == (12, 2)
    t.on_confirm(5, True, False)  # stale multiple ack changes nothing
    assert t.confirmed == 12


def test_percentiles_nearest_rank() -> None:
    values = list(range(1, 1001))
    assert percentile(values, 50) == 500
    assert percentile(values, 99) == 990
    assert percentile(values, 99.9) == 999
    assert percentile(values, 100) == 1000
    assert percentile([7], 99.9) == 7
    with pytest.raises(ValueError):
        percentile([], 50)


def test_latency_summary_is_ordered_and_in_ms() -> None:
    samples = array("q", [i * 1000 for i in range(1, 10_001)])
    s = latency_summary(samples)
    assert s["latency_samples"] == 10_000
    assert s["latency_p50_ms"] == 5.0
    assert s["latency_min_ms"] <= s["latency_p50_ms"] <= s["latency_p99_ms"] <= s["latency_p999_ms"]  # type: ignore[operator]
    assert latency_summary(array("q"))["latency_p99_ms"] is None


def test_topology_gives_every_queue_a_worker() -> None:
    topo = Topology.plan(PerfConfig(queues=5), run_id="t")
    assert topo.queues == tuple(f"perf-t-q{i}" for i in range(5))
    consumed = [q for j in range(2) for q in topo.consumer_queues(j, 2)]
    assert sorted(consumed) == sorted(topo.queues)
    targets = [t.routing_key for i in range(3) for t in topo.producer_targets(i, 3)]
    assert sorted(targets) == sorted(topo.queues)
    # More workers than queues: they share.
    assert Topology.plan(PerfConfig(), run_id="t").consumer_queues(3, 4) == ["perf-t-q0"]


def test_topology_over_several_brokers_keeps_each_workers_queues_on_its_broker() -> None:
    uris = ["amqp://h1/%2F", "amqp://h2/%2F", "amqp://h3/%2F"]
    topo = Topology.plan(PerfConfig(uris=uris, queues=6, quorum=True), run_id="t")
    assert topo.durable and dict(topo.arguments) == {"x-queue-type": "quorum"}
    assert topo.by_broker() == [
        (uris[0], ("perf-t-q0", "perf-t-q3")),
        (uris[1], ("perf-t-q1", "perf-t-q4")),
        (uris[2], ("perf-t-q2", "perf-t-q5")),
    ]
    home = {q: uri for uri, queues in topo.by_broker() for q in queues}
    for workers in (3, 4, 6, 7):
        consumed = [q for j in range(workers) for q in topo.consumer_queues(j, workers)]
        assert set(consumed) == set(topo.queues), workers
        for i in range(workers):
            assert {home[t.routing_key] for t in topo.producer_targets(i, workers)} == {topo.uri_of(i)}
            assert {home[q] for q in topo.consumer_queues(i, workers)} == {topo.uri_of(i)}


def test_fanout_topology() -> None:
    topo = Topology.plan(PerfConfig(fanout=4), run_id="t")
    assert topo.exchange == "perf-t-fanout" and topo.deliveries_per_message == 4
    assert [(t.exchange, t.routing_key) for t in topo.producer_targets(0, 1)] == [("perf-t-fanout", "")]


def test_proc_readers_on_ourselves() -> None:
    cpu = procstat.cpu_seconds(os.getpid())
    rss = procstat.rss_bytes(os.getpid())
    assert cpu is not None and cpu >= 0
    assert rss is not None and rss > 1 << 20
    assert procstat.cpu_seconds(2**22 + 12345) is None


def test_table_renders_known_metrics() -> None:
    report = Report("throughput", "transient-16b", "Broker 1.0", "amqp://x", "warren-perf", {})
    report.metrics.update({"publish_rate": 12345.6, "broker_rss_peak_bytes": 3 * 1024 * 1024, "drained": True})
    text = render_table(report)
    assert "12,346 msg/s" in text and "3.0 MiB" in text and "yes" in text


def test_listening_pid_finds_our_own_listener() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        assert procstat.listening_pid(s.getsockname()[1]) == os.getpid()


def test_process_tree_includes_children() -> None:
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        assert child.pid in procstat.process_tree(os.getpid())
        assert procstat.tree_rss_bytes(os.getpid()) > procstat.rss_bytes(os.getpid())  # type: ignore[operator]
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=30)


def test_fd_usage_of_ourselves() -> None:
    usage = procstat.fd_usage(os.getpid())
    assert usage is not None
    used, limit = usage
    assert 0 < used < limit


def test_idle_mode_stays_below_the_broker_fd_limit() -> None:
    from warrenmq.perf.idle import _fd_guard
    from warrenmq.perf.runner import RunContext

    # Our own process stands in for the broker: its limit is far below a million.
    cfg = PerfConfig(idle_connections=1_000_000, broker_pid=os.getpid())
    report = Report("idle", None, "", "", "", {})
    capped = _fd_guard(RunContext(cfg, report), 1_000_000)
    used, limit = procstat.fd_usage(os.getpid()) or (0, 0)
    assert 0 <= capped < limit - used
    assert report.metrics["connections_capped_at"] == capped and report.notes
    # --no-fd-guard: as asked.
    cfg.fd_guard = False
    assert _fd_guard(RunContext(cfg, Report("idle", None, "", "", "", {})), 1_000_000) == 1_000_000
