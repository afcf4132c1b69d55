"""Values and tables printed as rabbitmqctl prints them.

The table formatter writes a header line of column names and one tab-separated line per
row; values look as rabbitmqctl's ``format_info_item`` renders Erlang terms: ``true``,
``[administrator]`` for tags, ``[{"x-queue-type","quorum"}]`` for argument tables, empty for
"none".  The JSON formatter writes ``[`` then one object per line, each after the first
prefixed with ``,``, then ``]`` (rabbitmqctl streams lists that way); argument tables there
are ``[key, type, value]`` triples.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO


class Args(dict[str, Any]):
    """An AMQP field table (queue arguments, client properties)."""


class Atoms(list[str]):
    """A list of Erlang atoms (tags, node names): ``[a, b]``."""


@dataclass
class Term:
    """A value with its own table text and JSON value (e.g. the protocol ``{0,9,1}``)."""

    text: str
    json: Any


def _erl_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _erl(value: Any) -> str:
    """A plain value inside an Erlang term, as ``~p`` shows it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "undefined"
    if isinstance(value, str):
        return _erl_string(value) if value else "[]"  # an empty string is an empty charlist
    if isinstance(value, dict):
        return "[" + ",".join("{" + _erl_string(str(k)) + "," + _erl(v) + "}" for k, v in value.items()) + "]"
    if isinstance(value, list):
        return "[" + ",".join(_erl(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _amqp_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "signedint" if -(2**31) <= value < 2**31 else "long"
    if isinstance(value, float):
        return "double"
    if isinstance(value, dict):
        return "table"
    if isinstance(value, list):
        return "array"
    if value is None:
        return "void"
    return "longstr"


def _typed(value: Any) -> Any:
    if isinstance(value, dict):
        return [[str(k), _amqp_type(v), _typed(v)] for k, v in value.items()]
    if isinstance(value, list):
        return [[_amqp_type(v), _typed(v)] for v in value]
    return value


def table_text(value: Any) -> str:
    if isinstance(value, Term):
        return value.text
    if isinstance(value, Args):
        return _erl(dict(value))
    if isinstance(value, Atoms):
        return "[" + ", ".join(value) + "]"
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return _erl(value)
    return str(value)


def json_value(value: Any) -> Any:
    if isinstance(value, Term):
        return value.json
    if isinstance(value, Args):
        return _typed(dict(value))
    if isinstance(value, Atoms):
        return list(value)
    if value is None:
        return ""
    return value


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class Printer:
    """Where a command writes: its result on stdout, informational lines unless quiet."""

    def __init__(self, out: TextIO, quiet: bool, silent: bool, formatter: str, headers: bool = True) -> None:
        self.out = out
        self.quiet = quiet or silent or formatter == "json"
        self.headers = headers and not silent
        self.formatter = formatter
        self.contacted = False
        self._held: list[str] = []

    def info(self, line: str) -> None:
        """An informational line; held back until the node has answered once (as rabbitmqctl
        prints nothing but the error when the node cannot be reached)."""
        if self.quiet:
            return
        if self.contacted:
            self.out.write(line + "\n")
        else:
            self._held.append(line + "\n")

    def contact(self) -> None:
        if not self.contacted:
            self.contacted = True
            self.out.write("".join(self._held))
            self._held.clear()

    def line(self, text: str) -> None:
        self.out.write(text + "\n")

    def rows(self, columns: Sequence[str], rows: list[list[Any]], streaming: bool = True) -> None:
        """A list result: a table, or JSON objects (streamed lists print ``[`` and ``]`` on lines of their own)."""
        if self.formatter == "json":
            objects = [dumps({c: json_value(v) for c, v in zip(columns, row, strict=True)}) for row in rows]
            if not objects:
                self.out.write("[\n]\n" if streaming else "[]\n")
                return
            self.out.write("[\n" + "\n".join(("," if i else "") + o for i, o in enumerate(objects)) + "\n]\n")
            return
        if not rows:
            if not streaming:
                self.out.write("\n")
            return
        if self.headers:
            self.out.write("\t".join(columns) + "\n")
        for row in rows:
            self.out.write("\t".join(table_text(v) for v in row) + "\n")


Getter = Callable[[dict[str, Any]], Any]


def field(name: str, default: Any = None) -> Getter:
    def get(item: dict[str, Any]) -> Any:
        value: Any = item
        for part in name.split("."):
            if not isinstance(value, dict):
                return default
            value = value.get(part)
        return default if value is None else value

    return get


def args_field(name: str) -> Getter:
    def get(item: dict[str, Any]) -> Any:
        value = item.get(name)
        return Args(value if isinstance(value, dict) else {})

    return get


def atoms_field(name: str, optional: bool = False) -> Getter:
    """A list of names; ``optional``: absent (a classic queue's members) prints as nothing."""

    def get(item: dict[str, Any]) -> Any:
        value = item.get(name)
        if optional and not isinstance(value, list):
            return None
        return Atoms([str(v) for v in value] if isinstance(value, list) else [])

    return get


def constant(value: Any) -> Getter:
    return lambda item: value
