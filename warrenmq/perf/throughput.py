"""Throughput (and latency) mode: publish and consume for a fixed duration."""

from __future__ import annotations

import time
from array import array

from .pool import Handle
from .runner import RunContext
from .stats import latency_summary, rate
from .worker import BLOCKED, CONFIRMED, CONSUMED, NACKED, PUBLISHED, RETURNED

DONE_GRACE = 15.0  # on top of drain_timeout, for workers to close and report


def run_throughput(ctx: RunContext) -> None:
    cfg, pool, m = ctx.cfg, ctx.pool, ctx.metrics
    # Consumers first, so nothing published is missed (and fanout queues exist).
    consumers = ctx.spawn_consumers() if cfg.consumers else []
    ctx.wait_ready(consumers)
    producers = ctx.spawn_producers() if cfg.producers else []
    ctx.wait_ready(producers)
    m["broker_rss_before_bytes"] = ctx.broker_rss()

    before = ctx.marks()
    pool.send(consumers + producers, "go")
    start = time.monotonic()
    first = pool.totals()
    _run_for(ctx, start, first)
    last = pool.totals()
    elapsed = time.monotonic() - start
    ctx.record_cpu(before, ctx.marks())

    published = last[PUBLISHED] - first[PUBLISHED]
    consumed = last[CONSUMED] - first[CONSUMED]
    m["duration_s"] = round(elapsed, 3)
    m["publish_rate"] = rate(published, elapsed) if producers else None
    m["confirm_rate"] = rate(last[CONFIRMED] - first[CONFIRMED], elapsed) if cfg.confirm else None
    m["consume_rate"] = rate(consumed, elapsed) if consumers else None
    m["published"] = published
    m["consumed"] = consumed

    pool.send(producers, "stop")
    pool.wait_for(producers, "done", cfg.drain_timeout + DONE_GRACE)
    totals = pool.totals()
    if consumers and producers:
        # Every queue has a consumer, so everything published must arrive.
        expected = totals[PUBLISHED] * ctx.topo.deliveries_per_message
        m["expected_deliveries"] = expected
        m["drained"] = ctx.wait_until(lambda: pool.totals()[CONSUMED] >= expected, cfg.drain_timeout)
    pool.send(consumers, "stop")
    pool.wait_for(consumers, "done", DONE_GRACE)

    totals = pool.totals()
    m["published_total"] = totals[PUBLISHED]
    m["consumed_total"] = totals[CONSUMED]
    if cfg.confirm:
        m["confirmed_total"] = totals[CONFIRMED]
        m["nacked_total"] = totals[NACKED]
    if cfg.mandatory:
        m["returned_total"] = totals[RETURNED]
    m["blocked"] = totals[BLOCKED]
    m["broker_rss_after_bytes"] = ctx.broker_rss()
    if cfg.timestamps:
        m.update(latency_summary(_latencies(consumers)))


def _run_for(ctx: RunContext, start: float, first: list[int]) -> None:
    """Let the run go for cfg.duration, recording a timeline every interval."""
    cfg, pool = ctx.cfg, ctx.pool
    end = start + cfg.duration
    tick = start + cfg.interval
    prev, prev_at = first, start
    while (now := time.monotonic()) < end:
        pool.poll(min(tick, end) - now)
        now = time.monotonic()
        if now >= tick or now >= end:
            cur = pool.totals()
            dt = now - prev_at
            point = {
                "t": round(now - start, 3),
                "publish_rate": rate(cur[PUBLISHED] - prev[PUBLISHED], dt),
                "confirm_rate": rate(cur[CONFIRMED] - prev[CONFIRMED], dt),
                "consume_rate": rate(cur[CONSUMED] - prev[CONSUMED], dt),
            }
            ctx.report.timeline.append(point)
            ctx.progress(
                f"{point['t']:7.1f}s  published {point['publish_rate']:>11,.0f}/s"
                f"  confirmed {point['confirm_rate']:>11,.0f}/s  consumed {point['consume_rate']:>11,.0f}/s"
            )
            prev, prev_at = cur, now
            while tick <= now:
                tick += cfg.interval


def _latencies(handles: list[Handle]) -> array[int]:
    merged: array[int] = array("q")
    for h in handles:
        if h.done and h.done.get("latencies"):
            merged.frombytes(h.done["latencies"])
    return merged
