"""The node-to-node link: one TCP connection per ordered pair of nodes, frames batched.

Each node dials every other node; on a link, the dialling node sends its requests
(publishes, consumes, acks, a quorum leader's replication) and the other answers and
pushes (deliveries, confirms, replication acks) on the same connection.  So the two
directions between two nodes are two links, each with one *client* end (``PeerLink``, in
remote_queue.py) and one *serving* end (``PeerSession``, in serving.py); ``LinkProtocol`` is
the socket under either.

Everything sent during one event-loop turn goes out with one write.  The socket's write
buffer is the flow control: while it is full the serving end delivers nothing more and the
client end holds back its publishers.  A frozen node (membership.py) reads nothing.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Protocol

from warrenmq.cluster import wire

log = logging.getLogger("warrenmq.cluster.link")

_WRITE_HIGH = 4 * 1024 * 1024
_WRITE_LOW = 1024 * 1024


class LinkHandler(Protocol):
    def on_frame(self, kind: int, payload: bytes) -> None: ...

    def on_congestion(self, congested: bool) -> None: ...

    def on_lost(self) -> None: ...


class Gate(Protocol):
    """May this node handle input now (its lease surely alive)?"""

    def check(self) -> bool: ...


class LinkProtocol(asyncio.Protocol):
    def __init__(self, loop: asyncio.AbstractEventLoop, gate: Gate, handler: LinkHandler | None = None) -> None:
        self.loop = loop
        self.gate = gate
        self.handler = handler
        self.transport: asyncio.Transport | None = None
        self.splitter = wire.FrameSplitter()
        self.out: list[bytes] = []
        self.flush_pending = False
        self.congested = False
        self.closed = False
        self._held: list[bytes] = []  # what arrived while the node was frozen
        self._reading_paused = False

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.set_write_buffer_limits(high=_WRITE_HIGH, low=_WRITE_LOW)  # type: ignore[attr-defined]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass

    def data_received(self, data: bytes) -> None:
        if self._held or not self.gate.check():
            self._held.append(data)
            self.pause()
            return
        self._consume(data)

    def _consume(self, data: bytes) -> None:
        try:
            frames = self.splitter.feed(data)
        except wire.WireError as exc:
            log.error("link: %s; dropping it", exc)
            self.close()
            return
        handler = self.handler
        if handler is None:
            return
        for kind, payload in frames:
            try:
                handler.on_frame(kind, payload)
            except Exception:  # a bug on one frame must not take the node down
                log.exception("link: frame of type %d failed", kind)
            if self.closed:
                return

    def thaw(self) -> None:
        """The node may handle input again: what arrived meanwhile first."""
        held, self._held = self._held, []
        for data in held:
            self._consume(data)
        self.resume()

    def pause(self) -> None:
        if not self._reading_paused and self.transport is not None and not self.closed:
            self._reading_paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self._reading_paused and self.transport is not None and not self.closed:
            self._reading_paused = False
            self.transport.resume_reading()

    def pause_writing(self) -> None:
        self.congested = True
        if self.handler is not None:
            self.handler.on_congestion(True)

    def resume_writing(self) -> None:
        self.congested = False
        if self.handler is not None:
            self.handler.on_congestion(False)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.out.clear()
        if self.handler is not None:
            self.handler.on_lost()

    # -- output -------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        self.out.append(data)
        if not self.flush_pending:
            self.flush_pending = True
            self.loop.call_soon(self.flush)

    def send_pieces(self, pieces: list[bytes]) -> None:
        self.out.extend(pieces)
        if not self.flush_pending:
            self.flush_pending = True
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        self.flush_pending = False
        out = self.out
        if not out or self.transport is None or self.closed:
            out.clear()
            return
        data = b"".join(out)
        out.clear()
        self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.flush()
            self.transport.close()
