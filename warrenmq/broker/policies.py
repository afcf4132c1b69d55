"""Policies: settings applied to queues and exchanges by name pattern, without touching programs.

One policy applies to an object: the highest-priority one whose pattern matches its name (an
unanchored regular expression, as RabbitMQ's ``re:run``) and whose ``apply-to`` covers it.
Where both a queue argument and the policy set a value, RabbitMQ's rule decides: the smaller
wins for TTLs, expiry and length limits; the argument wins for the rest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from warrenmq.broker.queue_args import QueueSettings

APPLY_TO = ("all", "queues", "exchanges", "classic_queues", "quorum_queues", "streams")

QUEUE_KEYS = {
    "message-ttl": "message_ttl",
    "expires": "expires",
    "max-length": "max_length",
    "max-length-bytes": "max_length_bytes",
    "overflow": "overflow",
    "dead-letter-exchange": "dead_letter_exchange",
    "dead-letter-routing-key": "dead_letter_routing_key",
    "delivery-limit": "delivery_limit",
}
MIN_WINS = {"message-ttl", "expires", "max-length", "max-length-bytes", "delivery-limit"}
EXCHANGE_KEYS = {"alternate-exchange"}
# Accepted so that RabbitMQ definitions import, but without effect here.
INERT_KEYS = {
    "queue-mode",
    "queue-version",
    "ha-mode",
    "ha-params",
    "ha-sync-mode",
    "ha-promote-on-shutdown",
    "ha-promote-on-failure",
    "queue-master-locator",
    "queue-leader-locator",
    "max-in-memory-length",
    "max-in-memory-bytes",
    "dead-letter-strategy",
    "target-group-size",
    "initial-cluster-size",
    "max-age",
    "stream-max-segment-size-bytes",
    "federation-upstream",
    "federation-upstream-set",
    "consumer-timeout",
}
KNOWN_KEYS = set(QUEUE_KEYS) | EXCHANGE_KEYS | INERT_KEYS


class PolicyError(ValueError):
    pass


@dataclass
class Policy:
    name: str
    pattern: str
    definition: dict[str, Any]
    priority: int = 0
    apply_to: str = "all"
    _regex: re.Pattern[str] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.apply_to not in APPLY_TO:
            raise PolicyError(f"Invalid value '{self.apply_to}' for apply-to")
        unknown = [k for k in self.definition if k not in KNOWN_KEYS]
        if unknown:
            raise PolicyError(f"{unknown} are not recognised policy settings")
        if not self.definition:
            raise PolicyError("no policy provided")
        try:
            self._regex = re.compile(self.pattern)
        except re.error as exc:
            raise PolicyError(f"Invalid regular expression '{self.pattern}': {exc}") from None
        for key in MIN_WINS:
            value = self.definition.get(key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise PolicyError(f"{key} must be a non-negative integer, got {value!r}")
        overflow = self.definition.get("overflow")
        if overflow is not None and overflow not in ("drop-head", "reject-publish", "reject-publish-dlx"):
            raise PolicyError(f"overflow: {overflow!r} is not a valid overflow mode")

    def matches(self, name: str) -> bool:
        assert self._regex is not None
        return self._regex.search(name) is not None

    def applies_to_queue(self, queue_type: str) -> bool:
        return (
            self.apply_to in ("all", "queues")
            or (self.apply_to == "classic_queues" and queue_type == "classic")
            or (self.apply_to == "quorum_queues" and queue_type == "quorum")
        )

    def applies_to_exchange(self) -> bool:
        return self.apply_to in ("all", "exchanges")

    def to_json(self, vhost: str) -> dict[str, Any]:
        return {
            "vhost": vhost,
            "name": self.name,
            "pattern": self.pattern,
            "apply-to": self.apply_to,
            "definition": dict(self.definition),
            "priority": self.priority,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Policy:
        return cls(
            name=data["name"],
            pattern=data["pattern"],
            definition=dict(data.get("definition") or {}),
            priority=int(data.get("priority", 0)),
            apply_to=data.get("apply-to", data.get("apply_to", "all")),
        )


def _best(policies: list[Policy], name: str, wanted: Any) -> Policy | None:
    best: Policy | None = None
    for policy in policies:
        if wanted(policy) and policy.matches(name) and (best is None or policy.priority > best.priority):
            best = policy
    return best


def policy_for_queue(policies: list[Policy], name: str, queue_type: str) -> Policy | None:
    return _best(policies, name, lambda p: p.applies_to_queue(queue_type))


def policy_for_exchange(policies: list[Policy], name: str) -> Policy | None:
    return _best(policies, name, lambda p: p.applies_to_exchange())


def effective_settings(base: QueueSettings, policy: Policy | None, arguments: dict[str, Any]) -> QueueSettings:
    """Merge a queue's argument-derived settings with its policy, by RabbitMQ's rules."""
    if policy is None:
        return base
    changes: dict[str, Any] = {}
    for key, attr in QUEUE_KEYS.items():
        if key not in policy.definition:
            continue
        if key == "delivery-limit" and base.queue_type != "quorum":
            continue
        value = policy.definition[key]
        if f"x-{key}" not in arguments:
            changes[attr] = value
        elif key in MIN_WINS:
            changes[attr] = min(getattr(base, attr), value)
    return base.with_changes(**changes) if changes else base
