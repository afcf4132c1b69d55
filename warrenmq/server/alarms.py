"""Resource alarms: memory high watermark and free-disk low limit, as RabbitMQ has them.

A timer samples the process's resident memory and the data directory's free disk space
(and the node samples memory again after every sixteenth of the watermark of input).  When
either crosses its threshold the node raises an alarm: connections are blocked at their next
publish (blocking.py; connection.blocked sent to clients that support it, their sockets no
longer read) while consumers keep draining; when every alarm clears they are unblocked.
Nothing is dropped: blocked publishers simply wait, without being held to their heartbeats.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger("warrenmq.alarms")

CHECK_INTERVAL = 1.0  # seconds, RabbitMQ's memory monitor default is 0.5-2.5 s


class Timers(Protocol):
    def call_later(self, delay: float, callback: Callable[[], None]) -> object: ...


def resident_memory() -> int:
    """RSS of this process in bytes (Linux /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def free_disk(path: str) -> int:
    try:
        st = os.statvfs(path)
    except OSError:
        return -1
    return st.f_bavail * st.f_frsize


class ResourceMonitor:
    def __init__(
        self,
        timers: Timers,
        set_alarm: Callable[[str, bool], None],
        memory_limit: int,
        disk_path: str | None,
        disk_limit: int,
    ) -> None:
        self.timers = timers
        self.set_alarm = set_alarm
        self.memory_limit = memory_limit
        self.disk_path = disk_path
        self.disk_limit = disk_limit
        self.memory = 0
        self.disk_free = -1
        self._memory_alarm = False
        self._disk_alarm = False
        self._running = False

    def start(self) -> None:
        self._running = True
        self.check()

    def stop(self) -> None:
        self._running = False

    def check(self) -> None:
        if not self._running:
            return
        self.sample()
        self.timers.call_later(CHECK_INTERVAL, self.check)

    def sample(self) -> None:
        """Read the figures now (also called between timer ticks when much data arrived)."""
        self.memory = resident_memory()
        memory_alarm = self.memory_limit > 0 and self.memory > self.memory_limit
        if memory_alarm != self._memory_alarm:
            self._memory_alarm = memory_alarm
            log.warning(
                "memory resource limit alarm %s on node; usage %d bytes, limit %d bytes",
                "set" if memory_alarm else "cleared",
                self.memory,
                self.memory_limit,
            )
            self.set_alarm("memory", memory_alarm)
        if self.disk_path is not None and self.disk_limit > 0:
            self.disk_free = free_disk(self.disk_path)
            disk_alarm = 0 <= self.disk_free < self.disk_limit
            if disk_alarm != self._disk_alarm:
                self._disk_alarm = disk_alarm
                log.warning(
                    "free disk space alarm %s; %d bytes free, limit %d bytes",
                    "set" if disk_alarm else "cleared",
                    self.disk_free,
                    self.disk_limit,
                )
                self.set_alarm("disk", disk_alarm)
