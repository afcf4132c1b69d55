"""Policies: settings applied to queues and exchanges by name pattern, without touching programs.

One policy applies to an object: the highest-priority one whose pattern matches its name (an
unanchored regular expression, as RabbitMQ's ``re:run``) and whose ``apply-to`` covers it.
Where both a queue argument and the policy set a value, RabbitMQ's rule decides: the smaller
wins for TTLs, expiry, length limits and the delivery limit; the argument wins for the rest
(except that a quorum queue's policy wins for overflow and expires, as in RabbitMQ 3.13).
``max-priority`` is not a policy key (RabbitMQ refuses it).
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
    "consumer-timeout": "consumer_timeout",
}
# consumer-timeout: the smaller wins as in RabbitMQ; 0 is "none" here, so a queue that opts
# out with x-consumer-timeout 0 stays out whatever a policy says.
MIN_WINS = {"message-ttl", "expires", "max-length", "max-length-bytes", "delivery-limit", "consumer-timeout"}
# RabbitMQ 3.13's quorum queues let the policy win for these (rabbit_quorum_queue:
# gather_policy_config uses policy_has_precedence); classic queues keep the argument / minimum.
QUORUM_POLICY_WINS = {"overflow", "expires"}
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
}
KNOWN_KEYS = set(QUEUE_KEYS) | EXCHANGE_KEYS | INERT_KEYS


class PolicyError(ValueError):
    pass


def erlang_term(value: Any) -> str:
    """A JSON value as RabbitMQ prints it (Erlang's ~tp) in policy validation errors."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return '<<"' + value.replace("\\", "\\\\").replace('"', '\\"') + '">>'
    if isinstance(value, list):
        return "[" + ",".join(erlang_term(v) for v in value) + "]"
    if isinstance(value, dict):
        return "#{" + ",".join(f"{erlang_term(k)} => {erlang_term(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _is_int(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _is_string(value: Any) -> bool:
    return isinstance(value, str)


# RabbitMQ 3.13's rabbit_policies:validate_policy0 checks and texts, for the keys WarrenMQ acts on.
VALIDATORS: dict[str, tuple[Any, str]] = {
    "alternate-exchange": (_is_string, "is not a valid alternate exchange name"),
    "dead-letter-exchange": (_is_string, "is not a valid dead letter exchange name"),
    "dead-letter-routing-key": (_is_string, "is not a valid dead letter routing key"),
    "message-ttl": (lambda v: _is_int(v, 0), "is not a valid message TTL"),
    "expires": (lambda v: _is_int(v, 1), "is not a valid queue expiry"),
    "max-length": (lambda v: _is_int(v, 0), "is not a valid maximum length"),
    "max-length-bytes": (lambda v: _is_int(v, 0), "is not a valid maximum length in bytes"),
    "overflow": (lambda v: v in ("drop-head", "reject-publish", "reject-publish-dlx"), "is not a valid overflow value"),
    "delivery-limit": (lambda v: _is_int(v, 0), "is not a valid delivery limit"),
    "queue-mode": (lambda v: v in ("default", "lazy"), "is not a valid queue-mode value"),
    "queue-version": (lambda v: v in (1, 2) and not isinstance(v, bool), "is not a valid queue-version value"),
    "consumer-timeout": (lambda v: _is_int(v, 0), "is not a valid consumer timeout"),
}


@dataclass
class Policy:
    name: str
    pattern: str
    definition: dict[str, Any]
    priority: int = 0
    apply_to: str = "all"
    _regex: re.Pattern[str] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        """RabbitMQ's validation, in its order (pattern, apply-to, definition) and words."""
        if not isinstance(self.pattern, str):
            raise PolicyError(f"pattern should be regular expression but is {erlang_term(self.pattern)}")
        try:
            self._regex = re.compile(self.pattern)
        except re.error as exc:
            position = (exc.pos or 0) + 1
            raise PolicyError(
                f'pattern should be regular expression but is invalid: {{"{exc.msg}",{position}}}'
            ) from None
        if self.apply_to not in APPLY_TO:
            raise PolicyError(f"apply-to '{self.apply_to}' unrecognised; should be 'queues', 'exchanges' or 'all'")
        if not self.definition:
            raise PolicyError("no policy provided")
        for key, value in self.definition.items():
            check = VALIDATORS.get(key)
            if check is not None and not check[0](value):
                raise PolicyError(f"{erlang_term(value)} {check[1]}")
        unknown = [(k, v) for k, v in self.definition.items() if k not in KNOWN_KEYS]
        if unknown:
            listed = ",".join(f"{{{erlang_term(k)},{erlang_term(v)}}}" for k, v in unknown)
            raise PolicyError(f"[{listed}] are not recognised policy settings")

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
    quorum = base.queue_type == "quorum"
    changes: dict[str, Any] = {}
    for key, attr in QUEUE_KEYS.items():
        if key not in policy.definition:
            continue
        if key == "delivery-limit" and not quorum:
            continue
        value = policy.definition[key]
        current = getattr(base, attr)
        if f"x-{key}" not in arguments or (quorum and key in QUORUM_POLICY_WINS):
            changes[attr] = value
        elif key in MIN_WINS:
            # An argument that sets no limit (a quorum queue's negative or non-integer
            # x-delivery-limit) leaves the policy's.
            changes[attr] = value if current is None else min(current, value)
    return base.with_changes(**changes) if changes else base
