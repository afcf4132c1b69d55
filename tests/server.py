"""Run a real ``warren-server`` process on a free port for tests.

The server is started as a subprocess (as users start it) and the test talks to it over
real sockets.  Startup is awaited by reading its log for the port it chose, never by sleeping.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

_READY = re.compile(r"Server startup complete; AMQP port (\d+)")
_MGMT = re.compile(r"management API listening on .*:(\d+)")


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
        self.lines: list[str] = []
        self._ready = threading.Event()
        self._reader: threading.Thread | None = None

    def start(self, timeout: float = 20.0) -> ServerProcess:
        cmd = [sys.executable, "-m", self.module, "--port", "0", "--log-level", "info"]
        if self.data_dir is None:
            cmd.append("--no-persistence")
        else:
            cmd += ["--data-dir", str(self.data_dir)]
        if "--management-port" not in self.args:
            cmd += ["--management-port", "0"]
        cmd += self.args
        env = dict(os.environ)
        env.update(self.env or {})
        self.lines = []
        self._ready.clear()
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._ready.wait(timeout):
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
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
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

    def url(self, vhost: str = "%2F", user: str = "guest", password: str = "guest") -> str:
        return f"amqp://{user}:{password}@127.0.0.1:{self.port}/{vhost}"
