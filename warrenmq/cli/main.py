"""``warrenctl``: operate a running WarrenMQ node as ``rabbitmqctl`` operates RabbitMQ.

It talks to the node's management HTTP API (authenticated with a broker user), so it works
from any machine that can reach that port.  Where to reach it, in order of precedence:
``--host``/``--management-port``/``--username``/``--password``, then ``WARREN_MGMT_HOST``,
``WARREN_MGMT_PORT``, ``WARREN_MGMT_USERNAME``, ``WARREN_MGMT_PASSWORD``, then
localhost:15672 as guest/guest.  ``-n name@host`` (rabbitmqctl's node option) also names the
host.  Options may come before or after the command, as with rabbitmqctl.
"""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO

from warrenmq import __version__
from warrenmq.cli import commands as c
from warrenmq.cli.client import ApiError, Client, Unreachable
from warrenmq.cli.lists import LISTS, CommandError
from warrenmq.cli.output import Printer

PROG = "warrenctl"
EX_PIPE = 128 + 13  # what a shell reports for a program ended by SIGPIPE
GLOBAL_USAGE = (
    f"{PROG} [--host <host>] [--management-port <port>] [--username <user>] [--password <password>] [--quiet]"
)

LIST_USAGE = {
    "list_queues": "list_queues [--vhost <vhost>] [--online] [--offline] [--local] [--no-table-headers] "
    "[<column> ...] [--timeout <timeout>]",
    "list_exchanges": "list_exchanges [--vhost <vhost>] [--no-table-headers] [<column> ...]",
    "list_bindings": "list_bindings [--vhost <vhost>] [--no-table-headers] [<column> ...]",
    "list_connections": "list_connections [--no-table-headers] [<column> ...]",
    "list_channels": "list_channels [--no-table-headers] [<column> ...]",
    "list_consumers": "list_consumers [--vhost <vhost>] [--no-table-headers] [<column> ...]",
    "list_vhosts": "list_vhosts [--no-table-headers] [<column> ...]",
    "list_users": "list_users [--no-table-headers]",
    "list_permissions": "list_permissions [--vhost <vhost>] [--no-table-headers]",
    "list_policies": "list_policies [--vhost <vhost>]",
}
LIST_FLAGS = {"list_queues": ("online", "offline", "local")}

COMMANDS: dict[str, c.Command] = {
    name: c.Command(c.list_command(name), usage, 0, None if LISTS[name].columns else 0, LIST_FLAGS.get(name, ()))
    for name, usage in LIST_USAGE.items()
}
COMMANDS.update(
    {
        "list_user_permissions": c.Command(c.list_user_permissions, "list_user_permissions <username>", 1, 1),
        "add_user": c.Command(c.add_user, "add_user <username> <password>", 2, 2),
        "delete_user": c.Command(c.delete_user, "delete_user <username>", 1, 1),
        "change_password": c.Command(c.change_password, "change_password <username> <password>", 2, 2),
        "set_user_tags": c.Command(c.set_user_tags, "set_user_tags <username> <tag> [...]", 1, None),
        "add_vhost": c.Command(
            c.add_vhost,
            'add_vhost <vhost> [--description <description> --tags "<tag1>,<tag2>"]',
            1,
            1,
            ("description", "tags"),
        ),
        "delete_vhost": c.Command(c.delete_vhost, "delete_vhost <vhost>", 1, 1),
        "set_permissions": c.Command(
            c.set_permissions, "set_permissions [--vhost <vhost>] <username> <conf> <write> <read>", 4, 4
        ),
        "clear_permissions": c.Command(c.clear_permissions, "clear_permissions [--vhost <vhost>] <username>", 1, 1),
        "purge_queue": c.Command(c.purge_queue, "purge_queue [--vhost <vhost>] <queue>", 1, 1),
        "peek_queue": c.Command(c.peek_queue, "peek_queue [--vhost <vhost>] <queue> [<count>]", 1, 2),
        "delete_queue": c.Command(
            c.delete_queue,
            "delete_queue <queue_name> [--if-empty|-e] [--if-unused|-u]",
            1,
            1,
            ("if_empty", "if_unused"),
        ),
        "close_connection": c.Command(c.close_connection, "close_connection <connection name> <explanation>", 2, 2),
        "set_policy": c.Command(
            c.set_policy,
            "set_policy [--vhost <vhost>] [--priority <priority>] [--apply-to <apply-to>] "
            "<name> <pattern> <definition>",
            3,
            3,
            ("priority", "apply_to"),
        ),
        "clear_policy": c.Command(c.clear_policy, "clear_policy [--vhost <vhost>] <name>", 1, 1),
        "export_definitions": c.Command(c.export_definitions, 'export_definitions <file_path | "-">', 1, 1),
        "import_definitions": c.Command(c.import_definitions, 'import_definitions <file_path | "-">', 1, 1),
        "set_vm_memory_high_watermark": c.Command(
            c.set_vm_memory_high_watermark, "set_vm_memory_high_watermark <fraction> | absolute <value>", 1, 2
        ),
        "set_disk_free_limit": c.Command(
            c.set_disk_free_limit, "set_disk_free_limit <disk_limit> | mem_relative <fraction>", 1, 2
        ),
        "status": c.Command(c.status, "status", 0, 0, ("unit",)),
        "cluster_status": c.Command(c.cluster_status, "cluster_status", 0, 0),
        "await_startup": c.Command(c.await_startup, "await_startup [--timeout <timeout>]", 0, 0),
        "version": c.Command(c.version, "version", 0, 0),
    }
)

# Options taking a value: their destination key.
VALUE_OPTIONS = {
    "-p": "vhost",
    "--vhost": "vhost",
    "--formatter": "formatter",
    "-t": "timeout",
    "--timeout": "timeout",
    "--host": "host",
    "--management-port": "port",
    "--port": "port",
    "--username": "username",
    "--password": "password",
    "-n": "node",
    "--node": "node",
    "--priority": "priority",
    "--apply-to": "apply_to",
    "--description": "description",
    "--tags": "tags",
    "--unit": "unit",
}
FLAG_OPTIONS = {
    "-q": "quiet",
    "--quiet": "quiet",
    "-s": "silent",
    "--silent": "silent",
    "--no-table-headers": "no_table_headers",
    "-e": "if_empty",
    "--if-empty": "if_empty",
    "-u": "if_unused",
    "--if-unused": "if_unused",
    "-l": "longnames",
    "--longnames": "longnames",
    "--online": "online",
    "--offline": "offline",
    "--local": "local",
    "-?": "help",
    "-h": "help",
    "--help": "help",
}


class UsageError(Exception):
    pass


def parse(argv: list[str]) -> tuple[dict[str, Any], list[str]]:
    options: dict[str, Any] = {}
    positional: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        if token == "--":
            positional.extend(argv[i + 1 :])
            break
        name, eq, inline = token.partition("=")
        if name in VALUE_OPTIONS and token.startswith("-"):
            if eq:
                options[VALUE_OPTIONS[name]] = inline
            elif i + 1 < len(argv):
                i += 1
                options[VALUE_OPTIONS[name]] = argv[i]
            else:
                raise UsageError(f"option {name} needs a value")
        elif token in FLAG_OPTIONS:
            options[FLAG_OPTIONS[token]] = True
        elif token.startswith("--") and len(token) > 2:
            raise UsageError(f"unknown option {token}")
        else:
            positional.append(token)
        i += 1
    return options, positional


def usage_text() -> str:
    lines = [f"Usage\n\n{GLOBAL_USAGE} <command> [<command options>]\n", "Commands:\n"]
    lines += [f"    {cmd.usage}" for cmd in COMMANDS.values()]
    lines.append(
        "\nEnvironment: WARREN_MGMT_HOST, WARREN_MGMT_PORT, WARREN_MGMT_USERNAME, WARREN_MGMT_PASSWORD "
        "(default localhost:15672, guest/guest)."
    )
    return "\n".join(lines) + "\n"


def _client(options: dict[str, Any], environ: dict[str, str]) -> tuple[Client, str]:
    host = options.get("host") or environ.get("WARREN_MGMT_HOST")
    if not host and options.get("node"):
        host = str(options["node"]).rpartition("@")[2]
    host = host or "localhost"
    port_text = options.get("port") or environ.get("WARREN_MGMT_PORT") or "15672"
    try:
        port = int(port_text)
    except ValueError:
        raise UsageError(f"invalid management port '{port_text}'") from None
    username = options.get("username") or environ.get("WARREN_MGMT_USERNAME") or "guest"
    password = options.get("password") or environ.get("WARREN_MGMT_PASSWORD") or "guest"
    timeout = float(options["timeout"]) if options.get("timeout") else 60.0
    return Client(host, port, username, password, timeout), f"{host}:{port}"


def main(argv: list[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        code = _main(list(sys.argv[1:] if argv is None else argv), out, err or sys.stderr)
        out.flush()  # here, where a closed pipe can still be told from a failure
    except BrokenPipeError:
        # Whoever read the output stopped (warrenctl list_queues | head): as a Unix tool, stop
        # quietly.  stdout is pointed at /dev/null so that the interpreter's last flush of what
        # is still buffered does not complain either.
        if out is sys.stdout:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        return EX_PIPE
    return code


def _main(argv: list[str], out: TextIO, err: TextIO) -> int:
    try:
        options, positional = parse(argv)
    except UsageError as exc:
        err.write(f"Error: {exc}\n\n{usage_text()}")
        return c.EX_USAGE
    if not positional or options.get("help") or positional[0] == "help":
        topic = positional[1] if len(positional) > 1 and positional[0] == "help" else None
        if topic in COMMANDS:
            out.write(f"Usage\n\n{PROG} {COMMANDS[topic].usage}\n")
        else:
            out.write(usage_text())
        return 0 if positional or options.get("help") else c.EX_USAGE
    name, args = positional[0], positional[1:]
    if name in ("--version",):
        out.write(__version__ + "\n")
        return 0
    command = COMMANDS.get(name)
    if command is None:
        err.write(f"\nCommand '{name}' not found.\n\n{usage_text()}")
        return c.EX_USAGE
    usage = f"{PROG} {command.usage}\n"
    if len(args) < command.min_args or (command.max_args is not None and len(args) > command.max_args):
        problem = "not enough arguments" if len(args) < command.min_args else "too many arguments"
        err.write(f"Error (argument validation): {problem}\nArguments given:\n\t{' '.join(argv)}\n\nUsage\n\n{usage}")
        return c.EX_USAGE
    formatter = str(options.get("formatter") or "table")
    if formatter not in ("table", "json"):
        err.write(f"Error: unsupported formatter '{formatter}' (use table or json)\n")
        return c.EX_USAGE
    try:
        client, where = _client(options, dict(os.environ))
        timeout = float(options["timeout"]) if options.get("timeout") else None
    except (UsageError, ValueError) as exc:
        err.write(f"Error: {exc}\n")
        return c.EX_USAGE
    printer = Printer(
        out, bool(options.get("quiet")), bool(options.get("silent")), formatter, not options.get("no_table_headers")
    )
    client.on_contact = printer.contact
    flags = {key: options.get(key) for key in command.flags}
    ctx = c.Ctx(client, printer, str(options.get("vhost") or "/"), args, flags, argv, usage, timeout)
    try:
        return command.run(ctx)
    except CommandError as exc:
        err.write(("Error:\n" if exc.titled else "") + exc.message.rstrip("\n") + "\n")
        return exc.code
    except Unreachable as exc:
        err.write(
            f"Error: unable to perform an operation on node at {where}: {exc}. "
            "Is WarrenMQ running with its management API on that port?\n"
        )
        return c.EX_UNAVAILABLE
    except ApiError as exc:
        if exc.status == 401:
            err.write(f"Error: access refused for user '{client.username}': {exc.reason or 'Login failed'}\n")
            return 77
        err.write(f"Error:\n{exc.reason}\n")
        return c.EX_SOFTWARE


if __name__ == "__main__":
    sys.exit(main())
