"""Health checks, as RabbitMQ's management API answers them: 200 ``{"status": "ok"}`` when
healthy, 503 with ``"status": "failed"`` and a reason when not (monitoring tools read both).

The /api/health/checks/* family is RabbitMQ 3.8+'s; /api/healthchecks/node and
/api/aliveness-test are the older checks, still served by RabbitMQ 3.x.  Bodies and codes are
RabbitMQ 3.10.8's.
"""

from __future__ import annotations

import asyncio
import ssl
import time

from aiohttp import web

from warrenmq import admin
from warrenmq.management import peers
from warrenmq.management.auth import require_vhost
from warrenmq.management.context import context
from warrenmq.management.http import HTTPError, object_not_found, reply

HEALTH_CHECK_FAILURE = 503

# Other names RabbitMQ accepts for a listener's protocol.
_PROTOCOL_ALIASES = {
    "amqp091": "amqp",
    "amqp0.9.1": "amqp",
    "amqp0-9-1": "amqp",
    "amqp0_9_1": "amqp",
    "amqps": "amqp/ssl",
}
_DAYS_PER_UNIT = {"days": 1, "weeks": 7, "months": 30, "years": 365}


def _ok(request: web.Request, **extra: object) -> web.Response:
    return reply({"status": "ok", **extra}, request)


def _failed(request: web.Request, reason: str, **extra: object) -> web.Response:
    return reply({"status": "failed", "reason": reason, **extra}, request, status=HEALTH_CHECK_FAILURE)


def _listeners(request: web.Request) -> list[admin.Listener]:
    ctx = context(request)
    return [*ctx.admin.node().listeners, *ctx.http_listeners]


def _alarms_failed(request: web.Request, found: list[dict[str, str]]) -> web.Response:
    if not found:
        return _ok(request)
    return _failed(request, "There are alarms in effect in the cluster", alarms=found)


async def local_alarms(request: web.Request) -> web.Response:
    return _alarms_failed(request, [{"resource": a.resource, "node": a.node} for a in context(request).admin.alarms()])


async def alarms(request: web.Request) -> web.Response:
    """Every running member's alarms (a member that does not answer is left out)."""
    ctx = context(request)
    found = [{"resource": a.resource, "node": a.node} for a in ctx.admin.alarms()]
    cluster = ctx.admin.cluster()
    if cluster is not None:
        others = [m for m in cluster.members if m.name != cluster.node and m.running]
        authorization = request.headers.get("Authorization", "")
        for item in await asyncio.gather(*(ctx.peers.node_json(m, authorization) for m in others)):
            for flag, resource in (("mem_alarm", "memory"), ("disk_free_alarm", "disk space")):
                if item.get(flag):
                    found.append({"resource": resource, "node": item["name"]})
    return _alarms_failed(request, found)


def cluster_problem(cluster: admin.ClusterInfo) -> str | None:
    """Why a cluster node is not healthy: it lost etcd (and maybe its certainty of membership)."""
    if cluster.etcd_down_since is None and not cluster.frozen:
        return None
    since = ""
    if cluster.etcd_down_since is not None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(cluster.etcd_down_since))
        since = f" since {stamp} ({int(time.time() - cluster.etcd_down_since)} s)"
    if cluster.frozen:
        return (
            f"node {cluster.node} cannot reach etcd{since} and cannot be sure its cluster membership is alive: "
            "it serves no clients until etcd answers"
        )
    return f"node {cluster.node} cannot reach etcd{since}: definitions cannot change until it is back"


async def node_health(request: web.Request) -> web.Response:
    """The pre-3.8 node check: the node runs (and is the one named); a cluster node also has
    etcd within reach.  Another member named is asked itself."""
    ctx = context(request)
    name = request.match_info.get("node")
    cluster = ctx.admin.cluster()
    if name is not None and name != ctx.node_name:
        member = next((m for m in cluster.members if m.name == name), None) if cluster is not None else None
        if member is None:
            raise object_not_found()
        answer = await ctx.peers.get(member, "/api/healthchecks/node", request.headers.get("Authorization", ""))
        if answer is None:
            return _failed(request, f"node {name} is not running" if not member.running else f"node {name} is down")
        return reply(answer[1], request, status=answer[0])
    problem = cluster_problem(cluster) if cluster is not None else None
    return _failed(request, problem) if problem else _ok(request)


async def virtual_hosts(request: web.Request) -> web.Response:
    return _ok(request)  # a virtual host here is never stopped on its own


async def quorum_critical(request: web.Request) -> web.Response:
    """Would stopping this node leave a quorum queue without a majority of its members?"""
    ctx = context(request)
    cluster = ctx.admin.cluster()
    if cluster is None or len(cluster.members) == 1:
        return _ok(request, reason="single node cluster")
    found = peers.quorum_critical(ctx.admin.queues(), cluster.node)
    if not found:
        return _ok(request)
    return _failed(
        request, "There are quorum queues that would lose their quorum if the target node is shut down", queues=found
    )


async def mirror_sync_critical(request: web.Request) -> web.Response:
    """No classic mirrored queues here: nothing depends on this node's mirrors."""
    cluster = context(request).admin.cluster()
    if cluster is None or len(cluster.members) == 1:
        return _ok(request, reason="single node cluster")
    return _ok(request)


async def protocol_listener(request: web.Request) -> web.Response:
    asked = request.match_info["protocol"].lower()
    protocol = _PROTOCOL_ALIASES.get(asked, asked)
    protocols = sorted({listener.protocol for listener in _listeners(request)})
    if protocol in protocols:
        return _ok(request, protocol=protocol)
    return _failed(request, "No active listener", missing=protocol, protocols=protocols)


async def port_listener(request: web.Request) -> web.Response:
    try:
        port = int(request.match_info["port"])
    except ValueError:
        raise HTTPError(400, "bad_request", "Invalid port") from None
    ports = sorted({listener.port for listener in _listeners(request)})
    if port in ports:
        return _ok(request, port=port)
    return _failed(request, "No active listener", missing=port, ports=ports)


async def certificate_expiration(request: web.Request) -> web.Response:
    unit = request.match_info["unit"]
    if unit not in _DAYS_PER_UNIT:
        raise HTTPError(400, "bad_request", "Time unit not recognised. Supported units: days, weeks, months, years.")
    try:
        within = int(request.match_info["within"])
    except ValueError:
        raise HTTPError(400, "bad_request", "Invalid expiration value.") from None
    ctx = context(request)
    node = ctx.admin.node()
    if not node.tls_certificate:
        return _ok(request)
    expires_at = _not_after(node.tls_certificate)
    if expires_at is None or expires_at > time.time() + within * _DAYS_PER_UNIT[unit] * 86400:
        return _ok(request)
    expiring = [
        {
            "node": node.name,
            "protocol": listener.protocol,
            "interface": listener.ip_address,
            "port": listener.port,
            "certfile": node.tls_certificate,
            "expiration_date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires_at)),
        }
        for listener in _listeners(request)
        if listener.protocol in ("amqp/ssl", "https")
    ]
    return _failed(request, "Certificates expiring", expired=expiring)


def _not_after(path: str) -> float | None:
    """When the PEM certificate at ``path`` expires (None: it cannot be read)."""
    try:
        # The ssl module's certificate decoder: the standard library has no public one.
        decoded = ssl._ssl._test_decode_cert(path)  # type: ignore[attr-defined]
        return float(ssl.cert_time_to_seconds(decoded["notAfter"]))
    except (OSError, ssl.SSLError, KeyError, ValueError):
        return None


async def aliveness(request: web.Request) -> web.Response:
    vhost = request.match_info["vhost"]
    p = require_vhost(request, vhost, write=True)
    ctx = context(request)
    if vhost not in {v.name for v in ctx.admin.vhosts()}:
        raise object_not_found()
    try:
        await ctx.admin.aliveness_test_async(vhost, p.name)
    except admin.BadRequest as exc:
        return _failed(request, exc.reason)
    return _ok(request)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/api/health/checks/alarms", alarms)
    router.add_get("/api/health/checks/local-alarms", local_alarms)
    router.add_get("/api/health/checks/virtual-hosts", virtual_hosts)
    router.add_get("/api/health/checks/node-is-quorum-critical", quorum_critical)
    router.add_get("/api/health/checks/node-is-mirror-sync-critical", mirror_sync_critical)
    router.add_get("/api/health/checks/protocol-listener/{protocol}", protocol_listener)
    router.add_get("/api/health/checks/port-listener/{port}", port_listener)
    router.add_get("/api/health/checks/certificate-expiration/{within}/{unit}", certificate_expiration)
    router.add_get("/api/healthchecks/node", node_health)
    router.add_get("/api/healthchecks/node/{node}", node_health)
    router.add_get("/api/aliveness-test/{vhost}", aliveness)
