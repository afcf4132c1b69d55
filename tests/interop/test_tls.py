"""TLS: AMQPS and HTTPS with certificates made by the test, client certificates, SASL EXTERNAL.

A throwaway CA signs the server's certificate (for 127.0.0.1) and two client certificates; the
clients are pika with ``SSLOptions`` (as RabbitMQ's TLS guide shows) and raw ``ssl`` sockets
where the mechanisms offered in connection.start must be seen.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
import socket
import ssl
import struct
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pika
import pika.credentials
import pika.exceptions
import pika.frame
import pika.spec
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.management.conftest import Api, q
from tests.server import ServerProcess

_TLS_LISTENER = re.compile(r"started TLS listener on .*:(\d+)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- certificates ------------------------------------------------------------------------------


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "p7")])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    tmp: Path
    ca_key: ec.EllipticCurvePrivateKey
    ca_cert: x509.Certificate

    def client(self, cn: str, signed_by_ca: bool = True) -> tuple[Path, Path]:
        """A client certificate and key for ``cn`` (self-signed when not signed by the CA)."""
        key = _key()
        issuer_key, issuer = (self.ca_key, self.ca_cert.subject) if signed_by_ca else (key, _name(cn))
        cert = _certificate(_name(cn), issuer, key, issuer_key, client=True)
        cert_path, key_path = self.tmp / f"{cn}.crt", self.tmp / f"{cn}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key_path, key)
        return cert_path, key_path

    def context(self, client: tuple[Path, Path] | None = None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca))
        if client is not None:
            context.load_cert_chain(str(client[0]), str(client[1]))
        return context


def _certificate(
    subject: x509.Name,
    issuer: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer_key: ec.EllipticCurvePrivateKey,
    ca: bool = False,
    client: bool = False,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    else:
        usage = x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH if client else x509.oid.ExtendedKeyUsageOID.SERVER_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        if not client:
            names = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    tmp = tmp_path_factory.mktemp("pki")
    ca_key = _key()
    ca_name = _name("p7 test CA")
    ca_cert = _certificate(ca_name, ca_name, ca_key, ca_key, ca=True)
    (tmp / "ca.crt").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    server_key = _key()
    server_cert = _certificate(_name("localhost"), ca_name, server_key, ca_key)
    (tmp / "server.crt").write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    _write_key(tmp / "server.key", server_key)
    return Pki(tmp / "ca.crt", tmp / "server.crt", tmp / "server.key", tmp, ca_key, ca_cert)


# -- servers -----------------------------------------------------------------------------------


@dataclass
class TlsServer:
    proc: ServerProcess
    tls_port: int
    api: Api
    https_port: int


def start(pki: Pki, *extra: str) -> TlsServer:
    https_port = free_port()
    proc = ServerProcess(
        None,
        "--tls-cert",
        str(pki.server_cert),
        "--tls-key",
        str(pki.server_key),
        "--tls-ca",
        str(pki.ca),
        "--tls-port",
        "0",
        "--management-port",
        str(free_port()),
        "--management-tls-port",
        str(https_port),
        *extra,
    ).start()
    found = [m for m in map(_TLS_LISTENER.search, proc.lines) if m]
    assert found, proc.log
    return TlsServer(proc, int(found[0].group(1)), Api(proc.management_port), https_port)


def stop(server: TlsServer) -> None:
    assert server.proc.stop() == 0, server.proc.log
    assert "Traceback" not in server.proc.log, server.proc.log


@pytest.fixture(scope="module")
def tls_server(pki: Pki) -> Iterator[TlsServer]:
    """Client certificates requested and verified, but optional."""
    server = start(pki, "--tls-verify-peer", "true")
    yield server
    stop(server)


@pytest.fixture(scope="module")
def strict_server(pki: Pki) -> Iterator[TlsServer]:
    """A client certificate is required (fail_if_no_peer_cert)."""
    server = start(pki, "--tls-verify-peer", "true", "--tls-fail-if-no-peer-cert", "true")
    yield server
    stop(server)


def params(port: int, context: ssl.SSLContext, **kw: object) -> pika.ConnectionParameters:
    return pika.ConnectionParameters(
        "127.0.0.1", port, ssl_options=pika.SSLOptions(context, "localhost"), connection_attempts=1, **kw
    )


def mechanisms_offered(port: int, context: ssl.SSLContext | None) -> set[bytes]:
    """The mechanisms of connection.start, over TLS when ``context`` is given."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock = context.wrap_socket(raw, server_hostname="localhost") if context is not None else raw
    try:
        sock.sendall(b"AMQP\x00\x00\x09\x01")
        data = b""
        while len(data) < 7 or len(data) < 8 + struct.unpack_from(">I", data, 3)[0]:
            chunk = sock.recv(65536)
            assert chunk, "closed before connection.start"
            data += chunk
        start = pika.spec.Connection.Start()
        start.decode(data[7:], 4)
        mechanisms = start.mechanisms.encode() if isinstance(start.mechanisms, str) else start.mechanisms
        return set(mechanisms.split())
    finally:
        sock.close()


# -- AMQPS -------------------------------------------------------------------------------------


def test_amqps_listener_on_a_free_port_is_logged(tls_server: TlsServer) -> None:
    """--tls-port 0 picks a free port and logs it ("started TLS listener on ...:PORT")."""
    assert tls_server.tls_port > 0 and tls_server.tls_port != tls_server.proc.port


def test_amqps_publish_and_get_with_pika(tls_server: TlsServer, pki: Pki) -> None:
    name = f"p7-tls-{uuid.uuid4().hex[:8]}"
    with pika.BlockingConnection(params(tls_server.tls_port, pki.context())) as conn:
        ch = conn.channel()
        ch.queue_declare(name, auto_delete=True)
        ch.basic_publish("", name, b"over tls" * 10_000)
        method, _, body = ch.basic_get(name, auto_ack=True)
        assert method is not None and body == b"over tls" * 10_000


def test_amqps_and_plain_tcp_serve_the_same_broker(tls_server: TlsServer, pki: Pki) -> None:
    name = f"p7-tls-{uuid.uuid4().hex[:8]}"
    with pika.BlockingConnection(params(tls_server.tls_port, pki.context())) as conn:
        conn.channel().queue_declare(name, auto_delete=False)
        conn.channel().basic_publish("", name, b"from tls")
    with pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", tls_server.proc.port)) as conn:
        ch = conn.channel()
        _, _, body = ch.basic_get(name, auto_ack=True)
        assert body == b"from tls"
        ch.queue_delete(name)


def test_client_that_does_not_trust_the_server_fails_the_handshake(tls_server: TlsServer, pki: Pki) -> None:
    context = ssl.create_default_context()  # system CAs only: the test CA is unknown
    with pytest.raises((pika.exceptions.AMQPConnectionError, ssl.SSLError)):
        pika.BlockingConnection(params(tls_server.tls_port, context))


def test_management_api_over_https(tls_server: TlsServer, pki: Pki) -> None:
    request = urllib.request.Request(
        f"https://127.0.0.1:{tls_server.https_port}/api/overview",
        headers={"Authorization": "Basic Z3Vlc3Q6Z3Vlc3Q="},  # guest:guest
    )
    with urllib.request.urlopen(request, context=pki.context(), timeout=10) as reply:
        assert reply.status == 200
        assert b'"node"' in reply.read()
    assert "management API (HTTPS) listening on" in tls_server.proc.log


def test_certificate_expiration_health_check(tls_server: TlsServer, pki: Pki) -> None:
    """The server certificate here is valid for one more day: fine for "0 days", expiring
    within a week (503, each TLS listener named, as RabbitMQ's check answers)."""
    assert tls_server.api.ok("/api/health/checks/certificate-expiration/0/days") == {"status": "ok"}
    failed = tls_server.api.get("/api/health/checks/certificate-expiration/1/weeks")
    assert failed.status == 503 and failed.json["status"] == "failed", failed.json
    assert failed.json["reason"] == "Certificates expiring"
    assert {(e["protocol"], e["port"]) for e in failed.json["expired"]} == {
        ("amqp/ssl", tls_server.tls_port),
        ("https", tls_server.https_port),
    }
    assert all(e["certfile"] == str(pki.server_cert.resolve()) for e in failed.json["expired"])


# -- client certificates -------------------------------------------------------------------------


def test_required_client_certificate(strict_server: TlsServer, pki: Pki) -> None:
    """With fail_if_no_peer_cert a client without a certificate, or with one the CA did not sign,
    is refused in the TLS handshake; one with a CA-signed certificate connects."""
    with pytest.raises((pika.exceptions.AMQPConnectionError, ssl.SSLError, ConnectionError)):
        pika.BlockingConnection(params(strict_server.tls_port, pki.context()))
    stranger = pki.client(f"p7-stranger-{uuid.uuid4().hex[:6]}", signed_by_ca=False)
    with pytest.raises((pika.exceptions.AMQPConnectionError, ssl.SSLError, ConnectionError)):
        pika.BlockingConnection(params(strict_server.tls_port, pki.context(stranger)))
    known = pki.client(f"p7-known-{uuid.uuid4().hex[:6]}")
    with pika.BlockingConnection(params(strict_server.tls_port, pki.context(known))) as conn:
        assert conn.is_open


def test_optional_client_certificate(tls_server: TlsServer, pki: Pki) -> None:
    """verify_peer without fail_if_no_peer_cert: clients without a certificate still connect."""
    with pika.BlockingConnection(params(tls_server.tls_port, pki.context())) as conn:
        assert conn.is_open


# -- SASL EXTERNAL -------------------------------------------------------------------------------


def test_external_is_offered_only_with_a_peer_certificate(tls_server: TlsServer, pki: Pki) -> None:
    cert = pki.client(f"p7-mech-{uuid.uuid4().hex[:6]}")
    assert mechanisms_offered(tls_server.tls_port, pki.context(cert)) == {b"PLAIN", b"AMQPLAIN", b"EXTERNAL"}
    assert mechanisms_offered(tls_server.tls_port, pki.context()) == {b"PLAIN", b"AMQPLAIN"}
    assert mechanisms_offered(tls_server.proc.port, None) == {b"PLAIN", b"AMQPLAIN"}


def test_external_logs_in_as_the_certificate_common_name(tls_server: TlsServer, pki: Pki) -> None:
    """SASL EXTERNAL: the user is the CN of the client certificate; it needs no password."""
    user = f"p7-cn-{uuid.uuid4().hex[:6]}"
    api = tls_server.api
    assert api.put(f"/api/users/{q(user)}", {"tags": ""}).status == 201  # no password at all
    assert api.put(f"/api/permissions/%2F/{q(user)}", {"configure": ".*", "write": ".*", "read": ".*"}).status == 201
    try:
        context = pki.context(pki.client(user))
        credentials = pika.credentials.ExternalCredentials()
        with pika.BlockingConnection(params(tls_server.tls_port, context, credentials=credentials)) as conn:
            conn.channel().queue_declare("", exclusive=True)
            listed = api.ok("/api/connections")
            mine = [c for c in listed if c["user"] == user]
            assert mine and mine[0]["auth_mechanism"] == "EXTERNAL" and mine[0]["ssl"] is True
    finally:
        api.delete(f"/api/users/{q(user)}")


def test_external_with_an_unknown_common_name_is_refused(tls_server: TlsServer, pki: Pki) -> None:
    context = pki.context(pki.client(f"p7-nobody-{uuid.uuid4().hex[:6]}"))
    credentials = pika.credentials.ExternalCredentials()
    with pytest.raises(pika.exceptions.ProbableAuthenticationError) as info:
        pika.BlockingConnection(params(tls_server.tls_port, context, credentials=credentials))
    assert "ACCESS_REFUSED - Login was refused using authentication mechanism EXTERNAL" in str(info.value)
