"""WarrenMQ's Connection driven in-process: a real Node and Connection, a fake transport, an
event loop that is stepped by hand.  For properties that need no socket (what a byte sequence
does to the connection state machine) and for mechanisms a socket cannot show deterministically
(when the broker stops reading a client).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from warrenmq.amqp import spec
from warrenmq.amqp.frames import FrameReader, method_frame
from warrenmq.config import Settings
from warrenmq.server.connection import Connection
from warrenmq.server.node import Node


class FakeTransport:
    """What asyncio's transport offers a Protocol, recording what the connection does with it."""

    def __init__(self, peer: str = "127.0.0.1") -> None:
        self.peer = peer
        self.written = bytearray()
        self.closed = False
        self.aborted = False
        self.reading = True
        self.unsent = 0  # what get_write_buffer_size reports (a client that does not read)
        self.protocol: Connection | None = None

    def write(self, data: bytes) -> None:
        self.written += data

    def writelines(self, chunks: list[bytes]) -> None:
        for chunk in chunks:
            self.write(chunk)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": (self.peer, 40000), "sockname": ("127.0.0.1", 5672)}.get(name, default)

    def set_write_buffer_limits(self, high: int = 0, low: int = 0) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return self.unsent

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = self.aborted = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def frames(self) -> list[tuple[int, int, bytes]]:
        """Every frame written so far (the protocol header, if any, skipped)."""
        data = bytes(self.written)
        if data.startswith(b"AMQP"):
            data = data[8:]
        return FrameReader(0).feed(data)

    def methods(self) -> list[tuple[int, spec.Method]]:
        return [
            (ch, spec.METHODS[int.from_bytes(p[:4], "big")].decode(p, 4, len(p)))
            for t, ch, p in self.frames()
            if t == 1
        ]


class Harness:
    """A node without listeners or persistence, on a loop that ``run`` steps."""

    def __init__(self, **settings: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.node = Node(Settings(**settings), self.loop)
        self.node.broker.ensure_default()

    def close(self) -> None:
        for conn in list(self.node.connections):
            conn.connection_lost(None)
        self.loop.close()

    def run(self) -> None:
        """Run what the connections scheduled (flushes, soon-callbacks)."""
        self.loop.run_until_complete(asyncio.sleep(0))

    def connect(self, peer: str = "127.0.0.1") -> tuple[Connection, FakeTransport]:
        transport = FakeTransport(peer)
        conn = Connection(self.node)
        transport.protocol = conn
        conn.connection_made(transport)  # type: ignore[arg-type]
        return conn, transport

    def opened(self, channel: bool = True, **tune: int) -> tuple[Connection, FakeTransport]:
        """A connection through connection.open-ok (and channel 1 open)."""
        conn, transport = self.connect()
        conn.data_received(b"AMQP\x00\x00\x09\x01")
        start_ok = spec.ConnectionStartOk(
            {"capabilities": {"authentication_failure_close": True}}, "PLAIN", b"\x00guest\x00guest", "en_US"
        )
        conn.data_received(method_frame(0, start_ok))
        conn.data_received(
            method_frame(0, spec.ConnectionTuneOk(tune.get("channel_max", 2047), tune.get("frame_max", 131072), 0))
        )
        conn.data_received(method_frame(0, spec.ConnectionOpen("/")))
        if channel:
            conn.data_received(method_frame(1, spec.ChannelOpen()))
        self.run()
        assert conn.is_open, transport.written
        return conn, transport


class Errors(logging.Handler):
    """Log records with an exception attached (a traceback in the log), or at ERROR level."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or record.levelno >= logging.ERROR:
            self.records.append(record)


@contextmanager
def no_tracebacks() -> Iterator[Errors]:
    """Fail if anything logged a traceback or an error meanwhile."""
    handler = Errors()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
    if handler.records:
        record = handler.records[0]
        raise AssertionError(f"logged: {record.getMessage()}\n{handler.format(record)}")
