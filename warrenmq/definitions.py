"""Definitions in RabbitMQ's format: users, vhosts, permissions, policies, exchanges, queues,
bindings.  The same document is the management API's export/import and what the node keeps
on disk (where each durable queue also carries its store id, ``warren_id``).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from warrenmq import __version__
from warrenmq.amqp.values import FieldTable
from warrenmq.broker.exchanges import Exchange
from warrenmq.broker.users import HASHING_SHA256, Permission, User

if TYPE_CHECKING:
    from warrenmq.broker.broker import Broker
    from warrenmq.broker.queue import Queue

RABBIT_VERSION = "3.13.7"


def _plain_args(arguments: Any) -> dict[str, Any]:
    plain = arguments.plain() if isinstance(arguments, FieldTable) else dict(arguments or {})
    return {k: _jsonable(v) for k, v in plain.items()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:  # as RabbitMQ writes such a binary in its definitions
            return "Not UTF-8, base64 is: " + base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def access(broker: Broker) -> dict[str, list[dict[str, Any]]]:
    """Users, vhosts, permissions and topic permissions, as the definitions list them."""
    return {
        "users": [
            {
                "name": u.name,
                "password_hash": u.password_hash,
                "hashing_algorithm": u.hashing_algorithm,
                "tags": list(u.tags),
                "limits": {},
            }
            for u in broker.users.users.values()
        ],
        "vhosts": [
            {
                "name": v.name,
                "description": v.description,
                "tags": list(v.tags),
                "limits": dict(v.limits),
                "metadata": {"description": v.description, "tags": list(v.tags)},
            }
            for v in broker.vhosts.values()
        ],
        "permissions": [
            {"user": p.user, "vhost": p.vhost, "configure": p.configure, "write": p.write, "read": p.read}
            for p in broker.users.permissions.values()
        ],
        "topic_permissions": [
            {"user": user, "vhost": vh, "exchange": exchange, "write": write, "read": read}
            for (user, vh, exchange), (write, read) in broker.users.topic_permissions.items()
        ],
    }


def policies(vhosts: list[Any]) -> list[dict[str, Any]]:
    return [policy.to_json(v.name) for v in vhosts for policy in getattr(v, "policies", {}).values()]


def export(
    broker: Broker,
    durable_only: bool = True,
    queue_ids: Callable[[Queue], int | None] | None = None,
    vhost: str | None = None,
    exchange_ids: Callable[[str, str], int | None] | None = None,
) -> dict[str, Any]:
    """The broker's definitions.  ``durable_only``: what survives a restart (RabbitMQ's export
    also lists only durable objects)."""
    vhosts = [v for v in broker.vhosts.values() if vhost is None or v.name == vhost]
    doc: dict[str, Any] = {
        "rabbit_version": RABBIT_VERSION,
        "rabbitmq_version": RABBIT_VERSION,
        "product_name": "WarrenMQ",
        "product_version": __version__,
    }
    if vhost is None:
        doc.update(access(broker))
        doc["parameters"] = []
        doc["global_parameters"] = []
    doc["policies"] = policies(vhosts)
    queues: list[dict[str, Any]] = []
    exchanges: list[dict[str, Any]] = []
    bindings: list[dict[str, Any]] = []
    for v in vhosts:
        for q in v.queues.values():
            if q.exclusive or (durable_only and not q.durable):
                continue
            entry: dict[str, Any] = {
                "name": q.name,
                "vhost": v.name,
                "durable": q.durable,
                "auto_delete": q.auto_delete,
                "arguments": _plain_args(q.arguments),
            }
            if queue_ids is not None:
                qid = queue_ids(q)
                if qid is not None:
                    entry["warren_id"] = qid
            queues.append(entry)
        for x in v.exchanges.values():
            if x.name == "" or x.name.startswith("amq.") or (durable_only and not x.durable):
                continue
            x_entry: dict[str, Any] = {
                "name": x.name,
                "vhost": v.name,
                "type": x.TYPE,
                "durable": x.durable,
                "auto_delete": x.auto_delete,
                "internal": x.internal,
                "arguments": _plain_args(x.arguments),
            }
            xid = exchange_ids(v.name, x.name) if exchange_ids is not None else None
            if xid is not None:
                x_entry["warren_id"] = xid  # a delayed exchange's messages in the store
            exchanges.append(x_entry)
        for b in v.bindings():
            destination = b.destination
            if durable_only and not (b.source.durable and destination.durable):
                continue
            if isinstance(destination, Exchange):
                kind = "exchange"
            else:
                if destination.exclusive:
                    continue
                kind = "queue"
            bindings.append(
                {
                    "source": b.source.name,
                    "vhost": v.name,
                    "destination": destination.name,
                    "destination_type": kind,
                    "routing_key": b.routing_key,
                    "arguments": _plain_args(b.arguments),
                }
            )
    doc["queues"] = queues
    doc["exchanges"] = exchanges
    doc["bindings"] = bindings
    return doc


def import_(
    broker: Broker,
    doc: dict[str, Any],
    on_queue: Callable[[Queue, dict[str, Any]], None] | None = None,
    vhost: str | None = None,
) -> None:
    """Create what ``doc`` defines (existing objects are kept, as RabbitMQ's import does)."""
    from warrenmq.broker.policies import Policy

    if vhost is None:
        for entry in doc.get("vhosts", []):
            v = broker.add_vhost(entry["name"])
            meta = entry.get("metadata") or {}
            v.description = entry.get("description", meta.get("description", "")) or ""
            tags = entry.get("tags", meta.get("tags", []))
            v.tags = tags.split(",") if isinstance(tags, str) else list(tags or [])
            v.limits = dict(entry.get("limits") or {})
        for entry in doc.get("users", []):
            tags = entry.get("tags", [])
            if isinstance(tags, str):
                tags = [t for t in tags.split(",") if t]
            broker.users.users[entry["name"]] = User(
                entry["name"],
                entry.get("password_hash", ""),
                list(tags),
                entry.get("hashing_algorithm", HASHING_SHA256),
            )
        for entry in doc.get("permissions", []):
            broker.users.permissions[(entry["user"], entry["vhost"])] = Permission(
                entry["user"], entry["vhost"], entry.get("configure", ""), entry.get("write", ""), entry.get("read", "")
            )
        for entry in doc.get("topic_permissions", []):
            broker.users.topic_permissions[(entry["user"], entry["vhost"], entry.get("exchange", ""))] = (
                entry.get("write", ".*"),
                entry.get("read", ".*"),
            )

    def target(entry: dict[str, Any]) -> Any:
        name = vhost if vhost is not None else entry.get("vhost", "/")
        return broker.vhosts.get(name) or broker.add_vhost(name)

    for entry in doc.get("policies", []):
        policy = Policy.from_json(entry)
        target(entry).set_policy(policy)
    for entry in doc.get("exchanges", []):
        v = target(entry)
        if entry["name"] in v.exchanges:
            continue
        v.declare_exchange(
            entry["name"],
            entry.get("type", "direct"),
            durable=bool(entry.get("durable", True)),
            auto_delete=bool(entry.get("auto_delete", False)),
            internal=bool(entry.get("internal", False)),
            arguments=FieldTable.of(entry.get("arguments") or {}),
        )
    for entry in doc.get("queues", []):
        v = target(entry)
        if entry["name"] in v.queues:
            continue
        queue = v.declare_queue(
            entry["name"],
            durable=bool(entry.get("durable", True)),
            auto_delete=bool(entry.get("auto_delete", False)),
            arguments=FieldTable.of(entry.get("arguments") or {}),
        )
        if on_queue is not None:
            on_queue(queue, entry)
    for entry in doc.get("bindings", []):
        v = target(entry)
        source = entry["source"]
        if source not in v.exchanges:
            continue
        if entry.get("destination_type", "queue") == "exchange":
            destination: Any = v.exchanges.get(entry["destination"])
        else:
            destination = v.queues.get(entry["destination"])
        if destination is None:
            continue
        v.bind(destination, source, entry.get("routing_key", ""), FieldTable.of(entry.get("arguments") or {}))
