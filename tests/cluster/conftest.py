"""Fixtures for the cluster tests: an etcd, a 3-node cluster, a history to record into.

Every test here is marked ``cluster``; the long fault-injection runs add ``slow`` themselves
(``make test`` leaves those out, ``make cluster-test`` runs everything).  A failing test's
report ends with the tail of every node's log.
"""

from __future__ import annotations

import functools
import subprocess
import sys
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from tests.cluster.harness import Cluster, EtcdProcess
from tests.cluster.history import History


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.cluster)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and report.when == "call":
        for value in getattr(item, "funcargs", {}).values():
            if isinstance(value, Cluster):
                report.sections.append(("cluster node logs", value.log_tails()))
    return report


@functools.cache
def server_supports_cluster() -> bool:
    """Whether this warren-server has cluster mode (the server side lands separately)."""
    done = subprocess.run(
        [sys.executable, "-m", "warrenmq.server.main", "--help"], capture_output=True, text=True, timeout=60
    )
    return "--cluster" in done.stdout


def require_cluster_server() -> None:
    if not server_supports_cluster():
        pytest.skip("warren-server has no --cluster option yet")


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[EtcdProcess]:
    proc = EtcdProcess(tmp_path / "etcd").start()
    yield proc
    proc.kill()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A fresh 3-node cluster of one's own (faults are injected into it)."""
    require_cluster_server()
    c = Cluster(tmp_path / "cluster", nodes=3)
    try:
        c.start()
    except BaseException:
        c.kill()
        raise
    yield c
    c.stop()


@pytest.fixture(scope="module")
def shared_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One 3-node cluster for a module's tests that do not break it (use unique queue names)."""
    require_cluster_server()
    c = Cluster(tmp_path_factory.mktemp("cluster"), nodes=3)
    try:
        c.start()
    except BaseException:
        c.kill()
        raise
    yield c
    c.stop()


@pytest.fixture
def history() -> History:
    return History()
