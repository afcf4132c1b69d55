"""Runs one configured benchmark: topology, processes, sampling, clean-up.

The modes (throughput, backlog, idle) live in their own modules and get a
``RunContext`` with what they share.
"""

from __future__ import annotations

import asyncio
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from . import procstat, topology
from .config import PerfConfig
from .pool import Handle, WorkerPool
from .procstat import Mark, RssSampler
from .report import Report
from .topology import Topology
from .uri import parse_uri
from .worker import ERRORS, ConsumerPlan, IdlePlan, ProducerPlan, WorkerPlan

READY_TIMEOUT = 60.0
SATURATED_PCT = 90.0
SETTLE_WINDOW = 5.0


@dataclass(frozen=True)
class Marks:
    tool: Mark
    broker: Mark | None
    machine: float  # busy CPU seconds of the whole machine


class RunContext:
    def __init__(self, cfg: PerfConfig, report: Report) -> None:
        self.cfg = cfg
        self.report = report
        self.metrics = report.metrics
        self.topo = Topology.plan(cfg)
        self.pool = WorkerPool()
        self.sampler: RssSampler | None = None
        if cfg.broker_pid is not None:
            if not procstat.process_exists(cfg.broker_pid):
                raise ValueError(f"--broker-pid {cfg.broker_pid}: no such process")
            self.sampler = RssSampler(cfg.broker_pid)

    # -- workers -------------------------------------------------------------------

    def _plan(self, name: str, **kwargs: object) -> WorkerPlan:
        return WorkerPlan(
            name=name,
            uri=self.cfg.uri,
            connect_timeout=self.cfg.connect_timeout,
            finish_timeout=self.cfg.drain_timeout,
            **kwargs,  # type: ignore[arg-type]
        )

    def spawn_producers(self, limit: int | None = None) -> list[Handle]:
        cfg = self.cfg
        n = cfg.producers
        plans = []
        for i in range(n):
            share = None if limit is None else limit // n + (1 if i < limit % n else 0)
            plans.append(
                ProducerPlan(
                    targets=self.topo.producer_targets(i, n),
                    size=cfg.size,
                    persistent=cfg.persistent,
                    mandatory=cfg.mandatory,
                    confirm=cfg.confirm,
                    rate=None if cfg.rate is None else cfg.rate / n,
                    timestamps=cfg.timestamps,
                    limit=share,
                    uri=self.topo.uri_of(i),
                )
            )
        procs = cfg.processes_for(n, cfg.producer_processes)
        return [
            self.pool.spawn(self._plan(f"p{k}", producers=plans[k::procs])) for k in range(procs) if plans[k::procs]
        ]

    def spawn_consumers(self, consume_on_go: bool = False) -> list[Handle]:
        cfg = self.cfg
        n = cfg.consumers
        plans = [
            ConsumerPlan(
                queues=self.topo.consumer_queues(j, n),
                auto_ack=cfg.auto_ack,
                qos=cfg.qos,
                ack_every=cfg.ack_every,
                timestamps=cfg.timestamps,
                consume_on_go=consume_on_go,
                uri=self.topo.uri_of(j),
                arguments=dict(cfg.consumer_args),
            )
            for j in range(n)
        ]
        procs = cfg.processes_for(n, cfg.consumer_processes)
        return [
            self.pool.spawn(self._plan(f"c{k}", consumers=plans[k::procs])) for k in range(procs) if plans[k::procs]
        ]

    def spawn_idle(self, count: int) -> list[Handle]:
        cfg = self.cfg
        # About 2,500 connections per process, at most one process per core.
        procs = cfg.processes_for(math.ceil(count / 2500), None)
        handles = []
        for k in range(procs):
            share = count // procs + (1 if k < count % procs else 0)
            idle = IdlePlan(
                count=share,
                concurrency=max(1, cfg.connect_concurrency // procs),
                max_failures=max(1, cfg.max_failures // procs),
            )
            handles.append(self.pool.spawn(self._plan(f"i{k}", idle=idle)))
        return handles

    def wait_ready(self, handles: list[Handle], timeout: float = READY_TIMEOUT) -> None:
        self.pool.wait_for(handles, "ready", timeout)
        for h in handles:
            if h.ready and h.ready.get("broker") and not self.report.broker:
                self.report.broker = str(h.ready["broker"])

    def wait_until(self, predicate: Callable[[], bool], timeout: float, poll: float = 0.02) -> bool:
        """Wait for a condition on the counters; worker failures raise meanwhile."""
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.pool.poll(min(poll, remaining))
        return True

    # -- measurement ---------------------------------------------------------------

    def tool_pids(self) -> list[int]:
        return [os.getpid(), *self.pool.pids()]

    def marks(self) -> Marks:
        pid = self.cfg.broker_pid
        return Marks(
            tool=procstat.mark(self.tool_pids()),
            broker=procstat.mark(procstat.process_tree(pid)) if pid is not None else None,
            machine=procstat.machine_busy_seconds(),
        )

    def record_cpu(self, before: Marks, after: Marks, prefix: str = "") -> None:
        m = self.metrics
        elapsed = after.tool.at - before.tool.at
        tool = before.tool.cpu_percent_until(after.tool)
        m[f"{prefix}tool_cpu_pct"] = round(tool, 1)
        busiest = round(before.tool.busiest_percent_until(after.tool), 1)
        m[f"{prefix}tool_busiest_cpu_pct"] = busiest
        if busiest >= SATURATED_PCT and elapsed >= 1.0:
            phase = f" ({prefix.rstrip('_')})" if prefix else ""
            self.report.notes.append(
                f"a warren-perf process used {busiest:.0f}% of a core{phase}: the tool may be the bottleneck;"
                " spread the load over more connections and processes"
            )
        broker = 0.0
        if before.broker is not None and after.broker is not None:
            broker = before.broker.cpu_percent_until(after.broker)
            m[f"{prefix}broker_cpu_pct"] = round(broker, 1)
        if elapsed > 0:
            machine = 100.0 * (after.machine - before.machine) / elapsed
            m[f"{prefix}machine_cpu_pct"] = round(machine, 1)
            if before.broker is not None:
                # Kernel networking (softirq) plus anything else running: others' load shows here.
                m[f"{prefix}other_cpu_pct"] = round(max(0.0, machine - tool - broker), 1)

    def broker_rss(self) -> int | None:
        return self.sampler.now() if self.sampler is not None else None

    def settled_broker_rss(self, min_wait: float = 0.0) -> int | None:
        """Broker RSS once it stops moving (garbage from earlier work freed).

        Stable = within 0.3% (or 512 KiB) over five seconds; gives up after
        cfg.settle_timeout, notes that in the report, and returns the last
        reading.  Worker failures still
        raise meanwhile, since the pool is the clock.
        """
        start = time.monotonic()
        timeout = self.cfg.settle_timeout
        if self.sampler is None:
            self.wait_until(lambda: False, min_wait)
            return None
        window: list[tuple[float, int]] = []
        while True:
            rss = self.sampler.now()
            now = time.monotonic()
            if rss is None:
                return None
            window = [(at, v) for at, v in window if now - at <= SETTLE_WINDOW] + [(now, rss)]
            values = [v for _, v in window]
            full = now - window[0][0] >= SETTLE_WINDOW * 0.95
            stable = full and max(values) - min(values) <= max(rss * 0.003, 512 * 1024)
            if now - start >= min_wait and stable:
                return rss
            if now - start >= min_wait + timeout:
                self.report.notes.append(
                    f"broker RSS had not settled after {timeout:g}s (moved {(max(values) - min(values)) >> 10} KiB"
                    f" in {SETTLE_WINDOW:g}s): memory figures are rough"
                )
                return rss
            self.pool.poll(0.1)

    def collect_errors(self) -> None:
        for h in self.pool.handles:
            if h.done:
                self.report.errors.extend(str(e) for e in h.done.get("errors", []))
        if not self.report.errors and self.pool.totals()[ERRORS]:
            self.report.errors.append(f"{self.pool.totals()[ERRORS]} connection errors in workers")

    def progress(self, text: str) -> None:
        if self.cfg.progress:
            print(text, file=sys.stderr, flush=True)


def execute(cfg: PerfConfig, command: str = "") -> Report:
    """Run the configured benchmark and return its report."""
    report = Report(
        mode=cfg.mode,
        scenario=cfg.scenario,
        broker="",
        uri=", ".join(parse_uri(u).redacted() for u in cfg.broker_uris),
        command=command,
        config=cfg.to_dict(),
    )
    ctx = RunContext(cfg, report)
    needs_queues = cfg.mode != "idle"
    declared = False
    if ctx.sampler is not None:
        ctx.sampler.start()
    try:
        if needs_queues:
            report.broker = asyncio.run(topology.declare(ctx.topo))
            declared = True
        if cfg.mode == "idle":
            from .idle import run_idle

            run_idle(ctx)
        elif cfg.mode == "backlog":
            from .backlog import run_backlog

            run_backlog(ctx)
        else:
            from .throughput import run_throughput

            run_throughput(ctx)
        ctx.metrics["tool_processes"] = len(ctx.pool.handles) + 1
    except Exception as e:
        report.errors.append(f"{type(e).__name__}: {e}")
    finally:
        ctx.pool.shutdown()
        if declared:
            try:
                asyncio.run(topology.delete(ctx.topo))
            except Exception as e:
                report.errors.append(f"clean-up failed: {type(e).__name__}: {e}")
        if ctx.sampler is not None:
            ctx.sampler.stop()
            ctx.metrics["broker_rss_peak_bytes"] = ctx.sampler.peak()
    ctx.collect_errors()
    return report
