"""warrenctl's other commands: banners, effects, errors and exit codes as rabbitmqctl 3.10.8's
(64 usage, 65 data error, 67 no such user, 69 unavailable, 70 software error).
"""

from __future__ import annotations

import json
import re
import socket
import uuid
from pathlib import Path

import pika
import pytest

from tests.cli.conftest import Ctl
from tests.management.conftest import Api, q, wait_for
from tests.server import ServerProcess


def test_user_commands(ctl: Ctl, api: Api) -> None:
    user = f"ctl-user-{uuid.uuid4().hex[:6]}"
    result = ctl("add_user", user, "s3cret")
    assert (result.code, result.err) == (0, "")
    assert result.out == (
        f'Adding user "{user}" ...\n'
        "Done. Don't forget to grant the user permissions to some virtual hosts! "
        "See 'warrenctl help set_permissions' to learn more.\n"
    )
    again = ctl("add_user", user, "other")
    assert (again.code, again.out, again.err) == (
        70,
        f'Adding user "{user}" ...\n',
        f'Error:\nUser "{user}" already exists\n',
    )
    assert ctl("-q", "add_user", f"{user}-quiet", "x").out == ""

    result = ctl("set_user_tags", user, "monitoring", "management")
    assert (result.code, result.out) == (0, f'Setting tags for user "{user}" to [monitoring, management] ...\n')
    assert f"{user}\t[monitoring, management]" in ctl("list_users").out.splitlines()
    assert api.as_user(user, "s3cret").ok("/api/whoami")["tags"] == ["monitoring", "management"]  # password kept

    assert ctl("change_password", user, "n3w").out == f'Changing password for user "{user}" ...\n'
    assert api.as_user(user, "n3w").get("/api/whoami").status == 200
    assert api.as_user(user, "s3cret").get("/api/whoami").status == 401

    assert ctl("delete_user", user).out == f'Deleting user "{user}" ...\n'
    for args in (("delete_user", user), ("change_password", user, "x"), ("set_user_tags", user, "a")):
        result = ctl(*args)
        assert (result.code, result.err) == (67, f'Error:\nUser "{user}" does not exist\n'), args
    ctl("delete_user", f"{user}-quiet")


def test_vhost_and_permission_commands(ctl: Ctl, api: Api, ctl_server: ServerProcess) -> None:
    vhost = f"ctl-v-{uuid.uuid4().hex[:6]}"
    user = f"ctl-u-{uuid.uuid4().hex[:6]}"
    assert ctl("add_vhost", vhost, "--description", "demo", "--tags", "a,b").out == f'Adding vhost "{vhost}" ...\n'
    assert ctl("add_vhost", vhost).code == 0  # as rabbitmqctl: adding an existing vhost is fine
    assert api.ok(f"/api/vhosts/{q(vhost)}")["description"] == "demo"
    ctl("add_user", user, "pw")
    result = ctl("set_permissions", "-p", vhost, user, "^c", "", ".*")
    assert (result.code, result.out) == (0, f'Setting permissions for user "{user}" in vhost "{vhost}" ...\n')
    assert f"{user}\t^c\t\t.*" in ctl("list_permissions", "-p", vhost).out.splitlines()
    assert api.ok(f"/api/permissions/{q(vhost)}/{q(user)}")["configure"] == "^c"
    params = pika.ConnectionParameters(
        "127.0.0.1", ctl_server.port, virtual_host=vhost, credentials=pika.PlainCredentials(user, "pw")
    )
    pika.BlockingConnection(params).close()  # the permissions let the user in

    result = ctl("set_permissions", "-p", "no-such-vhost", user, ".*", ".*", ".*")
    assert (result.code, result.err) == (69, "Error:\nVirtual host no-such-vhost does not exist\n")
    result = ctl("set_permissions", "-p", vhost, "no-such-user", ".*", ".*", ".*")
    assert (result.code, result.err) == (67, "Error:\nUser no-such-user does not exist\n")

    result = ctl("clear_permissions", "-p", vhost, user)
    assert (result.code, result.out) == (0, f'Clearing permissions for user "{user}" in vhost "{vhost}" ...\n')
    assert ctl("clear_permissions", "-p", vhost, user).code == 0
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError):
        pika.BlockingConnection(params)

    assert ctl("delete_vhost", vhost).out == f'Deleting vhost "{vhost}" ...\n'
    result = ctl("delete_vhost", vhost)
    assert (result.code, result.err) == (65, f"Virtual host '{vhost}' does not exist\n")
    ctl("delete_user", user)


def test_queue_commands(ctl: Ctl, api: Api, amqp: pika.BlockingConnection, vhost: str) -> None:
    ch = amqp.channel()
    ch.confirm_delivery()
    ch.queue_declare("q1")
    for _ in range(4):
        ch.basic_publish("", "q1", b"m")
    result = ctl("purge_queue", "-p", vhost, "q1")
    assert (result.code, result.out) == (0, f"Purging queue 'q1' in vhost '{vhost}' ...\n")
    assert api.ok(f"/api/queues/{q(vhost)}/q1")["messages"] == 0
    result = ctl("purge_queue", "-p", vhost, "nope")
    assert (result.code, result.err) == (69, "Error:\nnot_found\n")

    for _ in range(2):
        ch.basic_publish("", "q1", b"m")
    result = ctl("delete_queue", "-p", vhost, "q1", "--if-empty")
    assert result.out == f"Deleting queue 'q1' on vhost '{vhost}' if queue is empty ...\n"
    assert (result.code, result.err) == (64, "Error:\nQueue is not empty\n")
    result = ctl("delete_queue", "-p", vhost, "q1")
    assert result.out == (
        f"Deleting queue 'q1' on vhost '{vhost}' ...\nQueue was successfully deleted with 2 ready messages\n"
    )
    assert ctl("-q", "delete_queue", "-p", vhost, "q1").err == "Error:\nQueue not found\n"
    assert ctl("delete_queue", "-p", vhost, "q1").code == 64


def test_close_connection(ctl: Ctl, api: Api, amqp: pika.BlockingConnection, vhost: str) -> None:
    (name,) = [c["name"] for c in api.ok(f"/api/vhosts/{q(vhost)}/connections")]
    result = ctl("close_connection", name, "go away")
    assert (result.code, result.out) == (0, f"Closing connection {name}, reason: go away...\n")
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as closed:
        for _ in range(100):
            amqp.process_data_events(0.05)
    assert (closed.value.reply_code, closed.value.reply_text) == (320, "CONNECTION_FORCED - go away")
    wait_for(lambda: api.ok(f"/api/vhosts/{q(vhost)}/connections") == [])
    assert ctl("close_connection", name, "again").code == 69


def test_policy_commands(ctl: Ctl, api: Api, vhost: str) -> None:
    result = ctl(
        "set_policy", "-p", vhost, "lim", "^lim", '{"max-length":10}', "--apply-to", "queues", "--priority", "3"
    )
    assert (result.code, result.err) == (0, "")
    assert result.out == (
        f'Setting policy "lim" for pattern "^lim" to "{{"max-length":10}}" with priority "3" for vhost "{vhost}" ...\n'
    )
    assert ctl("list_policies", "-p", vhost).out == (
        f'Listing policies for vhost "{vhost}" ...\n'
        "vhost\tname\tpattern\tapply-to\tdefinition\tpriority\n"
        f'{vhost}\tlim\t^lim\tqueues\t{{"max-length":10}}\t3\n'
    )
    assert ctl("list_policies", "-p", vhost, "--formatter", "json").out == (
        f'[\n{{"vhost":"{vhost}","name":"lim","pattern":"^lim","apply-to":"queues",'
        '"definition":"{\\"max-length\\":10}","priority":3}\n]\n'
    )
    api.put(f"/api/queues/{q(vhost)}/lim-q")
    assert api.ok(f"/api/queues/{q(vhost)}/lim-q")["policy"] == "lim"

    result = ctl("set_policy", "-p", vhost, "bad", ".*", "not json")
    assert (result.code, result.err) == (69, "Error:\nJSON decoding error. Reason: badarg\n")
    result = ctl("set_policy", "-p", vhost, "bad", ".*", '{"nope":10}')
    assert result.code == 69 and result.err.startswith("Error:\nValidation failed\n")
    assert ctl("clear_policy", "-p", vhost, "lim").out == f'Clearing policy "lim" on vhost "{vhost}" ...\n'
    result = ctl("clear_policy", "-p", vhost, "lim")
    assert (result.code, result.err) == (69, "Error:\nParameter does not exist\n")


def test_definitions_commands(ctl: Ctl, api: Api, vhost: str, tmp_path: Path) -> None:
    api.put(f"/api/queues/{q(vhost)}/kept", {"durable": True})
    path = tmp_path / "defs.json"
    result = ctl("export_definitions", str(path))
    assert (result.code, result.out) == (0, f'Exporting definitions in JSON to a file at "{path}" ...\n')
    doc = json.loads(path.read_text())
    assert {"name": "kept", "vhost": vhost, "durable": True, "auto_delete": False, "arguments": {}} in doc["queues"]
    assert json.loads(ctl("export_definitions", "-").out) == doc

    api.delete(f"/api/queues/{q(vhost)}/kept")
    result = ctl("import_definitions", str(path))
    assert result.out == (
        f'Importing definitions in JSON from a file at "{path}" ...\n'
        "Successfully started definition import. This process is asynchronous and can take some time.\n"
    )
    assert api.ok(f"/api/queues/{q(vhost)}/kept")["durable"] is True
    bad = tmp_path / "bad.json"
    bad.write_text("{bad")
    result = ctl("import_definitions", str(bad))
    assert result.code == 65 and result.err.startswith("Error:\nFailed to deserialise input (format: JSON)")
    result = ctl("import_definitions", str(tmp_path / "missing.json"))
    assert result.code == 65
    assert result.err.startswith(
        f"Error (argument validation): Bad argument: File {tmp_path / 'missing.json'} does not exist"
    )


def test_status_and_await_startup(ctl: Ctl, ctl_server: ServerProcess) -> None:
    result = ctl("status")
    assert result.code == 0
    lines = result.out.splitlines()
    assert lines[0].startswith("Status of node ") and lines[1] == "Runtime"
    for section in (
        "Plugins",
        "Data directory",
        "Alarms",
        "Memory",
        "File Descriptors",
        "Free Disk Space",
        "Totals",
        "Listeners",
    ):
        assert section in lines, section
    assert f"Interface: [::], port: {ctl_server.port}, protocol: amqp, purpose: AMQP 0-9-1 and AMQP 1.0" in lines
    status = json.loads(ctl("status", "--formatter", "json").out)
    assert status["alarms"] == [] and status["totals"]["virtual_host_count"] >= 1
    assert ctl("await_startup").code == 0 and ctl("await_startup").out == ""
    assert ctl("version").out.strip()


def test_not_running_auth_and_environment(ctl: Ctl) -> None:
    with socket.socket() as sock:  # a port where nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = ctl.program("list_queues", "--management-port", str(port))
    assert (result.code, result.out) == (69, "")
    assert result.err == (
        f"Error: unable to perform an operation on node at localhost:{port}: connection refused. "
        "Is WarrenMQ running with its management API on that port?\n"
    )
    env = {"WARREN_MGMT_HOST": "127.0.0.1", "WARREN_MGMT_PORT": str(ctl.port), "WARREN_MGMT_USERNAME": "guest"}
    result = ctl.program("list_vhosts", "-q", env={**env, "WARREN_MGMT_PASSWORD": "guest"})
    assert result.code == 0 and result.out.startswith("name\n")
    result = ctl.program("list_vhosts", env={**env, "WARREN_MGMT_PASSWORD": "wrong"})
    assert (result.code, result.out) == (77, "")
    assert result.err == "Error: access refused for user 'guest': Login failed\n"

    assert ctl("no_such_command").code == 64
    assert ctl("add_user", "only-one-arg").code == 64
    usage = ctl("help")
    assert usage.code == 0 and "list_queues [--vhost <vhost>]" in usage.out


def test_import_from_stdin(ctl: Ctl, api: Api, vhost: str) -> None:
    doc = {"queues": [{"name": "from-stdin", "vhost": vhost, "durable": True, "auto_delete": False, "arguments": {}}]}
    result = ctl.program("import_definitions", "-", "-q", "--management-port", str(ctl.port), stdin=json.dumps(doc))
    assert (result.code, result.out, result.err) == (0, "", "")
    assert api.ok(f"/api/queues/{q(vhost)}/from-stdin")["durable"] is True


def test_output_into_a_closed_pipe_ends_quietly(ctl: Ctl, api: Api, vhost: str) -> None:
    """``warrenctl list_queues | head -1``: the reader is gone; no traceback, SIGPIPE's status."""
    for i in range(3):
        assert api.put(f"/api/queues/{q(vhost)}/piped-{i}").status == 201
    for command in (["list_queues", "-p", vhost], ["status"], ["--help"]):
        result = ctl.into_closed_pipe(*command)
        assert (result.code, result.err) == (141, ""), command


CLUSTER_STATUS_SECTIONS = [  # rabbitmqctl 3.10.8's, in its order (RAM Nodes only when there are some)
    "Basics",
    "Disk Nodes",
    "Running Nodes",
    "Versions",
    "Maintenance status",
    "Alarms",
    "Network Partitions",
    "Listeners",
    "Feature flags",
]


def section(out: str, title: str) -> list[str]:
    """The lines of a rabbitmqctl-style section: after its title and a blank line, up to the next blank."""
    lines = out.splitlines()
    start = lines.index(title) + 2
    end = lines.index("", start) if "" in lines[start:] else len(lines)
    return lines[start:end]


def test_cluster_status_of_a_single_node(ctl: Ctl, api: Api, ctl_server: ServerProcess) -> None:
    """A single node is a cluster of one, printed as rabbitmqctl cluster_status prints it."""
    node = api.ok("/api/overview")["node"]
    result = ctl("cluster_status")
    assert (result.code, result.err) == (0, "")
    lines = result.out.splitlines()
    assert lines[0] == f"Cluster status of node {node} ..."
    assert [line for line in lines if line in CLUSTER_STATUS_SECTIONS] == CLUSTER_STATUS_SECTIONS
    assert section(result.out, "Basics") == [f"Cluster name: {node}"]
    assert section(result.out, "Disk Nodes") == section(result.out, "Running Nodes") == [node]
    (version,) = section(result.out, "Versions")
    assert re.fullmatch(rf"{re.escape(node)}: WarrenMQ \S+ on Python 3\.\d+\.\d+", version), version
    assert section(result.out, "Maintenance status") == [f"Node: {node}, status: not under maintenance"]
    assert section(result.out, "Alarms") == section(result.out, "Network Partitions") == ["(none)"]
    assert (
        f"Node: {node}, interface: [::], port: {ctl_server.port}, protocol: amqp, purpose: AMQP 0-9-1 and AMQP 1.0"
        in section(result.out, "Listeners")
    )
    assert ctl("cluster_status", "-q").out == result.out.split("\n", 1)[1]

    doc = json.loads(ctl("cluster_status", "--formatter", "json").out)
    assert set(doc) == {
        "alarms", "cluster_name", "disk_nodes", "feature_flags", "listeners", "maintenance_status",
        "partitions", "ram_nodes", "running_nodes", "versions",
    }  # fmt: skip
    assert doc["disk_nodes"] == doc["running_nodes"] == [node] and doc["alarms"] == [] and doc["partitions"] == {}
    assert {"interface", "node", "port", "protocol", "purpose"} == set(doc["listeners"][node][0])
    assert doc["versions"][node]["rabbitmq_name"] == "WarrenMQ"
