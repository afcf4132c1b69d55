"""Prometheus metrics at ``/metrics``, in the text exposition format.

Metric names are those of RabbitMQ's rabbitmq_prometheus plugin (``rabbitmq_queue_messages_ready``
and so on), per queue with ``vhost`` and ``queue`` labels as its per-object endpoint gives them,
so that existing dashboards and alerts apply.  Like that plugin's endpoint, it needs no login.
As in a RabbitMQ cluster, each node reports its own: the queues it leads, and totals of those
(a scraper sums the nodes).
"""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web

from warrenmq.management.context import context

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Exposition:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def metric(self, name: str, kind: str, help_text: str, samples: Iterable[tuple[dict[str, str], float]]) -> None:
        self.lines.append(f"# TYPE {name} {kind}")
        self.lines.append(f"# HELP {name} {help_text}")
        for labels, value in samples:
            text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            number = repr(float(value)) if isinstance(value, float) and not value.is_integer() else str(int(value))
            self.lines.append(f"{name}{{{text}}} {number}" if text else f"{name} {number}")

    def one(self, name: str, kind: str, help_text: str, value: float, labels: dict[str, str] | None = None) -> None:
        self.metric(name, kind, help_text, [(labels or {}, value)])

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


async def metrics(request: web.Request) -> web.Response:
    api = context(request).admin
    overview = api.overview()
    node = overview.node
    totals = overview.totals
    stats = overview.message_stats
    queues = api.queues()
    cluster = api.cluster()
    if cluster is not None:
        queues = [q for q in queues if q.node == node.name]  # the others are their leaders' to report
        totals.queues = len(queues)
        totals.consumers = sum(q.consumers for q in queues)
        for name in ("deliver_get", "ack", "redeliver"):
            stats[name] = sum(q.message_stats.get(name, 0) for q in queues)
    out = Exposition()
    out.one(
        "rabbitmq_identity_info",
        "gauge",
        "RabbitMQ node & cluster identity info",
        1,
        {"rabbitmq_node": node.name, "rabbitmq_cluster": cluster.name if cluster is not None else node.name},
    )
    out.one(
        "rabbitmq_build_info",
        "untyped",
        "RabbitMQ & Erlang/OTP version info",
        1,
        {
            "rabbitmq_version": node.compatible_version,
            "warrenmq_version": node.version,
            "python_version": node.python_version,
        },
    )
    out.one("rabbitmq_process_resident_memory_bytes", "gauge", "Memory used in bytes", node.mem_used)
    out.one("rabbitmq_resident_memory_limit_bytes", "gauge", "Memory high watermark in bytes", node.mem_limit)
    out.one("rabbitmq_disk_space_available_bytes", "gauge", "Disk space available in bytes", node.disk_free)
    out.one(
        "rabbitmq_disk_space_available_limit_bytes",
        "gauge",
        "Free disk space low watermark in bytes",
        node.disk_free_limit,
    )
    out.one(
        "rabbitmq_alarms_memory_used_watermark",
        "gauge",
        "is 1 if VM memory watermark alarm is in effect",
        int(node.mem_alarm),
    )
    out.one(
        "rabbitmq_alarms_free_disk_space_watermark",
        "gauge",
        "is 1 if free disk space watermark alarm is in effect",
        int(node.disk_free_alarm),
    )
    out.one("rabbitmq_process_open_fds", "gauge", "Open file descriptors", node.fd_used)
    out.one("rabbitmq_process_max_fds", "gauge", "Open file descriptors limit", node.fd_total)
    out.one(
        "rabbitmq_process_start_time_seconds", "gauge", "Process start time in seconds since the epoch", node.started_at
    )
    out.one("rabbitmq_connections", "gauge", "Connections currently open", totals.connections)
    out.one("rabbitmq_channels", "gauge", "Channels currently open", totals.channels)
    out.one("rabbitmq_consumers", "gauge", "Consumers currently connected", totals.consumers)
    out.one("rabbitmq_queues", "gauge", "Queues available", totals.queues)
    out.one(
        "rabbitmq_global_messages_received_total",
        "counter",
        "Total number of messages received from publishers",
        stats.get("publish", 0),
    )
    out.one(
        "rabbitmq_global_messages_delivered_total",
        "counter",
        "Total number of messages delivered to consumers",
        stats.get("deliver_get", 0),
    )
    out.one(
        "rabbitmq_global_messages_acknowledged_total",
        "counter",
        "Total number of messages acknowledged by consumers",
        stats.get("ack", 0),
    )
    out.one(
        "rabbitmq_global_messages_redelivered_total",
        "counter",
        "Total number of messages redelivered to consumers",
        stats.get("redeliver", 0),
    )
    out.one(
        "rabbitmq_global_messages_confirmed_total",
        "counter",
        "Total number of messages confirmed to publishers",
        stats.get("confirm", 0),
    )
    connections = api.connections()
    out.one(
        "rabbitmq_connection_incoming_bytes_total",
        "counter",
        "Total number of bytes received on a connection",
        sum(c.recv_oct for c in connections),
    )
    out.one(
        "rabbitmq_connection_outgoing_bytes_total",
        "counter",
        "Total number of bytes sent on a connection",
        sum(c.send_oct for c in connections),
    )

    def per_queue(attr: str) -> list[tuple[dict[str, str], float]]:
        return [({"vhost": q.vhost, "queue": q.name}, getattr(q, attr)) for q in queues]

    def per_queue_stat(name: str) -> list[tuple[dict[str, str], float]]:
        return [({"vhost": q.vhost, "queue": q.name}, q.message_stats.get(name, 0)) for q in queues]

    out.metric(
        "rabbitmq_queue_messages_ready",
        "gauge",
        "Messages ready to be delivered to consumers",
        per_queue("messages_ready"),
    )
    out.metric(
        "rabbitmq_queue_messages_unacked",
        "gauge",
        "Messages delivered to consumers but not yet acknowledged",
        per_queue("messages_unacknowledged"),
    )
    out.metric("rabbitmq_queue_messages", "gauge", "Sum of ready and unacknowledged messages", per_queue("messages"))
    out.metric(
        "rabbitmq_queue_messages_ready_bytes",
        "gauge",
        "Size in bytes of ready messages",
        per_queue("message_bytes_ready"),
    )
    out.metric(
        "rabbitmq_queue_messages_unacked_bytes",
        "gauge",
        "Size in bytes of all unacknowledged messages",
        per_queue("message_bytes_unacknowledged"),
    )
    out.metric(
        "rabbitmq_queue_messages_bytes",
        "gauge",
        "Size in bytes of ready and unacknowledged messages",
        per_queue("message_bytes"),
    )
    out.metric(
        "rabbitmq_queue_messages_paged_out", "gauge", "Messages paged out to disk", per_queue("messages_paged_out")
    )
    out.metric("rabbitmq_queue_consumers", "gauge", "Consumers on a queue", per_queue("consumers"))
    out.metric("rabbitmq_queue_process_memory_bytes", "gauge", "Memory in bytes used by the queue", per_queue("memory"))
    out.metric(
        "rabbitmq_queue_messages_published_total",
        "counter",
        "Total number of messages published to queues",
        per_queue_stat("publish"),
    )
    out.metric(
        "rabbitmq_queue_messages_delivered_total",
        "counter",
        "Total number of messages delivered to consumers (deliveries and gets)",
        per_queue_stat("deliver_get"),
    )
    out.metric(
        "rabbitmq_queue_messages_acked_total", "counter", "Total number of messages acknowledged", per_queue_stat("ack")
    )
    out.metric(
        "rabbitmq_queue_messages_redelivered_total",
        "counter",
        "Total number of messages redelivered",
        per_queue_stat("redeliver"),
    )
    return web.Response(body=out.text().encode(), headers={"Content-Type": CONTENT_TYPE, "cache-control": "no-cache"})


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/metrics", metrics)
    router.add_get("/metrics/per-object", metrics)
