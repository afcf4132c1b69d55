"""Dead-lettering: republish a message that left a queue unconsumed, with its history.

The message goes to the queue's dead-letter exchange with the dead-letter routing key (or its
own routing keys, CC included).  Its ``x-death`` header gets one entry per (queue, reason),
most recent first: a repeat increments ``count`` and moves the entry to the front, keeping its
first ``time``, ``exchange`` and ``routing-keys``; the first death also sets
``x-first-death-*``, and every death ``x-last-death-*`` (RabbitMQ 3.13's order and headers;
3.10 lacks x-last-death-* and reverses the older entries).  A per-message TTL is removed and
kept as ``original-expiration``.  A message that would come
back to a queue it already died in, with no rejection in between, is dropped there: an
automatic cycle (RabbitMQ's rule).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from warrenmq.amqp import spec
from warrenmq.amqp.frames import decode_properties, replace_properties
from warrenmq.amqp.values import FieldTable, TypedValue
from warrenmq.broker.message import Message, encode_route

if TYPE_CHECKING:
    from warrenmq.broker.queue import Queue
    from warrenmq.broker.queue_args import QueueSettings
    from warrenmq.broker.vhost import VHost

log = logging.getLogger("warrenmq.dead_letter")


def _text(item: TypedValue | None) -> Any:
    if item is None:
        return None
    value = item[1]
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def sender_routes(headers: FieldTable | None) -> tuple[list[str], list[str]]:
    """The CC and BCC routing keys of a message (sender-selected distribution)."""
    if not headers:
        return [], []
    out: list[list[str]] = []
    for key in ("CC", "BCC"):
        item = headers.get(key)
        keys: list[str] = []
        if item is not None and item[0] == "A":
            keys = [str(_text(v)) for v in item[1] if v[0] == "S"]
        out.append(keys)
    return out[0], out[1]


# The key order of an x-death entry as RabbitMQ 3.13 writes it (mc_amqpl:death_table/7).
_ENTRY_ORDER = ("original-expiration", "count", "reason", "queue", "time", "exchange", "routing-keys")


def record_death(
    properties: spec.BasicProperties, reason: str, queue: str, exchange: str, routing_keys: list[str]
) -> None:
    """Update the headers of ``properties`` in place for one more death."""
    headers = properties.headers if isinstance(properties.headers, FieldTable) else FieldTable.of(properties.headers)
    deaths_item = headers.get("x-death")
    deaths: list[TypedValue] = list(deaths_item[1]) if deaths_item is not None and deaths_item[0] == "A" else []
    match: FieldTable | None = None
    others: list[TypedValue] = []
    for item in deaths:
        if (
            match is None
            and item[0] == "F"
            and _text(item[1].get("queue")) == queue
            and _text(item[1].get("reason")) == reason
        ):
            match = item[1]
            continue
        others.append(item)
    if match is not None:
        entry = FieldTable(match)
        count = match.get("count")
        entry["count"] = ("l", (int(count[1]) if count is not None else 0) + 1)
    else:
        entry = FieldTable()
        entry["count"] = ("l", 1)
        entry["reason"] = ("S", reason)
        entry["queue"] = ("S", queue)
        entry["time"] = ("T", int(time.time()))
        entry["exchange"] = ("S", exchange)
        entry["routing-keys"] = ("A", [("S", k) for k in routing_keys])
        if properties.expiration is not None:
            entry["original-expiration"] = ("S", properties.expiration)
    sorted_entry = FieldTable((key, entry[key]) for key in _ENTRY_ORDER if key in entry)
    sorted_entry.update((key, value) for key, value in entry.items() if key not in sorted_entry)
    if deaths_item is None:
        headers["x-first-death-reason"] = ("S", reason)
        headers["x-first-death-queue"] = ("S", queue)
        headers["x-first-death-exchange"] = ("S", exchange)
    headers["x-last-death-reason"] = ("S", reason)
    headers["x-last-death-queue"] = ("S", queue)
    headers["x-last-death-exchange"] = ("S", exchange)
    headers["x-death"] = ("A", [("F", sorted_entry), *others])
    properties.headers = headers
    properties.expiration = None


def is_cycle(target: str, deaths: list[TypedValue]) -> bool:
    """An automatic cycle: ``target`` is in the history with no rejection since."""
    seen: list[FieldTable] = []
    for item in deaths:
        if item[0] != "F":
            continue
        seen.append(item[1])
        if _text(item[1].get("queue")) == target:
            return all(_text(d.get("reason")) != "rejected" for d in seen)
    return False


class DeadLetterer:
    """The dead-lettering of one vhost (where its DLX routes)."""

    def __init__(self, vhost: VHost, next_seq: Callable[[], int]) -> None:
        self.vhost = vhost
        self.next_seq = next_seq

    def for_queue(self, queue: Queue, settings: QueueSettings | None = None) -> Callable[[Message, str], None] | None:
        if (settings or queue.settings).dead_letter_exchange is None:
            return None
        return lambda message, reason: self.dead_letter(queue, message, reason)

    def dead_letter(self, queue: Queue, message: Message, reason: str) -> None:
        settings = queue.settings
        exchange_name = settings.dead_letter_exchange
        if exchange_name is None:
            return
        exchange = self.vhost.exchanges.get(exchange_name)
        if exchange is None:
            log.warning(
                "dead-letter exchange '%s' of queue '%s' in vhost '%s' does not exist; message dropped",
                exchange_name,
                queue.name,
                self.vhost.name,
            )
            return
        properties = decode_properties(message.header)
        headers = properties.headers if isinstance(properties.headers, FieldTable) else None
        cc, _bcc = sender_routes(headers)  # BCC keys stay out of the history
        death_keys = [message.routing_key, *cc]
        record_death(properties, reason, queue.name, message.exchange, death_keys)
        if settings.dead_letter_routing_key is not None:
            keys = [settings.dead_letter_routing_key]
            assert properties.headers is not None
            properties.headers.pop("CC", None)
        else:
            keys = [*death_keys, *message.blind_copies]  # as RabbitMQ: BCC keys route it, unrecorded
        new = Message(
            self.next_seq(),
            exchange_name,
            keys[0],
            encode_route(exchange_name, keys[0]),
            replace_properties(message.header, properties),
            message.body,
            message.persistent,
            message.priority,
            None,
        )
        deaths = properties.headers["x-death"][1] if properties.headers else []
        targets: list[Queue] = []
        seen: set[int] = set()
        for key in keys:
            new.routing_key = key
            for target in self.vhost.route(exchange, new):
                if id(target) not in seen:
                    seen.add(id(target))
                    targets.append(target)
        new.routing_key = keys[0]
        for i, target in enumerate(targets):
            if reason != "rejected" and is_cycle(target.name, deaths):
                log.warning(
                    "message dropped: dead-letter cycle without rejection through queue '%s' in vhost '%s'",
                    target.name,
                    self.vhost.name,
                )
                continue
            target.publish(new if i == 0 else new.copy())
