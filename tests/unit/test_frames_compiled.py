"""The frame splitter is compiled when Cython is available (setup.py); the plain-Python
module must stay correct and agree with it on every input, errors included."""

from __future__ import annotations

import importlib.util
import itertools
import json
import struct
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import warrenmq.amqp.frames as installed
from tools.field_values import DATA
from tools.field_values.cases import cases
from warrenmq.amqp.errors import AMQPError, ParserCrash
from warrenmq.amqp.properties import property_list_problem

SOURCE = Path(installed.__file__).with_name("frames.py")


def load_plain() -> ModuleType:
    spec = importlib.util.spec_from_file_location("warrenmq_frames_plain", SOURCE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


plain = load_plain()


def frame(ftype: int, channel: int, payload: bytes, end: int = 0xCE) -> bytes:
    return struct.pack(">BHI", ftype, channel, len(payload)) + payload + bytes([end])


def publish(channel: int, body: bytes, declared: int | None = None) -> bytes:
    method = b"\x00\x3c\x00\x28\x00\x00\x00\x01q\x00"
    header = struct.pack(">HHQ", 60, 0, len(body) if declared is None else declared) + b"\x00\x00"
    return frame(1, channel, method) + frame(2, channel, header) + frame(3, channel, body)


def ack(channel: int, tag: int, multiple: bool = False) -> bytes:
    return frame(1, channel, b"\x00\x3c\x00\x50" + struct.pack(">QB", tag, multiple))


def split(module: ModuleType, chunks: list[bytes], frame_max: int, publishes: bool) -> object:
    reader = module.FrameReader(frame_max)
    out: list[object] = []
    try:
        for chunk in chunks:
            out.extend(reader.feed(chunk, publishes))
    except AMQPError as exc:
        out.append((type(exc).__name__, exc.reply_code, exc.reply_text))
    return out


def test_the_compiled_module_is_used_when_built() -> None:
    built = any(SOURCE.parent.glob("frames.*.so")) or any(SOURCE.parent.glob("frames.*.pyd"))
    assert installed.__file__.endswith(".py") != built


def test_a_whole_publish_is_one_event_and_anything_else_stays_frames() -> None:
    for module in (plain, installed):
        data = publish(1, b"hello") + frame(8, 0, b"") + publish(2, b"x", declared=5)
        events = module.FrameReader(131072).feed(data, True)
        assert events[0][0] == module.PUBLISH and events[0][1] == 1 and events[0][4] == b"hello"
        assert events[1] == (8, 0, b"")
        assert [e[0] for e in events[2:]] == [1, 2, 3]  # body shorter than announced: frames
        assert [e[0] for e in module.FrameReader(131072).feed(data, False)] == [1, 2, 3, 8, 1, 2, 3]


def test_consecutive_acks_of_a_channel_are_one_event() -> None:
    top = 2**64 - 1
    data = ack(1, 5) + ack(1, 7, True) + ack(1, top) + ack(2, 1) + frame(8, 0, b"") + ack(2, 2) + ack(2, 0, True)
    for module in (plain, installed):
        events = module.FrameReader(131072).feed(data, True)
        assert events == [
            (module.ACKS, 1, [5, ~7, top]),
            (module.ACKS, 2, [1]),
            (8, 0, b""),
            (module.ACKS, 2, [2, ~0]),
        ]
        for code, tag, multiple in ((5, 5, 0), (~7, 7, 1), (top, top, 0), (~0, 0, 1)):
            assert module.ack_payload(code) == b"\x00\x3c\x00\x50" + struct.pack(">QB", tag, multiple)
        # Without publishes (before the connection is open), and an ack of the wrong size: frames.
        assert [e[0] for e in module.FrameReader(131072).feed(data, False)] == [1, 1, 1, 1, 8, 1, 1]
        odd = frame(1, 1, b"\x00\x3c\x00\x50" + bytes(8))
        assert module.FrameReader(131072).feed(odd, True) == [(1, 1, odd[7:-1])]


@settings(max_examples=300, deadline=None)
@given(
    pieces=st.lists(
        st.one_of(
            st.builds(publish, st.integers(0, 3), st.binary(max_size=40)),
            st.builds(ack, st.integers(0, 3), st.integers(0, 2**64 - 1), st.booleans()),
            st.builds(frame, st.sampled_from([1, 2, 3, 4, 8]), st.integers(0, 3), st.binary(max_size=40)),
            st.binary(max_size=24),
        ),
        max_size=6,
    ),
    cuts=st.lists(st.integers(0, 400), max_size=4),
    frame_max=st.sampled_from([0, 4096, 20]),
    publishes=st.booleans(),
)
def test_compiled_and_plain_agree(pieces: list[bytes], cuts: list[int], frame_max: int, publishes: bool) -> None:
    data = b"".join(pieces)
    bounds = sorted({0, len(data), *(c for c in cuts if c < len(data))})
    chunks = [data[a:b] for a, b in itertools.pairwise(bounds)]
    assert split(plain, chunks, frame_max, publishes) == split(installed, chunks, frame_max, publishes)


def crash_or(module: ModuleType, header: bytes) -> object:
    try:
        return module.peek_delivery(header)
    except AMQPError as exc:
        return (type(exc).__name__, exc.reply_code)


FIELD_VALUES = st.one_of(
    st.binary(max_size=12).map(lambda raw: b"S" + struct.pack(">I", len(raw)) + raw),
    st.sampled_from([b"t\x01", b"I\x00\x00\x00\x07", b"V", b"d\x7f\xf8" + bytes(6), b"f\x3f\x80\x00\x00", b"Z"]),
    st.tuples(st.integers(0, 255), st.binary(max_size=9)).map(lambda t: bytes([t[0]]) + t[1]),  # any type byte
    st.binary(max_size=6).map(lambda raw: b"F" + struct.pack(">I", len(raw)) + raw),
    st.binary(max_size=6).map(lambda raw: b"A" + struct.pack(">I", len(raw)) + raw),
)


@settings(max_examples=400, deadline=None)
@given(
    flags=st.integers(0, 0xFFFF),
    entries=st.lists(st.tuples(st.binary(max_size=3), FIELD_VALUES), max_size=4),
    rest=st.binary(max_size=30),
)
def test_property_walk_compiled_and_plain_agree(flags: int, entries: list[tuple[bytes, bytes]], rest: bytes) -> None:
    table = b"".join(bytes([len(key)]) + key + value for key, value in entries)
    properties = (struct.pack(">I", len(table)) + table if flags & 0x2000 else b"") + rest
    header = struct.pack(">HHQH", 60, 0, 1, flags) + properties
    got = crash_or(plain, header)
    assert got == crash_or(installed, header)
    # The explaining walk finds a fault exactly when the fast one refuses.
    assert (property_list_problem(header) != "") == (isinstance(got, tuple) and got[0] == "ParserCrash")


def test_property_walk_compiled_plain_and_explained_agree_with_rabbitmq() -> None:
    """Each published case of tests/data/field_values.json (every type byte, the edges of each
    type: RabbitMQ 3.10.8's answers) through both splitters' property walk: it passes exactly
    when RabbitMQ's parser took it (no 541), and on a refusal the explaining walk says why."""
    answers = {case["id"]: case for case in json.loads(DATA.read_text())["cases"]}
    published = [case for case in cases() if case.kind == "publish"]
    assert len(published) > 3000
    for case in published:
        header = struct.pack(">HHQ", 60, 0, 1) + case.data
        taken = answers[case.id].get("refused", [None, None])[1] != 541
        for module in (plain, installed):
            got = crash_or(module, header)
            assert (not isinstance(got, tuple) or got[0] != "ParserCrash") == taken, (case.id, module)
        assert (property_list_problem(header) == "") == taken, case.id
        # The splitters cut the publish alike, into one whole-publish event.
        data = frame(1, 1, b"\x00\x3c\x00\x28\x00\x00\x00\x01q\x00") + frame(2, 1, header) + frame(3, 1, b"x")
        assert split(plain, [data], 131072, True) == split(installed, [data], 131072, True) == [
            (installed.PUBLISH, 1, data[7:17], header, b"x")
        ]
        if not taken:
            with pytest.raises(ParserCrash) as refused:
                installed.peek_delivery(header)
            assert refused.value.detail.startswith("a published message's property list does not parse: ")
            assert "broker bug" not in refused.value.detail
