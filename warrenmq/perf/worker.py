"""A worker OS process: some producers, consumers or idle connections.

The parent talks to it over a pipe: the worker says ``ready``, the parent
says ``go`` and later ``stop``, the worker answers ``done`` with what cannot
go through shared counters (latency samples, error texts).  Running totals
go through a shared array of int64 the parent can read at any time.
"""

from __future__ import annotations

import asyncio
import os
import resource
import time
from array import array
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from . import operations as ops
from .connection import (
    ACK_EACH,
    ACK_MULTIPLE,
    ACK_NONE,
    AmqpConnection,
    broker_description,
    connect,
)
from .publisher import Publisher, PublishTarget
from .uri import parse_uri

# Slots of the shared counter array.
PUBLISHED, CONFIRMED, NACKED, CONSUMED, RETURNED, ERRORS, OPENED, FAILED, BLOCKED = range(9)
SLOTS = 9
FLUSH_INTERVAL = 0.02  # counters are at most this stale for the parent
CHANNEL = 1


@dataclass(frozen=True)
class ProducerPlan:
    targets: list[PublishTarget]
    size: int
    persistent: bool = False
    mandatory: bool = False
    confirm: int | None = None
    rate: float | None = None
    timestamps: bool = False
    limit: int | None = None
    uri: str = ""  # its broker when there are several ("" = the worker's)


@dataclass(frozen=True)
class ConsumerPlan:
    queues: list[str]
    auto_ack: bool = True
    qos: int = 0
    ack_every: int = 1
    timestamps: bool = False
    consume_on_go: bool = False  # backlog: stay idle until told to drain
    uri: str = ""  # its broker when there are several ("" = the worker's)
    arguments: dict[str, Any] = field(default_factory=dict)  # e.g. x-stream-offset


@dataclass(frozen=True)
class IdlePlan:
    count: int
    concurrency: int
    max_failures: int


@dataclass(frozen=True)
class WorkerPlan:
    name: str
    uri: str
    producers: list[ProducerPlan] = field(default_factory=list)
    consumers: list[ConsumerPlan] = field(default_factory=list)
    idle: IdlePlan | None = None
    connect_timeout: float = 10.0
    finish_timeout: float = 30.0  # waiting for confirms at the end


def worker_main(plan: WorkerPlan, pipe: Connection, counters: Any) -> None:
    """Process entry point (must stay importable for the spawn start method)."""
    use_uvloop()
    try:
        asyncio.run(Worker(plan, pipe, counters).run())
    except BaseException as e:
        try:
            pipe.send(("error", f"{plan.name}: {type(e).__name__}: {e}"))
        except OSError:
            pass
        raise SystemExit(1) from None


def use_uvloop() -> bool:
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def raise_nofile_limit(wanted: int) -> int:
    """Raise RLIMIT_NOFILE towards ``wanted``; returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return soft
    try:
        new_hard = hard if hard == resource.RLIM_INFINITY or hard >= wanted else wanted
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, new_hard))
    except (ValueError, OSError):
        # Not allowed to raise the hard limit (not root): go as far as we may.
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Worker:
    def __init__(self, plan: WorkerPlan, pipe: Connection, counters: Any) -> None:
        self.plan = plan
        self.pipe = pipe
        self.counters = counters
        self.uri = parse_uri(plan.uri)
        self.commands: asyncio.Queue[str] = asyncio.Queue()
        self.publishers: list[Publisher] = []
        self.consumer_conns: list[tuple[AmqpConnection, ConsumerPlan]] = []
        self.conns: list[AmqpConnection] = []
        self.errors: list[str] = []
        self._seen_errors: set[int] = set()
        self.closing = False
        self.opened = 0
        self.failed = 0
        self.skipped = 0
        self.failures: list[str] = []
        self.last_open_at = 0.0

    # -- plumbing --------------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_reader(self.pipe.fileno(), self._on_pipe)
        flusher = loop.create_task(self._flush_forever())
        try:
            if self.plan.idle is not None:
                await self._run_idle(self.plan.idle)
            else:
                await self._run_clients()
        finally:
            flusher.cancel()
            loop.remove_reader(self.pipe.fileno())
            self.flush()

    def _on_pipe(self) -> None:
        try:
            command = self.pipe.recv()
        except (EOFError, OSError):
            # The parent is gone: stop rather than run forever.
            asyncio.get_running_loop().remove_reader(self.pipe.fileno())
            command = "stop"
        self.commands.put_nowait(command)

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            self.flush()

    def flush(self) -> None:
        c = self.counters
        c[PUBLISHED] = sum(p.published for p in self.publishers)
        c[CONFIRMED] = sum(p.confirms.confirmed for p in self.publishers if p.confirms)
        c[NACKED] = sum(p.confirms.nacked for p in self.publishers if p.confirms)
        c[CONSUMED] = sum(conn.delivered for conn, _ in self.consumer_conns)
        c[RETURNED] = sum(conn.returned for conn in self.conns)
        c[BLOCKED] = sum(conn.blocked_count for conn in self.conns)
        c[OPENED] = self.opened
        c[FAILED] = self.failed
        # Idle mode holds thousands of connections: it checks them once, at the end.
        if not self.closing and self.plan.idle is None:
            for conn in self.conns:
                if conn.error is not None and id(conn) not in self._seen_errors:
                    self._seen_errors.add(id(conn))
                    self.errors.append(f"{conn.name}: {conn.error}")
                for text in conn.channel_errors:
                    self.errors.append(f"{conn.name}: channel closed: {text}")
                conn.channel_errors.clear()
        c[ERRORS] = len(self.errors)

    async def _command(self) -> str:
        return await self.commands.get()

    def _send(self, kind: str, payload: dict[str, Any]) -> None:
        # The event loop watches the pipe for commands, which leaves its descriptor
        # non-blocking: a large send (the final latency samples) then failed with EAGAIN.
        os.set_blocking(self.pipe.fileno(), True)
        self.pipe.send((kind, payload))

    async def _connect(self, role: str, index: int, uri: str = "") -> AmqpConnection:
        name = f"warren-perf {role} {self.plan.name}.{index}"
        conn = await connect(parse_uri(uri) if uri else self.uri, name=name, timeout=self.plan.connect_timeout)
        try:
            await asyncio.wait_for(ops.channel_open(conn, CHANNEL), self.plan.connect_timeout)
        except BaseException:
            conn.abort()
            raise
        self.conns.append(conn)
        return conn

    # -- producers and consumers -------------------------------------------------

    async def _run_clients(self) -> None:
        broker = ""
        for i, pp in enumerate(self.plan.producers):
            conn = await self._connect("producer", i, pp.uri)
            broker = broker_description(conn.server_properties)
            pub = Publisher(
                conn,
                CHANNEL,
                pp.targets,
                pp.size,
                persistent=pp.persistent,
                mandatory=pp.mandatory,
                confirm_window=pp.confirm,
                rate=pp.rate,
                timestamps=pp.timestamps,
                limit=pp.limit,
            )
            await pub.setup()
            self.publishers.append(pub)
        for i, cp in enumerate(self.plan.consumers):
            conn = await self._connect("consumer", i, cp.uri)
            broker = broker_description(conn.server_properties)
            mode = ACK_NONE if cp.auto_ack else ACK_MULTIPLE if cp.ack_every > 1 else ACK_EACH
            conn.enable_consumer(ack_mode=mode, ack_every=cp.ack_every, measure_latency=cp.timestamps)
            if not cp.auto_ack and cp.qos:
                await ops.basic_qos(conn, CHANNEL, cp.qos)
            self.consumer_conns.append((conn, cp))
            if not cp.consume_on_go:
                await self._consume(conn, cp, i)
        self._send("ready", {"broker": broker})

        if await self._command() != "go":
            await self._shutdown([])
            return
        for i, (conn, cp) in enumerate(self.consumer_conns):
            if cp.consume_on_go:
                await self._consume(conn, cp, i)
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(p.run()) for p in self.publishers]
        stop = loop.create_task(self._command())
        pending: set[asyncio.Future[Any]] = {stop, *tasks}
        while not stop.done():
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                if t is not stop and t.exception() is not None:
                    self.errors.append(f"publisher: {t.exception()}")
        await self._shutdown(tasks)

    async def _consume(self, conn: AmqpConnection, cp: ConsumerPlan, index: int) -> None:
        for q in cp.queues:
            tag = f"warren-perf-{self.plan.name}-{index}-{q}"
            await ops.basic_consume(conn, CHANNEL, q, tag, no_ack=cp.auto_ack, arguments=cp.arguments or None)

    async def _shutdown(self, tasks: list[asyncio.Task[None]]) -> None:
        for pub in self.publishers:
            pub.stop()
        if tasks:
            await asyncio.wait(tasks, timeout=self.plan.finish_timeout)
        for pub in self.publishers:
            if pub.conn.error is None:
                try:
                    await pub.finish(self.plan.finish_timeout)
                except (TimeoutError, Exception) as e:
                    self.errors.append(f"confirms: {e}")
        self.flush()  # final figures before closing changes anything
        self.closing = True
        await asyncio.gather(*(conn.close() for conn in self.conns), return_exceptions=True)
        latencies = array("q")
        dropped = 0
        for conn, _ in self.consumer_conns:
            latencies.extend(conn.latencies)
            dropped += conn.latency_dropped
        self._send(
            "done",
            {
                "latencies": latencies.tobytes(),
                "latency_dropped": dropped,
                "errors": self.errors[:20],
            },
        )

    # -- idle connections ------------------------------------------------------------

    async def _run_idle(self, idle: IdlePlan) -> None:
        nofile = raise_nofile_limit(idle.count + 64)
        sem = asyncio.Semaphore(idle.concurrency)
        loop = asyncio.get_running_loop()
        started = loop.time()

        async def open_one(i: int) -> None:
            async with sem:
                if self.failed >= idle.max_failures:
                    self.skipped += 1
                    return
                try:
                    await self._connect("idle", i)
                    self.opened += 1
                    self.last_open_at = time.monotonic()
                except Exception as e:  # a failure is this mode's measurement
                    self.failed += 1
                    if len(self.failures) < 5:
                        self.failures.append(f"connection {i}: {type(e).__name__}: {e}")

        await asyncio.gather(*(open_one(i) for i in range(idle.count)))
        seconds = loop.time() - started
        broker = broker_description(self.conns[0].server_properties) if self.conns else ""
        self._send(
            "ready",
            {
                "opened": self.opened,
                "failed": self.failed,
                "skipped": self.skipped,
                "seconds": seconds,
                "last_open_at": self.last_open_at,
                "nofile": nofile,
                "broker": broker,
            },
        )
        await self._command()  # hold until told to stop, whatever it says
        lost = sum(1 for conn in self.conns if conn.error is not None)
        self.closing = True
        close_sem = asyncio.Semaphore(max(idle.concurrency, 200))

        async def close_one(conn: AmqpConnection) -> None:
            async with close_sem:
                await conn.close(timeout=2.0)

        await asyncio.gather(*(close_one(conn) for conn in self.conns), return_exceptions=True)
        self._send("done", {"lost": lost, "failures": self.failures, "errors": self.errors[:20]})
