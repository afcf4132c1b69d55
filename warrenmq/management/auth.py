"""Who may call what: HTTP basic auth against the broker's users, and RabbitMQ's user tags.

- any management tag (management, policymaker, monitoring, administrator) lets a user in;
  without one: 401 "Not management user";
- ``management``: the vhosts the user has permissions in, and its own connections/channels;
- ``policymaker``: also policies in those vhosts;
- ``monitoring``: also every vhost, connection and channel (read only), and nodes;
- ``administrator``: everything, including users, permissions, vhosts and definitions.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from aiohttp import web

from warrenmq import admin
from warrenmq.management.http import REALM, HTTPError, login_failed, not_authorised

MANAGEMENT_TAGS = {"management", "policymaker", "monitoring", "administrator"}


@dataclass
class Principal:
    """The authenticated user of a request."""

    name: str
    tags: list[str]
    vhosts: set[str]  # vhosts it has permissions in

    @property
    def is_admin(self) -> bool:
        return "administrator" in self.tags

    @property
    def is_monitor(self) -> bool:
        return self.is_admin or "monitoring" in self.tags

    @property
    def is_policymaker(self) -> bool:
        return self.is_admin or "policymaker" in self.tags

    def sees_vhost(self, vhost: str) -> bool:
        """May read objects of this vhost (monitors see every vhost)."""
        return self.is_monitor or vhost in self.vhosts

    def uses_vhost(self, vhost: str) -> bool:
        """May act in this vhost."""
        return self.is_admin or vhost in self.vhosts


def authenticate(request: web.Request, api: admin.Admin) -> Principal:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        raise HTTPError(401, "", "", {"www-authenticate": REALM})
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise login_failed() from None
    username, sep, password = decoded.partition(":")
    if not sep:
        raise login_failed()
    try:
        user = api.authenticate(username, password, request.remote or "")
    except admin.LoginFailed:
        raise login_failed() from None
    except admin.AccessRefused as exc:
        raise not_authorised(exc.reason) from None
    if not MANAGEMENT_TAGS & set(user.tags):
        raise not_authorised("Not management user")
    return Principal(user.name, list(user.tags), set(api.user_vhosts(user.name)))


def principal(request: web.Request) -> Principal:
    p: Principal = request["principal"]
    return p


def require_admin(request: web.Request) -> Principal:
    p = principal(request)
    if not p.is_admin:
        raise not_authorised("Not administrator user")
    return p


def require_monitor(request: web.Request) -> Principal:
    p = principal(request)
    if not p.is_monitor:
        raise not_authorised("Not monitor user")
    return p


def require_vhost(request: web.Request, vhost: str, write: bool = False) -> Principal:
    """Access to a vhost's objects: read for monitors, read and write with permissions there."""
    p = principal(request)
    allowed = p.uses_vhost(vhost) if write or request.method not in ("GET", "HEAD") else p.sees_vhost(vhost)
    if not allowed:
        raise not_authorised("User not authorised to access virtual host")
    return p


def require_policymaker(request: web.Request, vhost: str) -> Principal:
    p = principal(request)
    if not (p.is_admin or (p.is_policymaker and vhost in p.vhosts)):
        raise not_authorised("User not authorised to access object")
    return p
