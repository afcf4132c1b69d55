"""NodeAdmin's view of the node: identity, resources, totals, alarms and logins."""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import sys
import time
from typing import TYPE_CHECKING

from warrenmq import __version__, admin
from warrenmq.broker.exchanges import EXCHANGE_TYPES
from warrenmq.server.admin.base import ALARM_RESOURCES, AdminBase, user_info

if TYPE_CHECKING:
    from warrenmq.server.node import Node


class NodeViews(AdminBase):
    """Identity, resources, totals, alarms and logins."""

    def node(self) -> admin.NodeInfo:
        node = self.n
        settings = node.settings
        listeners = [admin.Listener("amqp", settings.host or "::", node.amqp_port)]
        if node.tls_port:
            listeners.append(admin.Listener("amqp/ssl", settings.host or "::", node.tls_port))
        disk_free = _disk_free(settings.data_dir)
        try:
            fd_used = len(os.listdir("/proc/self/fd"))
        except OSError:
            fd_used = 0
        memory_limit = getattr(node, "memory_limit", None)
        return admin.NodeInfo(
            name=node.node_name,
            version=__version__,
            compatible_version=_compatible_version(node),
            python_version=sys.version.split()[0],
            os_pid=os.getpid(),
            started_at=node.started_at,
            uptime_ms=int((time.time() - node.started_at) * 1000),
            mem_used=_rss(),
            mem_limit=memory_limit() if callable(memory_limit) else 0,
            mem_alarm="memory" in node.alarms,
            disk_free=disk_free,
            disk_free_limit=settings.disk_free_limit,
            disk_free_alarm="disk" in node.alarms,
            fd_used=fd_used,
            fd_total=resource.getrlimit(resource.RLIMIT_NOFILE)[0],
            sockets_used=len(node.connections),
            processors=os.cpu_count() or 1,
            data_dir=os.path.abspath(settings.data_dir),
            config_files=[os.path.abspath(settings.config_file)] if settings.config_file else [],
            listeners=listeners,
            exchange_types=sorted(EXCHANGE_TYPES),
            auth_mechanisms=["PLAIN", "AMQPLAIN"],
            tls_certificate=os.path.abspath(settings.tls_cert) if settings.tls_cert else "",
            processes=len(asyncio.all_tasks(node.loop)) + len(node.connections),
        )

    def overview(self) -> admin.Overview:
        totals = admin.Totals()
        stats: dict[str, int] = {}
        vhosts = self._vhosts(None)
        for vhost in vhosts:
            info = self._vhost_info(vhost)
            totals.messages_ready += info.messages_ready
            totals.messages_unacknowledged += info.messages_unacknowledged
            totals.exchanges += len(vhost.exchanges)
            totals.queues += len(vhost.queues)
            totals.consumers += sum(self._queue_counts(q)[2] for q in vhost.queues.values())
            for key, value in info.message_stats.items():
                stats[key] = stats.get(key, 0) + value
        totals.messages = totals.messages_ready + totals.messages_unacknowledged
        connections = self._open_connections()
        totals.connections = len(connections)
        totals.channels = sum(len(c.channels) for c in connections)
        stats["confirm"] = sum(ch.acked_upto for c in connections for ch in c.channels.values())
        return admin.Overview(self.node(), totals, stats, [v.name for v in vhosts])

    def alarms(self) -> list[admin.Alarm]:
        return [admin.Alarm(ALARM_RESOURCES.get(a, a), self.n.node_name) for a in sorted(self.n.alarms)]

    def set_memory_high_watermark(self, fraction: float | None = None, absolute: int | None = None) -> None:
        self.n.set_memory_high_watermark(fraction, absolute)

    def set_disk_free_limit(self, limit: int | None = None, mem_relative: float | None = None) -> None:
        if limit is None:
            limit = int(self.n.total_memory() * (mem_relative or 0.0))
        self.n.set_disk_free_limit(limit)

    def authenticate(self, username: str, password: str, remote_address: str) -> admin.UserInfo:
        user = self.broker.users.authenticate(username, password)
        if user is None:
            raise admin.LoginFailed("Login failed")
        if user.name in self.n.settings.loopback_users and not self.n.is_loopback(remote_address):
            raise admin.AccessRefused("User can only log in via localhost")
        return user_info(user)

    def user_vhosts(self, username: str) -> list[str]:
        return [vhost for (user, vhost) in self.broker.users.permissions if user == username]


def _rss() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _disk_free(path: str) -> int:
    """Free bytes where the data directory is (or would be: its nearest existing parent)."""
    path = os.path.abspath(path)
    while True:
        try:
            return shutil.disk_usage(path).free
        except OSError:
            parent = os.path.dirname(path)
            if parent == path:
                return 0
            path = parent


def _compatible_version(node: Node) -> str:
    props = node.server_properties()
    return str(props.get("version", ""))
