"""Backlog mode: queue N messages with nobody consuming, then drain them (from a stream:
consumers read it from x-stream-offset first and it keeps its messages).

Also measures broker memory per queued message (RSS delta / N), which is
what the ``queued-memory`` scenario reports.
"""

from __future__ import annotations

import asyncio
import time

from . import topology
from .runner import RunContext
from .stats import rate
from .worker import BLOCKED, CONFIRMED, CONSUMED, PUBLISHED

DONE_GRACE = 15.0


def run_backlog(ctx: RunContext) -> None:
    cfg, pool, m = ctx.cfg, ctx.pool, ctx.metrics
    n = cfg.backlog
    assert n is not None
    drain = cfg.drain and cfg.consumers > 0
    # Connect everything up front so connection memory is not counted per message.
    consumers = ctx.spawn_consumers(consume_on_go=True) if drain else []
    producers = ctx.spawn_producers(limit=n)
    ctx.wait_ready(consumers + producers)
    m["backlog_messages"] = n
    rss_before = ctx.settled_broker_rss()
    m["broker_rss_before_bytes"] = rss_before

    # Publish phase: ends when the broker reports all N messages queued.
    before = ctx.marks()
    start = time.monotonic()
    pool.send(producers, "go")
    publish_timeout = max(60.0, n / 2000)
    if not ctx.wait_until(lambda: pool.totals()[PUBLISHED] >= n, publish_timeout):
        raise TimeoutError(f"published only {pool.totals()[PUBLISHED]} of {n} messages")
    if cfg.confirm and not ctx.wait_until(lambda: pool.totals()[CONFIRMED] >= n, cfg.drain_timeout):
        raise TimeoutError(f"only {pool.totals()[CONFIRMED]} of {n} messages confirmed")
    expected_depth = n * ctx.topo.deliveries_per_message
    depth = asyncio.run(topology.wait_for_depth(ctx.topo, expected_depth, publish_timeout))
    published_at = time.monotonic()
    ctx.record_cpu(before, ctx.marks(), prefix="backlog_")
    if depth < expected_depth:
        raise TimeoutError(f"broker holds {depth} of {expected_depth} messages")
    m["backlog_publish_s"] = round(published_at - start, 3)
    m["backlog_publish_rate"] = rate(n, published_at - start)
    rss_after = ctx.settled_broker_rss()
    m["broker_rss_after_bytes"] = rss_after
    if rss_before is not None and rss_after is not None:
        m["bytes_per_message"] = round((rss_after - rss_before) / expected_depth, 1)
    pool.send(producers, "stop")
    pool.wait_for(producers, "done", cfg.drain_timeout + DONE_GRACE)
    m["published_total"] = pool.totals()[PUBLISHED]

    if drain:
        before = ctx.marks()
        start = time.monotonic()
        pool.send(consumers, "go")
        m["drained"] = ctx.wait_until(lambda: pool.totals()[CONSUMED] >= expected_depth, cfg.drain_timeout)
        drained_at = time.monotonic()
        ctx.record_cpu(before, ctx.marks(), prefix="drain_")
        consumed = pool.totals()[CONSUMED]
        m["expected_deliveries"] = expected_depth
        m["consumed_total"] = consumed
        m["drain_s"] = round(drained_at - start, 3)
        m["drain_rate"] = rate(consumed, drained_at - start)
        if ctx.sampler is not None:
            # What reading the backlog cost: a stream read from its start must not load it.
            m["drain_rss_peak_bytes"] = ctx.sampler.peak(since=start, until=drained_at)
        pool.send(consumers, "stop")
        pool.wait_for(consumers, "done", DONE_GRACE)
    m["blocked"] = pool.totals()[BLOCKED]
    # The table's generic CPU rows show the publish phase.
    for key in ("tool_cpu_pct", "tool_busiest_cpu_pct", "broker_cpu_pct", "machine_cpu_pct", "other_cpu_pct"):
        if f"backlog_{key}" in m:
            m[key] = m[f"backlog_{key}"]
