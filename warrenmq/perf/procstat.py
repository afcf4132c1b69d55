"""CPU and memory of processes, read straight from /proc (no psutil)."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (all its threads), or None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    # The command name may contain spaces and parens: split after the last ')'.
    fields = raw[raw.rindex(b")") + 2 :].split()
    # utime and stime are fields 14 and 15 of stat(5); here 0-based from field 3.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_bytes(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * PAGE_SIZE
    except OSError:
        return None


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (a broker may run worker processes)."""
    tree = [pid]
    i = 0
    while i < len(tree):
        try:
            tasks = os.listdir(f"/proc/{tree[i]}/task")
        except OSError:
            tasks = []
        for tid in tasks:
            try:
                with open(f"/proc/{tree[i]}/task/{tid}/children", "rb") as f:
                    tree.extend(int(child) for child in f.read().split())
            except OSError:
                continue
        i += 1
    return tree


def tree_rss_bytes(pid: int) -> int | None:
    """RSS summed over a process tree (shared pages count once per process)."""
    values = [rss for rss in (rss_bytes(p) for p in process_tree(pid)) if rss is not None]
    return sum(values) if values else None


def total_cpu_seconds(pids: list[int]) -> float:
    return sum(cpu for cpu in (cpu_seconds(p) for p in pids) if cpu is not None)


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle (user, system, irq, softirq, steal)."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def fd_usage(pid: int) -> tuple[int, int] | None:
    """(open file descriptors, soft RLIMIT_NOFILE) of a process, or None if unreadable."""
    try:
        used = len(os.listdir(f"/proc/{pid}/fd"))
        with open(f"/proc/{pid}/limits") as f:
            for line in f:
                if line.startswith("Max open files"):
                    soft = line.split()[3]
                    return used, (1 << 31) if soft == "unlimited" else int(soft)
    except OSError:
        return None
    return None


def process_exists(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}/stat")


@dataclass(frozen=True)
class Mark:
    """A point in time with the CPU seconds of the processes watched."""

    at: float
    per_pid: dict[int, float]

    @property
    def cpu(self) -> float:
        return sum(self.per_pid.values())

    def cpu_percent_until(self, later: Mark) -> float:
        """Average CPU in % of one core (top's convention) between two marks."""
        elapsed = later.at - self.at
        return 100.0 * (later.cpu - self.cpu) / elapsed if elapsed > 0 else 0.0

    def busiest_percent_until(self, later: Mark) -> float:
        """CPU % of the busiest single process: ~100 means it was saturated."""
        elapsed = later.at - self.at
        if elapsed <= 0:
            return 0.0
        used = [cpu - self.per_pid.get(pid, 0.0) for pid, cpu in later.per_pid.items()]
        return 100.0 * max(used, default=0.0) / elapsed


def mark(pids: list[int]) -> Mark:
    per_pid = {pid: cpu for pid in pids if (cpu := cpu_seconds(pid)) is not None}
    return Mark(time.monotonic(), per_pid)


class RssSampler:
    """Samples a process tree's RSS in a background thread to find its peak."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid = pid
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def start(self) -> RssSampler:
        self._sample()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sample()

    def _sample(self) -> int | None:
        rss = tree_rss_bytes(self.pid)
        if rss is not None:
            with self._lock:
                self.samples.append((time.monotonic(), rss))
        return rss

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def now(self) -> int | None:
        """Sample right now (and record it)."""
        return self._sample()

    def peak(self, since: float = 0.0, until: float = float("inf")) -> int | None:
        with self._lock:
            values = [rss for at, rss in self.samples if since <= at <= until]
        return max(values) if values else None


def listening_pid(port: int) -> int | None:
    """The process listening on a local TCP port, found through /proc.

    Matches the listening socket's inode (from /proc/net/tcp{,6}) against
    every process's open file descriptors; needs permission to read them.
    """
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f, None)
                for line in f:
                    fields = line.split()
                    local, state, inode = fields[1], fields[3], fields[9]
                    if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                        inodes.add(f"socket:[{inode}]")
        except OSError:
            continue
    if not inodes:
        return None
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{entry}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{entry}/fd/{fd}") in inodes:
                    return int(entry)
            except OSError:
                continue
    return None
