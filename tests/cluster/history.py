"""A history of what clients saw, and a checker over it.

Publisher and consumer threads record, per message id (unique per message: the load drivers
put it in the body and the message_id property):

- ``publish``: the publisher is about to send it;
- one outcome: ``confirm`` (basic.ack), ``nack``, ``returned`` (unroutable), or ``unknown``
  (the connection went before the broker said anything);
- ``deliver``: a consumer got it, from which node, with the redelivered flag;
- ``ack``: the consumer acknowledged that delivery.

``check()`` then says whether the broker kept its promises:

- loss: a confirmed message never delivered and acked;
- double delivery: a message delivered with redelivered=false more than once;
- phantom: a delivered message that nobody published.

A message without a confirm (nacked, returned, unknown, or no outcome yet when the run ended)
may or may not arrive, but at most once as new.  ``outage()`` measures how long the service
stopped around a fault: the longest gap between successes (confirms and/or deliveries).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

PUBLISH = "publish"
CONFIRM = "confirm"
NACK = "nack"
RETURNED = "returned"
UNKNOWN = "unknown"
DELIVER = "deliver"
ACK = "ack"
CONNECT = "connect"
DISCONNECT = "disconnect"
MARK = "mark"

OUTCOMES = (CONFIRM, NACK, RETURNED, UNKNOWN)
SUCCESSES = (CONFIRM, DELIVER)
SHOWN = 20  # ids listed per kind of problem


@dataclass(frozen=True, slots=True)
class Event:
    at: float  # time.monotonic()
    kind: str
    msg_id: str = ""
    actor: str = ""  # publisher or consumer name
    node: str = ""  # the node its connection was to
    redelivered: bool = False
    queue: str = ""
    detail: str = ""


class History:
    """Thread-safe recorder of client-side events."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.started = clock()
        self._events: list[Event] = []
        self._changed = threading.Condition()
        self._confirmed: set[str] = set()
        self._acked: set[str] = set()

    def _add(self, event: Event) -> float:
        with self._changed:
            self._events.append(event)
            if event.kind == CONFIRM:
                self._confirmed.add(event.msg_id)
            elif event.kind == ACK:
                self._acked.add(event.msg_id)
            self._changed.notify_all()
        return event.at

    # -- recording ---------------------------------------------------------------------

    def publish(self, msg_id: str, publisher: str, node: str = "", queue: str = "") -> None:
        self._add(Event(self.clock(), PUBLISH, msg_id, publisher, node, queue=queue))

    def confirm(self, msg_id: str, publisher: str, node: str = "", queue: str = "") -> None:
        self._add(Event(self.clock(), CONFIRM, msg_id, publisher, node, queue=queue))

    def nack(self, msg_id: str, publisher: str, node: str = "", queue: str = "") -> None:
        self._add(Event(self.clock(), NACK, msg_id, publisher, node, queue=queue))

    def returned(self, msg_id: str, publisher: str, node: str = "", queue: str = "") -> None:
        self._add(Event(self.clock(), RETURNED, msg_id, publisher, node, queue=queue))

    def unknown(self, msg_id: str, publisher: str, node: str = "", queue: str = "", reason: str = "") -> None:
        """The publisher's connection was lost before a confirm or nack came."""
        self._add(Event(self.clock(), UNKNOWN, msg_id, publisher, node, queue=queue, detail=reason))

    def deliver(self, msg_id: str, consumer: str, node: str, redelivered: bool, queue: str = "") -> None:
        self._add(Event(self.clock(), DELIVER, msg_id, consumer, node, redelivered, queue))

    def ack(self, msg_id: str, consumer: str, node: str = "", queue: str = "") -> None:
        self._add(Event(self.clock(), ACK, msg_id, consumer, node, queue=queue))

    def connected(self, actor: str, node: str) -> None:
        self._add(Event(self.clock(), CONNECT, actor=actor, node=node))

    def disconnected(self, actor: str, node: str, reason: str) -> None:
        self._add(Event(self.clock(), DISCONNECT, actor=actor, node=node, detail=reason))

    def mark(self, label: str) -> float:
        """Note a fault (or anything) in the history; returns its time, for ``outage()``."""
        return self._add(Event(self.clock(), MARK, detail=label))

    # -- reading -----------------------------------------------------------------------

    @property
    def events(self) -> list[Event]:
        with self._changed:
            return list(self._events)

    def unsettled(self) -> set[str]:
        """Confirmed message ids no consumer has acknowledged yet."""
        with self._changed:
            return self._confirmed - self._acked

    def count(self, kind: str) -> int:
        with self._changed:
            return sum(1 for e in self._events if e.kind == kind)

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait (woken by each new event) until ``predicate()``; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
            return True

    def wait_settled(self, timeout: float) -> bool:
        """Until every confirmed message has been acknowledged by a consumer."""
        return self.wait_for(lambda: not (self._confirmed - self._acked), timeout)

    def check(self) -> Verdict:
        return check(self.events, self.started)

    def outage(
        self, fault_at: float, kinds: Sequence[str] = SUCCESSES, queue: str | None = None, horizon: float = 10.0
    ) -> Outage:
        return outage(self.events, fault_at, kinds, queue, horizon)


# -- the checker ---------------------------------------------------------------------------


@dataclass
class Verdict:
    lost: list[str] = field(default_factory=list)  # confirmed, never delivered and acked
    doubles: list[str] = field(default_factory=list)  # delivered as new more than once
    phantoms: list[str] = field(default_factory=list)  # delivered, never published
    reused_ids: list[str] = field(default_factory=list)  # published twice: the test's own bug
    figures: dict[str, float] = field(default_factory=dict)
    trails: dict[str, list[Event]] = field(default_factory=dict)  # per problem id, its events
    started: float = 0.0

    @property
    def ok(self) -> bool:
        return not (self.lost or self.doubles or self.phantoms or self.reused_ids)

    def summary(self) -> str:
        f = self.figures
        return (
            f"published {f['published']:.0f}: confirmed {f['confirmed']:.0f}, nacked {f['nacked']:.0f},"
            f" returned {f['returned']:.0f}, unknown {f['unknown']:.0f}, no outcome {f['pending']:.0f};"
            f" delivered {f['delivered']:.0f} times ({f['delivered_ids']:.0f} ids, {f['redeliveries']:.0f}"
            f" redelivered), acked {f['acked_ids']:.0f} ids; unconfirmed that arrived {f['unconfirmed_delivered']:.0f};"
            f" reconnects {f['reconnects']:.0f}"
        )

    def report(self) -> str:
        lines = [self.summary()]
        for title, ids in (
            ("LOST: confirmed but never delivered and acked", self.lost),
            ("DOUBLE: delivered with redelivered=false more than once", self.doubles),
            ("PHANTOM: delivered but never published", self.phantoms),
            ("REUSED ID: published more than once (a bug in the test)", self.reused_ids),
        ):
            if not ids:
                continue
            lines.append(f"{title}: {len(ids)}")
            for msg_id in ids[:SHOWN]:
                lines.append(f"  {msg_id}: " + "; ".join(self._describe(e) for e in self.trails.get(msg_id, [])))
            if len(ids) > SHOWN:
                lines.append(f"  ... and {len(ids) - SHOWN} more")
        return "\n".join(lines)

    def _describe(self, e: Event) -> str:
        where = f" via {e.node}" if e.node else ""
        flag = " redelivered" if e.redelivered else ""
        return f"{e.kind}{flag} by {e.actor}{where} at {e.at - self.started:.3f}s"

    def assert_ok(self) -> None:
        if not self.ok:
            raise AssertionError("history check failed:\n" + self.report())


def check(events: Iterable[Event], started: float | None = None) -> Verdict:
    """Check a history (see the module docstring); never raises: read ``Verdict.ok``."""
    events = list(events)
    published: dict[str, int] = defaultdict(int)
    outcome: dict[str, str] = {}
    new_deliveries: dict[str, int] = defaultdict(int)
    deliveries: dict[str, int] = defaultdict(int)
    acked: set[str] = set()
    trails: dict[str, list[Event]] = defaultdict(list)
    redeliveries = reconnects = 0
    connected_before: set[str] = set()
    for e in events:
        if e.msg_id:
            trails[e.msg_id].append(e)
        if e.kind == PUBLISH:
            published[e.msg_id] += 1
        elif e.kind in OUTCOMES:
            # A confirm is final; otherwise the latest outcome counts.
            if outcome.get(e.msg_id) != CONFIRM:
                outcome[e.msg_id] = e.kind
        elif e.kind == DELIVER:
            deliveries[e.msg_id] += 1
            if e.redelivered:
                redeliveries += 1
            else:
                new_deliveries[e.msg_id] += 1
        elif e.kind == ACK:
            acked.add(e.msg_id)
        elif e.kind == CONNECT:
            if e.actor in connected_before:
                reconnects += 1
            connected_before.add(e.actor)

    confirmed = {m for m, o in outcome.items() if o == CONFIRM}
    verdict = Verdict(started=events[0].at if started is None and events else started or 0.0)
    verdict.lost = sorted(m for m in confirmed if m not in acked)
    verdict.doubles = sorted(m for m, n in new_deliveries.items() if n > 1)
    verdict.phantoms = sorted(m for m in deliveries if m not in published)
    verdict.reused_ids = sorted(m for m, n in published.items() if n > 1)
    for msg_id in verdict.lost + verdict.doubles + verdict.phantoms + verdict.reused_ids:
        verdict.trails[msg_id] = trails[msg_id]
    counts = defaultdict(int, {k: sum(1 for o in outcome.values() if o == k) for k in OUTCOMES})
    verdict.figures = {
        "published": len(published),
        "confirmed": counts[CONFIRM],
        "nacked": counts[NACK],
        "returned": counts[RETURNED],
        "unknown": counts[UNKNOWN],
        "pending": sum(1 for m in published if m not in outcome),
        "delivered": sum(deliveries.values()),
        "delivered_ids": len(deliveries),
        "redeliveries": redeliveries,
        "acked_ids": len(acked),
        "unconfirmed_delivered": sum(1 for m in deliveries if m in published and m not in confirmed),
        "lost": len(verdict.lost),
        "doubles": len(verdict.doubles),
        "phantoms": len(verdict.phantoms),
        "reconnects": reconnects,
    }
    return verdict


# -- the outage around a fault ---------------------------------------------------------------


@dataclass(frozen=True)
class Outage:
    fault_at: float
    start: float | None  # the last success before the gap (None: none before it)
    end: float | None  # the first success after it (None: service never came back)
    label: str = "queue"

    @property
    def gap(self) -> float | None:
        if self.start is None or self.end is None:
            return None
        return self.end - self.start

    @property
    def served_again_after(self) -> float | None:
        """Seconds from the fault to the first success after the gap."""
        return None if self.end is None else self.end - self.fault_at

    def describe(self) -> str:
        if self.end is None:
            last = "" if self.start is None else f" (last success {self.start - self.fault_at:+.3f} s from the fault)"
            return f"{self.label} never served again after the fault{last}"
        text = f"{self.label} served again after {self.end - self.fault_at:.3f} s"
        if self.start is not None:
            text += f" (longest gap {self.end - self.start:.3f} s, from {self.start - self.fault_at:+.3f} s)"
        return text


def outage(
    events: Iterable[Event],
    fault_at: float,
    kinds: Sequence[str] = SUCCESSES,
    queue: str | None = None,
    horizon: float = 10.0,
) -> Outage:
    """The longest gap between consecutive successes that ends after ``fault_at`` and starts
    no later than ``horizon`` seconds after it (in-flight confirms may still arrive just after
    a fault; a later hiccup while the cluster settles counts too, within the horizon)."""
    times = sorted(e.at for e in events if e.kind in kinds and (queue is None or e.queue == queue))
    label = f"queue {queue}" if queue else "queue"
    before = [t for t in times if t <= fault_at]
    best = Outage(fault_at, before[-1] if before else None, None, label)
    after = [t for t in times if t > fault_at]
    if not after:
        return best
    previous = before[-1] if before else None
    best_gap = -1.0
    for t in after:
        if previous is not None and previous > fault_at + horizon:
            break
        start = previous if previous is not None else fault_at
        if t - start > best_gap:
            best_gap = t - start
            best = Outage(fault_at, previous, t, label)
        previous = t
    return best
