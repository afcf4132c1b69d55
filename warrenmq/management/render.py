"""Snapshots (warrenmq.admin) as the JSON objects RabbitMQ's management API returns.

Field names, nesting and the ``<counter>_details: {"rate": ...}`` companions follow
RabbitMQ 3.x, so that rabbitmqadmin, dashboards and monitoring checks read them unchanged.
Values RabbitMQ derives from the Erlang VM (reductions, garbage collection) are given as
zero or omitted; everything WarrenMQ counts itself is real.
"""

from __future__ import annotations

import base64
import datetime
import json
import urllib.parse
import zlib
from typing import Any

from warrenmq import admin
from warrenmq.management.rates import Rates

EXCHANGE_DESCRIPTIONS = {
    "direct": "AMQP direct exchange, as per the AMQP specification",
    "fanout": "AMQP fanout exchange, as per the AMQP specification",
    "headers": "AMQP headers exchange, as per the AMQP specification",
    "topic": "AMQP topic exchange, as per the AMQP specification",
    "x-delayed-message": "Delayed Message Exchange.",
    "x-message-deduplication": "Message Deduplication Exchange.",
}
AUTH_DESCRIPTIONS = {
    "PLAIN": "SASL PLAIN authentication mechanism",
    "AMQPLAIN": "QPid AMQPLAIN mechanism",
}


def with_rates(counters: dict[str, int], rates: Rates, key: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in sorted(counters):
        out[name] = counters[name]
        out[f"{name}_details"] = rates.details(key, name)
    return out


def timestamp(epoch: float) -> str:
    """RabbitMQ's ``idle_since`` format."""
    return datetime.datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")


# -- node ------------------------------------------------------------------------------------


def listeners(node: admin.NodeInfo, extra: list[admin.Listener]) -> list[dict[str, Any]]:
    return [
        {
            "node": node.name,
            "protocol": item.protocol,
            "ip_address": item.ip_address,
            "port": item.port,
            "socket_opts": {},
        }
        for item in [*node.listeners, *extra]
    ]


def exchange_types(node: admin.NodeInfo) -> list[dict[str, Any]]:
    return [
        {"name": name, "description": EXCHANGE_DESCRIPTIONS.get(name, ""), "enabled": True}
        for name in node.exchange_types
    ]


def node_json(node: admin.NodeInfo, rates: Rates, http: list[admin.Listener]) -> dict[str, Any]:
    key = ("node", node.name)
    return {
        "applications": [
            {"name": "warrenmq", "description": "WarrenMQ", "version": node.version},
            {"name": "rabbitmq_management", "description": "RabbitMQ Management Console", "version": node.version},
            {"name": "python", "description": "Python runtime", "version": node.python_version},
        ],
        "auth_mechanisms": [
            {"name": name, "description": AUTH_DESCRIPTIONS.get(name, name), "enabled": True}
            for name in node.auth_mechanisms
        ],
        "being_drained": False,
        "cluster_links": [],
        "config_files": node.config_files,
        "contexts": contexts(node, http),
        "db_dir": node.data_dir,
        "disk_free": node.disk_free,
        "disk_free_alarm": node.disk_free_alarm,
        "disk_free_details": rates.details(key, "disk_free"),
        "disk_free_limit": node.disk_free_limit,
        "enabled_plugins": ["rabbitmq_management", "rabbitmq_prometheus"],
        "exchange_types": exchange_types(node),
        "fd_total": node.fd_total,
        "fd_used": node.fd_used,
        "fd_used_details": rates.details(key, "fd_used"),
        "listeners": listeners(node, http),
        "log_files": ["<stderr>"],
        "mem_alarm": node.mem_alarm,
        "mem_calculation_strategy": "rss",
        "mem_limit": node.mem_limit,
        "mem_used": node.mem_used,
        "mem_used_details": rates.details(key, "mem_used"),
        "name": node.name,
        "net_ticktime": 60,
        "os_pid": str(node.os_pid),
        "partitions": [],
        # No Erlang processes here: the node's asyncio tasks and connections, against
        # RabbitMQ's default process limit, so that checks of the ratio read it sensibly.
        "proc_total": 1048576,
        "proc_used": node.processes,
        "processors": node.processors,
        "rates_mode": "basic",
        "run_queue": 0,
        "running": True,
        "sockets_total": node.fd_total,
        "sockets_used": node.sockets_used,
        "sockets_used_details": rates.details(key, "sockets_used"),
        "type": "disc",
        "uptime": node.uptime_ms,
    }


def contexts(node: admin.NodeInfo, http: list[admin.Listener]) -> list[dict[str, Any]]:
    return [
        {"description": "RabbitMQ Management", "node": node.name, "path": "/", "port": str(item.port), "ssl_opts": []}
        for item in http
    ]


def overview_json(
    overview: admin.Overview, rates: Rates, http: list[admin.Listener], show_node_details: bool
) -> dict[str, Any]:
    node = overview.node
    totals = overview.totals
    key = ("overview",)
    out: dict[str, Any] = {
        "management_version": node.compatible_version,
        "rates_mode": "basic",
        "sample_retention_policies": {"global": [600, 3600, 28800, 86400], "basic": [600, 3600], "detailed": [600]},
        "exchange_types": exchange_types(node),
        "product_version": node.version,
        "product_name": "WarrenMQ",
        "rabbitmq_version": node.compatible_version,
        "warrenmq_version": node.version,
        "cluster_name": node.name,
        "erlang_version": node.python_version,
        "erlang_full_version": f"Python {node.python_version}",
        "release_series_support_status": "supported",
        "disable_stats": False,
        "enable_queue_totals": False,
        "message_stats": with_rates(overview.message_stats, rates, key),
        "churn_rates": {},
        "queue_totals": {
            "messages": totals.messages,
            "messages_details": rates.details(key, "messages"),
            "messages_ready": totals.messages_ready,
            "messages_ready_details": rates.details(key, "messages_ready"),
            "messages_unacknowledged": totals.messages_unacknowledged,
            "messages_unacknowledged_details": rates.details(key, "messages_unacknowledged"),
        },
        "object_totals": {
            "channels": totals.channels,
            "connections": totals.connections,
            "consumers": totals.consumers,
            "exchanges": totals.exchanges,
            "queues": totals.queues,
        },
        "statistics_db_event_queue": 0,
        "node": node.name,
    }
    if show_node_details:
        out["listeners"] = listeners(node, http)
        out["contexts"] = contexts(node, http)
    return out


# -- live objects ----------------------------------------------------------------------------


def connection_json(c: admin.ConnectionInfo, rates: Rates, node: str) -> dict[str, Any]:
    key = ("connection", c.name)
    return {
        "auth_mechanism": c.auth_mechanism,
        "channel_max": c.channel_max,
        "channels": c.channels,
        "client_properties": c.client_properties,
        "connected_at": c.connected_at,
        "frame_max": c.frame_max,
        "host": c.host,
        "name": c.name,
        "node": node,
        "peer_cert_issuer": None,
        "peer_cert_subject": None,
        "peer_cert_validity": None,
        "peer_host": c.peer_host,
        "peer_port": c.peer_port,
        "port": c.port,
        "protocol": c.protocol,
        "recv_cnt": c.recv_cnt,
        "recv_oct": c.recv_oct,
        "recv_oct_details": rates.details(key, "recv_oct"),
        "reductions": 0,
        "reductions_details": {"rate": 0.0},
        "send_cnt": c.send_cnt,
        "send_oct": c.send_oct,
        "send_oct_details": rates.details(key, "send_oct"),
        "send_pend": c.send_pend,
        "ssl": c.ssl,
        "ssl_cipher": None,
        "ssl_hash": None,
        "ssl_key_exchange": None,
        "ssl_protocol": None,
        "state": c.state,
        "timeout": c.timeout,
        "type": "network",
        "user": c.user,
        "user_provided_name": c.user_provided_name,
        "user_who_performed_action": c.user,
        "vhost": c.vhost,
    }


def channel_json(ch: admin.ChannelInfo, rates: Rates, node: str) -> dict[str, Any]:
    return {
        "acks_uncommitted": ch.acks_uncommitted,
        "confirm": ch.confirm,
        "connection_details": {"name": ch.connection_name, "peer_host": ch.peer_host, "peer_port": ch.peer_port},
        "consumer_count": ch.consumer_count,
        "global_prefetch_count": ch.global_prefetch_count,
        "message_stats": with_rates(ch.message_stats, rates, ("channel", ch.name)),
        "messages_unacknowledged": ch.messages_unacknowledged,
        "messages_uncommitted": ch.messages_uncommitted,
        "messages_unconfirmed": ch.messages_unconfirmed,
        "name": ch.name,
        "node": node,
        "number": ch.number,
        "pending_raft_commands": 0,
        "prefetch_count": ch.prefetch_count,
        "reductions": 0,
        "reductions_details": {"rate": 0.0},
        "state": ch.state,
        "transactional": ch.transactional,
        "user": ch.user,
        "user_who_performed_action": ch.user,
        "vhost": ch.vhost,
    }


def consumer_json(c: admin.ConsumerInfo, node: str) -> dict[str, Any]:
    return {
        "ack_required": c.ack_required,
        "active": c.active,
        "activity_status": c.activity_status,
        "arguments": c.arguments,
        "channel_details": {
            "connection_name": c.connection_name,
            "name": c.channel_name,
            "node": node,
            "number": c.channel_number,
            "peer_host": c.peer_host,
            "peer_port": c.peer_port,
            "user": c.user,
        },
        "consumer_tag": c.consumer_tag,
        "exclusive": c.exclusive,
        "prefetch_count": c.prefetch_count,
        "queue": {"name": c.queue, "vhost": c.vhost},
    }


# -- topology ---------------------------------------------------------------------------------


def exchange_json(x: admin.ExchangeInfo, rates: Rates) -> dict[str, Any]:
    out: dict[str, Any] = {
        "arguments": x.arguments,
        "auto_delete": x.auto_delete,
        "durable": x.durable,
        "internal": x.internal,
        "message_stats": with_rates(x.message_stats, rates, ("exchange", x.vhost, x.name)),
        "name": x.name,
        "type": x.type,
        "user_who_performed_action": "rmq-internal",
        "vhost": x.vhost,
    }
    if x.policy:
        out["policy"] = x.policy
    if x.messages_delayed is not None:
        out["messages_delayed"] = x.messages_delayed  # as the delayed-message plugin shows it
    return out


def queue_json(
    q: admin.QueueInfo, rates: Rates, node: str, consumers: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    key = ("queue", q.vhost, q.name)
    utilisation = 1.0 if q.active_consumers else 0.0
    out: dict[str, Any] = {
        "arguments": q.arguments,
        "auto_delete": q.auto_delete,
        "consumer_capacity": utilisation,
        "consumer_utilisation": utilisation,
        "consumers": q.consumers,
        "durable": q.durable,
        "effective_policy_definition": q.effective_policy_definition,
        "exclusive": q.exclusive,
        "exclusive_consumer_tag": q.exclusive_consumer_tag,
        "head_message_timestamp": None,
        "memory": q.memory,
        "message_bytes": q.message_bytes,
        "message_bytes_paged_out": 0,
        "message_bytes_ram": q.message_bytes,
        "message_bytes_ready": q.message_bytes_ready,
        "message_bytes_unacknowledged": q.message_bytes_unacknowledged,
        "message_stats": with_rates(q.message_stats, rates, key),
        "messages": q.messages,
        "messages_details": rates.details(key, "messages"),
        "messages_paged_out": q.messages_paged_out,
        "messages_ram": q.messages - q.messages_paged_out,
        "messages_ready": q.messages_ready,
        "messages_ready_details": rates.details(key, "messages_ready"),
        "messages_ready_ram": q.messages_ready - q.messages_paged_out,
        "messages_unacknowledged": q.messages_unacknowledged,
        "messages_unacknowledged_details": rates.details(key, "messages_unacknowledged"),
        "messages_unacknowledged_ram": q.messages_unacknowledged,
        "name": q.name,
        "node": q.node or node,
        "operator_policy": None,
        "policy": q.policy,
        "reductions": 0,
        "reductions_details": {"rate": 0.0},
        "single_active_consumer_tag": q.single_active_consumer_tag,
        "state": q.state,
        "type": q.type,
        "vhost": q.vhost,
    }
    if q.idle_since is not None:
        out["idle_since"] = timestamp(q.idle_since)
    if q.type == "quorum":
        out.update(leader=q.leader or node, members=q.members or [node], online=q.online if q.members else [node])
    elif q.type == "stream":
        out.update(members=[node], online=[node])  # as RabbitMQ 3.10.8: no leader key
    else:
        out["storage_version"] = 1
    if q.owner is not None:
        out["owner_pid_details"] = {"name": q.owner}
    if consumers is not None:
        out["consumer_details"] = consumers
    if q.messages_delayed or "x-delay-on-requeue" in q.arguments:
        out["messages_delayed"] = q.messages_delayed  # requeued, not ready until their delay passed
    return out


def args_hash(arguments: dict[str, Any]) -> str:
    digest = zlib.crc32(json.dumps(arguments, sort_keys=True, separators=(",", ":")).encode())
    return base64.urlsafe_b64encode(digest.to_bytes(4, "big")).rstrip(b"=").decode()


def properties_key(routing_key: str, arguments: dict[str, Any]) -> str:
    """RabbitMQ's binding identity in URLs: the quoted routing key, then ``~`` and an
    arguments hash when there are arguments; ``~`` alone for an empty key and no arguments."""
    if not routing_key and not arguments:
        return "~"
    quoted = urllib.parse.quote_plus(routing_key).replace("~", "%7E")
    return f"{quoted}~{args_hash(arguments)}" if arguments else quoted


def binding_json(b: admin.BindingInfo) -> dict[str, Any]:
    return {
        "source": b.source,
        "vhost": b.vhost,
        "destination": b.destination,
        "destination_type": b.destination_type,
        "routing_key": b.routing_key,
        "arguments": b.arguments,
        "properties_key": properties_key(b.routing_key, b.arguments),
    }


# -- access control ---------------------------------------------------------------------------


def vhost_json(v: admin.VHostInfo, rates: Rates, node: str, cluster: admin.ClusterInfo | None = None) -> dict[str, Any]:
    key = ("vhost", v.name)
    states = {m.name: "running" if m.running else "nodedown" for m in cluster.members} if cluster else {node: "running"}
    return {
        "cluster_state": states,
        "default_queue_type": "undefined",
        "description": v.description,
        "message_stats": with_rates(v.message_stats, rates, key),
        "messages": v.messages,
        "messages_details": rates.details(key, "messages"),
        "messages_ready": v.messages_ready,
        "messages_ready_details": rates.details(key, "messages_ready"),
        "messages_unacknowledged": v.messages_unacknowledged,
        "messages_unacknowledged_details": rates.details(key, "messages_unacknowledged"),
        "metadata": {"description": v.description, "tags": v.tags},
        "name": v.name,
        "recv_oct": v.recv_oct,
        "recv_oct_details": rates.details(key, "recv_oct"),
        "send_oct": v.send_oct,
        "send_oct_details": rates.details(key, "send_oct"),
        "tags": v.tags,
        "tracing": False,
    }


def user_json(u: admin.UserInfo) -> dict[str, Any]:
    return {
        "name": u.name,
        "password_hash": u.password_hash,
        "hashing_algorithm": u.hashing_algorithm,
        "tags": u.tags,
        "limits": u.limits,
    }


def permission_json(p: admin.PermissionInfo) -> dict[str, Any]:
    return {"user": p.user, "vhost": p.vhost, "configure": p.configure, "write": p.write, "read": p.read}


def topic_permission_json(p: admin.TopicPermissionInfo) -> dict[str, Any]:
    return {"user": p.user, "vhost": p.vhost, "exchange": p.exchange, "write": p.write, "read": p.read}


def policy_json(p: admin.PolicyInfo) -> dict[str, Any]:
    return {
        "vhost": p.vhost,
        "name": p.name,
        "pattern": p.pattern,
        "apply-to": p.apply_to,
        "definition": p.definition,
        "priority": p.priority,
    }


def message_json(m: admin.GotMessage, encoding: str, truncate: int | None) -> dict[str, Any]:
    payload = m.payload if truncate is None else m.payload[:truncate]
    text: str | None = None
    if encoding == "auto":
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            text = None
    return {
        "payload_bytes": len(m.payload),
        "redelivered": m.redelivered,
        "exchange": m.exchange,
        "routing_key": m.routing_key,
        "message_count": m.message_count,
        "properties": m.properties,
        "payload": text if text is not None else base64.b64encode(payload).decode(),
        "payload_encoding": "string" if text is not None else "base64",
    }
