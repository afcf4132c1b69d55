"""The serving end of a link: another node's publishers and consumers of queues led here.

A ``PeerSession`` is to the queues what a channel is: consumers registered through the link
have it as their delivery target, deliveries go out as DELIVER frames and are held under a
delivery id until the other node settles them, and basic.get works the same way.  Publishes
are routed to the named queues (the other node did the exchange routing) and answered by
PUB_RESULT once they are taken: at once for transient messages, after the fsync for
persistent ones, after a majority of members has them for a quorum queue.  When the session
ends (the other node died, or the link broke) its deliveries go back to their queues, as a
closing channel's do.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from warrenmq.amqp.errors import AccessRefused, AMQPError
from warrenmq.amqp.frames import peek_delivery
from warrenmq.broker.consumer import Consumer
from warrenmq.broker.message import Message
from warrenmq.broker.queue import Queue
from warrenmq.broker.queue_args import queue_display
from warrenmq.cluster import keys as records
from warrenmq.cluster import wire
from warrenmq.cluster.link import LinkProtocol
from warrenmq.cluster.peer_link import split_route

if TYPE_CHECKING:
    from warrenmq.cluster.cluster import Cluster

log = logging.getLogger("warrenmq.cluster.serving")


class _NotYet(Exception):
    """A frame names a queue not led here: perhaps this node's watch is behind the sender's
    (a leader just elected hears from the others as soon as it hears of itself)."""


class PeerSession:
    def __init__(self, cluster: Cluster, protocol: LinkProtocol) -> None:
        self.cluster = cluster
        self.protocol = protocol
        self.peer = ""  # the other node, once it said hello
        self.incarnation = 0
        self.active = True  # DeliveryTarget: false while the socket does not drain
        self.consumers: dict[int, Consumer] = {}
        self.unacked: dict[int, Message] = {}
        self._next_delivery = 0
        # Publish results: [token, outstanding, ok] in token order.
        self._results: deque[list[Any]] = deque()
        self._by_token: dict[int, list[Any]] = {}
        self._result_scheduled = False
        self._store_waiting: deque[tuple[int, int]] = deque()  # (token, store generation)
        self.closed = False
        self._behind: list[tuple[int, bytes]] | None = None  # frames held while catching up with etcd
        self._retrying = False

    # -- frames ----------------------------------------------------------------------------

    def on_frame(self, kind: int, payload: bytes) -> None:
        if self._behind is not None:
            self._behind.append((kind, payload))
            return
        try:
            self._handle(kind, payload)
        except _NotYet:
            self._behind = [(kind, payload)]
            self.cluster.spawn(self._catch_up())

    async def _catch_up(self) -> None:
        """Apply what etcd has now, then handle the held frames again, in order (a queue
        still not led here then gets its answer: a nack, an error)."""
        try:
            await self.cluster.catch_up()
        except Exception as exc:  # etcd out of reach: the frames get their answers anyway
            log.warning("session from %s: could not catch up with etcd: %s", self.peer, exc)
        held, self._behind = self._behind or [], None
        self._retrying = True
        try:
            for kind, payload in held:
                if self.closed:
                    break
                try:
                    self._handle(kind, payload)
                except Exception:  # as in the link's own loop: one frame, not the session
                    log.exception("session from %s: frame of type %d failed", self.peer, kind)
        finally:
            self._retrying = False

    def _local(self, key: bytes) -> Queue | None:
        queue = self.cluster.local_queue(key)
        if queue is None and not self._retrying:
            raise _NotYet
        return queue

    def _handle(self, kind: int, payload: bytes) -> None:
        if kind == wire.PUBLISH:
            self._on_publish(payload)
        elif kind == wire.SETTLE:
            self._on_settle(payload)
        elif kind == wire.REQUEST:
            self._on_request(payload)
        elif kind in (wire.REPL_APPEND, wire.REPL_SETTLE, wire.REPL_SYNC):
            self.cluster.replication.on_follower_frame(self, kind, payload)
        elif kind == wire.STATS:
            self.cluster.on_stats(self.peer, wire.decode_json(payload))
        elif kind == wire.HELLO:
            hello = wire.decode_json(payload)
            self.peer = str(hello.get("node", ""))
            self.incarnation = int(hello.get("incarnation", 0))
            self.cluster.session_opened(self)
        else:
            log.warning("session from %s: unexpected frame type %d", self.peer, kind)

    def on_congestion(self, congested: bool) -> None:
        self.active = not congested
        if not congested:
            for queue in {id(c.queue): c.queue for c in self.consumers.values() if c.queue is not None}.values():
                queue.dispatch()

    def on_lost(self) -> None:
        """The other end went: its consumers go, what they held goes back to the queues."""
        if self.closed:
            return
        self.closed = True
        consumers, self.consumers = self.consumers, {}
        for consumer in consumers.values():
            if consumer.queue is not None:
                consumer.queue.remove_consumer(consumer)
        by_queue: dict[int, tuple[Queue, list[Message]]] = {}
        for message in self.unacked.values():
            queue = message.queue
            if queue is not None:
                by_queue.setdefault(id(queue), (queue, []))[1].append(message)
        self.unacked.clear()
        for queue, messages in by_queue.values():
            queue.requeue(messages)
        self._results.clear()
        self._by_token.clear()
        self.cluster.session_closed(self)

    def send(self, data: bytes) -> None:
        if not self.closed:
            self.protocol.send(data)

    def send_pieces(self, pieces: list[bytes]) -> None:
        if not self.closed:
            self.protocol.send_pieces(pieces)

    # -- publishing ------------------------------------------------------------------------

    def _on_publish(self, payload: bytes) -> None:
        token, persistent, priority, keys, route, header, body = wire.decode_publish(payload)
        if keys and keys[0].startswith(b"\x00reply:"):
            self._reply(token, keys[0][7:].decode(), route, header, body)
            return
        queues = [self._local(key) for key in keys]
        entry = [token, 1, True]  # one hold for the routing itself, released below
        self._results.append(entry)
        self._by_token[token] = entry
        exchange, routing_key = split_route(route)
        expiration = peek_delivery(header)[2] if header[12] or header[13] else None
        sequence = self.cluster.node.broker.sequence
        stored = False
        first = True
        message = Message(0, exchange, routing_key, route, header, body, persistent, priority, expiration)
        for queue in queues:
            if queue is None:
                entry[2] = False  # not led here (any more): the publisher hears a nack
                continue
            copy = message if first else message.copy()
            first = False
            copy.seq = next(sequence)
            if not queue.publish(copy):
                entry[2] = False
                continue
            if copy.stored:
                stored = True
            gate = queue.gate
            if gate is not None:
                gate.track(self, token)
        if stored:
            store = self.cluster.node.store
            entry[1] += 1
            self._store_waiting.append((token, store.generation))
            store.wait_for_sync(self)
        self.confirm_release(token, True)

    def _reply(self, token: int, address: str, route: bytes, header: bytes, body: bytes) -> None:
        """A direct reply-to reply published on the other node for a channel here."""
        consumer = self.cluster.node.replies.lookup(address)
        if consumer is not None:
            exchange, routing_key = split_route(route)
            consumer.target.deliver(consumer, Message(0, exchange, routing_key, route, header, body))
        self._results.append([token, 1, True])
        self._by_token[token] = self._results[-1]
        self.confirm_release(token, True)

    def confirm_hold(self, token: int) -> None:
        entry = self._by_token.get(token)
        if entry is not None:
            entry[1] += 1

    def confirm_release(self, token: int, ok: bool) -> None:
        entry = self._by_token.get(token)
        if entry is None:
            return
        entry[1] -= 1
        if not ok:
            entry[2] = False
        if entry[1] <= 0 and not self._result_scheduled:
            self._result_scheduled = True
            self.cluster.loop.call_soon(self._send_results)

    def on_synced(self, generation: int) -> None:
        """The store made a group durable: persistent publishes in it are taken."""
        waiting = self._store_waiting
        while waiting and waiting[0][1] <= generation:
            self.confirm_release(waiting.popleft()[0], True)
        if waiting:
            self.cluster.node.store.wait_for_sync(self)

    def _send_results(self) -> None:
        self._result_scheduled = False
        results = self._results
        upto = 0
        nacks: list[int] = []
        while results and results[0][1] <= 0:
            token, _, ok = results.popleft()
            del self._by_token[token]
            upto = token
            if not ok:
                nacks.append(token)
        if upto:
            self.send(wire.pub_result(upto, nacks))

    # -- deliveries --------------------------------------------------------------------------

    def deliver(self, consumer: Consumer, message: Message) -> None:
        self._next_delivery += 1
        delivery = self._next_delivery
        if not consumer.no_ack:
            self.unacked[delivery] = message
        self.send_pieces(
            wire.deliver(consumer.cookie, delivery, message.returns, message.route_raw, message.header, message.body)
        )

    def queue_settings_changed(self, queue: Queue) -> None:
        pass  # delivery timeouts are the consuming node's channel's to keep

    def consumer_cancelled(self, consumer: Consumer) -> None:
        if self.consumers.pop(consumer.cookie, None) is not None:
            self.send(wire.cancelled(consumer.cookie))

    def _on_settle(self, payload: bytes) -> None:
        kind, ids = wire.decode_settle(payload)
        unacked = self.unacked
        touched: dict[int, Queue] = {}
        requeue: dict[int, list[Message]] = {}
        for delivery in ids:
            message = unacked.pop(delivery, None)
            if message is None or message.queue is None:
                continue
            queue = message.queue
            touched[id(queue)] = queue
            if kind == wire.SETTLE_ACK:
                queue.ack(message)
            elif kind == wire.SETTLE_REJECT:
                queue.reject(message, False)
            else:
                requeue.setdefault(id(queue), []).append(message)
        for key, messages in requeue.items():
            touched[key].requeue(messages)
        for queue in touched.values():
            queue.dispatch()

    # -- requests ----------------------------------------------------------------------------

    def _on_request(self, payload: bytes) -> None:
        rid, body = wire.decode_numbered_json(payload)
        op = body.get("op")
        try:
            handler = getattr(self, f"_op_{op}", None)
            if handler is None:
                raise ValueError(f"unknown request {op!r}")
            if "queue" in body and op not in ("cancel", "delete"):
                self._local(wire.queue_key(str(body["vhost"]), str(body["queue"])))
            handler(rid, body)
        except _NotYet:
            raise
        except AMQPError as exc:
            self.send(wire.reply(rid, {"error": [exc.reply_code, exc.explanation]}))
        except Exception as exc:  # a bug: the other node hears of it, this one goes on
            log.exception("request %r from %s failed", op, self.peer)
            self.send(wire.reply(rid, {"error": [541, f"internal error: {type(exc).__name__}"]}))

    def _queue(self, body: dict[str, Any]) -> Queue:
        return self.cluster.require_local_queue(str(body["vhost"]), str(body["queue"]))

    def _op_consume(self, rid: int, body: dict[str, Any]) -> None:
        queue = self._queue(body)
        exclusive = bool(body.get("exclusive"))
        existing = queue.consumers()
        if existing and (exclusive or any(c.exclusive for c in existing)):
            raise AccessRefused(f"{queue_display(queue.name, queue.vhost)} in exclusive use")
        cid = int(body["id"])
        consumer = Consumer(
            f"{self.peer}:{body.get('tag', cid)}",
            queue,
            self,
            no_ack=bool(body.get("no_ack")),
            exclusive=exclusive,
            prefetch=int(body.get("prefetch", 0)),
            priority=int(body.get("priority", 0)),
            arguments=records.table_from(body.get("arguments")).plain(),
        )
        consumer.cookie = cid
        self.consumers[cid] = consumer
        self.send(wire.reply(rid, {"ok": True}))
        queue.add_consumer(consumer)  # after the reply: consume-ok precedes the first delivery

    def _op_cancel(self, rid: int, body: dict[str, Any]) -> None:
        consumer = self.consumers.pop(int(body["id"]), None)
        if consumer is not None and consumer.queue is not None:
            consumer.queue.remove_consumer(consumer)
        self.send(wire.reply(rid, {"ok": True}))

    def _op_get(self, rid: int, body: dict[str, Any]) -> None:
        queue = self._queue(body)
        no_ack = bool(body.get("no_ack"))
        message = queue.get(no_ack)
        if message is None:
            self.send(wire.reply(rid, {"empty": True}))
            return
        self._next_delivery += 1
        delivery = self._next_delivery
        if not no_ack:
            self.unacked[delivery] = message
        self.send_pieces(
            wire.get_ok(
                rid, delivery, message.returns, queue.message_count, message.route_raw, message.header, message.body
            )
        )

    def _op_query(self, rid: int, body: dict[str, Any]) -> None:
        queue = self._queue(body)
        if body.get("touch"):
            queue.touch()
        self.send(wire.reply(rid, {"messages": queue.message_count, "consumers": queue.consumer_count}))

    def _op_applied(self, rid: int, body: dict[str, Any]) -> None:
        """Answered once this node has applied etcd up to a revision: what the asking node
        wrote is visible here too (a user it created can log in here)."""
        revision = int(body["revision"])

        async def applied() -> bool:
            try:
                await asyncio.wait_for(self.cluster.metadata.wait_applied(revision), 10.0)
            except TimeoutError:  # this node's watch is stuck: the asker stops waiting for it anyway
                return False
            return True

        task = self.cluster.spawn(applied())
        task.add_done_callback(lambda t: self.send(wire.reply(rid, {"ok": not t.cancelled() and t.result()})))

    def _op_purge(self, rid: int, body: dict[str, Any]) -> None:
        self.send(wire.reply(rid, {"count": self._queue(body).purge()}))

    def _op_delete(self, rid: int, body: dict[str, Any]) -> None:
        future = self.cluster.topology.delete_led_queue(
            str(body["vhost"]), str(body["queue"]), bool(body.get("if_unused")), bool(body.get("if_empty"))
        )

        def done(f: Any) -> None:
            exc = f.exception()
            if isinstance(exc, AMQPError):
                self.send(wire.reply(rid, {"error": [exc.reply_code, exc.explanation]}))
            elif exc is not None:
                self.send(wire.reply(rid, {"error": [541, f"internal error: {type(exc).__name__}"]}))
            else:
                count, revision = f.result()
                self.send(wire.reply(rid, {"count": count, "revision": revision}))

        future.add_done_callback(done)
