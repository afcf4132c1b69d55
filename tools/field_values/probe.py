"""Running the cases against a broker, and comparing its answers with recorded ones."""

from __future__ import annotations

import json
import struct
import threading
import time
from typing import Any

from .cases import NATURAL, Case, shown
from .wire import (
    ARGS_NAME,
    DLX_QUEUE,
    OWN_QUEUE,
    REPLY_TO,
    Broker,
    Closed,
    Refused,
    Wire,
    frame,
    method,
    queue_declare,
    shortstr,
    table,
)

_PLAIN_METHODS = {  # kind: (frame for the arguments table, the index of the answer)
    "queue.declare": (lambda t: queue_declare(ARGS_NAME, t), 0x0032000B),
    "exchange.declare": (
        lambda t: method(1, 40, 10, b"\x00\x00" + shortstr(ARGS_NAME.encode()) + shortstr(b"direct") + b"\x00" + t),
        0x0028000B,
    ),
    "queue.bind": (
        lambda t: method(
            1,
            50,
            20,
            b"\x00\x00" + shortstr(ARGS_NAME.encode()) + shortstr(b"amq.headers") + shortstr(b"") + b"\x00" + t,
        ),
        0x00320015,
    ),
    "basic.consume": (
        lambda t: method(1, 60, 20, b"\x00\x00" + shortstr(ARGS_NAME.encode()) + shortstr(b"fv.args") + b"\x02" + t),
        0x003C0015,
    ),
}


class Session:
    """Cases on one connection; a refused case ends it, and the next case opens another."""

    def __init__(self, broker: Broker, rewritten: bool) -> None:
        self.broker = broker
        self.rewritten = rewritten  # this session consumes REWRITTEN
        self.wire: Wire | None = None
        self.own = ""
        self.sequence = 0

    def run(self, case: Case) -> dict[str, Any]:
        try:
            if case.kind == "connection.start-ok":
                return self._start_ok(case)
            if self.wire is None:
                self.wire, self.own = self.broker.open(self.rewritten)
            if case.kind == "publish":
                return self._publish(self.wire, case)
            return self._method(self.wire, case)
        except Refused as exc:
            self._drop()
            return {"refused": exc.reply}
        except Closed:
            self._drop()
            return {"refused": "closed without a word"}
        except TimeoutError:
            self._drop()
            return {"error": f"no answer in {self.broker.timeout} s"}

    def close(self) -> None:
        self._drop()

    def _drop(self) -> None:
        if self.wire is not None:
            self.wire.close()
            self.wire = None

    def _start_ok(self, case: Case) -> dict[str, Any]:
        wire = self.broker.start(case.data)  # Refused/Closed when the properties are
        wire.close()
        return {"accepted": True}

    def _method(self, wire: Wire, case: Case) -> dict[str, Any]:
        encode, answer = _PLAIN_METHODS[case.kind]
        wire.send(encode(case.data))
        wire.expect(answer)
        if case.kind == "basic.consume":
            wire.send(method(1, 60, 30, shortstr(b"fv.args") + b"\x00"))
            wire.expect(0x003C001F)
        return {"accepted": True}

    def _publish(self, wire: Wire, case: Case) -> dict[str, Any]:
        self.sequence += 1
        body = b"%d" % self.sequence  # tells this case's delivery from a late one of another
        header = struct.pack(">HHQ", 60, 0, len(body)) + case.data
        routing_key = (case.routing_key or self.own).encode()
        wire.send(  # mandatory: a message that no queue takes comes back (basic.return)
            method(1, 60, 40, b"\x00\x00" + shortstr(case.exchange.encode()) + shortstr(routing_key) + b"\x01")
            + frame(2, 1, header)
            + frame(3, 1, body)
        )
        while True:
            channel, index, args = wire.method()
            if index == 0x003C0032:  # basic.return: the content follows
                content = wire.frame()[2]
                size = struct.unpack_from(">Q", content, 4)[0]
                while size > 0:
                    size -= len(wire.frame()[2])
                return {"accepted": True, "returned": args[3 : 3 + args[2]].decode()}
            if index != 0x003C003C:  # basic.deliver
                raise AssertionError(f"expected basic.deliver, got method {index:#010x}")
            tag_at = 1 + args[0]
            tag = struct.unpack_from(">Q", args, tag_at)[0]
            _, _, content = wire.frame()
            size = struct.unpack_from(">Q", content, 4)[0]
            got = b""
            while len(got) < size:
                got += wire.frame()[2]
            if args[1:tag_at] != b"fv.reply":
                wire.send(method(channel, 60, 80, struct.pack(">QB", tag, 0)))
            if got == body:
                delivered = normalized(content[12:], case.routing_key == DLX_QUEUE)
                return {"accepted": True, "delivered": shown(delivered)}


_PROPERTY_SIZES = (0, 0, -1, 1, 1, 0, 0, 0, 0, 8, 0, 0, 0, 0)  # 0 short string, -1 table
_VALUE_SIZES = {ord(k): v for k, v in NATURAL.items() if k not in "SxFA"}


def normalized(properties: bytes, dead_lettered: bool) -> bytes:
    """A delivered property list with what differs on every run made constant (the channel's
    part of a direct reply-to address).  Of a dead-lettered message's headers only the
    entries the publisher sent are kept, in key order: how x-death is written is not what
    this file is about (RabbitMQ 3.10 sorts the table and writes no x-last-death-*; WarrenMQ
    writes x-death as RabbitMQ 3.13 does, see warrenmq/broker/dead_letter.py)."""
    flags = struct.unpack_from(">H", properties)[0]
    out = [properties[:2]]
    off = 2
    for bit, size in enumerate(_PROPERTY_SIZES):
        if not flags & (1 << (15 - bit)):
            continue
        if size == -1:
            stop = off + 4 + struct.unpack_from(">I", properties, off)[0]
            headers = properties[off:stop]
            if dead_lettered:
                headers = table(*sorted(e for e in _entries(headers[4:]) if not e[1:].startswith(b"x-")))
            out.append(headers)
        elif size == 0:
            stop = off + 1 + properties[off]
            value = properties[off + 1 : stop]
            if bit == 6 and value.startswith(REPLY_TO + b"."):
                value = REPLY_TO + b".*"
            out.append(shortstr(value))
        else:
            stop = off + size
            out.append(properties[off:stop])
        off = stop
    out.append(properties[off:])
    return b"".join(out)


def _entries(body: bytes) -> list[bytes]:
    """The entries (key and value) of a table's contents, as they are."""
    out = []
    off = 0
    while off < len(body):
        start = off
        off += 1 + body[off]
        kind = body[off]
        off += 1
        size = _VALUE_SIZES.get(kind)
        off += 4 + struct.unpack_from(">I", body, off)[0] if size is None else size
        out.append(body[start:off])
    return out


def run(broker: Broker, todo: list[Case], parallel: int = 1) -> float:
    """Fill in every case's result; the seconds it took.  Cases are dealt to ``parallel``
    sessions in turn, each on its own thread and connections (refusals, which cost a new
    connection each, then overlap); those routed to a shared queue all go to the first."""
    broker.clean()
    started = time.monotonic()
    shared = [case for case in todo if case.routing_key != OWN_QUEUE or case.exchange]
    rest = [case for case in todo if case.routing_key == OWN_QUEUE and not case.exchange]
    shares = [rest[i::parallel] for i in range(parallel)]
    shares[0] = shared + shares[0]

    def work(share: list[Case], first: bool) -> None:
        session = Session(broker, first)
        for case in share:
            case.result = session.run(case)
        session.close()

    threads = [threading.Thread(target=work, args=(share, i == 0)) for i, share in enumerate(shares)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    took = time.monotonic() - started
    broker.clean()
    return took


def differences(expected: list[dict[str, Any]], got: list[Case]) -> list[str]:
    """What ``got`` answers differently from the recorded ``expected``, one line a case."""
    out = []
    by_id = {c.id: c for c in got}
    for want in expected:
        case = by_id.get(want["id"])
        if case is None:
            out.append(f"{want['id']}: no such case any more (regenerate the data file)")
            continue
        have = case.record()
        if have != want:
            out.append(f"{want['id']}: expected {_answer(want)}, got {_answer(have)}")
    return out


def _answer(record: dict[str, Any]) -> str:
    return json.dumps(
        {k: v for k, v in record.items() if k in ("data", "accepted", "delivered", "returned", "refused")}
    )


def summary(done: list[Case]) -> dict[str, Any]:
    """The sweep in a few lines: for each type byte taken, how many bytes its value is."""
    taken: dict[str, Any] = {}
    for where in ("type-in-table", "type-in-array"):
        sizes = {}
        for case in done:
            prefix, _, rest = case.id.partition("/")
            if prefix == where and "accepted" in case.result:
                kind, size = rest.split("+")
                sizes[chr(int(kind, 16))] = int(size)
        taken[where] = "".join(f"{k}:{v} " for k, v in sorted(sizes.items())).strip()
    return taken
