"""The list_* commands: rabbitmqctl's info keys (columns), default columns and banners,
each read from the management API's JSON objects."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from warrenmq.cli.client import ApiError, quote
from warrenmq.cli.output import Args, Atoms, Getter, Term, args_field, atoms_field, constant, dumps, field

EX_USAGE = 64


class CommandError(Exception):
    """A failed command: exit code, message, and whether to print it under an "Error:" line."""

    def __init__(self, code: int, message: str, titled: bool = True) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.titled = titled


@dataclass
class ListSpec:
    path: Callable[[str], str]
    banner: Callable[[str], str]
    keys: dict[str, Getter]
    default: list[str]
    streaming: bool = True  # rabbitmqctl streams these (an empty list prints nothing)
    columns: bool = True  # accepts columns
    timeout_banner: bool = False
    fixed_order: bool = False  # columns come in the keys' order whatever the order asked for


def _owner(item: dict[str, Any]) -> Any:
    details = item.get("owner_pid_details")
    return details.get("name", "") if isinstance(details, dict) else None


def _cluster_state(item: dict[str, Any]) -> Any:
    state = item.get("cluster_state") or {}
    text = "[" + ", ".join(f"{{{node}, {status}}}" for node, status in state.items()) + "]"
    return Term(text, state)


def _definition(item: dict[str, Any]) -> Any:
    text = dumps(item.get("definition") or {})
    return Term(text, text)


def _protocol(item: dict[str, Any]) -> Any:
    return Term("{0,9,1}", [0, 9, 1])


QUEUE_KEYS: dict[str, Getter] = {
    "name": field("name"),
    "durable": field("durable"),
    "auto_delete": field("auto_delete"),
    "arguments": args_field("arguments"),
    "policy": field("policy"),
    "pid": constant(None),
    "owner_pid": _owner,
    "exclusive": field("exclusive"),
    "exclusive_consumer_pid": constant(None),
    "exclusive_consumer_tag": field("exclusive_consumer_tag"),
    "messages_ready": field("messages_ready", 0),
    "messages_unacknowledged": field("messages_unacknowledged", 0),
    "messages": field("messages", 0),
    "messages_delayed": field("messages_delayed", 0),  # requeued, waiting out x-delay-on-requeue
    "messages_ready_ram": field("messages_ready_ram", 0),
    "messages_unacknowledged_ram": field("messages_unacknowledged_ram", 0),
    "messages_ram": field("messages_ram", 0),
    "messages_persistent": field("messages_persistent"),
    "message_bytes": field("message_bytes", 0),
    "message_bytes_ready": field("message_bytes_ready", 0),
    "message_bytes_unacknowledged": field("message_bytes_unacknowledged", 0),
    "message_bytes_ram": field("message_bytes_ram", 0),
    "message_bytes_persistent": field("message_bytes_persistent"),
    "head_message_timestamp": field("head_message_timestamp"),
    "disk_reads": constant(0),
    "disk_writes": constant(0),
    "consumers": field("consumers", 0),
    "consumer_utilisation": field("consumer_utilisation"),
    "consumer_capacity": field("consumer_capacity"),
    "memory": field("memory", 0),
    "slave_pids": constant(None),
    "synchronised_slave_pids": constant(None),
    "state": field("state"),
    "type": field("type"),
    "leader": field("leader"),
    "members": atoms_field("members", optional=True),
    "online": atoms_field("online", optional=True),
}

EXCHANGE_KEYS: dict[str, Getter] = {
    "name": field("name", ""),
    "type": field("type"),
    "durable": field("durable"),
    "auto_delete": field("auto_delete"),
    "internal": field("internal"),
    "arguments": args_field("arguments"),
    "policy": field("policy"),
    "messages_delayed": field("messages_delayed", 0),  # an x-delayed-message exchange's pending ones
}

BINDING_KEYS: dict[str, Getter] = {
    "source_name": field("source", ""),
    "source_kind": constant("exchange"),
    "destination_name": field("destination", ""),
    "destination_kind": field("destination_type"),
    "routing_key": field("routing_key", ""),
    "arguments": args_field("arguments"),
}

CONNECTION_KEYS: dict[str, Getter] = {
    "pid": field("name"),
    "name": field("name"),
    "port": field("port"),
    "host": field("host"),
    "peer_port": field("peer_port"),
    "peer_host": field("peer_host"),
    "ssl": field("ssl"),
    "ssl_protocol": field("ssl_protocol"),
    "ssl_key_exchange": field("ssl_key_exchange"),
    "ssl_cipher": field("ssl_cipher"),
    "ssl_hash": field("ssl_hash"),
    "peer_cert_subject": field("peer_cert_subject"),
    "peer_cert_issuer": field("peer_cert_issuer"),
    "peer_cert_validity": field("peer_cert_validity"),
    "state": field("state"),
    "channels": field("channels", 0),
    "protocol": _protocol,
    "auth_mechanism": field("auth_mechanism"),
    "user": field("user"),
    "vhost": field("vhost"),
    "timeout": field("timeout", 0),
    "frame_max": field("frame_max", 0),
    "channel_max": field("channel_max", 0),
    "client_properties": args_field("client_properties"),
    "recv_oct": field("recv_oct", 0),
    "recv_cnt": field("recv_cnt", 0),
    "send_oct": field("send_oct", 0),
    "send_cnt": field("send_cnt", 0),
    "send_pend": field("send_pend", 0),
    "connected_at": field("connected_at", 0),
}

CHANNEL_KEYS: dict[str, Getter] = {
    "pid": field("name"),
    "connection": field("connection_details.name"),
    "name": field("name"),
    "number": field("number"),
    "user": field("user"),
    "vhost": field("vhost"),
    "transactional": field("transactional"),
    "confirm": field("confirm"),
    "consumer_count": field("consumer_count", 0),
    "messages_unacknowledged": field("messages_unacknowledged", 0),
    "messages_unconfirmed": field("messages_unconfirmed", 0),
    "messages_uncommitted": field("messages_uncommitted", 0),
    "acks_uncommitted": field("acks_uncommitted", 0),
    "prefetch_count": field("prefetch_count", 0),
    "global_prefetch_count": field("global_prefetch_count", 0),
}

CONSUMER_KEYS: dict[str, Getter] = {
    "queue_name": field("queue.name"),
    "channel_pid": field("channel_details.name"),
    "consumer_tag": field("consumer_tag"),
    "ack_required": field("ack_required"),
    "prefetch_count": field("prefetch_count", 0),
    "active": field("active"),
    "activity_status": field("activity_status"),
    "arguments": args_field("arguments"),
}

VHOST_KEYS: dict[str, Getter] = {
    "name": field("name"),
    "description": field("description", ""),
    "tags": atoms_field("tags"),
    "default_queue_type": field("default_queue_type", "undefined"),
    "tracing": field("tracing", False),
    "cluster_state": _cluster_state,
}

PERMISSION_KEYS: dict[str, Getter] = {
    "user": field("user"),
    "vhost": field("vhost"),
    "configure": field("configure", ""),
    "write": field("write", ""),
    "read": field("read", ""),
}

POLICY_KEYS: dict[str, Getter] = {
    "vhost": field("vhost"),
    "name": field("name"),
    "pattern": field("pattern"),
    "apply-to": field("apply-to"),
    "definition": _definition,
    "priority": field("priority", 0),
}

LISTS: dict[str, ListSpec] = {
    "list_queues": ListSpec(
        lambda v: f"/api/queues/{quote(v)}?sort=",
        lambda v: f"Listing queues for vhost {v} ...",
        QUEUE_KEYS,
        ["name", "messages"],
        timeout_banner=True,
    ),
    "list_exchanges": ListSpec(
        lambda v: f"/api/exchanges/{quote(v)}?sort=",
        lambda v: f"Listing exchanges for vhost {v} ...",
        EXCHANGE_KEYS,
        ["name", "type"],
    ),
    "list_bindings": ListSpec(
        lambda v: f"/api/bindings/{quote(v)}?sort=",
        lambda v: f"Listing bindings for vhost {v}...",
        BINDING_KEYS,
        ["source_name", "source_kind", "destination_name", "destination_kind", "routing_key", "arguments"],
    ),
    "list_connections": ListSpec(
        lambda v: "/api/connections?sort=",
        lambda v: "Listing connections ...",
        CONNECTION_KEYS,
        ["user", "peer_host", "peer_port", "state"],
    ),
    "list_channels": ListSpec(
        lambda v: "/api/channels?sort=",
        lambda v: "Listing channels ...",
        CHANNEL_KEYS,
        ["pid", "user", "consumer_count", "messages_unacknowledged"],
    ),
    "list_consumers": ListSpec(
        lambda v: f"/api/consumers/{quote(v)}?sort=",
        lambda v: f"Listing consumers in vhost {v} ...",
        CONSUMER_KEYS,
        ["queue_name", "channel_pid", "consumer_tag", "ack_required", "prefetch_count", "active", "arguments"],
        fixed_order=True,  # as rabbitmqctl 3.10 prints consumers
    ),
    "list_vhosts": ListSpec(
        lambda v: "/api/vhosts?sort=",
        lambda v: "Listing vhosts ...",
        VHOST_KEYS,
        ["name"],
    ),
    "list_users": ListSpec(
        lambda v: "/api/users?sort=",
        lambda v: "Listing users ...",
        {"user": field("name"), "tags": atoms_field("tags")},
        ["user", "tags"],
        columns=False,
    ),
    "list_permissions": ListSpec(
        lambda v: f"/api/vhosts/{quote(v)}/permissions?sort=",
        lambda v: f'Listing permissions for vhost "{v}" ...',
        PERMISSION_KEYS,
        ["user", "configure", "write", "read"],
        streaming=False,
        columns=False,
    ),
    "list_policies": ListSpec(
        lambda v: f"/api/policies/{quote(v)}?sort=",
        lambda v: f'Listing policies for vhost "{v}" ...',
        POLICY_KEYS,
        ["vhost", "name", "pattern", "apply-to", "definition", "priority"],
        streaming=False,
        columns=False,
    ),
}


def check_columns(command: str, spec: ListSpec, columns: list[str], argv: list[str], usage: str) -> list[str]:
    if columns and not spec.columns:
        raise CommandError(EX_USAGE, f"Error (argument validation): too many arguments\n{_given(argv)}{usage}", False)
    wanted = [c for part in columns for c in part.split(",") if c] or spec.default
    unknown = [c for c in wanted if c not in spec.keys]
    if unknown:
        message = f"Error (argument validation): Info key(s) {','.join(unknown)} are not supported\n"
        raise CommandError(EX_USAGE, message + _given(argv) + usage, False)
    if spec.fixed_order:
        wanted = [c for c in spec.keys if c in wanted]
    return wanted


def _given(argv: list[str]) -> str:
    return "Arguments given:\n\t" + " ".join(argv) + "\n\nUsage\n\n"


def fetch(client: Any, spec: ListSpec, vhost: str) -> list[dict[str, Any]]:
    try:
        items = client.get(spec.path(vhost))
    except ApiError as exc:
        if exc.status == 404:
            return []  # as rabbitmqctl: a missing vhost has nothing to list
        raise
    return items if isinstance(items, list) else []


def rows(items: list[dict[str, Any]], spec: ListSpec, columns: list[str]) -> list[list[Any]]:
    return [[spec.keys[c](item) for c in columns] for item in items]


__all__ = ["LISTS", "Args", "Atoms", "CommandError", "ListSpec", "check_columns", "fetch", "rows"]
