"""Health checks, as RabbitMQ's management API answers them: 200 ``{"status": "ok"}`` when
healthy, 503 with ``"status": "failed"`` and a reason when not (monitoring tools read both).

The /api/health/checks/* family is RabbitMQ 3.8+'s; /api/healthchecks/node and
/api/aliveness-test are the older checks, still served by RabbitMQ 3.x.  Bodies and codes are
RabbitMQ 3.10.8's.
"""

from __future__ import annotations

import ssl
import time

from aiohttp import web

from warrenmq import admin
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


async def alarms(request: web.Request) -> web.Response:
    found = context(request).admin.alarms()
    if not found:
        return _ok(request)
    return _failed(
        request,
        "There are alarms in effect in the cluster",
        alarms=[{"resource": a.resource, "node": a.node} for a in found],
    )


async def node_health(request: web.Request) -> web.Response:
    """The pre-3.8 node check: the node runs (and is the one named)."""
    name = request.match_info.get("node")
    if name is not None and name != context(request).node_name:
        raise object_not_found()
    return _ok(request)


async def virtual_hosts(request: web.Request) -> web.Response:
    return _ok(request)  # a virtual host here is never stopped on its own


async def single_node(request: web.Request) -> web.Response:
    """Quorum / mirror-sync criticality: nothing depends on this node's peers."""
    return _ok(request, reason="single node cluster")


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
    router.add_get("/api/health/checks/local-alarms", alarms)
    router.add_get("/api/health/checks/virtual-hosts", virtual_hosts)
    router.add_get("/api/health/checks/node-is-quorum-critical", single_node)
    router.add_get("/api/health/checks/node-is-mirror-sync-critical", single_node)
    router.add_get("/api/health/checks/protocol-listener/{protocol}", protocol_listener)
    router.add_get("/api/health/checks/port-listener/{port}", port_listener)
    router.add_get("/api/health/checks/certificate-expiration/{within}/{unit}", certificate_expiration)
    router.add_get("/api/healthchecks/node", node_health)
    router.add_get("/api/healthchecks/node/{node}", node_health)
    router.add_get("/api/aliveness-test/{vhost}", aliveness)
