"""Raising and clearing resource alarms on a test server at a chosen moment, as rabbitmqctl
set_vm_memory_high_watermark / set_disk_free_limit do against RabbitMQ (through the same
management endpoints warrenctl uses), and what the server says about its connections."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tests.management.conftest import Api, free_port
from tests.server import ServerProcess


def alarm_server(data_dir: Path | None, *args: str) -> ServerProcess:
    """A server with a management port (and with a data directory, a disk monitor)."""
    return ServerProcess(data_dir, "--management-port", str(free_port()), *args).start()


class Alarms:
    def __init__(self, server: ServerProcess) -> None:
        self.api = Api(server.management_port)
        self.node = self.api.get("/api/overview").json["node"]

    def memory(self, on: bool) -> None:
        """A 1-byte watermark raises the memory alarm; RabbitMQ's default (0.4) clears it.  The
        node applies it before answering, so the alarm is in force when this returns."""
        body = {"absolute": 1} if on else {"fraction": 0.4}
        assert self.api.put(f"/api/nodes/{self.node}/memory-high-watermark", body).status == 204
        assert self.raised("memory") == on

    def disk(self, on: bool) -> None:
        """A free-disk limit above what any disk has raises the disk alarm; 50MB clears it."""
        body = {"limit": 10**18 if on else 50_000_000}
        assert self.api.put(f"/api/nodes/{self.node}/disk-free-limit", body).status == 204
        assert self.raised("disk space") == on

    def raised(self, resource: str) -> bool:
        reply = self.api.get("/api/health/checks/alarms")
        return reply.status == 503 and any(a["resource"] == resource for a in reply.json["alarms"])

    def connections(self) -> dict[int, dict[str, object]]:
        """The server's connections by client port (state, recv_oct, ...)."""
        return {int(c["peer_port"]): c for c in self.api.get("/api/connections").json}

    def state(self, client_port: int) -> str:
        return str(self.connections()[client_port]["state"])


def stays(condition: Callable[[], bool], seconds: float = 0.5) -> bool:
    """``condition`` holds throughout ``seconds`` (how "nothing happens" is shown)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not condition():
            return False
        time.sleep(0.02)
    return True


def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False
