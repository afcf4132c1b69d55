"""Why a content header's property list does not parse, in words an operator can act on.

``frames.peek_delivery`` checks every published property list on the hot path and only says
yes or no (RabbitMQ's answer to a no is a bare 541 INTERNAL_ERROR).  When it says no, this
slower twin walks the same list again, the field tables with ``values``' decoder, and names
the property, the table field, the type letter and the offset in the content header, so that
the log tells a client bug from a broker bug.  Tests keep the two walks in agreement.
"""

from __future__ import annotations

from warrenmq.amqp.values import DecodeError, MalformedTable, read_table

# (name, size): the 14 basic properties in flag order (bit 15 first); size 0 is a short
# string, -1 the headers table, else a fixed number of bytes.
_PROPERTIES = (
    ("content-type", 0),
    ("content-encoding", 0),
    ("headers", -1),
    ("delivery-mode", 1),
    ("priority", 1),
    ("correlation-id", 0),
    ("reply-to", 0),
    ("expiration", 0),
    ("message-id", 0),
    ("timestamp", 8),
    ("type", 0),
    ("user-id", 0),
    ("app-id", 0),
    ("cluster-id", 0),
)


def property_list_problem(header: bytes) -> str:
    """What in the content header payload ``header`` RabbitMQ's parser would not take; ""
    when it parses (if ``peek_delivery`` refused it all the same, that is a broker bug)."""
    end = len(header)
    if end < 14:
        return f"the content header is {end} bytes, shorter than its 14 fixed ones"
    flags = header[12] << 8 | header[13]
    off = 14
    for bit, (name, size) in enumerate(_PROPERTIES):
        if not flags & (1 << (15 - bit)):
            continue
        if size == -1:
            try:
                _, off = read_table(header, off, end)
            except MalformedTable as exc:
                return f"property headers, {exc}"
            except DecodeError:
                return f"property headers: its table length runs past the end, at offset {off}"
            continue
        if size == 0:
            if off >= end:
                return f"property {name}: no length byte at offset {off}"
            size = 1 + header[off]
        if off + size > end:
            return f"property {name}: needs {size} bytes, {end - off} left, at offset {off}"
        off += size
    if off != end:
        return f"{end - off} bytes left over after the last property, at offset {off}"
    return ""
