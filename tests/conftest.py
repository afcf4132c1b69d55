"""Fixtures: a real WarrenMQ server on a free port, shared by the tests of a session."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server import ServerProcess


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One persistent server for the whole session (tests use unique names)."""
    proc = ServerProcess(tmp_path_factory.mktemp("warren-data")).start()
    yield proc
    code = proc.stop()
    assert code == 0, proc.log
    assert "Traceback" not in proc.log, proc.log


@pytest.fixture
def port(server: ServerProcess) -> int:
    return server.port


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server of one's own (restarts, crashes, settings)."""
    proc = ServerProcess(tmp_path / "data")
    yield proc
    proc.kill()


@pytest.fixture
def name() -> str:
    """A unique name for a queue or exchange."""
    return f"t-{uuid.uuid4().hex[:12]}"
