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
    # Queue i lives on uris[i % k]; its producers and consumers connect there.
    uris: tuple[str, ...] = ("",)
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
        arguments = dict(cfg.queue_args)
        if cfg.quorum:
            arguments.setdefault("x-queue-type", "quorum")
        # Streams and quorum queues exist only durable.
        durable = cfg.persistent or arguments.get("x-queue-type") in ("stream", "quorum")
        return cls(queues, exchange, durable, tuple(cfg.broker_uris), tuple(arguments.items()))

    @property
    def deliveries_per_message(self) -> int:
        """How many queues each published message lands in."""
        return len(self.queues) if self.exchange else 1

    def uri_of(self, worker: int) -> str:
        """Worker ``index`` (producer or consumer) connects to this broker."""
        return self.uris[worker % len(self.uris)]

    def producer_targets(self, index: int, producers: int) -> list[PublishTarget]:
        if self.exchange:
            return [PublishTarget(self.exchange, "")]
        return [PublishTarget("", q) for q in self._worker_queues(index, producers)]

    def consumer_queues(self, index: int, consumers: int) -> list[str]:
        return self._worker_queues(index, consumers)

    def _worker_queues(self, index: int, workers: int) -> list[str]:
        # Worker i serves broker i % k, sharing that broker's queues (i % k) with the other
        # workers of the same broker; one broker is the case k = 1.
        k = len(self.uris)
        home = index % k
        return _share(self.queues[home::k], index // k, len(range(home, workers, k)))

    def by_broker(self) -> list[tuple[str, tuple[str, ...]]]:
        """Each broker with the queues that live on it."""
        k = len(self.uris)
        return [(uri, self.queues[i::k]) for i, uri in enumerate(self.uris) if self.queues[i::k]]


def _share(queues: tuple[str, ...], index: int, workers: int) -> list[str]:
    """Queues for worker ``index``: round-robin, and every queue gets a worker."""
    if len(queues) >= workers:
        return [q for i, q in enumerate(queues) if i % workers == index]
    return [queues[index % len(queues)]]


async def _admin(uri: str) -> AmqpConnection:
    conn = await connect(parse_uri(uri), name="warren-perf admin")
    await ops.channel_open(conn, ADMIN_CHANNEL)
    return conn


async def declare(topo: Topology) -> str:
    """Declare (and purge) the run's queues, each on its broker; returns the first broker's name and version."""
    description = ""
    for uri, queues in topo.by_broker():
        conn = await _admin(uri)
        try:
            if topo.exchange:
                await ops.exchange_declare(conn, ADMIN_CHANNEL, topo.exchange, "fanout", durable=topo.durable)
            arguments = dict(topo.arguments) or None
            for q in queues:
                await ops.queue_declare(conn, ADMIN_CHANNEL, q, durable=topo.durable, arguments=arguments)
                if not topo.is_stream:  # a stream refuses purges (and a new one is empty)
                    await ops.queue_purge(conn, ADMIN_CHANNEL, q)
                if topo.exchange:
                    await ops.queue_bind(conn, ADMIN_CHANNEL, q, topo.exchange)
            description = description or broker_description(conn.server_properties)
        finally:
            await conn.close()
    return description


async def delete(topo: Topology) -> None:
    for uri, queues in topo.by_broker():
        conn = await _admin(uri)
        try:
            for q in queues:
                await ops.queue_delete(conn, ADMIN_CHANNEL, q)
            if topo.exchange:
                await ops.exchange_delete(conn, ADMIN_CHANNEL, topo.exchange)
        finally:
            await conn.close()


async def depth(conn: AmqpConnection, queues: tuple[str, ...]) -> int:
    """Messages ready in these queues (passive declares)."""
    total = 0
    for q in queues:
        _, messages, _ = await ops.queue_declare(conn, ADMIN_CHANNEL, q, passive=True)
        total += messages
    return total


async def wait_for_depth(topo: Topology, target: int, timeout: float, poll: float = 0.05) -> int:
    """Poll the depth of all the run's queues until it reaches ``target``; returns the last total seen."""
    conns = [(await _admin(uri), queues) for uri, queues in topo.by_broker()]
    try:

        async def total() -> int:
            return sum([await depth(conn, queues) for conn, queues in conns])

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        seen = await total()
        while seen < target and loop.time() < deadline:
            await asyncio.sleep(poll)
            seen = await total()
        return seen
    finally:
        for conn, _ in conns:
            await conn.close()
