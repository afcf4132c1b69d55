"""python -m tools.field_values: write the data file from a broker's answers, or --check one."""

from __future__ import annotations

import argparse
import json
import struct
import sys
from pathlib import Path

from . import DATA
from . import __doc__ as OVERVIEW
from .cases import Case, cases
from .probe import differences, run, summary
from .wire import Broker, Wire, shortstr


def write(path: Path, broker_name: str, done: list[Case]) -> None:
    lines = [json.dumps(case.record(), ensure_ascii=False) for case in done]
    head = {
        "broker": broker_name,
        "generated_by": "python -m tools.field_values",
        "taken": summary(done),
    }
    text = "{\n" + "".join(f"  {json.dumps(k)}: {json.dumps(v)},\n" for k, v in head.items())
    text += '  "cases": [\n    ' + ",\n    ".join(lines) + "\n  ]\n}\n"
    path.write_text(text)


def broker_name(broker: Broker) -> str:
    """Product and version from connection.start's server properties."""
    wire = Wire(broker.host, broker.port, broker.timeout)
    wire.send(b"AMQP\x00\x00\x09\x01")
    args = wire.expect(0x000A000A, 0)
    wire.close()
    found = {}
    for key in (b"product", b"version"):
        at = args.find(shortstr(key) + b"S")
        if at >= 0:
            at += len(key) + 2
            n = struct.unpack_from(">I", args, at)[0]
            found[key] = args[at + 4 : at + 4 + n].decode()
    return f"{found.get(b'product', '?')} {found.get(b'version', '?')}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=OVERVIEW, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5682/%2F", help="the broker to ask")
    parser.add_argument("--out", type=Path, default=DATA, help="the data file to write (or, with --check, read)")
    parser.add_argument("--check", action="store_true", help="compare the broker with the data file instead")
    parser.add_argument("--parallel", type=int, default=4, help="connections at once")
    options = parser.parse_args(argv)
    broker = Broker.from_url(options.url)
    todo = cases()
    took = run(broker, todo, options.parallel)
    print(f"{len(todo)} cases in {took:.1f} s", file=sys.stderr)
    if options.check:
        found = differences(json.loads(options.out.read_text())["cases"], todo)
        print("\n".join(found) or "no differences")
        return 1 if found else 0
    options.out.parent.mkdir(parents=True, exist_ok=True)
    write(options.out, broker_name(broker), todo)
    print(f"wrote {options.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
