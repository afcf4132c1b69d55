"""What the API handlers share: the Admin interface, the rates sampler, the node's name, and
(in a cluster) the other nodes' APIs."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from warrenmq.admin import Admin, Listener
from warrenmq.management.peers import Peers
from warrenmq.management.rates import Rates


@dataclass
class Context:
    admin: Admin
    rates: Rates
    node_name: str
    http_listeners: list[Listener] = field(default_factory=list)
    peers: Peers = field(default_factory=Peers)


CONTEXT = web.AppKey("context", Context)


def context(request: web.Request) -> Context:
    return request.app[CONTEXT]
