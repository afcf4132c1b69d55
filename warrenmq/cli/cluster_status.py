"""``warrenctl cluster_status``: rabbitmqctl cluster_status's sections, filled from /api/nodes.

Disk nodes are every member that ever joined, running nodes those etcd says are running (a
single node is a cluster of one).  Versions, alarms and listeners are those of the running
nodes as each reports them (a member whose API did not answer is shown with the listeners etcd
knows of and no version).
"""

from __future__ import annotations

from typing import Any

from warrenmq.cli.status import ALARM_LINES, node_alarms, node_listeners


def _versions(node: dict[str, Any]) -> dict[str, str] | None:
    apps = {app.get("name"): app.get("version", "") for app in node.get("applications", []) if isinstance(app, dict)}
    if "warrenmq" not in apps:
        return None  # not answered by the node itself
    # rabbitmqctl's keys: the product's name and version, and the runtime's version.
    return {
        "erlang_version": str(apps.get("python", "")),
        "rabbitmq_name": "WarrenMQ",
        "rabbitmq_version": str(apps["warrenmq"]),
    }


def _maintenance(node: dict[str, Any]) -> str:
    return "under maintenance" if node.get("being_drained") else "not under maintenance"


def cluster_status_json(name: str, nodes: list[dict[str, Any]], flags: list[Any]) -> dict[str, Any]:
    running = [n for n in nodes if n.get("running")]
    versions = {n["name"]: v for n in running if (v := _versions(n)) is not None}
    alarms = [{"type": "resource_alarm", "resource": a, "node": n["name"]} for n in running for a in node_alarms(n)]
    return {
        "alarms": alarms,
        "cluster_name": name,
        "disk_nodes": [n["name"] for n in nodes],
        "feature_flags": flags,
        "listeners": {
            # keys in rabbitmqctl's order
            n["name"]: [dict(sorted({**item, "node": n["name"]}.items())) for item in node_listeners(n)]
            for n in running
            if node_listeners(n)
        },
        "maintenance_status": {n["name"]: _maintenance(n) for n in nodes},
        "partitions": {},
        "ram_nodes": [],
        "running_nodes": [n["name"] for n in running],
        "versions": versions,
    }


def cluster_status_text(name: str, nodes: list[dict[str, Any]], flags: list[Any]) -> str:
    doc = cluster_status_json(name, nodes, flags)
    versions = [
        f"{node}: {v['rabbitmq_name']} {v['rabbitmq_version']} on Python {v['erlang_version']}"
        for node, v in doc["versions"].items()
    ]
    alarms = [ALARM_LINES.get(a["resource"], "Alarm on node {}").format(a["node"]) for a in doc["alarms"]]
    listeners = sorted(
        f"Node: {item['node']}, interface: {item['interface']}, port: {item['port']}, "
        f"protocol: {item['protocol']}, purpose: {item['purpose']}"
        for items in doc["listeners"].values()
        for item in items
    )
    flag_lines = [f"Flag: {f.get('name')}, state: {f.get('state')}" for f in flags if isinstance(f, dict)]
    lines = [
        "Basics\n",
        f"Cluster name: {name}",
        "\nDisk Nodes\n",
        *doc["disk_nodes"],
        "\nRunning Nodes\n",
        *doc["running_nodes"],
        "\nVersions\n",
        *versions,
        "\nMaintenance status\n",
        *(f"Node: {node}, status: {status}" for node, status in doc["maintenance_status"].items()),
        "\nAlarms\n",
        *(alarms or ["(none)"]),
        "\nNetwork Partitions\n",
        "(none)",
        "\nListeners\n",
        *(listeners or ["(none)"]),
        "\nFeature flags\n",
        *(flag_lines or ["(none)"]),
    ]
    return "\n".join(lines)

