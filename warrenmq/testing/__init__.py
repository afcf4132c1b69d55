"""A real WarrenMQ broker for test suites: ``EmbeddedBroker`` and the pytest plugin.

The broker runs in a thread of the test process, on its own event loop, with a temporary data
directory (the real file store, fsync off: tests need the semantics, not the durability).
Why a thread and not a subprocess: a subprocess pays the interpreter start and the imports
(about 0.5-0.6 s on a 2-core machine) for every broker; in a thread only the first broker of a
process pays the imports and every further one starts in a few tens of milliseconds, so that
a suite can afford a broker per test.  Clients connect over real sockets, exactly as to a
``warren-server``.

Outside pytest::

    with EmbeddedBroker() as broker:
        connection = pika.BlockingConnection(pika.URLParameters(broker.url))

The pytest fixtures (``amqp_broker``, ``amqp_broker_factory``) are in ``plugin.py``,
registered through the ``pytest11`` entry point.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import tempfile
import threading
from dataclasses import dataclass
from types import TracebackType
from typing import Any

__all__ = ["EmbeddedBroker", "RunningBroker"]


@dataclass(frozen=True)
class RunningBroker:
    """Where a started broker is: what tests connect to."""

    url: str  # amqp://guest:guest@127.0.0.1:<port>/%2F
    management_url: str  # http://127.0.0.1:<port> ("" without management)
    host: str
    port: int
    management_port: int
    data_dir: str

    def __str__(self) -> str:
        return self.url


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class EmbeddedBroker:
    """A WarrenMQ node on a free port, in a background thread.

    ``settings`` are warren-server settings by their names (``consumer_timeout=1000``,
    ``default_vhost="/"``...).  ``data_dir``: None for a fresh temporary directory (removed
    on stop).  ``management``: also serve the management HTTP API.
    """

    def __init__(self, data_dir: str | None = None, management: bool = True, **settings: Any) -> None:
        self._own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="warrenmq-test-")
        self.management = management
        self.settings = settings
        self.node: Any = None
        self.running: RunningBroker | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 10.0) -> RunningBroker:
        from warrenmq.config import Settings
        from warrenmq.server.node import Node

        host = "127.0.0.1"
        loop = self._loop = _new_loop()
        self._thread = threading.Thread(target=loop.run_forever, name="warrenmq-broker", daemon=True)
        self._thread.start()
        last_error: Exception | None = None
        for _ in range(5):  # a free management port may be taken before we bind it: try again
            values: dict[str, Any] = {
                "host": host,
                "port": 0,
                "data_dir": self.data_dir,
                "management_host": host,
                "management_port": _free_port(host) if self.management else 0,
                "fsync": False,
                "use_uvloop": False,
            }
            values.update(self.settings)
            node = Node(Settings(**values), loop)
            try:
                asyncio.run_coroutine_threadsafe(node.start_all(persistence=True), loop).result(timeout)
            except OSError as exc:
                last_error = exc
                asyncio.run_coroutine_threadsafe(node.stop(), loop).result(timeout)
                continue
            self.node = node
            mgmt_port = node.management.port if node.management is not None else 0
            self.running = RunningBroker(
                url=f"amqp://guest:guest@{host}:{node.amqp_port}/%2F",
                management_url=f"http://{host}:{mgmt_port}" if mgmt_port else "",
                host=host,
                port=node.amqp_port,
                management_port=mgmt_port,
                data_dir=self.data_dir,
            )
            return self.running
        self._stop_loop()
        raise RuntimeError(f"WarrenMQ could not start: {last_error}")

    def stop(self, timeout: float = 10.0, grace: float = 0.25) -> None:
        """Close every connection (320, as a node shutting down does; clients that do not
        answer within ``grace`` seconds are cut off) and the store."""
        if self.node is not None and self._loop is not None:
            asyncio.run_coroutine_threadsafe(self.node.stop(grace), self._loop).result(timeout)
            self.node = None
        self._stop_loop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def call(self, function: Any, *args: Any) -> Any:
        """Run ``function(*args)`` in the broker's thread and return its result (for tests that
        look at the broker model directly)."""
        assert self._loop is not None

        async def run() -> Any:
            return function(*args)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    def _stop_loop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        self._loop = self._thread = None

    def __enter__(self) -> RunningBroker:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
