#!/usr/bin/env python3
"""Generate warrenmq/amqp/spec.py from RabbitMQ's machine-readable AMQP 0-9-1 spec.

    python tools/codegen.py            # (re)write warrenmq/amqp/spec.py
    python tools/codegen.py --check    # exit 1 when the committed file differs

The spec JSON lives outside this repository (../shared/spec/ by default, or --spec PATH);
only this generator and its output are committed.

Decoders are unrolled per method: consecutive fixed-width fields (and packed bits) are read
with one precompiled ``struct.Struct`` each, strings are sliced at offsets, and nothing is
looked up per field at run time.  That is what keeps method decoding off the profile.
"""

from __future__ import annotations

import argparse
import json
import keyword
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SPEC = ROOT.parent / "shared" / "spec" / "amqp-rabbitmq-0.9.1.json"
OUTPUT = ROOT / "warrenmq" / "amqp" / "spec.py"

FIXED = {"octet": ("B", 1), "short": ("H", 2), "long": ("I", 4), "longlong": ("Q", 8), "timestamp": ("Q", 8)}
PY_TYPES = {
    "octet": "int",
    "short": "int",
    "long": "int",
    "longlong": "int",
    "timestamp": "int",
    "bit": "bool",
    "shortstr": "str",
    "longstr": "bytes",
    "table": "Table",
}


def py_name(name: str) -> str:
    ident = name.replace("-", "_")
    return ident + "_" if keyword.iskeyword(ident) else ident


def camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("-"))


class Generator:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.domains = {name: kind for name, kind in spec["domains"]}
        self.lines: list[str] = []
        self.structs: dict[str, str] = {}

    def kind(self, arg: dict[str, Any]) -> str:
        return str(arg.get("type") or self.domains[arg["domain"]])

    def struct_name(self, fmt: str) -> str:
        """A module-level precompiled Struct per format: ">BH" -> "_S_BH"."""
        return self.structs.setdefault(fmt, "_S_" + fmt.lstrip(">"))

    def emit(self, line: str = "") -> None:
        self.lines.append(line)

    # -- grouping ------------------------------------------------------------------------

    def groups(self, args: list[dict[str, Any]]) -> list[tuple[str, list[Any]]]:
        """Split arguments into runs: ('fixed', [(name, fmt)...]) or ('str'/'table', name)."""
        out: list[tuple[str, list[Any]]] = []
        fixed: list[tuple[str, str]] = []
        bits: list[str] = []

        def flush_bits() -> None:
            if bits:
                fixed.append(("bits:" + ",".join(bits), "B"))
                bits.clear()

        def flush_fixed() -> None:
            flush_bits()
            if fixed:
                out.append(("fixed", list(fixed)))
                fixed.clear()

        for arg in args:
            kind = self.kind(arg)
            name = py_name(arg["name"])
            if kind == "bit":
                bits.append(name)
                continue
            flush_bits()
            if kind in FIXED:
                fixed.append((name, FIXED[kind][0]))
            else:
                flush_fixed()
                out.append((kind, [name]))
        flush_fixed()
        return out

    # -- methods ---------------------------------------------------------------------------

    def method_class(self, cls: dict[str, Any], method: dict[str, Any]) -> str:
        class_name = camel(cls["name"]) + camel(method["name"])
        args = method["arguments"]
        names = [py_name(a["name"]) for a in args]
        index = (cls["id"] << 16) | method["id"]
        e = self.emit
        e()
        e()
        e(f"class {class_name}(Method):")
        e(f'    """{cls["name"]}.{method["name"]}"""')
        e()
        e(f"    __slots__ = ({''.join(repr(n) + ', ' for n in names)})")
        e(f'    NAME = "{cls["name"]}.{method["name"]}"')
        e(f"    CLASS_ID = {cls['id']}")
        e(f"    METHOD_ID = {method['id']}")
        e(f"    INDEX = 0x{index:08X}")
        e(f"    SYNCHRONOUS = {bool(method.get('synchronous'))}")
        e(f"    CONTENT = {bool(method.get('content'))}")
        for arg, name in zip(args, names, strict=True):
            e(f"    {name}: {self.annotation(arg)}")
        # __init__
        e()
        params = ", ".join(
            f"{n}: {self.annotation(a, param=True)} = {self.default(a)}" for a, n in zip(args, names, strict=True)
        )
        e(f"    def __init__(self{', ' if params else ''}{params}) -> None:")
        if not args:
            e("        pass")
        for arg, name in zip(args, names, strict=True):
            if self.kind(arg) == "table":
                e(f"        self.{name} = {name} if {name} is not None else {{}}")
            else:
                e(f"        self.{name} = {name}")
        self.encoder(cls, method, args)
        self.decoder(class_name, args)
        return class_name

    def annotation(self, arg: dict[str, Any], param: bool = False) -> str:
        kind = self.kind(arg)
        if kind == "table" and param:
            return "Table | None"
        if kind == "longstr":
            return "bytes | str"
        return PY_TYPES[kind]

    def default(self, arg: dict[str, Any]) -> str:
        kind = self.kind(arg)
        value = arg.get("default-value")
        if kind == "table":
            return "None"
        if kind == "bit":
            return repr(bool(value))
        if kind in FIXED:
            return repr(int(value or 0))
        if kind == "shortstr":
            return repr(str(value or ""))
        return repr(str(value or "").encode())

    def encoder(self, cls: dict[str, Any], method: dict[str, Any], args: list[dict[str, Any]]) -> None:
        e = self.emit
        e()
        e("    def encode(self) -> bytes:")
        prefix = bytes([cls["id"] >> 8, cls["id"] & 255, method["id"] >> 8, method["id"] & 255])
        parts = [repr(prefix)]
        for kind, items in self.groups(args):
            if kind == "fixed":
                fmt = ">" + "".join(f for _, f in items)
                values = []
                for name, _ in items:
                    if name.startswith("bits:"):
                        bit_names = name[5:].split(",")
                        values.append(" | ".join(f"(self.{b} and {1 << i})" for i, b in enumerate(bit_names)))
                    else:
                        values.append(f"self.{name}")
                parts.append(f"{self.struct_name(fmt)}.pack({', '.join(values)})")
            elif kind == "shortstr":
                parts.append(f"encode_shortstr(self.{items[0]})")
            elif kind == "longstr":
                parts.append(f"encode_longstr(self.{items[0]})")
            elif kind == "table":
                parts.append(f"encode_table(self.{items[0]})")
            else:  # pragma: no cover - the spec has no other kinds
                raise ValueError(kind)
        if len(parts) == 1:
            e(f"        return {parts[0]}")
        else:
            e('        return b"".join((')
            for part in parts:
                e(f"            {part},")
            e("        ))")

    def decoder(self, class_name: str, args: list[dict[str, Any]]) -> None:
        e = self.emit
        e()
        e("    @classmethod")
        e(f"    def decode(cls, buf: bytes, off: int, end: int) -> {class_name}:")
        e("        self = cls.__new__(cls)")
        if args:
            e("        try:")
            for kind, items in self.groups(args):
                if kind == "fixed":
                    fmt = ">" + "".join(f for _, f in items)
                    size = sum({"B": 1, "H": 2, "I": 4, "Q": 8}[f] for _, f in items)
                    targets = []
                    for name, _ in items:
                        targets.append("_bits" if name.startswith("bits:") else f"self.{name}")
                    lhs = ", ".join(targets) + ("," if len(targets) == 1 else "")
                    e(f"            {lhs} = {self.struct_name(fmt)}.unpack_from(buf, off)")
                    e(f"            off += {size}")
                    for name, _ in items:
                        if name.startswith("bits:"):
                            for i, bit in enumerate(name[5:].split(",")):
                                e(f"            self.{bit} = bool(_bits & {1 << i})")
                elif kind == "shortstr":
                    e("            n = buf[off]")
                    e(f"            self.{items[0]} = buf[off + 1 : off + 1 + n].decode()")
                    e("            off += 1 + n")
                elif kind == "longstr":
                    e("            n = _S_I.unpack_from(buf, off)[0]")
                    e(f"            self.{items[0]} = buf[off + 4 : off + 4 + n]")
                    e("            off += 4 + n")
                elif kind == "table":
                    e(f"            self.{items[0]}, off = read_table(buf, off, end)")
            e("        except (struct.error, IndexError, UnicodeDecodeError) as exc:")
            e(f'            raise DecodeError("malformed {class_name} arguments") from exc')
        e("        if off != end:")
        e(f'            raise DecodeError("malformed {class_name} arguments")')
        e("        return self")

    # -- properties --------------------------------------------------------------------------

    def properties(self, cls: dict[str, Any]) -> None:
        props = cls["properties"]
        names = [py_name(p["name"]) for p in props]
        e = self.emit
        e()
        e()
        e("class BasicProperties:")
        e('    """The 14 properties of basic content, decoded on demand from the raw header."""')
        e()
        e(f"    __slots__ = ({''.join(repr(n) + ', ' for n in names)})")
        for p, n in zip(props, names, strict=True):
            kind = self.kind(p)
            e(f"    {n}: {PY_TYPES[kind] if kind != 'table' else 'Table'} | None")
        e()
        params = ", ".join(
            f"{n}: {PY_TYPES[self.kind(p)] if self.kind(p) != 'table' else 'Table'} | None = None"
            for p, n in zip(props, names, strict=True)
        )
        e(f"    def __init__(self, {params}) -> None:")
        for n in names:
            e(f"        self.{n} = {n}")
        # flags: first property is bit 15
        e()
        e("    def encode(self) -> bytes:")
        e('        """Property flags followed by the present properties."""')
        e("        flags = 0")
        e("        parts: list[bytes] = []")
        for i, (p, n) in enumerate(zip(props, names, strict=True)):
            kind = self.kind(p)
            e(f"        if self.{n} is not None:")
            e(f"            flags |= {1 << (15 - i)}")
            if kind == "shortstr":
                e(f"            parts.append(encode_shortstr(self.{n}))")
            elif kind == "table":
                e(f"            parts.append(encode_table(self.{n}))")
            else:
                fmt = ">" + FIXED[kind][0]
                e(f"            parts.append({self.struct_name(fmt)}.pack(self.{n}))")
        e('        return _S_H.pack(flags) + b"".join(parts)')
        e()
        e("    @classmethod")
        e("    def decode(cls, buf: bytes, off: int, end: int) -> BasicProperties:")
        e('        """Decode from the property flags at buf[off] to end."""')
        e("        self = cls.__new__(cls)")
        e("        try:")
        e("            flags = _S_H.unpack_from(buf, off)[0]")
        e("            off += 2")
        for i, (p, n) in enumerate(zip(props, names, strict=True)):
            kind = self.kind(p)
            e(f"            if flags & {1 << (15 - i)}:")
            if kind == "shortstr":
                # RabbitMQ takes any bytes in a property's short string: kept as they came
                # (surrogateescape), written back byte for byte by encode_shortstr.
                e("                n = buf[off]")
                e(f'                self.{n} = buf[off + 1 : off + 1 + n].decode("utf-8", "surrogateescape")')
                e("                off += 1 + n")
            elif kind == "table":
                e(f"                self.{n}, off = read_table(buf, off, end)")
            else:
                fmt = ">" + FIXED[kind][0]
                e(f"                self.{n} = {self.struct_name(fmt)}.unpack_from(buf, off)[0]")
                e(f"                off += {FIXED[kind][1]}")
            e("            else:")
            e(f"                self.{n} = None")
        e("        except (struct.error, IndexError, UnicodeDecodeError) as exc:")
        e('            raise DecodeError("malformed basic properties") from exc')
        e("        if off > end:")
        e('            raise DecodeError("malformed basic properties")')
        e("        return self")
        e()
        e("    def __repr__(self) -> str:")
        e("        present = {k: getattr(self, k) for k in self.__slots__ if getattr(self, k) is not None}")
        e('        return f"BasicProperties({present!r})"')
        e()
        e("    def __eq__(self, other: object) -> bool:")
        e("        if not isinstance(other, BasicProperties):")
        e("            return NotImplemented")
        e("        return all(getattr(self, k) == getattr(other, k) for k in self.__slots__)")
        e()
        e("    __hash__ = None  # type: ignore[assignment]")

    # -- module ----------------------------------------------------------------------------------

    def generate(self) -> str:
        spec = self.spec
        body_start = len(self.lines)
        e = self.emit
        e()
        e()
        e("class Method:")
        e('    """Base of every method: wire identity and the codec entry points."""')
        e()
        e("    __slots__ = ()")
        e("    NAME: ClassVar[str]")
        e("    CLASS_ID: ClassVar[int]")
        e("    METHOD_ID: ClassVar[int]")
        e("    INDEX: ClassVar[int]")
        e("    SYNCHRONOUS: ClassVar[bool]")
        e("    CONTENT: ClassVar[bool]")
        e()
        e("    def encode(self) -> bytes:")
        e("        raise NotImplementedError")
        e()
        e("    @classmethod")
        e("    def decode(cls, buf: bytes, off: int, end: int) -> Method:")
        e("        raise NotImplementedError")
        e()
        e("    def __repr__(self) -> str:")
        e("        names: tuple[str, ...] = self.__slots__")
        e('        fields = ", ".join(f"{k}={getattr(self, k)!r}" for k in names)')
        e('        return f"<{self.NAME} {fields}>"')
        e()
        e("    def __eq__(self, other: object) -> bool:")
        e("        if type(other) is not type(self):")
        e("            return NotImplemented")
        e("        names: tuple[str, ...] = self.__slots__")
        e("        return all(getattr(self, k) == getattr(other, k) for k in names)")
        e()
        e("    __hash__ = None  # type: ignore[assignment]")
        classes: list[str] = []
        for cls in spec["classes"]:
            for method in cls["methods"]:
                classes.append(self.method_class(cls, method))
            if cls.get("properties"):
                self.properties(cls)
        e()
        e()
        e("METHODS: dict[int, type[Method]] = {")
        for name in classes:
            e(f"    {name}.INDEX: {name},")
        e("}")
        e('"""Method class by (class_id << 16 | method_id)."""')
        e()
        e("CLASS_NAMES: dict[int, str] = {")
        for cls in spec["classes"]:
            e(f"    {cls['id']}: {cls['name']!r},")
        e("}")
        body = self.lines[body_start:]

        head = [
            '"""AMQP 0-9-1 methods, properties and constants.',
            "",
            "GENERATED by tools/codegen.py from RabbitMQ's amqp-rabbitmq-0.9.1.json; do not edit by hand.",
            '"""',
            "",
            "# ruff: noqa: E501",
            "from __future__ import annotations",
            "",
            "import struct",
            "from typing import ClassVar",
            "",
            "from warrenmq.amqp.values import (",
            "    DecodeError,",
            "    Table,",
            "    encode_longstr,",
            "    encode_shortstr,",
            "    encode_table,",
            "    read_table,",
            ")",
            "",
            f"PROTOCOL_VERSION = ({spec['major-version']}, {spec['minor-version']}, {spec['revision']})",
            f"PORT = {spec['port']}",
            "",
        ]
        for const in spec["constants"]:
            head.append(f"{const['name'].replace('-', '_')} = {const['value']}")
        head.append("")
        soft = [c["value"] for c in spec["constants"] if c.get("class") == "soft-error"]
        hard = [c["value"] for c in spec["constants"] if c.get("class") == "hard-error"]
        head.append(f"SOFT_ERRORS = frozenset({sorted(soft)!r})")
        head.append(f"HARD_ERRORS = frozenset({sorted(hard)!r})")
        head.append("")
        self.struct_name(">H")
        self.struct_name(">I")
        for fmt, name in sorted(self.structs.items(), key=lambda kv: kv[1]):
            head.append(f'{name} = struct.Struct("{fmt}")')
        return "\n".join(head + body) + "\n"


def render(spec_path: Path) -> str:
    spec = json.loads(spec_path.read_text())
    return Generator(spec).generate()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", type=Path, default=DEFAULT_SPEC)
    parser.add_argument("--check", action="store_true", help="fail when the committed module differs")
    args = parser.parse_args()
    if not args.spec.exists():
        if args.check:
            print(f"codegen: {args.spec} not found; skipping the check", file=sys.stderr)
            return 0
        print(f"codegen: {args.spec} not found", file=sys.stderr)
        return 2
    text = render(args.spec)
    if args.check:
        current = OUTPUT.read_text() if OUTPUT.exists() else ""
        if current != text:
            print(f"codegen: {OUTPUT.relative_to(ROOT)} is out of date; run `make codegen`", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
