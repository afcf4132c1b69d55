"""warrenctl against a real server: the command run in-process (fast) or as a program."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pika
import pytest

from tests.management.conftest import Api, q
from tests.server import ServerProcess
from warrenmq.cli.main import main

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def ctl_server() -> Iterator[ServerProcess]:
    proc = ServerProcess(None, "--management-port", str(free_port())).start()
    yield proc
    assert proc.stop() == 0, proc.log
    assert "Traceback" not in proc.log, proc.log


@dataclass
class Result:
    code: int
    out: str
    err: str


class Ctl:
    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.port = server.management_port

    def __call__(self, *args: str) -> Result:
        """Run warrenctl in this process (its HTTP requests are real)."""
        out, err = io.StringIO(), io.StringIO()
        code = main(["--management-port", str(self.port), *args], out, err)
        return Result(code, out.getvalue(), err.getvalue())

    def program(self, *args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> Result:
        """Run warrenctl as its own process, as an operator would."""
        full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
        done = subprocess.run(
            [sys.executable, "-m", "warrenmq.cli.main", *args],
            capture_output=True,
            text=True,
            env=full_env,
            input=stdin,
            timeout=30,
            cwd=REPO,
        )
        return Result(done.returncode, done.stdout, done.stderr)

    def into_closed_pipe(self, *args: str) -> Result:
        """Run warrenctl as its own process writing into a pipe nobody reads any more (what
        ``warrenctl ... | head -1`` does once head has its line)."""
        read_end, write_end = os.pipe()
        os.close(read_end)  # closed before warrenctl writes: every write fails with EPIPE
        try:
            done = subprocess.run(
                [sys.executable, "-m", "warrenmq.cli.main", "--management-port", str(self.port), *args],
                stdout=write_end,
                stderr=subprocess.PIPE,
                text=True,
                env={**os.environ, "PYTHONPATH": str(REPO)},
                timeout=30,
                cwd=REPO,
            )
        finally:
            os.close(write_end)
        return Result(done.returncode, "", done.stderr)


@pytest.fixture
def ctl(ctl_server: ServerProcess) -> Ctl:
    return Ctl(ctl_server)


@pytest.fixture
def api(ctl_server: ServerProcess) -> Api:
    return Api(ctl_server.management_port)


@pytest.fixture
def vhost(api: Api) -> Iterator[str]:
    name = f"ctl-{uuid.uuid4().hex[:8]}"
    assert api.put(f"/api/vhosts/{q(name)}").status == 201
    yield name
    api.delete(f"/api/vhosts/{q(name)}")


@pytest.fixture
def amqp(ctl_server: ServerProcess, vhost: str) -> Iterator[pika.BlockingConnection]:
    connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", ctl_server.port, virtual_host=vhost))
    yield connection
    if connection.is_open:
        connection.close()
