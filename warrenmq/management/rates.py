"""Rates of change, sampled on a timer from the cumulative counters.

Every ``interval`` seconds the sampler reads the counters of every queue, exchange,
connection, channel and vhost (and the node-wide totals) through the Admin interface and
keeps, per object, the rate of each counter between the last two samples.  Nothing is
recorded per message: the broker's hot path only increments plain integers.  The sampler
starts with the first API request, so that a node nobody watches does no work for it.

The last ten minutes of the node's and the vhosts' counters are kept too (120 samples each at
the default interval), for RabbitMQ's ``msg_rates_age``/``lengths_age`` samples that the web
UI's charts draw; nothing is kept per queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import Any

from warrenmq.admin import Admin

log = logging.getLogger("warrenmq.management.rates")

Key = tuple[str, ...]
HISTORY_SECONDS = 600  # RabbitMQ's shortest sample retention
HISTORY_KINDS = ("overview", "vhost")


class Rates:
    def __init__(self, admin: Admin, interval: float = 5.0) -> None:
        self.admin = admin
        self.interval = interval
        self._previous: dict[Key, dict[str, int]] = {}
        self._previous_at = 0.0
        self._rates: dict[Key, dict[str, float]] = {}
        # (epoch seconds, counters by key), newest first
        self._history: deque[tuple[float, dict[Key, dict[str, int]]]] = deque()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self.sample()
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                self.sample()
            except Exception:  # a sampling bug must not stop the API
                log.exception("sampling statistics failed")

    def rate(self, key: Key, name: str) -> float:
        return self._rates.get(key, {}).get(name, 0.0)

    def details(self, key: Key, name: str) -> dict[str, float]:
        return {"rate": self.rate(key, name)}

    def sample(self) -> None:
        now = time.monotonic()
        current = self._read()
        elapsed = now - self._previous_at
        rates: dict[Key, dict[str, float]] = {}
        if self._previous_at and elapsed > 0:
            for key, counters in current.items():
                before = self._previous.get(key)
                if before is None:
                    continue
                rates[key] = {
                    name: round((value - before.get(name, 0)) / elapsed, 1)
                    for name, value in counters.items()
                    if name in before
                }
        self._previous = current
        self._previous_at = now
        self._rates = rates
        self._remember(current)

    def _remember(self, current: dict[Key, dict[str, int]]) -> None:
        at = time.time()
        self._history.appendleft((at, {key: value for key, value in current.items() if key[0] in HISTORY_KINDS}))
        while self._history and self._history[-1][0] < at - HISTORY_SECONDS - self.interval:
            self._history.pop()

    def samples(self, keys: list[Key], name: str, age: float, incr: float) -> list[tuple[int, int]]:
        """(epoch ms, value) of a counter over the last ``age`` seconds, at least ``incr`` apart,
        newest first; the counter summed over ``keys`` (a user's vhosts, say)."""
        if not self._history:
            return []
        newest = self._history[0][0]
        out: list[tuple[int, int]] = []
        last = float("inf")
        for at, counters in self._history:
            if at < newest - age:
                break
            if last - at < incr - self.interval / 2:
                continue
            last = at
            out.append((int(at * 1000), sum(counters.get(key, {}).get(name, 0) for key in keys)))
        return out

    def _read(self) -> dict[Key, dict[str, int]]:
        admin = self.admin
        out: dict[Key, dict[str, int]] = {}
        for q in admin.queues():
            counters: dict[str, Any] = dict(q.message_stats)
            counters["messages"] = q.messages
            counters["messages_ready"] = q.messages_ready
            counters["messages_unacknowledged"] = q.messages_unacknowledged
            out[("queue", q.vhost, q.name)] = counters
        for x in admin.exchanges():
            out[("exchange", x.vhost, x.name)] = dict(x.message_stats)
        for c in admin.connections():
            out[("connection", c.name)] = {"recv_oct": c.recv_oct, "send_oct": c.send_oct}
        for ch in admin.channels():
            out[("channel", ch.name)] = dict(ch.message_stats)
        for v in admin.vhosts():
            counters = dict(v.message_stats)
            counters.update(
                messages=v.messages,
                messages_ready=v.messages_ready,
                messages_unacknowledged=v.messages_unacknowledged,
                recv_oct=v.recv_oct,
                send_oct=v.send_oct,
            )
            out[("vhost", v.name)] = counters
        overview = admin.overview()
        totals = overview.totals
        counters = dict(overview.message_stats)
        counters.update(
            messages=totals.messages,
            messages_ready=totals.messages_ready,
            messages_unacknowledged=totals.messages_unacknowledged,
        )
        out[("overview",)] = counters
        return out
