"""The six RabbitMQ Python tutorials, run as real programs against a real server.

Each program in tests/interop/tutorials/ is started as its own process (as a user would run
it), talks to the server over a socket with pika, and prints what it sends and receives.
The tests wait for those lines with a timeout; nothing sleeps and hopes.  Every test gives
its programs a unique name prefix (TUTORIAL_PREFIX), so that queues and exchanges are never
shared between tests.

Every scenario here was also run against RabbitMQ 3.10.8 with the same programs and behaves
the same there.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pika
import pika.exceptions
import pytest

from tests.interop.pika_client import connect

TUTORIALS = Path(__file__).parent / "tutorials"
GENERATED_NAME = re.compile(r"^amq\.gen-[A-Za-z0-9_-]{22}$")
WAIT = 10.0  # seconds any single expected line may take
# Runs a tutorial with Ctrl+C (SIGINT) raising KeyboardInterrupt, as in a terminal, even when
# the test runner was started with SIGINT ignored (a background job), which children inherit.
RUN_WITH_CTRL_C = (
    "import runpy, signal, sys; "
    "signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv = sys.argv[1:]; "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)


class Program:
    """A tutorial program running as a subprocess, its output collected line by line."""

    def __init__(self, script: str, args: tuple[str, ...], env: dict[str, str], changed: threading.Condition) -> None:
        self.script = script
        self.lines: list[str] = []
        self.eof = False
        self._changed = changed  # shared by the programs of one test: one can wait on several
        self.proc = subprocess.Popen(
            [sys.executable, "-u", "-c", RUN_WITH_CTRL_C, str(TUTORIALS / script), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self.eof = True
            self._changed.notify_all()

    def matching(self, pattern: str) -> list[str]:
        regex = re.compile(pattern)
        with self._changed:
            return [line for line in self.lines if regex.search(line)]

    def wait_for(self, pattern: str, count: int = 1, timeout: float = WAIT) -> list[str]:
        """Wait until ``count`` output lines match ``pattern``; return the matching lines."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [line for line in self.lines if regex.search(line)]
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                if self.eof or remaining <= 0:
                    raise AssertionError(
                        f"{self.script} printed {len(found)} of {count} lines matching {pattern!r} "
                        f"({'exited' if self.eof else f'{timeout}s'}); its output:\n" + "\n".join(self.lines)
                    )
                self._changed.wait(remaining)

    def finish(self, timeout: float = WAIT) -> int:
        """Wait for the program to exit by itself; its exit code."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.script} did not exit; its output:\n" + self.output) from None
        self._reader.join(5)
        return code

    def interrupt(self) -> int:
        """Ctrl+C, as the tutorials say to stop them; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.finish()
        finally:
            self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self._reader.join(5)

    @property
    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines)


def wait_any(programs: list[Program], pattern: str, timeout: float = WAIT) -> Program:
    """The first of ``programs`` to print a line matching ``pattern``."""
    regex = re.compile(pattern)
    changed = programs[0]._changed
    deadline = time.monotonic() + timeout
    with changed:
        while True:
            for program in programs:
                if any(regex.search(line) for line in program.lines):
                    return program
            remaining = deadline - time.monotonic()
            if remaining <= 0 or all(p.eof for p in programs):
                outputs = "\n".join(f"--- {p.script}:\n" + "\n".join(p.lines) for p in programs)
                raise AssertionError(f"no program printed {pattern!r}; outputs:\n{outputs}")
            changed.wait(remaining)


class Tutorials:
    """Starts tutorial programs with the test's port and name prefix; stops them all after."""

    def __init__(self, port: int, prefix: str) -> None:
        self.port = port
        self.prefix = prefix
        self.programs: list[Program] = []
        self.changed = threading.Condition()

    def start(self, script: str, *args: str, **env: str) -> Program:
        full_env = dict(os.environ)
        full_env.update(AMQP_PORT=str(self.port), AMQP_HOST="127.0.0.1", TUTORIAL_PREFIX=self.prefix)
        full_env.update(env)
        program = Program(script, args, full_env, self.changed)
        self.programs.append(program)
        return program

    def run(self, script: str, *args: str, **env: str) -> Program:
        """Run a program to its end; it must succeed."""
        program = self.start(script, *args, **env)
        code = program.finish()
        assert code == 0, f"{script} {args} exited with {code}:\n{program.output}"
        return program

    def close(self) -> None:
        for program in self.programs:
            program.kill()


@pytest.fixture
def tutorials(port: int, name: str) -> Iterator[Tutorials]:
    runner = Tutorials(port, name + ".")
    yield runner
    runner.close()
    # The programs' durable queues and exchanges would outlive the test: remove them.
    with connect(port) as conn:
        channel = conn.channel()
        for queue in ("hello", "task_queue", "rpc_queue"):
            channel.queue_delete(runner.prefix + queue)
        for exchange in ("logs", "direct_logs", "topic_logs"):
            channel.exchange_delete(runner.prefix + exchange)


def queue_gone(port: int, queue: str, timeout: float = WAIT) -> bool:
    """True once a passive declare of ``queue`` answers 404 (checked until ``timeout``)."""
    deadline = time.monotonic() + timeout
    with connect(port) as conn:
        while True:
            channel = conn.channel()
            try:
                channel.queue_declare(queue, passive=True)
            except pika.exceptions.ChannelClosedByBroker as exc:
                if exc.reply_code == 404:
                    return True
                assert exc.reply_code == 405, exc  # still there, exclusive to its connection
            else:
                channel.close()
            if time.monotonic() > deadline:
                return False
            conn.sleep(0.05)


# -- 1. "Hello World!" ------------------------------------------------------------------


def test_hello_world_send_and_receive(tutorials: Tutorials) -> None:
    """send.py puts a message on "hello"; receive.py prints it.  A message sent before the
    consumer started waits in the queue and is delivered first."""
    early = tutorials.run("send.py")
    assert early.matching(r"^ \[x\] Sent 'Hello World!'$")

    receiver = tutorials.start("receive.py")
    receiver.wait_for(r"Waiting for messages")
    receiver.wait_for(r"^ \[x\] Received Hello World!$")

    tutorials.run("send.py")
    lines = receiver.wait_for(r"^ \[x\] Received ", count=2)
    assert lines == [" [x] Received Hello World!"] * 2
    assert receiver.interrupt() == 0


# -- 2. Work queues ---------------------------------------------------------------------


@pytest.mark.parametrize("queue_type", ["quorum", "classic"])
def test_work_queue_round_robin(tutorials: Tutorials, queue_type: str) -> None:
    """Two workers without QoS (the tutorial's round-robin section) share the tasks
    alternately: each gets every second task, in order.  Today's tutorial declares a durable
    quorum queue, the older one a durable classic queue; both dispatch alike."""
    env = {"TUTORIAL_PREFETCH": "0", "TUTORIAL_QUEUE_TYPE": queue_type}
    workers = [tutorials.start("worker.py", **env), tutorials.start("worker.py", **env)]
    for worker in workers:
        worker.wait_for(r"Waiting for messages")

    tasks = [f"task-{i}" for i in range(6)]
    for task in tasks:
        tutorials.run("new_task.py", task, **env)

    for worker in workers:
        worker.wait_for(r"\[x\] Done", count=3)
    got = [[re.sub(r"^ \[x\] Received '(.*)'$", r"\1", line) for line in w.matching(r"Received")] for w in workers]
    assert sorted(got) == [tasks[0::2], tasks[1::2]], got


@pytest.mark.parametrize("queue_type", ["quorum", "classic"])
def test_work_queue_fair_dispatch(tutorials: Tutorials, queue_type: str) -> None:
    """With prefetch 1 a worker busy with a slow task is given nothing else: every quick task
    published meanwhile goes to the other worker."""
    env = {"TUTORIAL_QUEUE_TYPE": queue_type}
    workers = [tutorials.start("worker.py", **env), tutorials.start("worker.py", **env)]
    for worker in workers:
        worker.wait_for(r"Waiting for messages")

    tutorials.run("new_task.py", "slow" + "." * 30, **env)  # 30 s: it is still running when the test ends
    busy = wait_any(workers, r"Received 'slow\.+'")
    idle = workers[1] if busy is workers[0] else workers[0]

    quick = [f"quick-{i}" for i in range(4)]
    for task in quick:
        tutorials.run("new_task.py", task, **env)
    idle.wait_for(r"Done 'quick-", count=len(quick))

    assert [line for line in idle.matching("Received")] == [f" [x] Received '{t}'" for t in quick]
    assert busy.matching("quick") == []
    assert busy.matching("Done") == []


@pytest.mark.parametrize("queue_type", ["quorum", "classic"])
def test_work_queue_killed_worker_task_is_redelivered(tutorials: Tutorials, port: int, queue_type: str) -> None:
    """A worker killed (SIGKILL) in the middle of a task never acknowledged it: the server
    redelivers the task, flagged redelivered, to the other worker, which completes it."""
    env = {"TUTORIAL_QUEUE_TYPE": queue_type, "TUTORIAL_DOT_SECONDS": "0.25"}
    workers = [tutorials.start("worker.py", **env), tutorials.start("worker.py", **env)]
    for worker in workers:
        worker.wait_for(r"Waiting for messages")

    tutorials.run("new_task.py", "crash....", **env)  # 1 s of work
    victim = wait_any(workers, r"Received 'crash\.+'")
    victim.proc.kill()
    victim.finish()
    assert victim.matching("Done") == []

    survivor = workers[1] if victim is workers[0] else workers[0]
    assert survivor.wait_for(r"Received 'crash") == [" [x] Received 'crash....' (redelivered)"]
    survivor.wait_for(r"Done 'crash\.+'")

    # Acknowledged: nothing is left in the queue.
    with connect(port) as conn:
        ok = conn.channel().queue_declare(tutorials.prefix + "task_queue", passive=True)
        assert ok.method.message_count == 0


# -- 3. Publish/subscribe ---------------------------------------------------------------


def test_publish_subscribe_fanout(tutorials: Tutorials, port: int) -> None:
    """Each subscriber gets a temporary server-named exclusive queue bound to the fanout
    exchange, and every subscriber gets every log line.  A subscriber's queue goes when it
    stops; the others keep receiving."""
    receivers = [tutorials.start("receive_logs.py"), tutorials.start("receive_logs.py")]
    queues = []
    for receiver in receivers:
        line = receiver.wait_for(r"Waiting for logs on")[0]
        queues.append(re.search(r"on (\S+)\.", line).group(1))  # type: ignore[union-attr]
    assert all(GENERATED_NAME.match(q) for q in queues), queues
    assert queues[0] != queues[1]

    # Exclusive: another connection may not use it.
    with connect(port) as conn, pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
        conn.channel().basic_get(queues[0])
    assert refused.value.reply_code == 405

    tutorials.run("emit_log.py", "info: first")
    for receiver in receivers:
        receiver.wait_for(r"^ \[x\] info: first$")

    assert receivers[0].interrupt() == 0
    assert queue_gone(port, queues[0]), f"{queues[0]} outlived its connection"

    tutorials.run("emit_log.py", "info: second")
    receivers[1].wait_for(r"^ \[x\] info: second$")
    assert receivers[1].matching(r"\[x\]") == [" [x] info: first", " [x] info: second"]


# -- 4. Routing -------------------------------------------------------------------------


def test_routing_direct_by_severity(tutorials: Tutorials) -> None:
    """A direct exchange delivers a log line to the queues bound with its severity: one
    subscriber for errors only, one bound three times (info, warning, error); a severity
    nobody bound (debug) goes nowhere, and a queue bound by several keys gets a message once."""
    errors = tutorials.start("receive_logs_direct.py", "error")
    everything = tutorials.start("receive_logs_direct.py", "info", "warning", "error")
    for receiver in (errors, everything):
        receiver.wait_for(r"Waiting for logs")

    for severity in ("info", "warning", "debug", "error"):
        tutorials.run("emit_log_direct.py", severity, f"a {severity} line")
    tutorials.run("emit_log_direct.py", "error", "last")  # everything before it has been routed

    errors.wait_for(r"error:last")
    everything.wait_for(r"error:last")
    assert errors.matching(r"\[x\]") == [" [x] error:a error line", " [x] error:last"]
    assert everything.matching(r"\[x\]") == [
        " [x] info:a info line",
        " [x] warning:a warning line",
        " [x] error:a error line",
        " [x] error:last",
    ]


def test_routing_direct_usage(tutorials: Tutorials) -> None:
    """Without severities the subscriber prints its usage and exits 1."""
    program = tutorials.start("receive_logs_direct.py")
    assert program.finish() == 1
    assert "Usage:" in program.output


# -- 5. Topics --------------------------------------------------------------------------


def test_topics(tutorials: Tutorials) -> None:
    """The tutorial's own examples: Q1 bound with ``*.orange.*``, Q2 with ``*.*.rabbit`` and
    ``lazy.#``, plus a subscriber to ``#`` that sees everything.  A message matching two of
    Q2's bindings reaches Q2 once; keys with too few or too many words match nothing."""
    q1 = tutorials.start("receive_logs_topic.py", "*.orange.*")
    q2 = tutorials.start("receive_logs_topic.py", "*.*.rabbit", "lazy.#")
    all_ = tutorials.start("receive_logs_topic.py", "#")
    for receiver in (q1, q2, all_):
        receiver.wait_for(r"Waiting for logs")

    keys = [
        "quick.orange.rabbit",
        "lazy.orange.elephant",
        "quick.orange.fox",
        "lazy.brown.fox",
        "lazy.pink.rabbit",
        "quick.brown.fox",
        "orange",
        "quick.orange.male.rabbit",
        "lazy.orange.male.rabbit",
        "lazy",
    ]
    for key in keys:
        tutorials.run("emit_log_topic.py", key, "m")
    tutorials.run("emit_log_topic.py", "lazy.orange.end", "last")  # matches all three

    for receiver in (q1, q2, all_):
        receiver.wait_for(r"lazy\.orange\.end:last")

    def keys_of(program: Program) -> list[str]:
        return [line.split()[1].split(":")[0] for line in program.matching(r":m$")]

    assert keys_of(q1) == ["quick.orange.rabbit", "lazy.orange.elephant", "quick.orange.fox"]
    assert keys_of(q2) == [
        "quick.orange.rabbit",
        "lazy.orange.elephant",
        "lazy.brown.fox",
        "lazy.pink.rabbit",
        "lazy.orange.male.rabbit",
        "lazy",
    ]
    assert keys_of(all_) == keys


# -- 6. RPC -----------------------------------------------------------------------------


def test_rpc(tutorials: Tutorials) -> None:
    """The RPC client sends fib(n) requests with reply_to (its server-named exclusive queue)
    and a correlation_id; the server answers each on reply_to with the same correlation_id.
    Two clients at once each get their own answers."""
    server = tutorials.start("rpc_server.py")
    server.wait_for(r"Awaiting RPC requests")

    first = tutorials.start("rpc_client.py", "10", "15", "1")
    second = tutorials.start("rpc_client.py", "20", "0", "7")
    assert first.finish() == 0, first.output
    assert second.finish() == 0, second.output
    assert first.matching(r"Got") == [" [.] Got 55", " [.] Got 610", " [.] Got 1"]
    assert second.matching(r"Got") == [" [.] Got 6765", " [.] Got 0", " [.] Got 13"]
    assert sorted(server.matching(r"fib\(")) == sorted(f" [.] fib({n})" for n in (10, 15, 1, 20, 0, 7))
