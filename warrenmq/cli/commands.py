"""warrenctl's commands other than the plain lists: users, vhosts, permissions, queues,
connections, policies, definitions, status and startup.

Each prints rabbitmqctl's banner ("Adding user ..."), then its result, and fails with
rabbitmqctl's message and exit code (sysexits: 64 usage, 65 data, 67 no user, 69 unavailable,
70 software).
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from warrenmq.cli.client import ApiError, Client, Unreachable, quote
from warrenmq.cli.lists import LISTS, PERMISSION_KEYS, CommandError, check_columns, fetch, rows
from warrenmq.cli.output import Printer, Term, dumps

EX_USAGE, EX_DATAERR, EX_NOUSER, EX_UNAVAILABLE, EX_SOFTWARE, EX_TEMPFAIL = 64, 65, 67, 69, 70, 75


@dataclass
class Ctx:
    client: Client
    printer: Printer
    vhost: str
    args: list[str]
    flags: dict[str, Any]
    argv: list[str]
    usage: str
    timeout: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Command:
    run: Callable[[Ctx], int]
    usage: str
    min_args: int = 0
    max_args: int | None = 0
    flags: tuple[str, ...] = ()


def _user_path(name: str) -> str:
    return f"/api/users/{quote(name)}"


def _get_user(ctx: Ctx, name: str) -> dict[str, Any]:
    try:
        user: dict[str, Any] = ctx.client.get(_user_path(name))
    except ApiError as exc:
        if exc.status == 404:
            raise CommandError(EX_NOUSER, f'User "{name}" does not exist') from None
        raise
    return user


# -- lists -------------------------------------------------------------------------------------


def list_command(name: str) -> Callable[[Ctx], int]:
    spec = LISTS[name]

    def run(ctx: Ctx) -> int:
        columns = check_columns(name, spec, ctx.args, ctx.argv, ctx.usage)
        if spec.timeout_banner:
            ctx.printer.info(f"Timeout: {ctx.timeout if ctx.timeout is not None else 60.0} seconds ...")
        ctx.printer.info(spec.banner(ctx.vhost))
        items = _where(ctx, fetch(ctx.client, spec, ctx.vhost))
        ctx.printer.rows(columns, rows(items, spec, columns), spec.streaming)
        return 0

    return run


def _where(ctx: Ctx, queues: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """list_queues --online / --offline (its node is reachable or not) and --local (on the node
    asked), as rabbitmqctl."""
    if ctx.flags.get("online") and not ctx.flags.get("offline"):
        queues = [q for q in queues if q.get("state") != "down"]
    elif ctx.flags.get("offline") and not ctx.flags.get("online"):
        queues = [q for q in queues if q.get("state") == "down"]
    if ctx.flags.get("local"):
        node = ctx.client.get("/api/overview?columns=node").get("node")
        queues = [q for q in queues if q.get("node") == node]
    return queues


def list_user_permissions(ctx: Ctx) -> int:
    name = ctx.args[0]
    ctx.printer.info(f'Listing permissions for user "{name}" ...')
    try:
        items = ctx.client.get(f"{_user_path(name)}/permissions?sort=")
    except ApiError as exc:
        if exc.status == 404:
            raise CommandError(EX_NOUSER, f'User "{name}" does not exist') from None
        raise
    columns = ["vhost", "configure", "write", "read"]
    ctx.printer.rows(columns, [[PERMISSION_KEYS[c](i) for c in columns] for i in items], streaming=False)
    return 0


# -- users ---------------------------------------------------------------------------------------


def add_user(ctx: Ctx) -> int:
    name, password = ctx.args
    ctx.printer.info(f'Adding user "{name}" ...')
    try:
        ctx.client.get(_user_path(name))
    except ApiError as exc:
        if exc.status != 404:
            raise
    else:
        raise CommandError(EX_SOFTWARE, f'User "{name}" already exists')
    ctx.client.put(_user_path(name), {"password": password, "tags": ""})
    ctx.printer.info(
        "Done. Don't forget to grant the user permissions to some virtual hosts! "
        "See 'warrenctl help set_permissions' to learn more."
    )
    return 0


def delete_user(ctx: Ctx) -> int:
    name = ctx.args[0]
    ctx.printer.info(f'Deleting user "{name}" ...')
    try:
        ctx.client.delete(_user_path(name))
    except ApiError as exc:
        if exc.status == 404:
            raise CommandError(EX_NOUSER, f'User "{name}" does not exist') from None
        raise
    return 0


def change_password(ctx: Ctx) -> int:
    name, password = ctx.args
    ctx.printer.info(f'Changing password for user "{name}" ...')
    user = _get_user(ctx, name)
    ctx.client.put(_user_path(name), {"password": password, "tags": user.get("tags", [])})
    return 0


def set_user_tags(ctx: Ctx) -> int:
    name, tags = ctx.args[0], ctx.args[1:]
    ctx.printer.info(f'Setting tags for user "{name}" to [{", ".join(tags)}] ...')
    user = _get_user(ctx, name)
    body = {
        "password_hash": user.get("password_hash", ""),
        "hashing_algorithm": user.get("hashing_algorithm"),
        "tags": tags,
    }
    ctx.client.put(_user_path(name), body)
    return 0


# -- vhosts and permissions -----------------------------------------------------------------------


def add_vhost(ctx: Ctx) -> int:
    name = ctx.args[0]
    ctx.printer.info(f'Adding vhost "{name}" ...')
    body: dict[str, Any] = {}
    if ctx.flags.get("description") is not None:
        body["description"] = ctx.flags["description"]
    if ctx.flags.get("tags") is not None:
        body["tags"] = ctx.flags["tags"]
    ctx.client.put(f"/api/vhosts/{quote(name)}", body)
    return 0


def delete_vhost(ctx: Ctx) -> int:
    name = ctx.args[0]
    ctx.printer.info(f'Deleting vhost "{name}" ...')
    try:
        ctx.client.delete(f"/api/vhosts/{quote(name)}")
    except ApiError as exc:
        if exc.status == 404:
            raise CommandError(EX_DATAERR, f"Virtual host '{name}' does not exist", titled=False) from None
        raise
    return 0


def _vhost_exists(ctx: Ctx, vhost: str) -> None:
    try:
        ctx.client.get(f"/api/vhosts/{quote(vhost)}?columns=name")
    except ApiError as exc:
        if exc.status == 404:
            raise CommandError(EX_UNAVAILABLE, f"Virtual host {vhost} does not exist") from None
        raise


def set_permissions(ctx: Ctx) -> int:
    user, configure, write, read = ctx.args
    ctx.printer.info(f'Setting permissions for user "{user}" in vhost "{ctx.vhost}" ...')
    _vhost_exists(ctx, ctx.vhost)
    try:
        ctx.client.get(_user_path(user))
    except ApiError as exc:
        if exc.status == 404:
            raise CommandError(EX_NOUSER, f"User {user} does not exist") from None
        raise
    body = {"configure": configure, "write": write, "read": read}
    ctx.client.put(f"/api/permissions/{quote(ctx.vhost)}/{quote(user)}", body)
    return 0


def clear_permissions(ctx: Ctx) -> int:
    user = ctx.args[0]
    ctx.printer.info(f'Clearing permissions for user "{user}" in vhost "{ctx.vhost}" ...')
    try:
        ctx.client.delete(f"/api/permissions/{quote(ctx.vhost)}/{quote(user)}")
    except ApiError as exc:
        if exc.status != 404:
            raise
    return 0


# -- queues and connections ------------------------------------------------------------------------


def _queue_path(ctx: Ctx, name: str) -> str:
    return f"/api/queues/{quote(ctx.vhost)}/{quote(name)}"


def purge_queue(ctx: Ctx) -> int:
    name = ctx.args[0]
    ctx.printer.info(f"Purging queue '{name}' in vhost '{ctx.vhost}' ...")
    try:
        ctx.client.delete(_queue_path(ctx, name) + "/contents")
    except ApiError as exc:
        if exc.status == 404:
            raise CommandError(EX_UNAVAILABLE, "not_found") from None
        raise
    return 0


def delete_queue(ctx: Ctx) -> int:
    name = ctx.args[0]
    conditions = []
    if ctx.flags.get("if_empty"):
        conditions.append("if queue is empty ")
    if ctx.flags.get("if_unused"):
        conditions.append("if queue is unused ")
    ctx.printer.info(f"Deleting queue '{name}' on vhost '{ctx.vhost}' " + "and ".join(conditions) + "...")
    path = _queue_path(ctx, name)
    try:
        queue = ctx.client.get(path + "?columns=messages_ready,consumers")
    except ApiError as exc:
        if exc.status == 404:
            raise CommandError(EX_USAGE, "Queue not found") from None
        raise
    query = [f"if-{flag}=true" for flag in ("empty", "unused") if ctx.flags.get(f"if_{flag}")]
    try:
        ctx.client.delete(path + ("?" + "&".join(query) if query else ""))
    except ApiError as exc:
        if exc.status == 404:
            raise CommandError(EX_USAGE, "Queue not found") from None
        if exc.status == 400 and "not empty" in str(exc.reason):
            raise CommandError(EX_USAGE, "Queue is not empty") from None
        if exc.status == 400 and "in use" in str(exc.reason):
            raise CommandError(EX_USAGE, "Queue is in use") from None
        raise
    ctx.printer.line(f"Queue was successfully deleted with {queue.get('messages_ready', 0)} ready messages")
    return 0


PEEK_COLUMNS = [
    "position",
    "exchange",
    "routing_key",
    "redelivered",
    "properties",
    "payload_bytes",
    "payload_encoding",
    "payload",
]


def peek_queue(ctx: Ctx) -> int:
    """WarrenMQ's own: the first messages of a queue, left where they are."""
    name = ctx.args[0]
    count = ctx.args[1] if len(ctx.args) > 1 else "1"
    if not count.isdigit():
        raise CommandError(EX_USAGE, f"Error (argument validation): count must be a number, not '{count}'", False)
    ctx.printer.info(f"Peeking at up to {count} messages of queue '{name}' in vhost '{ctx.vhost}' ...")
    try:
        messages = ctx.client.get(_queue_path(ctx, name) + f"/peek?count={count}")
    except ApiError as exc:
        if exc.status == 404:
            raise CommandError(EX_UNAVAILABLE, f"Queue '{name}' not found in vhost '{ctx.vhost}'") from None
        raise
    rows = [
        [
            position,
            m.get("exchange", ""),
            m.get("routing_key", ""),
            m.get("redelivered", False),
            Term(dumps(m.get("properties") or {}), m.get("properties") or {}),
            m.get("payload_bytes", 0),
            m.get("payload_encoding", ""),
            m.get("payload", ""),
        ]
        for position, m in enumerate(messages, 1)
    ]
    ctx.printer.rows(PEEK_COLUMNS, rows, streaming=False)
    return 0


def close_connection(ctx: Ctx) -> int:
    name, reason = ctx.args
    ctx.printer.info(f"Closing connection {name}, reason: {reason}...")
    try:
        ctx.client.delete(f"/api/connections/{quote(name)}", headers={"X-Reason": reason})
    except ApiError as exc:
        if exc.status == 404:
            raise CommandError(EX_UNAVAILABLE, f"no connection named '{name}'") from None
        raise
    return 0


# -- policies ---------------------------------------------------------------------------------------


def set_policy(ctx: Ctx) -> int:
    name, pattern, definition = ctx.args
    priority = ctx.flags.get("priority") or "0"
    ctx.printer.info(
        f'Setting policy "{name}" for pattern "{pattern}" to "{definition}" with priority "{priority}" '
        f'for vhost "{ctx.vhost}" ...'
    )
    try:
        parsed = json.loads(definition)
    except ValueError:
        raise CommandError(EX_UNAVAILABLE, "JSON decoding error. Reason: badarg") from None
    try:
        priority_value = int(priority)
    except ValueError:
        raise CommandError(EX_USAGE, f"priority must be an integer, got '{priority}'") from None
    body = {"pattern": pattern, "definition": parsed, "priority": priority_value}
    if ctx.flags.get("apply_to"):
        body["apply-to"] = ctx.flags["apply_to"]
    try:
        ctx.client.put(f"/api/policies/{quote(ctx.vhost)}/{quote(name)}", body)
    except ApiError as exc:
        if exc.status in (400, 404):
            raise CommandError(EX_UNAVAILABLE, str(exc.reason).rstrip("\n")) from None
        raise
    return 0


def clear_policy(ctx: Ctx) -> int:
    name = ctx.args[0]
    ctx.printer.info(f'Clearing policy "{name}" on vhost "{ctx.vhost}" ...')
    try:
        ctx.client.delete(f"/api/policies/{quote(ctx.vhost)}/{quote(name)}")
    except ApiError as exc:
        if exc.status == 404:
            raise CommandError(EX_UNAVAILABLE, "Parameter does not exist") from None
        raise
    return 0


# -- definitions -----------------------------------------------------------------------------------


def export_definitions(ctx: Ctx) -> int:
    path = ctx.args[0]
    doc = ctx.client.get("/api/definitions")
    text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    if path == "-":
        ctx.printer.out.write(text)
        return 0
    ctx.printer.info(f'Exporting definitions in JSON to a file at "{path}" ...')
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError:
        raise CommandError(EX_DATAERR, f"No permissions to write to file {path} or its parent directory") from None
    return 0


def import_definitions(ctx: Ctx) -> int:
    path = ctx.args[0]
    if path == "-":
        text = sys.stdin.read()
    else:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except FileNotFoundError:
            message = f"Error (argument validation): Bad argument: File {path} does not exist\n"
            raise CommandError(EX_DATAERR, message + f"Arguments given:\n\t{' '.join(ctx.argv)}", False) from None
        except OSError as exc:
            raise CommandError(EX_DATAERR, f"Cannot read {path}: {exc.strerror}") from None
    ctx.printer.info(f'Importing definitions in JSON from a file at "{path}" ...')
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise CommandError(EX_DATAERR, f"Failed to deserialise input (format: JSON) (error: {exc})") from None
    try:
        ctx.client.post("/api/definitions", doc)
    except ApiError as exc:
        if exc.status == 400:
            raise CommandError(EX_DATAERR, str(exc.reason)) from None
        raise
    ctx.printer.info("Successfully started definition import. This process is asynchronous and can take some time.")
    return 0


# -- node ---------------------------------------------------------------------------------------------


def await_startup(ctx: Ctx) -> int:
    """Wait until the node answers (its API is up once startup completed)."""
    deadline = time.monotonic() + (ctx.timeout if ctx.timeout is not None else 300.0)
    while True:
        try:
            ctx.client.get("/api/overview?columns=node")
            return 0
        except Unreachable:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)


def _bad_argument(ctx: Ctx, why: str = "") -> CommandError:
    """rabbitmqctl's argument validation failure (exit 65)."""
    text = f"Error (argument validation): Bad argument{': ' + why if why else '.'}\n"
    return CommandError(EX_DATAERR, text + f"Arguments given:\n\t{' '.join(ctx.argv)}\n\nUsage\n\n{ctx.usage}", False)


_AMOUNT = re.compile(r"\d+[A-Za-z]*")  # bytes with a unit; the node checks the unit ("60MB", "1GiB")


def _node_path(ctx: Ctx) -> tuple[str, str]:
    node = str(ctx.client.get("/api/overview?columns=node").get("node", ""))
    return node, f"/api/nodes/{quote(node)}"


def _number(ctx: Ctx, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise _bad_argument(ctx) from None


def _put_setting(ctx: Ctx, path: str, body: dict[str, Any]) -> int:
    try:
        ctx.client.put(path, body)
    except ApiError as exc:
        if exc.status == 400:
            raise _bad_argument(ctx) from None
        raise
    return 0


def set_vm_memory_high_watermark(ctx: Ctx) -> int:
    """``<fraction>`` or ``absolute <value>`` ("60MB"): the memory alarm follows at once."""
    if ctx.args[0] == "absolute":
        if len(ctx.args) != 2 or not _AMOUNT.fullmatch(ctx.args[1]):
            raise _bad_argument(ctx)
        node, path = _node_path(ctx)
        ctx.printer.info(f"Setting memory threshold on {node} to {ctx.args[1]} bytes ...")
        return _put_setting(ctx, path + "/memory-high-watermark", {"absolute": ctx.args[1]})
    if len(ctx.args) != 1:
        raise _bad_argument(ctx)
    fraction = _number(ctx, ctx.args[0])
    if not 0.0 <= fraction <= 1.0:
        raise _bad_argument(ctx, "The threshold should be a fraction between 0.0 and 1.0")
    node, path = _node_path(ctx)
    ctx.printer.info(f"Setting memory threshold on {node} to {ctx.args[0]} ...")
    return _put_setting(ctx, path + "/memory-high-watermark", {"fraction": fraction})


def set_disk_free_limit(ctx: Ctx) -> int:
    """``<disk_limit>`` ("50MB") or ``mem_relative <fraction>``: the disk alarm follows at once."""
    if ctx.args[0] == "mem_relative":
        if len(ctx.args) != 2:
            raise _bad_argument(ctx)
        ratio = _number(ctx, ctx.args[1])
        node, path = _node_path(ctx)
        ctx.printer.info(f"Setting disk free limit on {node} to {ctx.args[1]} times the total RAM ...")
        return _put_setting(ctx, path + "/disk-free-limit", {"mem_relative": ratio})
    if len(ctx.args) != 1 or not _AMOUNT.fullmatch(ctx.args[0]):
        raise _bad_argument(ctx)
    node, path = _node_path(ctx)
    ctx.printer.info(f"Setting disk free limit on {node} to {ctx.args[0]} bytes ...")
    return _put_setting(ctx, path + "/disk-free-limit", {"limit": ctx.args[0]})


def version(ctx: Ctx) -> int:
    overview = ctx.client.get("/api/overview?columns=warrenmq_version,product_version")
    ctx.printer.line(str(overview.get("warrenmq_version") or overview.get("product_version", "")))
    return 0


def status(ctx: Ctx) -> int:
    from warrenmq.cli.status import status_json, status_text

    overview = ctx.client.get("/api/overview")
    nodes = ctx.client.get("/api/nodes")
    # In a cluster every member is listed: this node is the one the overview names.
    node = next((n for n in nodes if n.get("name") == overview.get("node")), nodes[0] if nodes else {})
    vhosts = len(ctx.client.get("/api/vhosts?columns=name"))
    ctx.printer.info(f"Status of node {overview.get('node', '')} ...")
    if ctx.printer.formatter == "json":
        ctx.printer.line(json.dumps(status_json(overview, node, vhosts), separators=(",", ":")))
    else:
        ctx.printer.line(status_text(overview, node, vhosts))
    return 0


def cluster_status(ctx: Ctx) -> int:
    from warrenmq.cli.cluster_status import cluster_status_json, cluster_status_text

    overview = ctx.client.get("/api/overview?columns=node,cluster_name")
    nodes = ctx.client.get("/api/nodes")
    flags = ctx.client.get("/api/feature-flags")
    name = str(overview.get("cluster_name", ""))
    ctx.printer.info(f"Cluster status of node {overview.get('node', '')} ...")
    if ctx.printer.formatter == "json":
        ctx.printer.line(json.dumps(cluster_status_json(name, nodes, flags), separators=(",", ":")))
    else:
        ctx.printer.line(cluster_status_text(name, nodes, flags))
    return 0


__all__ = ["Command", "CommandError", "Ctx"]
