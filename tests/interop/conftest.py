"""Fixtures shared by the interop tests: a pika connection to the session's server, and a
channel in confirm mode on it.  A test module may define its own of the same name."""

from __future__ import annotations

from collections.abc import Iterator

import pika
import pytest
from pika.adapters.blocking_connection import BlockingChannel

from tests.interop.pika_client import connect


@pytest.fixture
def conn(port: int) -> Iterator[pika.BlockingConnection]:
    with connect(port) as connection:
        yield connection


@pytest.fixture
def ch(conn: pika.BlockingConnection) -> BlockingChannel:
    """A channel in confirm mode: a publish returns once the message is routed."""
    channel = conn.channel()
    channel.confirm_delivery()
    return channel


@pytest.fixture
def exchanges(port: int) -> Iterator[list[str]]:
    """Exchange names to delete after the test."""
    names: list[str] = []
    yield names
    with connect(port) as connection:
        channel = connection.channel()
        for exchange in names:
            channel.exchange_delete(exchange)


@pytest.fixture
def queues(port: int) -> Iterator[list[str]]:
    """Queue names to delete after the test."""
    names: list[str] = []
    yield names
    with connect(port) as connection:
        channel = connection.channel()
        for queue in names:
            channel.queue_delete(queue)
