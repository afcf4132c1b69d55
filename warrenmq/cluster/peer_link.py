"""The client end of this node's link to one other node.

Publishes to queues that node leads go out as PUBLISH frames numbered by a token; the other
end answers with PUB_RESULT (taken up to a token, and the refused ones), which settles the
publisher confirms waiting on them.  Consumers of its queues are registered by REQUEST and
their deliveries come back as DELIVER frames, each a Message whose ``queue`` is the local
RemoteQueue, so that a channel's acks find their way back here (batched per loop turn).

A link that drops loses its session: the other node requeues what it had delivered, so
acks of older deliveries are dropped (the ``offset`` slot of a remote Message holds the
session it came in); publishes not yet answered are nacked; requests fail.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from warrenmq.broker.consumer import Consumer
from warrenmq.broker.message import Message
from warrenmq.cluster import wire
from warrenmq.cluster.link import LinkProtocol

if TYPE_CHECKING:
    from warrenmq.cluster.remote_queue import RemoteQueue

log = logging.getLogger("warrenmq.cluster.link")

PUBLISH_WINDOW = 20_000  # unanswered publishes on a link past which its publishers are held back


class ConfirmTarget(Protocol):
    """Whoever waits for a publish to be taken (a channel in confirm mode, a serving session)."""

    def confirm_hold(self, seq: int) -> None: ...

    def confirm_release(self, seq: int, ok: bool) -> None: ...


class LinkDown(Exception):
    """The link to that node is not up (the request could not be made or was not answered)."""


def split_route(route: bytes) -> tuple[str, str]:
    n = route[0]
    return route[1 : 1 + n].decode(), route[2 + n :].decode()


class PeerLink:
    def __init__(self, node: str, loop: asyncio.AbstractEventLoop, on_event: Callable[[PeerLink, str], None]) -> None:
        self.node = node
        self.loop = loop
        self.on_event = on_event  # (link, "up" | "down"): the cluster re-registers or cancels
        self.protocol: LinkProtocol | None = None
        self.session = 0  # counts connections; a remote message remembers its session
        self._token = 0
        self._answered = 0
        self.pending: dict[int, list[tuple[ConfirmTarget, int]]] = {}
        self.consumers: dict[int, tuple[Consumer, RemoteQueue]] = {}
        self._next_consumer = 0
        self._requests: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._get_waiters: dict[int, asyncio.Future[Any]] = {}
        self._next_request = 0
        self._settles: dict[int, list[int]] = {}
        self._settle_scheduled = False
        self.throttled: set[RemoteQueue] = set()  # remote queues whose publishers are held back
        self.replication_handler: Callable[[int, bytes], None] | None = None  # REPL_ACK / REPL_FETCH

    # -- connection ----------------------------------------------------------------------

    @property
    def up(self) -> bool:
        return self.protocol is not None and not self.protocol.closed

    @property
    def congested(self) -> bool:
        protocol = self.protocol
        return protocol is not None and (protocol.congested or self._token - self._answered > PUBLISH_WINDOW)

    def attach(self, protocol: LinkProtocol) -> None:
        self.protocol = protocol
        self.session += 1
        self._token = self._answered = 0
        self.on_event(self, "up")

    def on_lost(self) -> None:
        if self.protocol is None:
            return
        self.protocol = None
        pending, self.pending = self.pending, {}
        for waiters in pending.values():
            for target, seq in waiters:
                target.confirm_release(seq, False)
        for future in [*self._requests.values(), *self._get_waiters.values()]:
            if not future.done():
                future.set_exception(LinkDown(self.node))
        self._requests.clear()
        self._get_waiters.clear()
        self._settles.clear()
        self._relieve()
        self.on_event(self, "down")

    def on_congestion(self, congested: bool) -> None:
        if not congested and not self.congested:
            self._relieve()

    def _relieve(self) -> None:
        queues, self.throttled = self.throttled, set()
        for queue in queues:
            queue.relieve()

    def send(self, data: bytes) -> None:
        if self.protocol is not None:
            self.protocol.send(data)

    def send_pieces(self, pieces: list[bytes]) -> None:
        if self.protocol is not None:
            self.protocol.send_pieces(pieces)

    # -- publishing ----------------------------------------------------------------------

    def publish(self, key: bytes, message: Message) -> int:
        """Send a message for one of its queues; the token its result will name."""
        token = self._token = self._token + 1
        assert self.protocol is not None
        self.protocol.send_pieces(
            wire.publish(
                token, message.persistent, message.priority, [key], message.route_raw, message.header, message.body
            )
        )
        return token

    def track(self, token: int, target: ConfirmTarget, seq: int) -> None:
        """A publisher confirm waits for this token's result."""
        target.confirm_hold(seq)
        waiters = self.pending.get(token)
        if waiters is None:
            self.pending[token] = [(target, seq)]
        else:
            waiters.append((target, seq))

    def _on_pub_result(self, payload: bytes) -> None:
        upto, nacks = wire.decode_pub_result(payload)
        refused = set(nacks)
        self._answered = max(self._answered, upto)
        pending = self.pending
        if pending:
            for token in [t for t in pending if t <= upto]:
                ok = token not in refused
                for target, seq in pending.pop(token):
                    target.confirm_release(seq, ok)
        if self.throttled and not self.congested:
            self._relieve()

    # -- consuming -----------------------------------------------------------------------

    def consumer_id(self) -> int:
        self._next_consumer += 1
        return self._next_consumer

    def forget(self, consumer: Consumer) -> int | None:
        """Drop a consumer registered through this link; its id (None: it was not)."""
        for cid, (known, _) in list(self.consumers.items()):
            if known is consumer:
                del self.consumers[cid]
                return cid
        return None

    def forget_queue(self, queue: RemoteQueue) -> None:
        """Drop every consumer of ``queue`` registered through this link (its leader moved)."""
        for cid, (_, known) in list(self.consumers.items()):
            if known is queue:
                del self.consumers[cid]

    def cancel(self, consumer: Consumer) -> asyncio.Future[dict[str, Any]] | None:
        """Cancel a consumer at the other node; the answer's future (None: not registered here)."""
        cid = self.forget(consumer)
        return self.request({"op": "cancel", "id": cid}) if cid is not None else None

    def _on_deliver(self, payload: bytes) -> None:
        cid, delivery, returns, route, header, body = wire.decode_deliver(payload)
        entry = self.consumers.get(cid)
        if entry is None:
            self.settle(wire.SETTLE_REQUEUE, delivery)  # cancelled meanwhile: give it back
            return
        consumer, queue = entry
        exchange, routing_key = split_route(route)
        message = Message(delivery, exchange, routing_key, route, header, body)
        message.returns = returns
        message.queue = queue
        message.offset = self.session  # acks of another session's deliveries are void
        consumer.delivered += 1
        if consumer.no_ack:
            queue.stats.deliver_no_ack += 1
        else:
            queue.stats.deliver += 1
        consumer.target.deliver(consumer, message)

    def _on_cancelled(self, payload: bytes) -> None:
        entry = self.consumers.pop(wire.decode_u32(payload), None)
        if entry is not None:
            consumer, queue = entry
            queue.forget_consumer(consumer)
            consumer.target.consumer_cancelled(consumer)

    def settle(self, kind: int, delivery: int) -> None:
        ids = self._settles.get(kind)
        if ids is None:
            self._settles[kind] = [delivery]
        else:
            ids.append(delivery)
        if not self._settle_scheduled:
            self._settle_scheduled = True
            self.loop.call_soon(self._send_settles)

    def _send_settles(self) -> None:
        self._settle_scheduled = False
        settles, self._settles = self._settles, {}
        for kind, ids in settles.items():
            self.send(wire.settle(kind, ids))

    # -- requests ------------------------------------------------------------------------

    def request(self, body: dict[str, Any]) -> asyncio.Future[dict[str, Any]]:
        """A request; its future fails with LinkDown if the link is down or drops."""
        future: asyncio.Future[dict[str, Any]] = self.loop.create_future()
        if not self.up:
            future.set_exception(LinkDown(self.node))
            return future
        if self._settle_scheduled:
            self._send_settles()  # the other node sees them first, in the order the client sent them
        self._next_request += 1
        rid = self._next_request
        if body.get("op") == "get":
            self._get_waiters[rid] = future
        else:
            self._requests[rid] = future
        self.send(wire.request(rid, body))
        return future

    def _on_reply(self, payload: bytes) -> None:
        rid, body = wire.decode_numbered_json(payload)
        future = self._requests.pop(rid, None) or self._get_waiters.pop(rid, None)
        if future is not None and not future.done():
            future.set_result(body)

    def _on_get_ok(self, payload: bytes) -> None:
        rid, delivery, returns, count, route, header, body = wire.decode_get_ok(payload)
        future = self._get_waiters.pop(rid, None)
        if future is None or future.done():
            self.settle(wire.SETTLE_REQUEUE, delivery)
            return
        exchange, routing_key = split_route(route)
        message = Message(delivery, exchange, routing_key, route, header, body)
        message.returns = returns
        message.offset = self.session
        future.set_result({"message": message, "count": count})

    # -- frames --------------------------------------------------------------------------

    def on_frame(self, kind: int, payload: bytes) -> None:
        if kind == wire.DELIVER:
            self._on_deliver(payload)
        elif kind == wire.PUB_RESULT:
            self._on_pub_result(payload)
        elif kind == wire.REPLY:
            self._on_reply(payload)
        elif kind == wire.GET_OK:
            self._on_get_ok(payload)
        elif kind == wire.CANCELLED:
            self._on_cancelled(payload)
        elif self.replication_handler is not None and kind in (wire.REPL_ACK, wire.REPL_FETCH):
            self.replication_handler(kind, payload)
        else:
            log.warning("link to %s: unexpected frame type %d", self.node, kind)
