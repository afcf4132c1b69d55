"""connection.blocked under resource alarms, frame by frame, as RabbitMQ 3.10.8 does it.

Observed against RabbitMQ 3.10.8 with these raw clients (the alarm raised and cleared with
``rabbitmqctl set_vm_memory_high_watermark`` / ``set_disk_free_limit``):

- raising an alarm sends nothing to anyone; every connection becomes "blocking", even one
  that published before;
- a connection is blocked by the next content it sends (a publish's content header: the
  basic.publish method alone does not block).  Clients with the ``connection.blocked``
  capability then get connection.blocked("low on memory" / "low on disk" / "low on disk &
  memory", the alarms in force at that moment); the publish that blocked it is *not* taken,
  and nothing more is read from it until every alarm clears, when connection.unblocked comes
  (to those told) and the held input is processed in order;
- a second alarm while blocked, or one of two alarms clearing, sends nothing;
- the server does not close a blocked connection for missed heartbeats (the client's sit in
  the unread socket) and keeps sending its own; a "blocking" connection that goes silent is
  closed as usual.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pika
import pika.spec
import pytest

from tests.fuzz.raw import Closed
from tests.interop.alarm_support import Alarms, alarm_server, eventually, stays
from tests.interop.test_raw_protocol import Raw, content_header, frame, method_payload, publish_frames
from tests.server import ServerProcess

BLOCKED_CAPABILITY = {"connection.blocked": True}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = alarm_server(tmp_path / "data")
    yield proc
    proc.kill()


@pytest.fixture
def alarms(server: ServerProcess) -> Alarms:
    return Alarms(server)


def local_port(raw: Raw) -> int:
    return int(raw.sock.getsockname()[1])


def silent(raw: Raw, seconds: float = 0.5) -> bool:
    """Nothing but heartbeats arrives on ``raw`` for ``seconds``."""
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            raw.sock.settimeout(max(0.01, deadline - time.monotonic()))
            kind, _, _ = raw.read_frame()
            if kind != 8:
                return False
    except TimeoutError:
        pass
    finally:
        raw.sock.settimeout(10)
    return True


def message_count(raw: Raw, queue: str) -> int:
    declare = pika.spec.Queue.Declare(queue=queue, passive=True)
    return int(raw.call(1, declare, pika.spec.Queue.DeclareOk).message_count)


def test_blocked_at_its_next_publish_not_when_the_alarm_is_raised(
    server: ServerProcess, alarms: Alarms, name: str
) -> None:
    watcher = Raw(server.port).connect()
    publisher = Raw(server.port).connect(capabilities=BLOCKED_CAPABILITY)
    try:
        publisher.call(1, pika.spec.Queue.Declare(queue=name), pika.spec.Queue.DeclareOk)
        publisher.publish(1, "", name, b"before")
        assert eventually(lambda: message_count(watcher, name) == 1)
        alarms.memory(True)
        assert silent(publisher)  # a publisher is not told when the alarm is raised...
        assert alarms.state(local_port(publisher)) == "blocking"
        publisher.publish(1, "", name, b"held")  # ...but when it publishes next
        assert publisher.expect(pika.spec.Connection.Blocked, 0).reason == "low on memory"
        publisher.send_method(1, pika.spec.Queue.Declare(queue=name, passive=True))
        assert silent(publisher)  # not read: the declare waits behind the held publish
        assert alarms.state(local_port(publisher)) == "blocked"
        assert stays(lambda: message_count(watcher, name) == 1)  # the publish that blocked it waits

        alarms.memory(False)
        publisher.expect(pika.spec.Connection.Unblocked, 0)
        # The held input in order: the publish, then the declare that counts it.
        assert publisher.expect(pika.spec.Queue.DeclareOk, 1).message_count == 2
        assert alarms.state(local_port(publisher)) == "running"
        got = watcher.get(1, name)
        assert got is not None and got[2] == b"before"
        got = watcher.get(1, name)
        assert got is not None and got[2] == b"held"
    finally:
        publisher.close()
        watcher.close()


def test_only_content_blocks_and_consumers_keep_flowing(server: ServerProcess, alarms: Alarms, name: str) -> None:
    """A connection that declares, consumes, gets, acks under the alarm is never blocked nor
    told; a basic.publish method alone does not block: its content header does."""
    consumer = Raw(server.port).connect(capabilities=BLOCKED_CAPABILITY)
    publisher = Raw(server.port).connect(capabilities=BLOCKED_CAPABILITY)
    try:
        consumer.call(1, pika.spec.Queue.Declare(queue=name, auto_delete=True), pika.spec.Queue.DeclareOk)
        consumer.call(1, pika.spec.Basic.Consume(queue=name, consumer_tag="c"), pika.spec.Basic.ConsumeOk)
        alarms.memory(True)
        publisher.send_frame(1, 1, method_payload(pika.spec.Basic.Publish(exchange="", routing_key=name)))
        assert silent(publisher)
        assert alarms.state(local_port(publisher)) == "blocking"
        publisher.send(frame(2, 1, content_header(5)) + frame(3, 1, b"split"))
        assert publisher.expect(pika.spec.Connection.Blocked, 0).reason == "low on memory"

        consumer.call(2, pika.spec.Channel.Open(), pika.spec.Channel.OpenOk)
        assert consumer.get(2, name) is None  # get-empty: the held message is not in the queue
        consumer.call(1, pika.spec.Basic.Qos(prefetch_count=5), pika.spec.Basic.QosOk)
        assert alarms.state(local_port(consumer)) == "blocking"

        alarms.memory(False)
        publisher.expect(pika.spec.Connection.Unblocked, 0)
        deliver = consumer.expect(pika.spec.Basic.Deliver, 1)
        assert consumer.read_content(1)[1] == b"split"
        consumer.send_method(1, pika.spec.Basic.Ack(deliver.delivery_tag))
        consumer.call(1, pika.spec.Basic.Cancel(consumer_tag="c"), pika.spec.Basic.CancelOk)
        assert silent(consumer, 0.2)  # the consumer was told nothing: no blocked, no unblocked
    finally:
        consumer.close()
        publisher.close()


def test_client_without_the_capability_is_blocked_silently(server: ServerProcess, alarms: Alarms, name: str) -> None:
    watcher = Raw(server.port).connect()
    raw = Raw(server.port).connect()
    try:
        watcher.call(1, pika.spec.Queue.Declare(queue=name), pika.spec.Queue.DeclareOk)
        alarms.memory(True)
        raw.publish(1, "", name, b"held")
        raw.send_method(1, pika.spec.Basic.Qos())
        assert silent(raw)  # neither connection.blocked nor qos-ok
        assert eventually(lambda: alarms.state(local_port(raw)) == "blocked")
        assert message_count(watcher, name) == 0
        alarms.memory(False)
        raw.expect(pika.spec.Basic.QosOk, 1)  # no connection.unblocked before it
        assert message_count(watcher, name) == 1
    finally:
        raw.close()
        watcher.close()


def test_reason_is_the_alarms_in_force_and_a_second_alarm_says_nothing(
    server: ServerProcess, alarms: Alarms, name: str
) -> None:
    first = Raw(server.port).connect(capabilities=BLOCKED_CAPABILITY)
    second = Raw(server.port).connect(capabilities=BLOCKED_CAPABILITY)
    try:
        first.call(1, pika.spec.Queue.Declare(queue=name, auto_delete=True), pika.spec.Queue.DeclareOk)
        alarms.memory(True)
        first.publish(1, "", name, b"1")
        assert first.expect(pika.spec.Connection.Blocked, 0).reason == "low on memory"
        alarms.disk(True)
        second.publish(1, "", name, b"2")
        assert second.expect(pika.spec.Connection.Blocked, 0).reason == "low on disk & memory"
        assert silent(first)  # already blocked: not told again
        alarms.memory(False)  # the disk alarm still holds both
        assert silent(first) and silent(second, 0.1)
        alarms.disk(False)
        first.expect(pika.spec.Connection.Unblocked, 0)
        second.expect(pika.spec.Connection.Unblocked, 0)
    finally:
        first.close()
        second.close()


@pytest.mark.parametrize(
    "extra, reason",
    [([], "low on disk"), (["--memory-high-watermark-absolute", "1"], "low on disk & memory")],
    ids=["disk", "disk-and-memory"],
)
def test_alarm_in_force_at_start(tmp_path: Path, name: str, extra: list[str], reason: str) -> None:
    """A free-disk limit above what the disk has, from the start: "low on disk"; with the
    memory alarm too, "low on disk & memory" (RabbitMQ's words)."""
    server = ServerProcess(tmp_path / "data", "--disk-free-limit", str(10**18), *extra).start()
    try:
        assert server.wait_for_log("free disk space alarm set")
        raw = Raw(server.port).connect(capabilities=BLOCKED_CAPABILITY)
        raw.publish(1, "", name, b"x")
        assert raw.expect(pika.spec.Connection.Blocked, 0).reason == reason
        raw.close()
    finally:
        server.kill()


def listen(raw: Raw, seconds: float) -> tuple[int, float | None]:
    """Read for ``seconds``: the heartbeats received, and when the server closed the socket
    (None if it stayed open)."""
    beats = 0
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            raw.sock.settimeout(max(0.01, deadline - time.monotonic()))
            kind, _, _ = raw.read_frame()
            beats += kind == 8
    except Closed:
        return beats, time.monotonic()
    except TimeoutError:
        pass
    return beats, None


def test_blocked_connection_is_not_closed_for_missed_heartbeats(
    server: ServerProcess, alarms: Alarms, name: str
) -> None:
    """Heartbeat 1 s: a silent client is closed after 2 s... unless it is blocked, however
    long that lasts; the server keeps sending heartbeats to it, and when the alarm clears the
    monitor starts again with a fresh deadline."""
    blocked = Raw(server.port).connect(capabilities=BLOCKED_CAPABILITY, heartbeat=1)
    idle = Raw(server.port).connect(capabilities=BLOCKED_CAPABILITY, heartbeat=1)
    try:
        alarms.memory(True)
        blocked.publish(1, "", name, b"x")
        assert blocked.expect(pika.spec.Connection.Blocked, 0).reason == "low on memory"
        # Blocking but not blocked: the monitor runs, and a silent client is closed.
        _, idle_closed = listen(idle, 5)
        assert idle_closed is not None
        assert server.wait_for_log(rf"missed heartbeats from client 127\.0\.0\.1:{local_port(idle)} ")
        # Blocked and silent for 5 intervals (2.5 times the timeout): open, and heard from.
        beats, closed = listen(blocked, 5)
        assert closed is None
        assert beats >= 4, beats  # about one per interval (every half interval when idle)
        alarms.memory(False)
        cleared = time.monotonic()
        blocked.expect(pika.spec.Connection.Unblocked, 0)
        # Still silent: now closed as usual, 2 s after the alarm cleared, not at once.
        _, closed = listen(blocked, 6)
        assert closed is not None
        assert 1.5 <= closed - cleared <= 4.0, closed - cleared
    finally:
        blocked.close()
        idle.close()


ONE_READ = 256 * 1024  # the most asyncio or uvloop hands to data_received at once
FRAME_MAX = 131072


def test_intake_after_the_alarm_is_one_read(server: ServerProcess, alarms: Alarms, name: str) -> None:
    """Once the alarm is raised, a publisher that pours 4 MB of publishes at the server gets
    none of them taken, and the server reads at most one socket read (and a frame) of it
    before it stops reading, the rest waiting in the kernel's buffers; when the alarm
    clears, all of them arrive, in order."""
    watcher = Raw(server.port).connect()
    publisher = Raw(server.port).connect(capabilities=BLOCKED_CAPABILITY)
    try:
        watcher.call(1, pika.spec.Queue.Declare(queue=name), pika.spec.Queue.DeclareOk)
        alarms.memory(True)
        before = int(alarms.connections()[local_port(publisher)]["recv_oct"])  # type: ignore[call-overload]
        body = b"b" * 100_000
        burst = b"".join(publish_frames(1, "", name, body[:-4] + b"%04d" % i) for i in range(40))
        sender = threading.Thread(target=publisher.sock.sendall, args=(burst,), daemon=True)
        sender.start()
        assert publisher.expect(pika.spec.Connection.Blocked, 0).reason == "low on memory"
        assert stays(lambda: message_count(watcher, name) == 0, 1.0)

        def read_since() -> int:
            return int(alarms.connections()[local_port(publisher)]["recv_oct"]) - before  # type: ignore[call-overload]

        assert stays(lambda: read_since() <= ONE_READ + FRAME_MAX, 0.5), read_since()
        alarms.memory(False)
        publisher.expect(pika.spec.Connection.Unblocked, 0)
        sender.join(10)
        assert eventually(lambda: message_count(watcher, name) == 40)
        for i in range(40):
            got = watcher.get(1, name)
            assert got is not None and got[2][-4:] == b"%04d" % i
    finally:
        publisher.close()
        watcher.close()
