"""Users, password hashes and permissions, as RabbitMQ keeps them.

Password hashes use RabbitMQ's default scheme (rabbit_password_hashing_sha256): a 4-byte
random salt, then ``base64(salt + sha256(salt + password))``, so definitions exported from
RabbitMQ import with working passwords.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from dataclasses import dataclass, field

HASHING_SHA256 = "rabbit_password_hashing_sha256"
HASHING_SHA512 = "rabbit_password_hashing_sha512"
HASHING_MD5 = "rabbit_password_hashing_md5"
_DIGESTS = {HASHING_SHA256: hashlib.sha256, HASHING_SHA512: hashlib.sha512, HASHING_MD5: hashlib.md5}


def hash_password(password: str, algorithm: str = HASHING_SHA256, salt: bytes | None = None) -> str:
    salt = os.urandom(4) if salt is None else salt
    digest = _DIGESTS[algorithm](salt + password.encode()).digest()
    return base64.b64encode(salt + digest).decode()


def check_password(password: str, password_hash: str, algorithm: str = HASHING_SHA256) -> bool:
    if not password_hash:
        return False
    try:
        raw = base64.b64decode(password_hash)
    except ValueError:
        return False
    salt = raw[:4]
    expected = hash_password(password, algorithm, salt)
    return hmac.compare_digest(expected, password_hash)


@dataclass
class User:
    name: str
    password_hash: str
    tags: list[str] = field(default_factory=list)
    hashing_algorithm: str = HASHING_SHA256

    def check(self, password: str) -> bool:
        return check_password(password, self.password_hash, self.hashing_algorithm)

    def has_tag(self, *tags: str) -> bool:
        return any(t in self.tags for t in tags)


@dataclass
class Permission:
    user: str
    vhost: str
    configure: str = ".*"
    write: str = ".*"
    read: str = ".*"

    def allows(self, permission: str, name: str) -> bool:
        """``permission`` is "configure", "write" or "read"."""
        return pattern_matches(getattr(self, permission), name)

    def _allows(self, pattern: str, name: str) -> bool:
        return pattern_matches(pattern, name)

    def can_configure(self, name: str) -> bool:
        return pattern_matches(self.configure, name)

    def can_write(self, name: str) -> bool:
        return pattern_matches(self.write, name)

    def can_read(self, name: str) -> bool:
        return pattern_matches(self.read, name)


_COMPILED: dict[str, re.Pattern[str] | None] = {}


def pattern_matches(pattern: str, name: str) -> bool:
    """RabbitMQ's ``re:run(Name, Pattern)``: an unanchored search; an empty pattern is ``^$``.
    A pattern that is not a valid regular expression grants nothing."""
    compiled = _COMPILED.get(pattern, False)
    if compiled is False:
        try:
            compiled = re.compile(pattern or "^$")
        except re.error:
            compiled = None
        if len(_COMPILED) > 4096:
            _COMPILED.clear()
        _COMPILED[pattern] = compiled
    return compiled is not None and compiled.search(name) is not None  # type: ignore[union-attr]


class UserStore:
    """Users and their per-vhost permissions."""

    def __init__(self) -> None:
        self.users: dict[str, User] = {}
        self.permissions: dict[tuple[str, str], Permission] = {}
        self.topic_permissions: dict[tuple[str, str, str], tuple[str, str]] = {}

    def add_default(self, name: str = "guest", password: str = "guest", vhost: str = "/") -> None:
        self.users[name] = User(name, hash_password(password), ["administrator"])
        self.permissions[(name, vhost)] = Permission(name, vhost)

    def authenticate(self, name: str, password: str) -> User | None:
        user = self.users.get(name)
        if user is None or not user.check(password):
            return None
        return user

    def permission(self, user: str, vhost: str) -> Permission | None:
        return self.permissions.get((user, vhost))

    def topic_allows(self, user: str, vhost: str, exchange: str, permission: str, routing_key: str) -> bool:
        """Topic permissions (write, read) on a routing key; none for the exchange grants all.
        ``{username}`` and ``{vhost}`` in a pattern stand for the user's name and the vhost."""
        granted = self.topic_permissions.get((user, vhost, exchange))
        if granted is None:
            return True
        pattern = granted[0] if permission == "write" else granted[1]
        pattern = pattern.replace("{username}", user).replace("{vhost}", vhost)
        return pattern_matches(pattern, routing_key)
