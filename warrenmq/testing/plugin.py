"""The pytest plugin (entry point ``pytest11``): a real WarrenMQ broker as a fixture.

``amqp_broker`` yields a ``RunningBroker`` (``.url``, ``.management_url``, ``.port``...).  Its
scope is the session by default; ``--warrenmq-scope=function`` (or ``warrenmq_scope =
function`` in the ini file) gives every test a fresh broker.  ``amqp_broker_factory`` starts
brokers with settings of the test's choosing and stops them after the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from warrenmq.testing import EmbeddedBroker, RunningBroker

SCOPES = ("session", "package", "module", "class", "function")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("warrenmq", "WarrenMQ broker fixture")
    group.addoption(
        "--warrenmq-scope",
        dest="warrenmq_scope",
        default=None,
        choices=SCOPES,
        help="scope of the amqp_broker fixture (default: session)",
    )
    parser.addini("warrenmq_scope", "scope of the amqp_broker fixture (default: session)", default="session")


def _scope(fixture_name: str, config: pytest.Config) -> Any:
    scope = config.getoption("warrenmq_scope") or config.getini("warrenmq_scope") or "session"
    if scope not in SCOPES:
        raise pytest.UsageError(f"warrenmq_scope must be one of {', '.join(SCOPES)}, not {scope!r}")
    return scope


@pytest.fixture(scope=_scope)
def amqp_broker() -> Iterator[RunningBroker]:
    """A WarrenMQ broker with a temporary data directory, on free ports of 127.0.0.1."""
    broker = EmbeddedBroker()
    yield broker.start()
    broker.stop()


@pytest.fixture
def amqp_broker_factory() -> Iterator[Callable[..., EmbeddedBroker]]:
    """``amqp_broker_factory(**settings)`` starts a broker with those warren-server settings
    (e.g. ``consumer_timeout=500``); ``.running`` says where it is.  Stopped after the test."""
    started: list[EmbeddedBroker] = []

    def start(data_dir: str | None = None, management: bool = True, **settings: Any) -> EmbeddedBroker:
        broker = EmbeddedBroker(data_dir, management, **settings)
        broker.start()
        started.append(broker)
        return broker

    yield start
    for broker in reversed(started):
        broker.stop()
