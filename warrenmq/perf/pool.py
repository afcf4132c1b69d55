"""Starting worker processes and talking to them from the parent."""

from __future__ import annotations

import multiprocessing
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from .worker import SLOTS, WorkerPlan, worker_main

# "spawn": workers start from a clean interpreter, never from a forked copy
# of the parent's event loop (uvloop and fork do not mix).
_CTX = multiprocessing.get_context("spawn")


class WorkerError(RuntimeError):
    """A worker failed or died."""


@dataclass
class Handle:
    plan: WorkerPlan
    process: BaseProcess
    pipe: Connection
    counters: Any
    ready: dict[str, Any] | None = None
    done: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.plan.name


class WorkerPool:
    def __init__(self) -> None:
        self.handles: list[Handle] = []

    def spawn(self, plan: WorkerPlan) -> Handle:
        parent_end, child_end = _CTX.Pipe()
        counters = _CTX.RawArray("q", SLOTS)
        process = _CTX.Process(
            target=worker_main,
            args=(plan, child_end, counters),
            name=f"warren-perf-{plan.name}",
            daemon=True,
        )
        process.start()
        child_end.close()
        handle = Handle(plan, process, parent_end, counters)
        self.handles.append(handle)
        return handle

    def pids(self, handles: list[Handle] | None = None) -> list[int]:
        return [h.process.pid for h in (handles or self.handles) if h.process.pid is not None]

    def send(self, handles: list[Handle], command: str) -> None:
        for h in handles:
            h.pipe.send(command)

    def totals(self, handles: list[Handle] | None = None) -> list[int]:
        sums = [0] * SLOTS
        for h in self.handles if handles is None else handles:
            for i in range(SLOTS):
                sums[i] += h.counters[i]
        return sums

    def poll(self, timeout: float) -> None:
        """Handle messages for up to ``timeout`` seconds; raise on worker failure.

        Doubles as the parent's clock: it returns early only when a message
        arrives, so callers loop on it until their deadline.
        """
        live = {h.pipe: h for h in self.handles if h.done is None}
        if not live:
            time.sleep(max(0.0, timeout))
            return
        for pipe in wait(list(live), timeout=max(0.0, timeout)):
            assert isinstance(pipe, Connection)
            self._receive(live[pipe])

    def _receive(self, h: Handle) -> None:
        try:
            kind, payload = h.pipe.recv()
        except (EOFError, OSError):
            h.process.join(timeout=1)
            raise WorkerError(f"worker {h.name} died (exit code {h.process.exitcode})") from None
        if kind == "error":
            raise WorkerError(str(payload))
        if kind == "ready":
            h.ready = payload
        elif kind == "done":
            h.done = payload

    def wait_for(self, handles: list[Handle], state: str, timeout: float) -> None:
        """Wait until every handle reached ``state`` ("ready" or "done")."""
        deadline = time.monotonic() + timeout
        while any(getattr(h, state) is None for h in handles):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                late = [h.name for h in handles if getattr(h, state) is None]
                raise WorkerError(f"timed out waiting for {', '.join(late)} to be {state}")
            self.poll(remaining)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Reap our workers; terminate (by our own handles) any that hang."""
        deadline = time.monotonic() + timeout
        for h in self.handles:
            if h.process.is_alive() and h.done is None:
                try:
                    h.pipe.send("stop")
                except OSError:
                    pass
        for h in self.handles:
            h.process.join(timeout=max(0.0, deadline - time.monotonic()))
            if h.process.is_alive():
                h.process.terminate()
                h.process.join(timeout=5)
            h.pipe.close()
