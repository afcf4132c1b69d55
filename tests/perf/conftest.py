"""Fixtures for warren-perf tests.

Broker tests need WARREN_PERF_TEST_URI (e.g. amqp://guest:guest@127.0.0.1:5682/%2F)
and are skipped without it.  Broker memory figures are checked when the
broker's PID is known: WARREN_PERF_TEST_PID, or found from the URI's port.
"""

from __future__ import annotations

import os

import pytest

from warrenmq.perf.config import ConfigError
from warrenmq.perf.options import resolve_broker_pid


@pytest.fixture(scope="session")
def broker_uri() -> str:
    uri = os.environ.get("WARREN_PERF_TEST_URI")
    if not uri:
        pytest.skip("WARREN_PERF_TEST_URI is not set")
    return uri


@pytest.fixture(scope="session")
def broker_pid(broker_uri: str) -> int | None:
    pid = os.environ.get("WARREN_PERF_TEST_PID")
    if pid:
        return int(pid)
    try:
        return resolve_broker_pid(broker_uri)
    except ConfigError:
        return None
