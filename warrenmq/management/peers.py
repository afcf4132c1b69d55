"""The other nodes of a cluster, as this node's API shows them.

What only a node knows of itself (memory, disk, alarms, versions) it is asked for over its own
management API, with the caller's credentials (users are the cluster's), answering within
``PEER_TIMEOUT``; a node that does not answer, or is not running, is described from what etcd
says of it.  RabbitMQ lists a stopped node the same way: name, type, ``running: false``.
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from typing import Any

import aiohttp

from warrenmq import admin

PEER_TIMEOUT = 2.0  # s; a node slower than that is shown from etcd's record


class Peers:
    def __init__(self, timeout: float = PEER_TIMEOUT) -> None:
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def get(self, member: admin.ClusterMember, path: str, authorization: str) -> tuple[int, Any] | None:
        """``GET path`` of another member's API: its status and JSON body, None if no answer."""
        if not member.running or not member.management_port or not member.host:
            return None
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        host = f"[{member.host}]" if ":" in member.host else member.host
        url = f"http://{host}:{member.management_port}{path}"
        try:
            async with self._session.get(url, headers={"Authorization": authorization}) as response:
                return response.status, await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None

    async def node_json(self, member: admin.ClusterMember, authorization: str) -> dict[str, Any]:
        """/api/nodes/{name} of another member, running as etcd says."""
        answer = await self.get(member, f"/api/nodes/{urllib.parse.quote(member.name, safe='')}", authorization)
        item = answer[1] if answer is not None and answer[0] == 200 else None
        if not isinstance(item, dict) or item.get("name") != member.name:
            item = member_json(member)
        item["running"] = member.running
        return item

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def member_json(member: admin.ClusterMember) -> dict[str, Any]:
    """A member as etcd knows it, without asking it."""
    out: dict[str, Any] = {"name": member.name, "type": "disc", "running": member.running, "being_drained": False}
    if member.running:
        out["uptime"] = max(0, int((time.time() - member.started_at) * 1000))
        out["listeners"] = member_listeners(member)
    return out


def member_listeners(member: admin.ClusterMember) -> list[dict[str, Any]]:
    """The listeners a running member advertises in etcd (RabbitMQ's listener objects)."""
    ports = [("amqp", member.amqp_port), ("clustering", member.link_port), ("http", member.management_port)]
    return [
        {"node": member.name, "protocol": protocol, "ip_address": member.host, "port": port, "socket_opts": {}}
        for protocol, port in ports
        if port
    ]


async def nodes_json(
    peers: Peers, cluster: admin.ClusterInfo, local: dict[str, Any], authorization: str
) -> list[dict[str, Any]]:
    """Every member, this node's ``local`` JSON included, asked concurrently."""
    others = [m for m in cluster.members if m.name != cluster.node]
    answers = await asyncio.gather(*(peers.node_json(m, authorization) for m in others))
    found = {item["name"]: item for item in answers}
    out = []
    for member in cluster.members:
        if member.name == cluster.node:
            out.append({**local, "running": member.running})
        else:
            out.append(found[member.name])
    return out


def quorum_critical(queues: list[admin.QueueInfo], node: str) -> list[dict[str, Any]]:
    """Quorum queues that would lose their majority if ``node`` stopped (RabbitMQ's
    node-is-quorum-critical check lists them so)."""
    out = []
    for q in queues:
        if q.type != "quorum" or node not in q.members or node not in q.online:
            continue
        if len(q.online) - 1 < len(q.members) // 2 + 1:
            out.append(
                {
                    "readable_name": f"queue '{q.name}' in vhost '{q.vhost}'",
                    "name": q.name,
                    "virtual_host": q.vhost,
                    "type": "quorum",
                }
            )
    return out
