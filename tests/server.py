"""Run a real ``warren-server`` process on a free port for tests.

The server is started as a subprocess (as users start it) and the test talks to it over
real sockets.  Startup is awaited by reading its log for the port it chose, never by sleeping.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

_READY = re.compile(r"Server startup complete; AMQP port (\d+)")
_MGMT = re.compile(r"management API listening on .*:(\d+)")


def free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports (all held open while choosing, so no repeats)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_stopped(pid: int, stopped: bool = True, timeout: float = 5.0) -> None:
    """Until every thread of ``pid`` is stopped (state T), or none is: a signal is delivered
    asynchronously, and a process still answering just after SIGSTOP would fool a test."""
    deadline = time.monotonic() + timeout
    while True:
        states = []
        for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
            try:
                states.append(stat.read_text().rsplit(")", 1)[1].split()[0])
            except (OSError, IndexError):
                continue  # a thread that just ended
        if states and all((state in "Tt") == stopped for state in states):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"process {pid} not {'stopped' if stopped else 'running'} after {timeout}s: {states}")
        time.sleep(0.005)


class ServerProcess:
    def __init__(
        self, data_dir: Path | None = None, *args: str, env: dict[str, str] | None = None, module: str = ""
    ) -> None:
        self.data_dir = data_dir
        self.args = list(args)
        self.env = env
        self.module = module or "warrenmq.server.main"  # tests.plain_frames_server: the plain splitter
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0
        self.management_port = 0
        # Ports asked for on the command line; 0 = let the server pick.  restart() pins them.
        self.requested_port = 0
        self.requested_management_port = 0
        self.lines: list[str] = []
        self.earlier_lines: list[str] = []  # the logs of previous runs (restarts)
        self._ready = threading.Event()
        self._reader: threading.Thread | None = None

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", self.module, "--port", str(self.requested_port), "--log-level", "info"]
        if self.data_dir is None:
            cmd.append("--no-persistence")
        else:
            cmd += ["--data-dir", str(self.data_dir)]
        if "--management-port" not in self.args:
            cmd += ["--management-port", str(self.requested_management_port)]
        return cmd + self.args

    def start(self, timeout: float = 20.0) -> ServerProcess:
        self.launch()
        return self.wait_started(timeout)

    def launch(self) -> None:
        """Start the process without waiting (several servers can then start at once)."""
        env = dict(os.environ)
        env.update(self.env or {})
        self.earlier_lines += self.lines
        self.lines = []
        self.port = 0
        self._ready.clear()
        self.proc = subprocess.Popen(
            self.command(), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def wait_started(self, timeout: float = 20.0) -> ServerProcess:
        """Wait for the startup log line; a server that exits or hangs first is an error."""
        if not self._ready.wait(timeout) or not self.port:
            self.kill()
            raise RuntimeError("warren-server did not start:\n" + "".join(self.lines[-40:]))
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            found = _MGMT.search(line)
            if found:
                self.management_port = int(found.group(1))
            found = _READY.search(line)
            if found:
                self.port = int(found.group(1))
                self._ready.set()
        self._ready.set()

    @property
    def log(self) -> str:
        return "".join(self.lines)

    @property
    def full_log(self) -> str:
        """The log of every run of this server, restarts included."""
        return "".join(self.earlier_lines + self.lines)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_for_log(self, pattern: str, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while time.monotonic() < deadline:
            if any(regex.search(line) for line in list(self.lines)):
                return True
            time.sleep(0.02)
        return False

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait: a clean shutdown."""
        self.terminate()
        return self.wait(timeout)

    def terminate(self) -> None:
        """Ask for a clean shutdown (SIGTERM) without waiting; send it once: a second SIGTERM
        during the shutdown may find the default handler back and kill the process."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a paused server would never see the SIGTERM
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 15.0) -> int:
        """Wait for the process to exit (and its log to be read); its exit code."""
        assert self.proc is not None
        code = self.proc.wait(timeout)
        if self._reader is not None:
            self._reader.join(5)
        return code

    def kill(self) -> None:
        """SIGKILL: a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self._reader is not None:
            self._reader.join(5)

    def stop_process(self) -> None:
        """SIGSTOP: the process freezes with its sockets open (a hung or partitioned node)."""
        assert self.proc is not None and self.proc.poll() is None
        self.proc.send_signal(signal.SIGSTOP)
        wait_stopped(self.proc.pid)

    def cont(self) -> None:
        """SIGCONT: a frozen process carries on."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            wait_stopped(self.proc.pid, stopped=False)

    def restart(self, timeout: float = 20.0) -> ServerProcess:
        """Start again on the same ports and data (clients reconnect to the same address).

        A running server is shut down cleanly first; kill() it before for a crash-restart.
        """
        if self.running():
            self.stop()
        self.requested_port = self.port or self.requested_port
        self.requested_management_port = self.management_port or self.requested_management_port
        return self.start(timeout)

    def url(self, vhost: str = "%2F", user: str = "guest", password: str = "guest") -> str:
        return f"amqp://{user}:{password}@127.0.0.1:{self.port}/{vhost}"
