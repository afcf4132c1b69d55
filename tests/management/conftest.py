"""A real server with its management API on a free port, an HTTP client for it, and a fresh
vhost per test (so that counts are exact whatever else the session did)."""

from __future__ import annotations

import base64
import json
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pika
import pytest

from tests.server import ServerProcess


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def mgmt_server() -> Iterator[ServerProcess]:
    proc = ServerProcess(None, "--management-port", str(free_port())).start()
    assert proc.management_port, proc.log
    yield proc
    code = proc.stop()
    assert code == 0, proc.log
    assert "Traceback" not in proc.log, proc.log


@dataclass
class Reply:
    status: int
    text: str
    headers: dict[str, str]

    @property
    def json(self) -> Any:
        return json.loads(self.text)


class Api:
    """The management HTTP API as a client sees it (plain urllib, no WarrenMQ code)."""

    def __init__(self, port: int, user: str = "guest", password: str = "guest") -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.user, self.password = user, password

    def as_user(self, user: str, password: str) -> Api:
        return Api(int(self.base.rsplit(":", 1)[1]), user, password)

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None, auth: bool = True
    ) -> Reply:
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        if auth:
            token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            all_headers["Authorization"] = f"Basic {token}"
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=all_headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return Reply(response.status, response.read().decode(), dict(response.headers))
        except urllib.error.HTTPError as exc:
            return Reply(exc.code, exc.read().decode(), dict(exc.headers))

    def get(self, path: str, **kw: Any) -> Reply:
        return self.request("GET", path, **kw)

    def put(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return self.request("PUT", path, {} if body is None else body, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return self.request("POST", path, {} if body is None else body, **kw)

    def delete(self, path: str, **kw: Any) -> Reply:
        return self.request("DELETE", path, **kw)

    def ok(self, path: str) -> Any:
        reply = self.get(path)
        assert reply.status == 200, (path, reply)
        return reply.json


def q(name: str) -> str:
    """One URL path segment."""
    return urllib.parse.quote(name, safe="")


def wait_for(condition: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> Any:
    """Poll until ``condition()`` is truthy; its value, or a failure after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.fixture
def api(mgmt_server: ServerProcess) -> Api:
    return Api(mgmt_server.management_port)


@pytest.fixture
def vhost(api: Api) -> Iterator[str]:
    """A fresh vhost where guest may do everything; deleted afterwards."""
    name = f"mgmt-{uuid.uuid4().hex[:8]}"
    assert api.put(f"/api/vhosts/{q(name)}").status == 201
    yield name
    api.delete(f"/api/vhosts/{q(name)}")


@pytest.fixture
def amqp(mgmt_server: ServerProcess, vhost: str) -> Iterator[pika.BlockingConnection]:
    """A pika connection to the test's vhost."""
    params = pika.ConnectionParameters(
        "127.0.0.1", mgmt_server.port, virtual_host=vhost, client_properties={"connection_name": f"conn-{vhost}"}
    )
    connection = pika.BlockingConnection(params)
    yield connection
    if connection.is_open:
        connection.close()


@pytest.fixture
def name() -> str:
    return f"mgmt-{uuid.uuid4().hex[:10]}"
