"""Start a broker command for a benchmark, wait until it listens, stop it after."""

from __future__ import annotations

import shlex
import signal
import socket
import subprocess
import time

from .uri import parse_uri


def wait_for_port(uri: str, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    """Wait until the broker accepts TCP connections (or died, or timed out)."""
    parsed = parse_uri(uri)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the broker exited with code {process.returncode} before listening")
        try:
            with socket.create_connection((parsed.host, parsed.port), timeout=1.0):
                return
        except OSError:
            # Not listening yet: wait on the process a moment rather than spin.
            try:
                process.wait(timeout=0.1)
            except subprocess.TimeoutExpired:
                pass
    raise TimeoutError(f"nothing listening on {parsed.host}:{parsed.port} after {timeout:.0f}s")


def start_broker(command: str, uri: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(shlex.split(command), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(uri, process)
    except BaseException:
        stop_broker(process)
        raise
    return process


def stop_broker(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (a clean shutdown), then SIGKILL if it hangs."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
