"""The management interface: what the HTTP API and the CLI may know and do, and no more.

``Admin`` lists every operation the management HTTP API (warrenmq/management) needs; the
node implements it in warrenmq/server/admin.py, the only place that reaches into broker and
server internals for management.  Everything crossing this boundary is a plain snapshot
(the dataclasses below) or a plain value: callers never hold a live broker object.

Operations that a RabbitMQ node performs "as" a user (declare, delete, bind, publish, get,
purge) take ``as_user``: the user's permissions are then checked as AMQP would check them
(configure / write / read), and a refusal raises ``AccessRefused``.  ``None`` skips the
checks.  Failures raise ``AdminError`` subclasses whose ``reason`` is RabbitMQ's wording
and ``code`` the AMQP reply code, when there is one.

Counters are cumulative integers; rates are the caller's business (sampled on a timer).
This module is standard-library only.

In cluster mode a node's definitions live in the cluster's coordination store (etcd) and some
of its queues on other nodes.  Changes and answers then have to be waited for: the HTTP API
awaits the ``*_async`` variants of the operations that change or read through the cluster,
and ``settled()`` after changing vhosts, users, permissions, policies or limits.  On a single
node the variants are the synchronous operations, done at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

# -- errors -------------------------------------------------------------------------------


class AdminError(Exception):
    """An operation refused; ``reason`` is the explanation, ``code`` the AMQP reply code (or 0)."""

    def __init__(self, reason: str, code: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class NotFound(AdminError):
    """The object (or its vhost) does not exist."""


class BadRequest(AdminError):
    """The request is invalid or its preconditions fail (RabbitMQ's 400)."""


class AccessRefused(AdminError):
    """The acting user may not do this."""


class LoginFailed(AdminError):
    """Wrong user name or password, or a user restricted to loopback logging in remotely."""


class Unavailable(AdminError):
    """Not possible now: the cluster's coordination store (etcd), or the node a queue lives on,
    is out of reach, or this node cannot be sure it is still a member (RabbitMQ's 503)."""


# -- snapshots ---------------------------------------------------------------------------

Counters = dict[str, int]  # message_stats: cumulative counts by RabbitMQ's names


@dataclass
class Listener:
    protocol: str  # "amqp", "amqp/ssl", "http", "prometheus"
    ip_address: str
    port: int


@dataclass
class NodeInfo:
    name: str
    version: str  # WarrenMQ's own version
    compatible_version: str  # the RabbitMQ version WarrenMQ presents itself as
    python_version: str
    os_pid: int
    started_at: float  # epoch seconds
    uptime_ms: int
    mem_used: int
    mem_limit: int
    mem_alarm: bool
    disk_free: int
    disk_free_limit: int
    disk_free_alarm: bool
    fd_used: int
    fd_total: int
    sockets_used: int
    processors: int
    data_dir: str
    config_files: list[str]
    listeners: list[Listener]
    exchange_types: list[str]
    auth_mechanisms: list[str]
    tls_certificate: str = ""  # the certificate file the TLS listeners present ("": none)
    processes: int = 1  # what RabbitMQ counts as Erlang processes: tasks and connections here


@dataclass
class Totals:
    connections: int = 0
    channels: int = 0
    exchanges: int = 0
    queues: int = 0
    consumers: int = 0
    messages: int = 0
    messages_ready: int = 0
    messages_unacknowledged: int = 0


@dataclass
class Overview:
    node: NodeInfo
    totals: Totals
    message_stats: Counters
    vhosts: list[str]


@dataclass
class ConnectionInfo:
    name: str
    vhost: str
    user: str
    state: str  # running, blocked, blocking, closing, starting
    protocol: str
    auth_mechanism: str
    peer_host: str
    peer_port: int
    host: str
    port: int
    ssl: bool
    channels: int
    channel_max: int
    frame_max: int
    timeout: int  # negotiated heartbeat, seconds
    client_properties: dict[str, Any]
    connected_at: int  # epoch milliseconds
    recv_oct: int
    send_oct: int
    recv_cnt: int
    send_cnt: int
    send_pend: int
    user_provided_name: str | None


@dataclass
class ChannelInfo:
    name: str  # "<connection name> (<number>)"
    number: int
    connection_name: str
    vhost: str
    user: str
    peer_host: str
    peer_port: int
    state: str
    consumer_count: int
    messages_unacknowledged: int
    messages_unconfirmed: int
    messages_uncommitted: int
    acks_uncommitted: int
    prefetch_count: int
    global_prefetch_count: int
    confirm: bool
    transactional: bool
    message_stats: Counters


@dataclass
class ConsumerInfo:
    consumer_tag: str
    queue: str
    vhost: str
    channel_name: str
    channel_number: int
    connection_name: str
    peer_host: str
    peer_port: int
    user: str
    ack_required: bool
    exclusive: bool
    prefetch_count: int
    arguments: dict[str, Any]
    active: bool
    activity_status: str  # up, single_active, waiting


@dataclass
class ExchangeInfo:
    name: str
    vhost: str
    type: str
    durable: bool
    auto_delete: bool
    internal: bool
    arguments: dict[str, Any]
    policy: str | None
    message_stats: Counters
    messages_delayed: int | None = None  # held by an x-delayed-message exchange (None: another type)


@dataclass
class QueueInfo:
    name: str
    vhost: str
    type: str  # classic, quorum
    durable: bool
    auto_delete: bool
    exclusive: bool
    owner: str | None  # the owning connection's name, for an exclusive queue
    arguments: dict[str, Any]
    policy: str | None
    effective_policy_definition: dict[str, Any]
    state: str
    messages_ready: int
    messages_unacknowledged: int
    messages_paged_out: int
    message_bytes_ready: int
    message_bytes_unacknowledged: int
    consumers: int
    active_consumers: int
    exclusive_consumer_tag: str | None
    single_active_consumer_tag: str | None
    memory: int
    idle_since: float | None  # epoch seconds, None while in use
    message_stats: Counters
    messages_delayed: int = 0  # requeued, waiting out x-delay-on-requeue

    # Where it lives: the node holding it (in a cluster, its leader; "" for "this node"), and
    # for a quorum queue its leader, its members and those of them that are running.
    node: str = ""
    leader: str = ""
    members: list[str] = field(default_factory=list)
    online: list[str] = field(default_factory=list)

    @property
    def messages(self) -> int:
        return self.messages_ready + self.messages_unacknowledged

    @property
    def message_bytes(self) -> int:
        return self.message_bytes_ready + self.message_bytes_unacknowledged


@dataclass
class BindingInfo:
    source: str
    vhost: str
    destination: str
    destination_type: str  # queue, exchange
    routing_key: str
    arguments: dict[str, Any]


@dataclass
class VHostInfo:
    name: str
    description: str
    tags: list[str]
    limits: dict[str, int]
    messages_ready: int
    messages_unacknowledged: int
    recv_oct: int
    send_oct: int
    message_stats: Counters

    @property
    def messages(self) -> int:
        return self.messages_ready + self.messages_unacknowledged


@dataclass
class UserInfo:
    name: str
    password_hash: str
    hashing_algorithm: str
    tags: list[str]
    limits: dict[str, Any] = field(default_factory=dict)


@dataclass
class PermissionInfo:
    user: str
    vhost: str
    configure: str
    write: str
    read: str


@dataclass
class TopicPermissionInfo:
    user: str
    vhost: str
    exchange: str
    write: str
    read: str


@dataclass
class PolicyInfo:
    vhost: str
    name: str
    pattern: str
    apply_to: str
    definition: dict[str, Any]
    priority: int


@dataclass
class GotMessage:
    """One message taken by ``get_messages``."""

    payload: bytes
    redelivered: bool
    exchange: str
    routing_key: str
    message_count: int  # ready messages left in the queue after this one
    properties: dict[str, Any]  # set properties only, headers as plain values


@dataclass
class Alarm:
    resource: str  # "memory", "disk space", "file descriptors"
    node: str


@dataclass
class ClusterMember:
    """A node that joined the cluster; what it advertised while it runs."""

    name: str
    running: bool  # holds a live membership (its lease in etcd)
    host: str = ""  # where its listeners are
    amqp_port: int = 0
    management_port: int = 0
    link_port: int = 0  # the node-to-node link
    started_at: float = 0.0  # epoch seconds
    incarnation: int = 0  # counts the cluster's node starts: a restarted node has a new one


@dataclass
class ClusterInfo:
    name: str  # the cluster's name
    node: str  # this node's
    members: list[ClusterMember]  # every node that ever joined, by name
    etcd_down_since: float | None  # epoch seconds since etcd is out of this node's reach
    frozen: bool  # this node cannot be sure its membership is alive: it serves nobody


ACK_MODES = ("ack_requeue_true", "ack_requeue_false", "reject_requeue_true", "reject_requeue_false")


# -- the interface -----------------------------------------------------------------------


class Admin(Protocol):
    # identity, health, login
    def node(self) -> NodeInfo: ...

    def overview(self) -> Overview: ...

    def alarms(self) -> list[Alarm]: ...

    def set_memory_high_watermark(self, fraction: float | None = None, absolute: int | None = None) -> None:
        """rabbitmqctl set_vm_memory_high_watermark (a fraction of RAM, or bytes)."""
        ...

    def set_disk_free_limit(self, limit: int | None = None, mem_relative: float | None = None) -> None:
        """rabbitmqctl set_disk_free_limit (bytes, or a multiple of RAM)."""
        ...

    def authenticate(self, username: str, password: str, remote_address: str) -> UserInfo: ...

    def user_vhosts(self, username: str) -> list[str]:
        """The vhosts the user has permissions in (can log in to)."""
        ...

    # live objects
    def connections(self, vhost: str | None = None) -> list[ConnectionInfo]: ...

    def connection(self, name: str) -> ConnectionInfo: ...

    def close_connection(self, name: str, reason: str) -> None: ...

    def channels(self, vhost: str | None = None, connection: str | None = None) -> list[ChannelInfo]: ...

    def channel(self, name: str) -> ChannelInfo: ...

    def consumers(self, vhost: str | None = None) -> list[ConsumerInfo]: ...

    # topology
    def exchanges(self, vhost: str | None = None) -> list[ExchangeInfo]: ...

    def exchange(self, vhost: str, name: str) -> ExchangeInfo: ...

    def queues(self, vhost: str | None = None) -> list[QueueInfo]: ...

    def queue(self, vhost: str, name: str) -> QueueInfo: ...

    def queue_names(self, vhost: str | None = None) -> list[tuple[str, str]]:
        """(vhost, name) of every queue, with no snapshot taken: a page is chosen from these."""
        ...

    def queues_named(self, names: list[tuple[str, str]]) -> list[QueueInfo]:
        """Snapshots of these queues, in this order; those gone are left out."""
        ...

    def bindings(self, vhost: str | None = None) -> list[BindingInfo]:
        """Every binding, the default exchange's implicit ones included (as RabbitMQ lists them)."""
        ...

    # messages
    def publish(
        self,
        vhost: str,
        exchange: str,
        routing_key: str,
        payload: bytes,
        properties: dict[str, Any],
        as_user: str | None = None,
    ) -> bool:
        """True when routed to at least one queue."""
        ...

    def move_messages(self, vhost: str, queue: str, destination: str, count: int, as_user: str | None = None) -> int:
        """Move up to ``count`` ready messages from the head of ``queue`` to the back of
        ``destination`` (same vhost), each published there before it leaves ``queue``; the
        number moved (fewer when ``queue`` runs out or ``destination`` refuses one)."""
        ...

    def peek_messages(self, vhost: str, queue: str, count: int, as_user: str | None = None) -> list[GotMessage]:
        """The first ``count`` ready messages, left where they are (nothing consumed,
        redelivered or reordered); ``message_count`` is the queue's ready count."""
        ...

    # access control
    def vhosts(self) -> list[VHostInfo]: ...

    def vhost(self, name: str) -> VHostInfo: ...

    def add_vhost(
        self, name: str, description: str | None = None, tags: list[str] | None = None, as_user: str | None = None
    ) -> bool:
        """True when created.  ``as_user`` (the creator) is granted full permissions on a new vhost;
        a description or tags of None leave an existing vhost's as they are."""
        ...

    def delete_vhost(self, name: str) -> None: ...

    def users(self) -> list[UserInfo]: ...

    def user(self, name: str) -> UserInfo: ...

    def put_user(
        self,
        name: str,
        tags: list[str],
        password: str | None = None,
        password_hash: str | None = None,
        hashing_algorithm: str | None = None,
    ) -> bool:
        """Create or update; True when created.  Neither password nor hash: no password login."""
        ...

    def delete_user(self, name: str) -> None: ...

    def permissions(self, vhost: str | None = None, user: str | None = None) -> list[PermissionInfo]: ...

    def set_permissions(self, user: str, vhost: str, configure: str, write: str, read: str) -> bool:
        """True when created (rather than changed)."""
        ...

    def clear_permissions(self, user: str, vhost: str) -> None: ...

    def topic_permissions(self, vhost: str | None = None, user: str | None = None) -> list[TopicPermissionInfo]: ...

    def set_topic_permissions(self, user: str, vhost: str, exchange: str, write: str, read: str) -> bool:
        """True when created (rather than changed)."""
        ...

    def clear_topic_permissions(self, user: str, vhost: str, exchange: str | None = None) -> None:
        """Every exchange's when ``exchange`` is None."""
        ...

    def set_vhost_limit(self, vhost: str, name: str, value: int) -> None:
        """``max-connections`` or ``max-queues``; a negative value is no limit."""
        ...

    def clear_vhost_limit(self, vhost: str, name: str) -> None: ...

    # policies
    def policies(self, vhost: str | None = None) -> list[PolicyInfo]: ...

    def set_policy(
        self,
        vhost: str,
        name: str,
        pattern: str,
        definition: dict[str, Any],
        priority: int = 0,
        apply_to: str = "all",
    ) -> bool:
        """True when created."""
        ...

    def clear_policy(self, vhost: str, name: str) -> None: ...

    # definitions
    def export_definitions(self, vhost: str | None = None) -> dict[str, Any]: ...

    # cluster mode (see the module's docstring)
    def cluster(self) -> ClusterInfo | None:
        """The cluster this node is a member of; None for a single node."""
        ...

    async def settled(self) -> None:
        """Wait until the changes made so far to vhosts, users, permissions, policies and
        limits reached the cluster (raises ``Unavailable`` if they could not)."""
        ...

    # Changes: asynchronous, as a cluster node writes them to etcd (or asks the queue's
    # leader) before it answers; a single node makes them at once.
    async def declare_exchange_async(
        self,
        vhost: str,
        name: str,
        type_: str,
        durable: bool,
        auto_delete: bool,
        internal: bool,
        arguments: dict[str, Any],
        as_user: str | None = None,
    ) -> bool:
        """True when created, False when it existed (and is equivalent)."""
        ...

    async def delete_exchange_async(
        self, vhost: str, name: str, if_unused: bool = False, as_user: str | None = None
    ) -> None: ...

    async def declare_queue_async(
        self,
        vhost: str,
        name: str,
        durable: bool,
        auto_delete: bool,
        arguments: dict[str, Any],
        as_user: str | None = None,
    ) -> bool:
        """True when created, False when it existed (and is equivalent)."""
        ...

    async def delete_queue_async(
        self, vhost: str, name: str, if_unused: bool = False, if_empty: bool = False, as_user: str | None = None
    ) -> int:
        """The number of ready messages the queue held."""
        ...

    async def purge_queue_async(self, vhost: str, name: str, as_user: str | None = None) -> int: ...

    async def bind_async(
        self,
        vhost: str,
        source: str,
        destination_type: str,
        destination: str,
        routing_key: str,
        arguments: dict[str, Any],
        as_user: str | None = None,
    ) -> None: ...

    async def unbind_async(
        self,
        vhost: str,
        source: str,
        destination_type: str,
        destination: str,
        routing_key: str,
        arguments: dict[str, Any],
        as_user: str | None = None,
    ) -> None: ...

    async def get_messages_async(
        self, vhost: str, queue: str, count: int, ackmode: str, as_user: str | None = None
    ) -> list[GotMessage]: ...

    async def aliveness_test_async(self, vhost: str, as_user: str | None = None) -> None: ...

    async def import_definitions_async(self, doc: dict[str, Any], vhost: str | None = None) -> None: ...
