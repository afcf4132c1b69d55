"""``warrenctl status``: rabbitmqctl status's sections, filled from /api/overview and /api/nodes."""

from __future__ import annotations

from typing import Any

PROTOCOL_LABELS = {
    "amqp": "AMQP 0-9-1 and AMQP 1.0",
    "amqp/ssl": "AMQP 0-9-1 and AMQP 1.0 over TLS",
    "http": "HTTP API",
    "https": "HTTP API over TLS (HTTPS)",
    "clustering": "inter-node communication",
}
ALARM_LINES = {"memory": "Memory alarm on node {}", "disk space": "Free disk space alarm on node {}"}


def _gb(value: Any) -> str:
    return f"{round(int(value or 0) / 1_000_000_000, 4)} gb"


def _interface(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def node_listeners(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "interface": _interface(str(item.get("ip_address", ""))),
            "port": item.get("port", 0),
            "protocol": item.get("protocol", ""),
            "purpose": PROTOCOL_LABELS.get(item.get("protocol", ""), item.get("protocol", "")),
        }
        for item in node.get("listeners", [])
    ]


def node_alarms(node: dict[str, Any]) -> list[str]:
    out = []
    if node.get("mem_alarm"):
        out.append("memory")
    if node.get("disk_free_alarm"):
        out.append("disk space")
    return out


def status_json(overview: dict[str, Any], node: dict[str, Any], vhosts: int) -> dict[str, Any]:
    totals = overview.get("object_totals", {})
    return {
        "pid": node.get("os_pid"),
        "os": "Linux",
        "uptime": int(node.get("uptime", 0)) // 1000,
        "is_under_maintenance": False,
        "product_name": overview.get("product_name"),
        "product_version": overview.get("product_version"),
        "rabbitmq_version": overview.get("rabbitmq_version"),
        "erlang_version": overview.get("erlang_full_version"),
        "data_directory": node.get("db_dir"),
        "config_files": node.get("config_files", []),
        "log_files": node.get("log_files", []),
        "active_plugins": node.get("enabled_plugins", []),
        "alarms": [{"type": "resource_alarm", "resource": a, "node": node.get("name")} for a in node_alarms(node)],
        "memory": {"total": {"rss": node.get("mem_used", 0)}},
        "vm_memory_calculation_strategy": "rss",
        "vm_memory_high_watermark_limit": node.get("mem_limit", 0),
        "file_descriptors": {
            "total_used": node.get("fd_used", 0),
            "total_limit": node.get("fd_total", 0),
            "sockets_used": node.get("sockets_used", 0),
            "sockets_limit": node.get("sockets_total", 0),
        },
        "disk_free_limit": node.get("disk_free_limit", 0),
        "disk_free": node.get("disk_free", 0),
        "totals": {
            "connection_count": totals.get("connections", 0),
            "queue_count": totals.get("queues", 0),
            "virtual_host_count": vhosts,
        },
        "listeners": node_listeners(node),
    }


def status_text(overview: dict[str, Any], node: dict[str, Any], vhosts: int) -> str:
    name = node.get("name", overview.get("node", ""))
    totals = overview.get("object_totals", {})
    alarms = [ALARM_LINES[a].format(name) for a in node_alarms(node)] or ["(none)"]
    listeners = [
        f"Interface: {item['interface']}, port: {item['port']}, "
        f"protocol: {item['protocol']}, purpose: {item['purpose']}"
        for item in node_listeners(node)
    ] or ["(none)"]
    lines = [
        "Runtime\n",
        f"OS PID: {node.get('os_pid', '')}",
        "OS: Linux",
        f"Uptime (seconds): {int(node.get('uptime', 0)) // 1000}",
        "Is under maintenance?: false",
        f"Product name: {overview.get('product_name', '')}",
        f"Product version: {overview.get('product_version', '')}",
        f"RabbitMQ version: {overview.get('rabbitmq_version', '')}",
        f"Node name: {name}",
        f"Runtime: {overview.get('erlang_full_version', '')}",
        "\nPlugins\n",
        "Enabled plugins:\n",
        *(f" * {p}" for p in node.get("enabled_plugins", [])),
        "\nData directory\n",
        f"Node data directory: {node.get('db_dir', '')}",
        "\nConfig files\n",
        *(f" * {p}" for p in node.get("config_files", [])),
        "\nLog file(s)\n",
        *(f" * {p}" for p in node.get("log_files", [])),
        "\nAlarms\n",
        *alarms,
        "\nMemory\n",
        f"Total memory used: {_gb(node.get('mem_used'))}",
        "Calculation strategy: rss",
        f"Memory high watermark computed to: {_gb(node.get('mem_limit'))}",
        "\nFile Descriptors\n",
        f"Total: {node.get('fd_used', 0)}, limit: {node.get('fd_total', 0)}",
        f"Sockets: {node.get('sockets_used', 0)}, limit: {node.get('sockets_total', 0)}",
        "\nFree Disk Space\n",
        f"Low free disk space watermark: {_gb(node.get('disk_free_limit'))}",
        f"Free disk space: {_gb(node.get('disk_free'))}",
        "\nTotals\n",
        f"Connection count: {totals.get('connections', 0)}",
        f"Queue count: {totals.get('queues', 0)}",
        f"Virtual host count: {vhosts}",
        "\nListeners\n",
        *listeners,
    ]
    return "\n".join(lines)
