"""Hypothesis against everything that parses client bytes: the frame reader, every method's
decoder, field tables and arrays, content properties, and the connection state machine fed
arbitrary bytes.  Only AMQPError subclasses (a reply code for the client) may escape a parser;
anything else would be a traceback in the broker's log and a 541 for the client.
"""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.fuzz.harness import Harness, no_tracebacks
from warrenmq.amqp import spec
from warrenmq.amqp.errors import AMQPError
from warrenmq.amqp.frames import FrameReader, decode_method, decode_properties, peek_delivery
from warrenmq.amqp.values import decode_array_typed, decode_table_typed, read_table

EXAMPLES = int(os.environ.get("WARREN_FUZZ_EXAMPLES", "300"))  # `make fuzz` asks for many more
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
METHOD_CLASSES = sorted(spec.METHODS.values(), key=lambda cls: cls.INDEX)
TYPE_TAGS = b"SIFtlATVbBsuifdDxZ\x00"


def frame(kind: int, channel: int, payload: bytes, end: int = 0xCE) -> bytes:
    return struct.pack(">BHI", kind, channel, len(payload)) + payload + bytes([end])


@st.composite
def table_bytes(draw: st.DrawFn, depth: int = 0) -> bytes:
    """Table bodies that are mostly well formed: the decoder's paths past the first byte."""
    out = b""
    for _ in range(draw(st.integers(0, 4))):
        key = draw(st.binary(max_size=8))
        out += bytes([len(key)]) + key + bytes([draw(st.sampled_from(TYPE_TAGS))])
        if depth < 2 and draw(st.booleans()):
            inner = draw(table_bytes(depth + 1))
            out += struct.pack(">I", (len(inner) + draw(st.integers(-2, 2))) % 2**32) + inner
        else:
            out += draw(st.binary(max_size=12))
    return out


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with a few bytes flipped, inserted, cut or truncated."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.integers(0, 3))
        at = draw(st.integers(0, max(len(out) - 1, 0)))
        if op == 0 and out:
            out[at] = draw(st.integers(0, 255))
        elif op == 1:
            out[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif op == 2 and out:
            del out[at]
        else:
            del out[at:]
    return bytes(out)


def _sample_method(cls: type[spec.Method]) -> bytes:
    """An encoded instance of ``cls`` with table arguments filled in (so mutations hit them)."""
    method = cls()
    for name in getattr(cls, "__slots__", ()):
        value = getattr(method, name, None)
        if isinstance(value, dict):
            setattr(method, name, {"k": "v", "n": 1, "t": {"x": [1, "a"]}})
    return method.encode()


SAMPLES = {cls: _sample_method(cls) for cls in METHOD_CLASSES}


# -- frames ----------------------------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=600), st.lists(st.integers(1, 64), max_size=8), st.sampled_from([0, 4096, 8192, 131072]))
@example(b"\x01\x00\x01\x7f\xff\xff\xff", [], 131072)
@example(b"\x01\x00\x01\x00\x00\x00\x01x\x00", [], 4096)
def test_frame_reader_raises_only_amqp_errors(data: bytes, cuts: list[int], frame_max: int) -> None:
    reader = FrameReader(frame_max)
    pieces, at = [], 0
    for cut in cuts:
        pieces.append(data[at : at + cut])
        at += cut
    pieces.append(data[at:])
    try:
        for piece in pieces:
            for kind, _channel, payload in reader.feed(piece):
                assert isinstance(kind, int) and isinstance(payload, bytes)
                assert not frame_max or len(payload) <= frame_max
    except AMQPError:
        pass


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 255), st.integers(0, 65535), st.binary(max_size=40), st.booleans())))
def test_frame_reader_splits_well_formed_frames_exactly(frames: list[tuple[int, int, bytes, bool]]) -> None:
    """Frames come back as sent however the stream is cut; a bad end byte is a FrameError."""
    stream = b"".join(frame(k, c, p, 0xCE if good else 0xCD) for k, c, p, good in frames)
    expected = []
    for k, c, p, good in frames:
        if not good:
            break
        expected.append((k, c, p))
    reader = FrameReader(131072)
    got: list[tuple[int, int, bytes]] = []
    failed = False
    try:
        for i in range(0, len(stream), 7):
            got += reader.feed(stream[i : i + 7])
    except AMQPError as exc:
        failed = True
        assert exc.reply_code == 501
    assert got == expected[: len(got)]
    assert failed == (len(expected) < len(frames))


# -- methods -----------------------------------------------------------------------------------------


@FUZZ
@given(st.sampled_from(METHOD_CLASSES), st.binary(max_size=80))
def test_method_decoders_raise_only_amqp_errors_on_random_arguments(cls: type[spec.Method], args: bytes) -> None:
    payload = struct.pack(">I", cls.INDEX) + args
    try:
        decode_method(payload)
    except AMQPError:
        pass


@FUZZ
@given(st.data())
def test_method_decoders_raise_only_amqp_errors_on_mutated_methods(data: st.DataObject) -> None:
    cls = data.draw(st.sampled_from(METHOD_CLASSES))
    payload = data.draw(mutated(SAMPLES[cls]))
    try:
        method = decode_method(payload)
    except AMQPError:
        return
    for name in getattr(type(method), "__slots__", ()):
        value = getattr(method, name, None)
        if hasattr(value, "plain"):
            value.plain()  # the server reads arguments and client properties as plain values


@FUZZ
@given(st.binary(max_size=16))
def test_short_method_payloads(payload: bytes) -> None:
    try:
        decode_method(payload)
    except AMQPError:
        pass


# -- field tables, arrays, properties ---------------------------------------------------------------------


@FUZZ
@given(st.one_of(st.binary(max_size=120), table_bytes()))
@example(b"\x01kD\xff\x00\x00\x00\x01")  # a decimal with 255 places
def test_tables_raise_only_amqp_errors(body: bytes) -> None:
    try:
        decode_table_typed(body, 0, len(body))
    except AMQPError:
        pass


@FUZZ
@given(st.one_of(st.binary(max_size=120), table_bytes()))
@example(b"\x01kT\xff\xff\xff\xff\xff\xff\xff\xff")  # a timestamp no calendar holds
def test_decoded_tables_convert_to_plain_values(body: bytes) -> None:
    try:
        table = decode_table_typed(body, 0, len(body))
    except AMQPError:
        return
    table.plain()


@FUZZ
@given(st.binary(max_size=120))
def test_length_prefixed_tables_and_arrays_raise_only_amqp_errors(data: bytes) -> None:
    for decode in (lambda: read_table(data, 0, len(data)), lambda: decode_array_typed(data, 0, len(data))):
        try:
            decode()
        except AMQPError:
            pass


_SAMPLE_PROPERTIES = spec.BasicProperties(
    content_type="text/plain",
    headers={"a": 1, "b": "x"},
    delivery_mode=2,
    priority=3,
    correlation_id="c",
    reply_to="r",
    expiration="1000",
    message_id="m",
    timestamp=5,
    type="t",
    user_id="guest",
    app_id="app",
).encode()


PROPERTY_BYTES = st.one_of(st.binary(max_size=60), mutated(_SAMPLE_PROPERTIES))


def _header(properties: bytes) -> bytes:
    return struct.pack(">HHQ", 60, 0, 5) + properties


@FUZZ
@given(PROPERTY_BYTES)
def test_content_properties_raise_only_amqp_errors(properties: bytes) -> None:
    try:
        decode_properties(_header(properties))
    except AMQPError:
        pass


@FUZZ
@given(PROPERTY_BYTES)
@example(b"\x80\x00")  # content-type announced, not there
def test_peek_delivery_raises_only_amqp_errors(properties: bytes) -> None:
    try:
        peek_delivery(_header(properties))
    except AMQPError:
        pass


# -- the connection state machine ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def harness():  # type: ignore[no-untyped-def]
    h = Harness()
    yield h
    h.close()


def _frames_strategy() -> st.SearchStrategy[bytes]:
    """Streams of frames, some well formed methods (mutated or not), some garbage."""
    good = st.sampled_from(METHOD_CLASSES).map(lambda cls: frame(1, 1, SAMPLES[cls]))
    bent = st.sampled_from(METHOD_CLASSES).flatmap(lambda cls: mutated(SAMPLES[cls])).map(lambda p: frame(1, 1, p))
    content = st.tuples(st.integers(0, 2**63), st.binary(max_size=20)).map(
        lambda t: frame(2, 1, struct.pack(">HHQ", 60, 0, t[0]) + b"\x00\x00") + frame(3, 1, t[1])
    )
    other = st.tuples(st.integers(0, 9), st.integers(0, 3), st.binary(max_size=20)).map(lambda t: frame(*t))
    return st.lists(st.one_of(good, bent, content, other, st.binary(max_size=30)), max_size=12).map(b"".join)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stream=_frames_strategy(), step=st.integers(1, 64))
def test_connection_survives_any_bytes_after_the_handshake(harness: Harness, stream: bytes, step: int) -> None:
    """Whatever an opened connection receives: no traceback, and either it still runs or it
    closed itself with a connection.close; another connection is untouched."""
    conn, transport = harness.opened()
    bystander, bystander_transport = harness.opened()
    with no_tracebacks():
        for i in range(0, len(stream), step):
            if transport.closed:
                break
            conn.data_received(stream[i : i + step])
            harness.run()
    assert bystander.is_open and not bystander_transport.closed
    conn.connection_lost(None)
    bystander.connection_lost(None)
    harness.run()


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stream=st.one_of(st.binary(max_size=200), _frames_strategy()))
def test_handshake_survives_any_bytes(harness: Harness, stream: bytes) -> None:
    """Random bytes from the first byte on, or after the protocol header: no traceback."""
    for prefix in (b"", b"AMQP\x00\x00\x09\x01"):
        conn, _ = harness.connect()
        with no_tracebacks():
            conn.data_received(prefix + stream)
            harness.run()
        conn.connection_lost(None)
    harness.run()
