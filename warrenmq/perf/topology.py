"""Queues and exchanges of one run: names, who uses what, declare and delete."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from typing import Any

from . import operations as ops
from .config import PerfConfig
from .connection import AmqpConnection, broker_description, connect
from .publisher import PublishTarget
from .uri import parse_uri

ADMIN_CHANNEL = 1


@dataclass(frozen=True)
class Topology:
    queues: tuple[str, ...]
    exchange: str  # "" = the default exchange, routing key = queue name
    durable: bool
    arguments: tuple[tuple[str, Any], ...] = ()  # queue arguments (x-queue-type...)

    @property
    def is_stream(self) -> bool:
        return dict(self.arguments).get("x-queue-type") == "stream"

    @classmethod
    def plan(cls, cfg: PerfConfig, run_id: str | None = None) -> Topology:
        # A random run id keeps concurrent runs (and other users) apart.
        run_id = run_id or secrets.token_hex(4)
        base = f"{cfg.queue_prefix}{run_id}"
        queues = tuple(f"{base}-q{i}" for i in range(cfg.queue_count))
        exchange = f"{base}-fanout" if cfg.fanout else ""
        # Streams and quorum queues exist only durable.
        durable = cfg.persistent or cfg.queue_type in ("stream", "quorum")
        return cls(queues, exchange, durable, tuple(cfg.queue_args.items()))

    @property
    def deliveries_per_message(self) -> int:
        """How many queues each published message lands in."""
        return len(self.queues) if self.exchange else 1

    def producer_targets(self, index: int, producers: int) -> list[PublishTarget]:
        if self.exchange:
            return [PublishTarget(self.exchange, "")]
        return [PublishTarget("", q) for q in _share(self.queues, index, producers)]

    def consumer_queues(self, index: int, consumers: int) -> list[str]:
        return _share(self.queues, index, consumers)


def _share(queues: tuple[str, ...], index: int, workers: int) -> list[str]:
    """Queues for worker ``index``: round-robin, and every queue gets a worker."""
    if len(queues) >= workers:
        return [q for i, q in enumerate(queues) if i % workers == index]
    return [queues[index % len(queues)]]


async def _admin(uri: str) -> AmqpConnection:
    conn = await connect(parse_uri(uri), name="warren-perf admin")
    await ops.channel_open(conn, ADMIN_CHANNEL)
    return conn


async def declare(uri: str, topo: Topology) -> str:
    """Declare (and purge) the run's queues; returns the broker's name and version."""
    conn = await _admin(uri)
    try:
        if topo.exchange:
            await ops.exchange_declare(conn, ADMIN_CHANNEL, topo.exchange, "fanout", durable=topo.durable)
        arguments = dict(topo.arguments) or None
        for q in topo.queues:
            await ops.queue_declare(conn, ADMIN_CHANNEL, q, durable=topo.durable, arguments=arguments)
            if not topo.is_stream:  # a stream refuses purges (and a new one is empty)
                await ops.queue_purge(conn, ADMIN_CHANNEL, q)
            if topo.exchange:
                await ops.queue_bind(conn, ADMIN_CHANNEL, q, topo.exchange)
        return broker_description(conn.server_properties)
    finally:
        await conn.close()


async def delete(uri: str, topo: Topology) -> None:
    conn = await _admin(uri)
    try:
        for q in topo.queues:
            await ops.queue_delete(conn, ADMIN_CHANNEL, q)
        if topo.exchange:
            await ops.exchange_delete(conn, ADMIN_CHANNEL, topo.exchange)
    finally:
        await conn.close()


async def depth(conn: AmqpConnection, topo: Topology) -> int:
    """Messages ready in all the run's queues (passive declares)."""
    total = 0
    for q in topo.queues:
        _, messages, _ = await ops.queue_declare(conn, ADMIN_CHANNEL, q, passive=True)
        total += messages
    return total


async def wait_for_depth(uri: str, topo: Topology, target: int, timeout: float, poll: float = 0.05) -> int:
    """Poll queue depth until it reaches ``target``; returns the last depth seen."""
    conn = await _admin(uri)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        seen = await depth(conn, topo)
        while seen < target and loop.time() < deadline:
            await asyncio.sleep(poll)
            seen = await depth(conn, topo)
        return seen
    finally:
        await conn.close()
