"""Processes for the cluster tests: an etcd, cluster nodes, a whole cluster, all on loopback.

    cluster = Cluster(tmp_path, nodes=3).start()
    cluster.nodes[1].kill()                 # SIGKILL: a crash
    cluster.nodes[1].restart()              # same name, data directory and ports
    cluster.nodes[2].stop_process()         # SIGSTOP: frozen, sockets open
    cluster.nodes[2].cont()
    cluster.etcd.restart()                  # same data directory and ports
    cluster.stop()

Everything waits on log lines, ports or answers with a deadline, never on a fixed sleep.
The nodes are ``ServerProcess``es (tests/server.py) with the cluster flags added; etcd is the
launcher's (tools/warren_cluster.py) so that ``make cluster`` and the tests start it alike.
"""

from __future__ import annotations

import base64
import json
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from tests.server import ServerProcess, free_ports, wait_stopped
from tools.warren_cluster import LOOPBACK, EtcdServer, find_program

T = TypeVar("T")


def wait_until(predicate: Callable[[], T | None], timeout: float, what: str = "condition", interval: float = 0.05) -> T:
    """Re-check ``predicate`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not true after {timeout:g}s")
        time.sleep(interval)


class EtcdProcess(EtcdServer):
    """A one-member etcd on free loopback ports with a data directory of its own.

    Ports and data directory are kept across ``restart()``, so the nodes find it again.
    """

    def __init__(self, data_dir: Path | None = None, client_port: int = 0, peer_port: int = 0) -> None:
        self._own_dir = data_dir is None
        super().__init__(data_dir or Path(tempfile.mkdtemp(prefix="warren-etcd-")), client_port, peer_port)
        self.paused = False

    def start(self, timeout: float = 30.0) -> EtcdProcess:
        super().start(timeout)
        self.paused = False
        return self

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM (after SIGCONT) and wait; SIGKILL if it hangs."""
        self.paused = False
        return self.terminate(timeout)

    def kill(self) -> None:
        """SIGKILL: a crash."""
        super().kill()
        self.paused = False

    def stop_process(self) -> None:
        """SIGSTOP: etcd freezes with its sockets open (leases stop being renewed)."""
        assert self.proc is not None and self.running()
        self.signal(signal.SIGSTOP)
        wait_stopped(self.proc.pid)
        self.paused = True

    def cont(self) -> None:
        self.signal(signal.SIGCONT)
        if self.proc is not None and self.running():
            wait_stopped(self.proc.pid, stopped=False)
        self.paused = False

    def restart(self, timeout: float = 30.0) -> EtcdProcess:
        """Start again on the same ports and data; a running etcd is stopped cleanly first."""
        if self.running():
            self.stop()
        return self.start(timeout)

    def cleanup(self) -> None:
        """Stop it and remove the data directory if the harness made it."""
        if self.running():
            self.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def etcdctl(self, *args: str, timeout: float = 10.0) -> str:
        done = subprocess.run(
            [find_program("etcdctl"), "--endpoints", self.endpoint, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(f"etcdctl {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def get_prefix(self, prefix: str) -> dict[str, str]:
        """Every key under ``prefix`` with its value (e.g. ``/warren/NAME/``)."""
        found = json.loads(self.etcdctl("get", "--prefix", prefix, "-w", "json"))
        return {
            base64.b64decode(kv["key"]).decode(): base64.b64decode(kv.get("value", "")).decode(errors="replace")
            for kv in found.get("kvs", [])
        }


class ClusterNode(ServerProcess):
    """A warren-server in cluster mode: named, its own data directory, loopback ports kept across restarts."""

    def __init__(
        self,
        name: str,
        data_dir: Path,
        cluster_url: str,
        *args: str,
        cluster_port: int = 0,
        management_port: int = 0,
        env: dict[str, str] | None = None,
    ) -> None:
        # The management API is off on port 0, and the cluster link port is not logged in a
        # fixed form: both are chosen here, once.
        picked = free_ports(2)
        self.cluster_port = cluster_port or picked[0]
        super().__init__(
            data_dir,
            "--host", LOOPBACK,
            "--management-host", LOOPBACK,
            "--cluster", cluster_url,
            "--node-name", name,
            "--cluster-port", str(self.cluster_port),
            *args,
            env=env,
        )  # fmt: skip
        self.name = name
        self.requested_management_port = management_port or picked[1]
        self.paused = False

    def launch(self) -> None:
        super().launch()
        self.paused = False

    def stop_process(self) -> None:
        """SIGSTOP: the node freezes with its sockets open (a hung or partitioned node)."""
        super().stop_process()
        self.paused = True

    def cont(self) -> None:
        super().cont()
        self.paused = False

    def kill(self) -> None:
        super().kill()
        self.paused = False

    def stop(self, timeout: float = 15.0) -> int:
        code = super().stop(timeout)
        self.paused = False
        return code

    def api(self, path: str, timeout: float = 5.0) -> Any:
        """GET the node's management API (as guest) and decode the JSON."""
        request = urllib.request.Request(f"http://{LOOPBACK}:{self.management_port}{path}")
        request.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return json.loads(resp.read())

    def __repr__(self) -> str:
        state = "paused" if self.paused else "running" if self.running() else "down"
        return f"<ClusterNode {self.name} amqp:{self.port} mgmt:{self.management_port} {state}>"


class Cluster:
    """One etcd and N cluster nodes (node1..nodeN) under ``base_dir``."""

    def __init__(
        self,
        base_dir: Path,
        nodes: int = 3,
        name: str | None = None,
        node_args: tuple[str, ...] = (),
        etcd: EtcdProcess | None = None,
    ) -> None:
        self.base_dir = base_dir
        self.name = name or f"t{uuid.uuid4().hex[:8]}"
        self.etcd = etcd or EtcdProcess(base_dir / "etcd")
        self.node_args = node_args
        self.nodes: list[ClusterNode] = []
        for _ in range(nodes):
            self._new_node()

    def _new_node(self) -> ClusterNode:
        name = f"node{len(self.nodes) + 1}"
        node = ClusterNode(name, self.base_dir / name, self.cluster_url, *self.node_args)
        self.nodes.append(node)
        return node

    def add_node(self, timeout: float = 60.0) -> ClusterNode:
        """Start one more node (nodeN+1) that joins the running cluster."""
        node = self._new_node()
        node.start(timeout)
        return node

    @property
    def cluster_url(self) -> str:
        return f"etcd://{self.etcd.endpoint}/{self.name}"

    @property
    def prefix(self) -> str:
        """Where the cluster's keys live in etcd."""
        return f"/warren/{self.name}/"

    @property
    def amqp_urls(self) -> list[str]:
        return [node.url() for node in self.nodes]

    def node(self, name: str) -> ClusterNode:
        return next(n for n in self.nodes if n.name == name)

    def start(self, timeout: float = 60.0) -> Cluster:
        if not self.etcd.running():
            self.etcd.start()
        for node in self.nodes:  # concurrently: each logs its startup line once it has joined
            node.launch()
        for node in self.nodes:
            node.wait_started(timeout)
        # Each node hears of the others from its etcd watch, a moment after they joined: a
        # test starts once every node knows every other (a quorum queue declared earlier would
        # get fewer members than the test means).
        names = {n.name for n in self.nodes}
        for node in self.nodes:
            wait_until(self._seeing(node, names), timeout, f"{node.name} to see every node")
        return self

    def _seeing(self, node: ClusterNode, names: set[str]) -> Callable[[], bool]:
        return lambda: self._sees(node) == names

    def _sees(self, node: ClusterNode) -> set[str]:
        try:
            return {n["name"] for n in node.api("/api/nodes") if n.get("running")}
        except (OSError, urllib.error.URLError, ValueError):
            return set()

    def stop(self, timeout: float = 20.0) -> dict[str, int | None]:
        """Stop every node cleanly (killing those that hang), then etcd; save the logs; exit codes."""
        codes: dict[str, int | None] = {}
        for node in self.nodes:
            if node.running():  # all first, so that they shut down together
                node.terminate()
        for node in self.nodes:
            if node.proc is None:
                continue
            try:
                codes[node.name] = node.wait(timeout)
            except subprocess.TimeoutExpired:
                node.kill()
                codes[node.name] = None
            node.paused = False
        self.etcd.cont()
        codes["etcd"] = self.etcd.stop() if self.etcd.running() else None
        self.save_logs()
        return codes

    def kill(self) -> None:
        """SIGKILL everything (a clean-up that cannot hang)."""
        for node in self.nodes:
            node.kill()
        self.etcd.kill()
        self.save_logs()

    def save_logs(self) -> Path:
        logs = self.base_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        for node in self.nodes:
            (logs / f"{node.name}.log").write_text(node.full_log)
        (logs / "etcd.log").write_text("".join(self.etcd.lines))
        return logs

    def log_tails(self, lines: int = 40) -> str:
        """The end of every node's log, for failure reports."""
        parts = []
        for node in self.nodes:
            tail = (node.earlier_lines + node.lines)[-lines:]
            parts.append(f"--- {node!r} (pid {node.pid})\n" + "".join(tail))
        return "\n".join(parts) + f"\n(full logs: {self.base_dir / 'logs'})"

    # -- looking at the cluster through any reachable node ------------------------------------

    def reachable_nodes(self) -> list[ClusterNode]:
        return [n for n in self.nodes if n.running() and not n.paused and n.management_port]

    def api(self, path: str, timeout: float = 5.0) -> Any:
        """GET ``path`` from the first node that answers."""
        errors = []
        for node in self.reachable_nodes():
            try:
                return node.api(path, timeout)
            except (OSError, urllib.error.URLError, ValueError) as exc:
                errors.append(f"{node.name}: {exc}")
        raise ConnectionError(f"no node answered {path}: {errors or 'none running'}")

    def queue(self, name: str, vhost: str = "/") -> dict[str, Any]:
        """/api/queues/{vhost}/{name}: ``node`` (leader), and for quorum queues leader, members, online."""
        info: dict[str, Any] = self.api(f"/api/queues/{urllib.parse.quote(vhost, safe='')}/{name}")
        return info

    def registered_nodes(self) -> set[str]:
        """Names of the nodes registered (under their lease) in etcd: ``<prefix>nodes/<node>``."""
        keys = self.etcd.get_prefix(self.prefix + "nodes/")
        return {key.rsplit("/", 1)[1] for key in keys}

    def wait_for_registered(self, names: set[str], timeout: float = 30.0) -> None:
        """Until exactly these nodes are registered in etcd (a killed node's lease must expire)."""
        wait_until(lambda: self.registered_nodes() == names, timeout, f"registered nodes == {sorted(names)}")

    def running_members(self) -> set[str]:
        """Names of the nodes /api/nodes says are running."""
        return {n["name"] for n in self.api("/api/nodes") if n.get("running")}

    def wait_for_members(self, count: int, timeout: float = 30.0) -> set[str]:
        def enough() -> set[str] | None:
            try:
                members = self.running_members()
            except ConnectionError:
                return None
            return members if len(members) == count else None

        return wait_until(enough, timeout, f"{count} running members in /api/nodes")
