"""The cluster layer as the node sees it: joining, links to the other nodes, and the
operations a channel needs answered by another node or by etcd.

``Cluster`` composes the parts (membership, metadata with topology, access and elections,
replication, links and sessions) and is the one object ``server/`` holds.  Operations that
wait (a declare written to etcd, a basic.get served by another node) return futures; the
channel suspends its connection's input until they resolve.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from typing import TYPE_CHECKING, Any

from warrenmq.amqp.errors import AMQPError, InternalError, NotFound, error_for
from warrenmq.amqp.values import FieldTable
from warrenmq.broker.consumer import Consumer
from warrenmq.broker.message import Message
from warrenmq.broker.queue import Queue
from warrenmq.broker.queue_args import queue_display
from warrenmq.cluster import keys as records
from warrenmq.cluster import wire
from warrenmq.cluster.access_sync import AccessSync
from warrenmq.cluster.election import Elections
from warrenmq.cluster.etcd import Change, ClusterAddress, Etcd, EtcdUnavailable
from warrenmq.cluster.keys import Keys
from warrenmq.cluster.link import LinkProtocol
from warrenmq.cluster.membership import Membership, NodeInfo
from warrenmq.cluster.metadata import Metadata
from warrenmq.cluster.peer_link import LinkDown, PeerLink
from warrenmq.cluster.remote_queue import RemoteQueue
from warrenmq.cluster.replication import Replication
from warrenmq.cluster.serving import PeerSession
from warrenmq.cluster.topology import Topology
from warrenmq.listen import listen_socket
from warrenmq.server import reply_to
from warrenmq.store.base import RecoveredQueue
from warrenmq.store.memory import NullQueueStore

if TYPE_CHECKING:
    from warrenmq.server.node import Node

log = logging.getLogger("warrenmq.cluster")

REPLY_KEY = b"\x00reply:"  # a PUBLISH "queue" that is a direct reply-to address on the other node
STATS_INTERVAL = 2.0  # s between reports of a node's queues to the others
PROPAGATION_WAIT = 2.0  # s a definitions write waits at most for the other nodes to apply it
_DIAL_BACKOFF = (0.05, 1.0)


class Cluster:
    def __init__(self, node: Node) -> None:
        settings = node.settings
        self.node = node
        self.loop = node.loop
        self.address = ClusterAddress.parse(settings.cluster)
        self.node_name = settings.node_name or node.node_name
        self.keys = Keys(self.address.name)
        self.etcd = Etcd(self.address.endpoints)
        self.topology = Topology(self)
        self.replication = Replication(self)
        self.elections = Elections(self)
        self.access = AccessSync(self)
        self.metadata = Metadata(self)
        self.links: dict[str, PeerLink] = {}
        self.sessions: dict[str, PeerSession] = {}
        self.protocols: set[LinkProtocol] = set()
        self.nodes: dict[str, NodeInfo] = {}
        self.members: set[str] = set()
        self.connections: dict[str, Any] = {}  # cluster connection id -> Connection (exclusive owners)
        self.recovery: dict[int, RecoveredQueue] = {}
        self._next_connection = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._dialing: dict[str, asyncio.Task[None]] = {}
        self._server: asyncio.AbstractServer | None = None
        self.me = NodeInfo(self.node_name, "", 0, 0, 0, 0, time.time())
        self.membership = Membership(
            self.etcd, self.keys, self.me, settings.cluster_lease_ttl, self.loop, self._freeze, self._lease_lost
        )
        self.stopping = False

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        settings = self.node.settings
        port = settings.cluster_port
        if port < 0:
            port = settings.port + 20000 if settings.port else 0
        self._server = await self.loop.create_server(
            lambda: self._accept(), sock=listen_socket(settings.host, port), backlog=256
        )
        self.me.link_port = self._server.sockets[0].getsockname()[1]
        self.me.link_host = settings.cluster_advertise or self._advertised_host()
        self.me.amqp_port = self.node.amqp_port
        self.me.management_port = self.node.management_port()
        try:
            await self.membership.join()
            await self.metadata.load()
        except EtcdUnavailable as exc:
            raise RuntimeError(f"cannot join the cluster: etcd unreachable ({exc})") from None
        self.topology.ready = True
        broker = self.node.broker
        if not broker.vhosts or not broker.users.users:
            s = self.node.settings
            broker.ensure_default(s.default_user, s.default_pass, s.default_vhost)
            self.access.schedule()
            await self.access.settled()
        self.topology.replace_all()
        self._drop_unclaimed()
        self.spawn(self._report_stats())
        log.info(
            "joined cluster '%s' as %s (link %s:%d, %d nodes running)",
            self.address.name,
            self.node_name,
            self.me.link_host,
            self.me.link_port,
            len(self.nodes),
        )

    def _advertised_host(self) -> str:
        if all(h in ("127.0.0.1", "localhost", "::1") for h, _ in self.address.endpoints):
            return "127.0.0.1"
        host = self.node.settings.host
        return host if host and host not in ("0.0.0.0", "::") else socket.gethostname()

    async def stop(self) -> None:
        self.stopping = True
        self.metadata.stop()
        self.elections.cancel_all()
        for task in list(self._tasks):
            task.cancel()
        if self._server is not None:
            self._server.close()
        for protocol in list(self.protocols):
            protocol.close()
        await self.membership.leave()
        await self.etcd.close()

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and not isinstance(exc, (EtcdUnavailable, LinkDown)):
            log.error("cluster task failed: %r", exc, exc_info=exc)

    # -- fencing ----------------------------------------------------------------------------

    def check(self) -> bool:
        return self.membership.check()

    def _freeze(self, frozen: bool) -> None:
        self.node.freeze_input(frozen)
        if not frozen:
            for protocol in list(self.protocols):
                protocol.thaw()

    async def _lease_lost(self) -> None:
        self.elections.cancel_all()
        self.topology.step_down_all()

    # -- nodes and links --------------------------------------------------------------------

    def is_live(self, node: str | None) -> bool:
        return node is not None and node in self.nodes

    def live_nodes(self) -> list[str]:
        return sorted(self.nodes)

    def node_changed(self, name: str, change: Change) -> None:
        if change.value is None:
            info = self.nodes.pop(name, None)
            if info is not None:
                log.warning("node %s left the cluster", name)
            link = self.links.get(name)
            if link is not None and link.protocol is not None:
                link.protocol.close()
            for key in list(self.topology.queues):
                if self.topology.leader_of(key) == name:
                    self.topology.place(key)
            return
        info = NodeInfo.from_record(records.load(change.value))
        old = self.nodes.get(name)
        self.nodes[name] = info
        self.members.add(name)
        if name == self.node_name:
            return
        if old is None or old.incarnation != info.incarnation:
            link = self.links.get(name)
            if old is not None and link is not None and link.protocol is not None:
                link.protocol.close()  # it restarted: what that link carried is gone with it
            self._dial(name)
            for key in list(self.topology.queues):
                if self.topology.leader_of(key) == name:
                    self.topology.place(key)

    def member_changed(self, name: str, change: Change) -> None:
        if change.value is None:
            self.members.discard(name)
        else:
            self.members.add(name)

    def _dial(self, name: str) -> None:
        if name in self._dialing and not self._dialing[name].done():
            return
        self._dialing[name] = self.spawn(self._dial_loop(name))

    async def _dial_loop(self, name: str) -> None:
        delay = _DIAL_BACKOFF[0]
        while not self.stopping:
            info = self.nodes.get(name)
            if info is None:
                return
            link = self.links.get(name)
            if link is None:
                link = self.links[name] = PeerLink(name, self.loop, self._link_event)
                link.replication_handler = lambda kind, payload, n=name: self.replication.on_leader_frame(
                    n, kind, payload
                )
            if link.up:
                return
            try:
                _, protocol = await asyncio.wait_for(
                    self.loop.create_connection(
                        lambda link=link: LinkProtocol(self.loop, self.membership, link),  # type: ignore[misc]
                        info.link_host,
                        info.link_port,
                    ),
                    3.0,
                )
            except (TimeoutError, OSError):
                await asyncio.sleep(delay)
                delay = min(delay * 2, _DIAL_BACKOFF[1])
                continue
            assert isinstance(protocol, LinkProtocol)
            self.protocols.add(protocol)
            protocol.send(wire.control(wire.HELLO, {"node": self.node_name, "incarnation": self.me.incarnation}))
            link.attach(protocol)
            return

    def _accept(self) -> LinkProtocol:
        protocol = LinkProtocol(self.loop, self.membership)
        protocol.handler = PeerSession(self, protocol)
        self.protocols.add(protocol)
        return protocol

    def _link_event(self, link: PeerLink, event: str) -> None:
        if event == "up":
            self.replication.link_up(link)
            self._reattach(link.node)
            return
        if link.protocol is None:
            self.protocols = {p for p in self.protocols if not p.closed}
        self.replication.link_down(link)
        for key in list(self.topology.queues):
            if self.topology.leader_of(key) != link.node:
                continue
            remote = self._remote(key)
            if remote is not None and self.topology.queues[key].type != "quorum":
                remote.cancel_local_consumers()  # its node is down: as RabbitMQ, consumers are cancelled
        if not self.stopping and link.node in self.nodes:
            self._dial(link.node)

    def _remote(self, key: bytes) -> RemoteQueue | None:
        vhost_name, name = wire.split_key(key)
        vhost = self.node.broker.vhosts.get(vhost_name)
        queue = vhost.queues.get(name) if vhost is not None else None
        return queue if isinstance(queue, RemoteQueue) else None

    def _reattach(self, node: str) -> None:
        for key in list(self.topology.queues):
            if self.topology.leader_of(key) == node:
                remote = self._remote(key)
                if remote is not None:
                    self.attach_remote(remote, node, force=True)

    def session_opened(self, session: PeerSession) -> None:
        self.sessions[session.peer] = session
        self.replication.session_opened(session)

    def session_closed(self, session: PeerSession) -> None:
        if self.sessions.get(session.peer) is session:
            del self.sessions[session.peer]
        self.protocols.discard(session.protocol)

    def session_of(self, node: str) -> PeerSession | None:
        return self.sessions.get(node)

    # -- queues led elsewhere ----------------------------------------------------------------

    def attach_remote(self, remote: RemoteQueue, leader: str | None, force: bool = False) -> None:
        """Point a RemoteQueue at its leader's link; a quorum queue's consumers follow it."""
        link = self.links.get(leader) if leader is not None and leader != self.node_name else None
        if link is not None and not link.up:
            link = None
        changed = remote.leader != leader or remote.link is not link
        remote.leader = leader
        if not changed and not force:
            return
        old = remote.link
        if old is not None and old is not link:
            old.forget_queue(remote)
        remote.link = link
        if link is not None:
            remote.flush_held()
        if link is None or not remote.local_consumers:
            return
        if not remote.is_quorum and not force:
            return
        for consumer in list(remote.local_consumers):
            if any(c is consumer for c, _ in link.consumers.values()):
                continue
            self._register(link, remote, consumer).add_done_callback(self._on_registered(remote, consumer))

    @staticmethod
    def _on_registered(remote: RemoteQueue, consumer: Consumer) -> Any:
        """A consumer registered again at a new leader; refused there, it is cancelled."""

        def done(future: asyncio.Future[Any]) -> None:
            failed = future.cancelled() or future.exception() is not None
            if failed and consumer in remote.local_consumers:
                remote.forget_consumer(consumer)
                consumer.target.consumer_cancelled(consumer)

        return done

    def detach_remote(self, remote: RemoteQueue) -> None:
        if remote.link is not None:
            remote.link.forget_queue(remote)
        remote.link = None

    def _register(self, link: PeerLink, remote: RemoteQueue, consumer: Consumer) -> asyncio.Future[Any]:
        cid = link.consumer_id()
        link.consumers[cid] = (consumer, remote)
        future = link.request(
            {
                "op": "consume",
                "id": cid,
                "vhost": remote.vhost,
                "queue": remote.name,
                "tag": consumer.tag,
                "no_ack": consumer.no_ack,
                "exclusive": consumer.exclusive,
                "prefetch": consumer.prefetch,
                "priority": consumer.priority,
                "arguments": records.table_text(FieldTable.of(consumer.arguments)),
            }
        )
        result: asyncio.Future[Any] = self.loop.create_future()

        def done(f: asyncio.Future[dict[str, Any]]) -> None:
            error = _error(f, remote)
            if error is not None:
                link.consumers.pop(cid, None)
                result.set_exception(error)
            else:
                result.set_result(None)

        future.add_done_callback(done)
        return result

    def forward_reply(self, message: Message) -> None:
        """A direct reply-to reply for a channel on another node."""
        node = reply_to.node_of(message.routing_key)
        link = self.links.get(node) if node is not None else None
        if link is not None and link.up:
            link.publish(REPLY_KEY + message.routing_key.encode(), message)

    def local_queue(self, key: bytes) -> Queue | None:
        vhost_name, name = wire.split_key(key)
        vhost = self.node.broker.vhosts.get(vhost_name)
        queue = vhost.queues.get(name) if vhost is not None else None
        return None if queue is None or isinstance(queue, RemoteQueue) or queue.deleted else queue

    def require_local_queue(self, vhost: str, name: str) -> Queue:
        queue = self.local_queue(wire.queue_key(vhost, name))
        if queue is None:
            raise NotFound(f"no {queue_display(name, vhost)}")
        return queue

    # -- storage ------------------------------------------------------------------------------

    def queue_store(self, queue: Queue) -> Any:
        prepared = self.topology.prepared_leader_log(queue)
        if prepared is not None:
            return prepared
        return self.node.store.queue_store(queue)

    def store_handle(self, vhost: str, name: str) -> Any:
        handle = getattr(self.node.store, "handle", None)
        return handle(vhost, name) if handle is not None else NullQueueStore()

    def take_recovered(self, vhost: str, name: str) -> RecoveredQueue | None:
        queue_id = getattr(self.node.store, "queue_id_for", None)
        qid = queue_id(vhost, name) if queue_id is not None else None
        return self.recovery.pop(qid, None) if qid is not None else None

    def _drop_unclaimed(self) -> None:
        """Recovered messages of queues that no longer exist in the cluster."""
        if not self.recovery:
            return
        names = getattr(self.node.store, "queue_names", None)
        if names is None:
            return
        for qid, (vhost, name) in list(names().items()):
            if qid in self.recovery and wire.queue_key(vhost, name) not in self.topology.queues:
                self.recovery.pop(qid)
                self.store_handle(vhost, name).delete()
                log.info("dropped the stored messages of queue '%s' in vhost '%s': gone from the cluster", name, vhost)

    # -- connections ----------------------------------------------------------------------------

    def connection_id(self, conn: Any) -> str:
        self._next_connection += 1
        cid = f"{self.me.incarnation}.{self._next_connection}"
        self.connections[cid] = conn
        return cid

    def connection_closed(self, cid: str) -> None:
        self.connections.pop(cid, None)

    # -- what channels ask ----------------------------------------------------------------------

    def consume(self, remote: RemoteQueue, consumer: Consumer) -> asyncio.Future[Any]:
        link = remote.link
        if (link is None or not link.up) and remote.is_quorum and remote.key in self.topology.queues:
            # No leader right now (a takeover under way): the consumer is registered when
            # one is elected, as RabbitMQ's quorum queues keep their consumers.
            remote.add_consumer(consumer)
            return self._done(None)
        if link is None or not link.up:
            return self._failed(_down(remote))
        future = self._register(link, remote, consumer)
        future.add_done_callback(lambda f: None if f.exception() else remote.add_consumer(consumer))
        return future

    def cancel(self, remote: RemoteQueue, consumer: Consumer) -> asyncio.Future[Any]:
        """basic.cancel: cancel-ok only once the leader stopped delivering to it."""
        remote.forget_consumer(consumer)
        link = remote.link
        cancelled = link.cancel(consumer) if link is not None and link.up else None
        return self._done(None) if cancelled is None else self._mapped(cancelled, remote, lambda body: None)

    def get(self, remote: RemoteQueue, no_ack: bool) -> asyncio.Future[Any]:
        link = remote.link
        if link is None or not link.up:
            return self._failed(_down(remote))
        request = link.request({"op": "get", "vhost": remote.vhost, "queue": remote.name, "no_ack": no_ack})

        def result(body: dict[str, Any]) -> Any:
            message = body.get("message")
            if message is None:
                return None
            message.queue = remote
            return message, int(body.get("count", 0))

        return self._mapped(request, remote, result)

    def query(self, remote: RemoteQueue, touch: bool = False) -> asyncio.Future[Any]:
        link = remote.link
        if (link is None or not link.up) and remote.is_quorum:
            return self._done((remote.remote_ready, remote.remote_consumers))  # its last report
        if link is None or not link.up:
            return self._failed(_down(remote))
        request = link.request({"op": "query", "vhost": remote.vhost, "queue": remote.name, "touch": touch})
        return self._mapped(request, remote, lambda body: (int(body["messages"]), int(body["consumers"])))

    def purge(self, remote: RemoteQueue) -> asyncio.Future[Any]:
        link = remote.link
        if link is None or not link.up:
            return self._failed(_down(remote))
        request = link.request({"op": "purge", "vhost": remote.vhost, "queue": remote.name})
        return self._mapped(request, remote, lambda body: int(body["count"]))

    def delete_queue(self, queue: Queue, if_unused: bool, if_empty: bool) -> asyncio.Future[Any]:
        """queue.delete: at its leader; resolves to the count once this node applied it."""
        if not isinstance(queue, RemoteQueue):
            inner = self.topology.delete_led_queue(queue.vhost, queue.name, if_unused, if_empty)
        else:
            link = queue.link
            if link is None or not link.up:
                record = self.topology.queues.get(wire.queue_key(queue.vhost, queue.name))
                if record is None:
                    return self._done(0)
                inner = self.loop.create_future()
                task = self.spawn(self.topology.delete_record(record))
                task.add_done_callback(
                    lambda t: (
                        inner.set_exception(t.exception())  # type: ignore[arg-type]
                        if t.exception()
                        else inner.set_result((0, t.result()))
                    )
                )
            else:
                request = link.request(
                    {
                        "op": "delete",
                        "vhost": queue.vhost,
                        "queue": queue.name,
                        "if_unused": if_unused,
                        "if_empty": if_empty,
                    }
                )
                inner = self._mapped(request, queue, lambda body: (int(body["count"]), int(body["revision"])))
        return self._then_applied(inner)

    def _then_applied(self, inner: asyncio.Future[Any]) -> asyncio.Future[Any]:
        """(count, revision) -> count, once the watch applied the revision."""

        async def wait() -> int:
            count, revision = await inner
            if revision:
                await self.propagated(revision)
            return int(count)

        return self.spawn(wait())

    def write(self, coro: Any) -> asyncio.Future[Any]:
        """A definitions write; resolves once this node applied it (to the revision written,
        0 when the record existed already, after catching up with etcd)."""

        async def run() -> int:
            try:
                revision = int(await coro)
            except EtcdUnavailable as exc:
                raise InternalError(f"cluster metadata store unavailable: {exc}") from None
            if revision:
                await self.propagated(revision)
            else:
                await self.catch_up()
            return revision

        return self.spawn(run())

    async def propagated(self, revision: int) -> None:
        """Until this node and every other running one have applied ``revision``: as in
        RabbitMQ, a declare-ok means a publish on any node finds what was declared (a node
        that does not answer in time is slow or leaving: not worth a client's wait)."""
        await self.metadata.wait_applied(revision)
        await self.applied_everywhere(revision, PROPAGATION_WAIT)

    async def applied_everywhere(self, revision: int, timeout: float) -> None:
        """Wait until every node this one has a link up to has applied etcd up to ``revision``
        (what this node wrote is then visible on all of them), or ``timeout`` passed."""
        requests = [link.request({"op": "applied", "revision": revision}) for link in self.links.values() if link.up]
        for request in requests:
            request.add_done_callback(_ignore_result)  # a node that answers late, or never, is not waited for
        if requests:
            await asyncio.wait(requests, timeout=timeout)

    async def catch_up(self) -> None:
        """Apply everything etcd has now (after a write that found a record already there)."""
        revision, _ = await self.etcd.get_prefix(self.keys.incarnation)
        await self.metadata.wait_applied(revision)

    def _mapped(self, request: asyncio.Future[Any], remote: Queue, convert: Any) -> asyncio.Future[Any]:
        result: asyncio.Future[Any] = self.loop.create_future()

        def done(f: asyncio.Future[Any]) -> None:
            error = _error(f, remote)
            if error is not None:
                result.set_exception(error)
                return
            try:
                result.set_result(convert(f.result()))
            except Exception as exc:  # a malformed reply
                result.set_exception(InternalError(f"bad reply from the queue's node: {exc}"))

        request.add_done_callback(done)
        return result

    def _failed(self, error: BaseException) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = self.loop.create_future()
        future.set_exception(error)
        return future

    def _done(self, value: Any) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = self.loop.create_future()
        future.set_result(value)
        return future

    # -- statistics for the management API ------------------------------------------------------

    async def _report_stats(self) -> None:
        while True:
            await asyncio.sleep(STATS_INTERVAL)
            rows = []
            for key in self.topology.queues:
                queue = self.local_queue(key)
                if queue is None:
                    continue
                s = queue.stats
                rows.append(
                    [
                        queue.vhost,
                        queue.name,
                        queue.message_count,
                        queue.unacked,
                        queue.consumer_count,
                        queue.ready_bytes,
                        s.publish,
                        s.deliver,
                        s.deliver_no_ack,
                        s.ack,
                        s.get,
                        s.redeliver,
                    ]
                )
            frame = wire.control(wire.STATS, {"queues": rows})
            for link in self.links.values():
                if link.up:
                    link.send(frame)

    def on_stats(self, peer: str, body: dict[str, Any]) -> None:
        names = ("publish", "deliver", "deliver_no_ack", "ack", "get", "redeliver")
        for row in body.get("queues", []):
            remote = self._remote(wire.queue_key(str(row[0]), str(row[1])))
            if remote is None or remote.leader != peer:
                continue
            remote.remote_ready, remote.remote_unacked, remote.remote_consumers, remote.remote_ready_bytes = (
                int(row[2]),
                int(row[3]),
                int(row[4]),
                int(row[5]),
            )
            remote.remote_stats = dict(zip(names, (int(v) for v in row[6:12]), strict=False))


def _ignore_result(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _down(queue: Queue) -> AMQPError:
    return NotFound(
        f"home node of {queue_display(queue.name, queue.vhost)} is down or inaccessible"
        if not queue.is_quorum
        else f"{queue_display(queue.name, queue.vhost)} has no leader available"
    )


def _error(future: asyncio.Future[Any], queue: Queue) -> BaseException | None:
    if future.cancelled():
        return _down(queue)
    exc = future.exception()
    if isinstance(exc, LinkDown):
        return _down(queue)
    if exc is not None:
        return exc
    body = future.result()
    if isinstance(body, dict) and "error" in body:
        code, text = body["error"]
        return error_for(int(code), str(text))
    return None
