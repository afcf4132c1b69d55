"""The node: the composition root that wires broker model, store, listeners and management.

It owns no protocol logic.  Connections reach the broker model through it (``broker``,
``store``, ``access``), and shutdown closes every connection with 320 CONNECTION_FORCED
before the store is closed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import logging
import os
import platform
import ssl
import sys
import time
from array import array
from typing import TYPE_CHECKING, Any

from warrenmq import __version__, definitions
from warrenmq.amqp.errors import NotAllowed, PreconditionFailed
from warrenmq.broker.broker import Broker
from warrenmq.broker.dedup import DedupJournal
from warrenmq.broker.delay import DelayStorage
from warrenmq.broker.exchanges import Exchange
from warrenmq.broker.paging import MemoryBudget, PagedFifo, TailEntries
from warrenmq.broker.queue import Queue, QueueStore
from warrenmq.broker.stream_log import StreamLog
from warrenmq.broker.vhost import VHost
from warrenmq.config import Settings
from warrenmq.listen import listen_socket
from warrenmq.server.access import AccessControl
from warrenmq.server.alarms import ResourceMonitor
from warrenmq.server.channel import Channel
from warrenmq.server.connection import Connection
from warrenmq.server.reply_to import ReplyRegistry
from warrenmq.store.base import RecoveredQueue
from warrenmq.store.file_store import FileStore, StoreLocked
from warrenmq.store.memory import MemoryStore

if TYPE_CHECKING:
    from collections.abc import Callable

    from warrenmq.cluster.cluster import Cluster
    from warrenmq.store.base import MessageStore

log = logging.getLogger("warrenmq.node")

# Clients choose protocol semantics by the product and version they see (kombu picks
# RabbitMQ 3.3-3.x global-QoS semantics only for product "RabbitMQ" < 4.0).  WarrenMQ
# implements RabbitMQ 3.13's behaviour, so it says so; its own identity is in the other keys.
COMPATIBLE_PRODUCT = "RabbitMQ"
COMPATIBLE_VERSION = "3.13.7"

CAPABILITIES = {
    "publisher_confirms": True,
    "exchange_exchange_bindings": True,
    "basic.nack": True,
    "consumer_cancel_notify": True,
    "connection.blocked": True,
    "consumer_priorities": True,
    "authentication_failure_close": True,
    "per_consumer_qos": True,
    "direct_reply_to": True,
}


class Node:
    def __init__(self, settings: Settings, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.settings = settings
        self.loop = loop or asyncio.get_event_loop()
        self.store: MessageStore = MemoryStore(self.loop.call_soon)
        self.broker = Broker(scheduler=self.loop, storage=None)
        self.access = AccessControl(self.broker.users)
        self.replies = ReplyRegistry()
        self.connections: set[Connection] = set()
        self.servers: list[asyncio.AbstractServer] = []
        self.alarms: set[str] = set()
        self.started_at = time.time()
        # RabbitMQ's default node name: monitoring tools build /api/nodes/rabbit@<host> paths
        # (nagios' check_rabbitmq_server, _watermark, _partition) and dashboards filter on it.
        self.node_name = f"rabbit@{(platform.node() or 'localhost').split('.')[0]}"
        self.amqp_port = 0
        self.tls_port = 0
        self.management: Any = None
        self.monitor: ResourceMonitor | None = None
        self.unsampled = 0  # bytes received since the resource monitor last looked
        self.sample_every = _sample_step(self.memory_limit())
        self._stopping = False
        self._restoring = False
        self._definitions_pending = False
        self.memory_budget = MemoryBudget(self.queue_memory_budget())
        # Cluster mode (warrenmq/cluster): etcd holds the definitions, other nodes lead some
        # queues.  ``input_gate`` is asked before any client input is handled: false while
        # the node cannot be sure its membership lease is alive (it then reads nothing).
        self.cluster: Cluster | None = None
        self.input_gate: Callable[[], bool] | None = None
        self.channel_class: type[Channel] = Channel
        if settings.cluster:
            from warrenmq.cluster.cluster import Cluster
            from warrenmq.server.cluster_channel import ClusterChannel

            if settings.node_name:
                self.node_name = settings.node_name
            self.cluster = Cluster(self)
            self.replies = ReplyRegistry(self.cluster.node_name)
            self.input_gate = self.cluster.check
            self.channel_class = ClusterChannel
            self.broker.vhost_added.append(self._watch_vhost)

    # -- lifecycle ------------------------------------------------------------------------

    async def start_all(self, persistence: bool = True) -> None:
        """Open the store (recovering what it holds), then listen."""
        if persistence:
            self.open_store()
        if self.cluster is None:
            s = self.settings
            self.broker.ensure_default(s.default_user, s.default_pass, s.default_vhost)
            self._save_definitions()
        await self.start()

    def open_store(self) -> None:
        store = FileStore(
            self.settings.data_dir, self.loop, segment_size=self.settings.store_segment_size, fsync=self.settings.fsync
        )
        try:
            recovery = store.open()
        except StoreLocked as exc:
            raise RuntimeError(str(exc)) from None
        store.on_disk_full = lambda full: self.set_alarm("disk_full", full)
        self.store = store
        self._restoring = True
        self.broker.storage = self
        budget = self.memory_budget

        def paged(queue: Queue) -> PagedFifo:
            return PagedFifo(store, budget, self.settings.queue_head_limit, queue)

        self.broker.backlog_factory = paged
        for vhost in self.broker.vhosts.values():
            vhost.storage = self
            vhost.backlog_factory = paged
        if self.cluster is not None:
            # The definitions are etcd's; the cluster layer claims the recovered messages of
            # the queues this node leads or holds replicas of.
            self.cluster.recovery = dict(recovery.queues)
            self.broker.sequence = itertools.count(recovery.max_seq + 1)
            self._restoring = False
            log.info("message store opened in %.3f s", recovery.seconds)
            return
        try:
            if recovery.definitions is not None:
                definitions.import_(self.broker, recovery.definitions)
            count = 0
            for vhost in self.broker.vhosts.values():
                for queue in vhost.queues.values():
                    qid = store.queue_id(queue)
                    found = recovery.queues.get(qid) if qid is not None else None
                    if found is not None and len(found):
                        self.restore_queue(queue, found)
                        count += len(found)
        finally:
            self._restoring = False
        self.broker.sequence = itertools.count(recovery.max_seq + 1)
        log.info(
            "recovered %d messages in %d queues from %s in %.3f s",
            count,
            sum(len(v.queues) for v in self.broker.vhosts.values()),
            self.settings.data_dir,
            recovery.seconds,
        )
        if recovery.dropped_records or recovery.truncated_bytes:
            log.warning(
                "message store damage: %d damaged records skipped, %d torn bytes cut off",
                recovery.dropped_records,
                recovery.truncated_bytes,
            )

    def restore_queue(self, queue: Queue, found: RecoveredQueue) -> None:
        backlog = queue.backlog
        if isinstance(backlog, PagedFifo):
            backlog.restore(found.seqs, found.locations, found.sizes, found.returns)
            queue.ready_bytes += sum(found.sizes)
            return
        # Priority queues keep everything in memory: read it all back now.
        tail = TailEntries()
        tail.seqs, tail.locations, tail.sizes, tail.returns = found.seqs, found.locations, found.sizes, found.returns
        tail.deadlines = array("d", bytes(8 * len(found)))
        tail.persistent = bytearray(b"\x01" * len(found))
        assert isinstance(self.store, FileStore)
        queue.restore(self.store.page_in(tail, len(found), queue), self.store.written_age)

    # -- storage hooks (the broker model's Storage) -------------------------------------------

    def queue_store(self, queue: Queue) -> QueueStore:
        if self.cluster is not None:
            return self.cluster.queue_store(queue)
        return self.store.queue_store(queue)

    def delay_store(self, exchange: Exchange) -> DelayStorage | None:
        return self.store.delay_store(exchange.vhost, exchange.name, exchange.durable)

    def journal(self, kind: str, *key: str) -> DedupJournal | None:
        return self.store.journal(kind, *key)

    def stream_log(self, queue: Queue) -> StreamLog:
        return self.store.stream_log(queue)  # streams stay local, in cluster mode too

    def definitions_changed(self) -> None:
        if self.cluster is not None:
            self.cluster.access.schedule()
        if self._restoring or self._definitions_pending:
            return
        self._definitions_pending = True
        self.loop.call_soon(self._save_definitions)

    def _save_definitions(self) -> None:
        self._definitions_pending = False
        self.store.save_definitions(
            definitions.export(
                self.broker, durable_only=True, queue_ids=self.store.queue_id, exchange_ids=self.store.exchange_id
            )
        )

    # -- alarms ---------------------------------------------------------------------------------

    def set_alarm(self, name: str, on: bool) -> None:
        before = bool(self.alarms)
        if on:
            self.alarms.add(name)
        else:
            self.alarms.discard(name)
        if bool(self.alarms) != before:
            log.warning("resource alarm %s: %s", "set" if self.alarms else "cleared", name)
            for conn in list(self.connections):
                conn.set_blocked(bool(self.alarms))

    def set_memory_high_watermark(self, fraction: float | None = None, absolute: int | None = None) -> None:
        """rabbitmqctl set_vm_memory_high_watermark: a new limit, checked at once (the queues'
        memory budget stays what it was at start)."""
        if absolute is not None:
            self.settings.memory_high_watermark_absolute = absolute
        elif fraction is not None:
            self.settings.memory_high_watermark = fraction
            self.settings.memory_high_watermark_absolute = 0
        log.info("memory high watermark set to %d bytes", self.memory_limit())
        self.sample_every = _sample_step(self.memory_limit())
        if self.monitor is not None:
            self.monitor.memory_limit = self.memory_limit()
            self.monitor.sample()

    def set_disk_free_limit(self, limit: int) -> None:
        """rabbitmqctl set_disk_free_limit: a new limit, checked at once."""
        self.settings.disk_free_limit = limit
        log.info("disk free limit set to %d bytes", limit)
        if self.monitor is not None:
            self.monitor.disk_limit = limit
            self.monitor.sample()

    def total_memory(self) -> int:
        try:
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError):
            return 4 * 1024**3

    def _watch_vhost(self, vhost: VHost) -> None:
        assert self.cluster is not None
        vhost.queue_removed.append(self.cluster.topology.queue_removed)

    def freeze_input(self, frozen: bool) -> None:
        """Cluster fencing: stop (or go on) handling what clients send."""
        for conn in list(self.connections):
            conn.freeze(frozen)

    def management_port(self) -> int:
        return int(getattr(self.management, "port", 0) or 0)

    async def start(self) -> None:
        # In cluster mode the listeners serve only once the node has joined (its model then
        # holds the cluster's definitions); their ports are known before, for its record.
        serving = self.cluster is None
        server = await self.loop.create_server(
            lambda: Connection(self),
            sock=listen_socket(self.settings.host, self.settings.port),
            backlog=4096,
            start_serving=serving,
        )
        self.servers.append(server)
        address = server.sockets[0].getsockname()
        self.amqp_port = address[1]
        log.info("started TCP listener on %s:%d", _host(address[0]), address[1])
        if self.settings.tls_cert and self.settings.tls_key:
            context = self.tls_context()
            tls_server = await self.loop.create_server(
                lambda: Connection(self, tls=True),
                sock=listen_socket(self.settings.host, self.settings.tls_port),
                ssl=context,
                backlog=4096,
                start_serving=serving,
            )
            self.servers.append(tls_server)
            self.tls_port = tls_server.sockets[0].getsockname()[1]
            log.info("started TLS listener on %s:%d", _host(address[0]), self.tls_port)
        self.monitor = ResourceMonitor(
            self.loop,
            self.set_alarm,
            self.memory_limit(),
            self.settings.data_dir if isinstance(self.store, FileStore) else None,
            self.settings.disk_free_limit,
        )
        self.monitor.start()
        if self.settings.management_port > 0 or self.management_tls_wanted():
            await self.start_management()
        if self.cluster is not None:
            await self.cluster.start()
            for listener in self.servers:
                await listener.start_serving()
        log.info("Server startup complete; AMQP port %d", self.amqp_port)

    async def start_management(self) -> None:
        """The management HTTP API (warrenmq.management) in this event loop, over the Admin
        interface built here: the management layer sees nothing of the server."""
        from warrenmq.admin import Admin
        from warrenmq.management.server import serve
        from warrenmq.server.admin import NodeAdmin

        api: Admin  # checked by mypy: both implement the interface
        if self.cluster is not None:
            from warrenmq.server.admin.cluster import ClusterAdmin

            api = ClusterAdmin(self)
        else:
            api = NodeAdmin(self)
        settings = self.settings
        https = self.management_tls_wanted()
        self.management = await serve(
            api,
            settings.management_host,
            settings.management_port if settings.management_port > 0 else None,
            tls_port=settings.management_tls_port if https else None,
            ssl_context=self.tls_context(verify_clients=False) if https else None,
        )

    def tls_context(self, verify_clients: bool = True) -> ssl.SSLContext:
        """The server side of TLS: the node's certificate and key; with ``tls_verify_peer``,
        client certificates are requested and checked against ``tls_ca`` (required with
        ``tls_fail_if_no_peer_cert``), as RabbitMQ's ssl_options verify/fail_if_no_peer_cert."""
        settings = self.settings
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=settings.tls_ca or None)
        context.load_cert_chain(settings.tls_cert, settings.tls_key)
        if verify_clients and settings.tls_verify_peer:
            context.verify_mode = ssl.CERT_REQUIRED if settings.tls_fail_if_no_peer_cert else ssl.CERT_OPTIONAL
        else:
            context.verify_mode = ssl.CERT_NONE
        return context

    def management_tls_wanted(self) -> bool:
        """HTTPS for the management API: a certificate, a key and management_tls_port."""
        s = self.settings
        return bool(s.tls_cert and s.tls_key and s.management_tls_port > 0)

    async def stop(self, grace: float = 2.0) -> None:
        """Close listeners, close every connection with 320 (aborting those that have not
        answered within ``grace`` seconds), then the store."""
        if self._stopping:
            return
        self._stopping = True
        if self.monitor is not None:
            self.monitor.stop()
        for server in self.servers:
            server.close()
        if self.management is not None:
            await self.management.stop()
        for conn in list(self.connections):
            conn.close(320, "broker forced connection closure with reason 'shutdown'")
        deadline = self.loop.time() + grace
        while self.connections and self.loop.time() < deadline:
            await asyncio.sleep(0.02)
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.abort()
        if self.cluster is not None:
            await self.cluster.stop()
        if self._definitions_pending:
            self._save_definitions()
        self.store.close()
        log.info("stopped")

    # -- connections ------------------------------------------------------------------------

    def connection_opened(self, conn: Connection) -> None:
        self.connections.add(conn)

    def connection_closed(self, conn: Connection) -> None:
        self.connections.discard(conn)

    def check_node_connection_limit(self) -> None:
        """connection.open beyond ``max_connections`` (RabbitMQ's connection_max): 530, with
        RabbitMQ 3.13's text."""
        limit = self.settings.max_connections
        if limit > 0 and sum(1 for c in self.connections if c.is_open) >= limit:
            raise NotAllowed(f"connection refused: node connection limit ({limit}) is reached", 10, 40)

    def check_vhost_connection_limit(self, conn: Connection, vhost: VHost) -> None:
        """The vhost's max-connections limit (a negative limit is no limit, 0 allows none)."""
        limit = vhost.limits.get("max-connections")
        if limit is not None and limit >= 0:
            count = sum(1 for c in self.connections if c.is_open and c.vhost is vhost)
            if count >= limit:
                user = conn.user.name if conn.user else ""
                raise NotAllowed(
                    f"access to vhost '{vhost.name}' refused for user '{user}': connection limit ({limit}) is reached",
                    10,
                    40,
                )

    def check_queue_limit(self, vhost: VHost, name: str) -> None:
        """The vhost's max-queues limit, checked when a queue would be created (406)."""
        limit = vhost.limits.get("max-queues")
        if limit is not None and limit >= 0 and name not in vhost.queues and len(vhost.queues) >= limit:
            raise PreconditionFailed(
                f"cannot declare queue '{name}': queue limit in vhost '{vhost.name}' ({limit}) is reached"
            )

    def queue_declared(self, vhost: VHost, queue: Queue) -> None:
        """Hook for policies and metrics (a declared or redeclared queue)."""

    def exchange_declared(self, vhost: VHost, exchange: Exchange) -> None:
        """Hook for policies (a declared or redeclared exchange)."""

    @staticmethod
    def is_loopback(address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.split("%")[0])
        except ValueError:
            return address in ("", "localhost")
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return ip.is_loopback

    # -- what clients see -----------------------------------------------------------------

    def server_properties(self) -> dict[str, Any]:
        return {
            "capabilities": dict(CAPABILITIES),
            "cluster_name": self.node_name,
            "copyright": "Copyright (c) WarrenMQ developers",
            "information": f"WarrenMQ {__version__}, an AMQP 0-9-1 broker compatible with RabbitMQ",
            "platform": f"Python {sys.version.split()[0]}",
            "product": COMPATIBLE_PRODUCT,
            "version": COMPATIBLE_VERSION,
            "warrenmq_version": __version__,
        }

    def sample_resources(self) -> None:
        """Much data arrived since the last look: check the alarms now, not at the next tick."""
        self.unsampled = 0
        if self.monitor is not None:
            self.monitor.sample()

    def queue_memory_budget(self) -> int:
        """Bytes of message bodies queues may keep in memory before paging to disk."""
        if self.settings.queue_memory_budget:
            return self.settings.queue_memory_budget
        return max(64 * 1024 * 1024, self.memory_limit() // 4)

    def memory_limit(self) -> int:
        """The memory high watermark in bytes (relative to RAM, or absolute)."""
        if self.settings.memory_high_watermark_absolute:
            return self.settings.memory_high_watermark_absolute
        return int(self.total_memory() * self.settings.memory_high_watermark)

    def alarm_reason(self) -> str:
        """connection.blocked's reason as RabbitMQ words it: "low on memory", "low on disk",
        "low on disk & memory" (a full disk is a disk alarm too)."""
        kinds = sorted({"disk" if name.startswith("disk") else name for name in self.alarms})
        return "low on " + " & ".join(kinds) if kinds else "low on resources"


def _sample_step(memory_limit: int) -> int:
    """Bytes received node-wide between memory checks (besides the monitor's timer): so
    that memory overshoots the watermark by about 1/16 of it (1 to 16 MiB) at most before the
    alarm, however many publishers there are."""
    return max(1024 * 1024, min(16 * 1024 * 1024, memory_limit // 16))


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address
