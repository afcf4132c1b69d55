"""Every field value RabbitMQ 3.10.8 takes, WarrenMQ takes, and it refuses the rest as RabbitMQ
does: the differential table test.

tests/data/field_values.json holds RabbitMQ 3.10.8's answer to each of about 3,400 cases (all
256 type bytes in a headers table and in an array, boundary values of each type, keys, nesting,
headers the broker writes anew or matches in a headers exchange, short-string properties that
are not UTF-8, and tables in queue.declare, exchange.declare, queue.bind, basic.consume and
connection.start-ok).  ``python -m tools.field_values`` wrote it with raw frames
against RabbitMQ on port 5682; here the same cases go to WarrenMQ over real sockets and every
answer must be the same: accepted (a published message delivered with the same property bytes)
or refused with the same code, text and method ids, or by a close without a word.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.server import ServerProcess
from tools.field_values import DATA
from tools.field_values.cases import cases, shown
from tools.field_values.probe import differences, run
from tools.field_values.wire import Broker


@pytest.fixture(scope="module")
def recorded() -> dict[str, Any]:
    return json.loads(DATA.read_text())


def test_the_recorded_cases_are_the_generators(recorded: dict[str, Any]) -> None:
    """The file was made by this generator: same cases, same bytes (else regenerate it)."""
    assert recorded["broker"] == "RabbitMQ 3.10.8"
    made = [(case.id, case.kind, shown(case.data)) for case in cases()]
    assert [(case["id"], case["kind"], case["data"]) for case in recorded["cases"]] == made


def test_rabbitmq_takes_these_type_letters_and_sizes(recorded: dict[str, Any]) -> None:
    """What the sweep found, in one line: the letters RabbitMQ 3.10.8 takes and their sizes (in
    bytes after the type byte; S, x, F and A are a 4-byte length and then that many bytes)."""
    letters = "A:4 B:1 D:5 F:4 I:4 L:8 S:4 T:8 V:0 b:1 d:8 f:4 i:4 l:8 s:2 t:1 u:2 x:4"
    assert recorded["taken"] == {"type-in-table": letters, "type-in-array": letters}


@pytest.fixture(scope="module")
def plain_server() -> Iterator[ServerProcess]:
    """A server running the plain-Python frame splitter (the session's runs the compiled one
    where it is built)."""
    proc = ServerProcess(None, module="tests.plain_frames_server").start()
    yield proc
    assert proc.stop() == 0, proc.log
    assert "Traceback" not in proc.log, proc.log


def test_warrenmq_answers_every_case_as_rabbitmq(server: ServerProcess, recorded: dict[str, Any]) -> None:
    _replay(server, recorded)


def test_so_does_the_plain_python_frame_splitter(plain_server: ServerProcess, recorded: dict[str, Any]) -> None:
    assert re.search(r"frame splitter: \S+/frames\.py$", plain_server.log, re.MULTILINE), plain_server.log
    _replay(plain_server, recorded)


def _replay(server: ServerProcess, recorded: dict[str, Any]) -> None:
    todo = cases()
    took = run(Broker.from_url(server.url()), todo, parallel=4)
    found = differences(recorded["cases"], todo)
    assert not found, f"{len(found)} cases answered unlike RabbitMQ 3.10.8:\n" + "\n".join(found[:40])
    assert took < 60, f"{len(todo)} cases took {took:.1f} s"
