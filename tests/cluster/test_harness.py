"""The cluster test harness itself: etcd start/stop/restart/pause, restartable servers, nodes."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import aetcd
import pika
import pytest

from tests.cluster.harness import Cluster, ClusterNode, EtcdProcess, wait_until
from tests.server import ServerProcess
from tools.warren_cluster import etcd_healthy


def aetcd_roundtrip(etcd: EtcdProcess, key: bytes, value: bytes | None) -> bytes | None:
    """Put (unless value is None) and get through aetcd: the client the server uses."""

    async def go() -> bytes | None:
        async with aetcd.Client(host="127.0.0.1", port=etcd.client_port) as client:
            if value is not None:
                await client.put(key, value)
            got = await client.get(key)
            return None if got is None else bytes(got.value)

    return asyncio.run(go())


def test_etcd_serves_etcdctl_and_aetcd(etcd: EtcdProcess) -> None:
    assert etcd_healthy(etcd.client_port)
    assert aetcd_roundtrip(etcd, b"/warren/t/a", b"1") == b"1"
    etcd.etcdctl("put", "/warren/t/b", "two")
    assert etcd.get_prefix("/warren/t/") == {"/warren/t/a": "1", "/warren/t/b": "two"}


def test_etcd_restart_keeps_its_data_and_ports(etcd: EtcdProcess) -> None:
    ports = (etcd.client_port, etcd.peer_port)
    etcd.etcdctl("put", "/k", "v1")
    assert etcd.stop() is not None
    assert not etcd_healthy(etcd.client_port)
    etcd.restart()
    assert (etcd.client_port, etcd.peer_port) == ports
    assert etcd.get_prefix("/k") == {"/k": "v1"}
    etcd.etcdctl("put", "/k", "v2")
    etcd.kill()  # a crash: what etcd committed is still there
    etcd.restart()
    assert aetcd_roundtrip(etcd, b"/k", None) == b"v2"


def test_a_paused_etcd_stops_answering_until_continued(etcd: EtcdProcess) -> None:
    etcd.stop_process()
    assert etcd.paused
    assert not etcd_healthy(etcd.client_port, timeout=0.5)
    etcd.cont()
    etcd.wait_healthy(10)
    assert etcd.get_prefix("/nothing/") == {}


def test_etcd_cleanup_removes_a_directory_it_made() -> None:
    etcd = EtcdProcess().start()
    data = etcd.data_dir
    assert data.exists()
    etcd.cleanup()
    assert not etcd.running() and not data.exists()


def publish_confirmed(port: int, queue: str, body: bytes) -> None:
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port, heartbeat=0))
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare(queue, durable=True)
    ch.basic_publish("", queue, body, pika.BasicProperties(delivery_mode=2))
    conn.close()


def test_a_server_restarts_on_its_ports_after_a_crash(tmp_path: Path, name: str) -> None:
    server = ServerProcess(tmp_path / "data").start()
    try:
        port = server.port
        publish_confirmed(port, name, b"kept")
        server.kill()
        server.restart()
        assert server.port == port
        assert "Server startup complete" in server.full_log and server.full_log.count("startup complete") == 2
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port, heartbeat=0))
        _, _, body = conn.channel().basic_get(name, auto_ack=True)
        assert body == b"kept"
        conn.close()
    finally:
        server.kill()


def test_a_paused_server_hangs_handshakes_until_continued(tmp_path: Path) -> None:
    server = ServerProcess(None).start()
    try:
        server.stop_process()
        # The kernel still accepts the connection; nobody answers the protocol header.
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.settimeout(0.5)
            sock.sendall(b"AMQP\x00\x00\x09\x01")
            with pytest.raises(TimeoutError):
                sock.recv(1)
            server.cont()
            sock.settimeout(10)
            assert sock.recv(1) == b"\x01"  # connection.start's method frame
        assert server.stop() == 0
    finally:
        server.kill()


def test_a_server_that_exits_at_startup_is_an_error(tmp_path: Path) -> None:
    server = ServerProcess(None, "--frame-max", "not-a-number")
    with pytest.raises(RuntimeError, match="did not start"):
        server.start()


def test_cluster_node_command_line(tmp_path: Path) -> None:
    node = ClusterNode("node2", tmp_path / "n2", "etcd://127.0.0.1:2379/c1", "--log-level", "debug")
    cmd = node.command()
    for flag, value in (
        ("--cluster", "etcd://127.0.0.1:2379/c1"),
        ("--node-name", "node2"),
        ("--cluster-port", str(node.cluster_port)),
        ("--management-port", str(node.requested_management_port)),
        ("--data-dir", str(tmp_path / "n2")),
        ("--host", "127.0.0.1"),
        ("--port", "0"),
    ):
        assert cmd[cmd.index(flag) + 1] == value, (flag, cmd)
    assert node.cluster_port != node.requested_management_port
    node.port = 41234  # as learnt from its log; a restart asks for the same port
    node.requested_port = node.port
    assert node.command()[node.command().index("--port") + 1] == "41234"


def test_a_cluster_starts_its_nodes_and_survives_node_faults(cluster: Cluster) -> None:
    """Needs the server side (warren-server --cluster); skipped until then."""
    names = {"node1", "node2", "node3"}
    assert len({n.port for n in cluster.nodes}) == 3
    cluster.wait_for_registered(names)
    node2, node3 = cluster.nodes[1], cluster.nodes[2]
    port, management_port = node2.port, node2.management_port
    node2.kill()
    cluster.wait_for_registered(names - {"node2"})  # its lease expired
    node2.restart(timeout=60)
    assert (node2.port, node2.management_port) == (port, management_port)
    cluster.wait_for_registered(names)
    node3.stop_process()
    assert cluster.api("/api/overview")  # answered by a node that is not frozen
    node3.cont()
    cluster.etcd.restart()
    cluster.wait_for_registered(names)
    assert cluster.add_node().name == "node4"
    names.add("node4")
    cluster.wait_for_registered(names)
    codes = cluster.stop()
    # Not node4's: warren-server logs its startup line just before it installs its SIGTERM
    # handler, so a node stopped the moment it started may die of the signal (reported).
    assert [codes[n] for n in ("node1", "node2", "node3")] == [0, 0, 0], cluster.log_tails()


def test_api_nodes_lists_every_member(cluster: Cluster) -> None:
    """Needs the server side, and /api/nodes listing the cluster's members (the brief's interface)."""
    assert cluster.wait_for_members(3) == {"node1", "node2", "node3"}
    cluster.nodes[0].kill()
    wait_until(lambda: cluster.running_members() == {"node2", "node3"}, 30, "node1 seen as down")
