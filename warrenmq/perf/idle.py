"""Idle-connections mode: open N connections with one channel each and hold them.

Reports how many opened and failed, how fast, and (with --broker-pid) the
broker's RSS growth per connection.
"""

from __future__ import annotations

import time

from .procstat import fd_usage
from .runner import RunContext
from .stats import rate

# Descriptors left free for the broker's own files, logs and helper processes.
FD_MARGIN_FRACTION = 0.1
FD_MARGIN_MIN = 64

# Opening can be slow when the broker refuses: each failure may take a whole
# connect timeout, but --max-failures bounds how many are tried.
OPEN_GRACE = 60.0


def run_idle(ctx: RunContext) -> None:
    cfg, pool, m = ctx.cfg, ctx.pool, ctx.metrics
    n = cfg.idle_connections
    assert n is not None
    m["connections_requested"] = n
    n = _fd_guard(ctx, n)
    rss_before = ctx.settled_broker_rss()
    m["broker_rss_before_bytes"] = rss_before

    before = ctx.marks()
    start = time.monotonic()
    handles = ctx.spawn_idle(n)
    waves = n / max(1, cfg.connect_concurrency) + cfg.max_failures / max(1, cfg.connect_concurrency) + 1
    ctx.wait_ready(handles, timeout=OPEN_GRACE + waves * cfg.connect_timeout)
    opened_at = time.monotonic()
    ctx.record_cpu(before, ctx.marks())
    opened = sum(int(h.ready["opened"]) for h in handles if h.ready)
    failed = sum(int(h.ready["failed"]) for h in handles if h.ready)
    skipped = sum(int(h.ready["skipped"]) for h in handles if h.ready)
    m["connections_opened"] = opened
    m["connections_failed"] = failed
    m["connections_skipped"] = skipped
    m["connect_s"] = round(opened_at - start, 3)
    # Rate up to the last success: timed-out failures would only dilute it.
    last_open = max((float(h.ready["last_open_at"]) for h in handles if h.ready), default=0.0)
    m["connect_rate"] = rate(opened, last_open - start) if last_open > start else None

    # Hold: the broker settles while we watch its RSS (this is the measurement).
    rss_after = ctx.settled_broker_rss(min_wait=cfg.hold)
    m["broker_rss_after_bytes"] = rss_after
    if rss_before is not None and rss_after is not None and opened:
        m["bytes_per_connection"] = round((rss_after - rss_before) / opened, 1)

    pool.send(handles, "stop")
    pool.wait_for(handles, "done", OPEN_GRACE + n / 500)
    m["connections_lost"] = sum(int(h.done["lost"]) for h in handles if h.done)
    # Connection failures are this mode's measurement, not a broken run.
    for h in handles:
        ctx.report.notes.extend(str(text) for text in (h.done or {}).get("failures", [])[:3])


def _fd_guard(ctx: RunContext, n: int) -> int:
    """Cap ``n`` below the broker's free file descriptors.

    A broker that runs out of descriptors may fail in places far from its
    listener (RabbitMQ's memory monitor dies on ``emfile`` and takes queue
    creation with it), so a benchmark must not push it there by accident.
    """
    cfg, m = ctx.cfg, ctx.metrics
    usage = fd_usage(cfg.broker_pid) if cfg.broker_pid is not None else None
    if usage is None:
        return n
    used, limit = usage
    m["broker_fd_limit"] = limit
    m["broker_fds_before"] = used
    room = limit - used - max(FD_MARGIN_MIN, int(limit * FD_MARGIN_FRACTION))
    if n <= room or not cfg.fd_guard:
        return n
    capped = max(0, room)
    m["connections_capped_at"] = capped
    ctx.report.notes.append(
        f"capped at {capped} connections: the broker's fd limit is {limit} with {used} in use"
        " (raise its ulimit -n, or pass --no-fd-guard to go past it)"
    )
    return capped
