"""Authentication, user tags, vhosts, users, permissions, policies and definitions.

Statuses and error bodies as RabbitMQ 3.10.8 gives them for the same requests: no
credentials is a bare 401 with a Basic challenge; wrong ones are ``not_authorized`` "Login
failed"; a known user lacking a tag is ``not_authorised`` with the reason naming the tag.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pika
import pytest

from tests.management.conftest import Api, free_port, q, wait_for
from tests.server import ServerProcess

NOT_FOUND = {"error": "Object Not Found", "reason": "Not Found"}


@pytest.fixture
def user(api: Api) -> Iterator[str]:
    name = f"mgmt-user-{uuid.uuid4().hex[:6]}"
    yield name
    api.delete(f"/api/users/{q(name)}")


def test_authentication(api: Api, user: str) -> None:
    reply = api.get("/api/whoami", auth=False)
    assert (reply.status, reply.text) == (401, "")
    assert reply.headers["www-authenticate"] == 'Basic realm="RabbitMQ Management"'
    reply = api.as_user("guest", "wrong").get("/api/whoami")
    assert (reply.status, reply.json) == (401, {"error": "not_authorized", "reason": "Login failed"})
    assert api.ok("/api/whoami") == {"name": "guest", "tags": ["administrator"]}

    assert api.put(f"/api/users/{q(user)}", {"password": "pw", "tags": ""}).status == 201
    reply = api.as_user(user, "pw").get("/api/whoami")
    assert (reply.status, reply.json) == (401, {"error": "not_authorised", "reason": "Not management user"})


def test_user_tags_decide_access(api: Api, user: str, vhost: str) -> None:
    api.put(f"/api/users/{q(user)}", {"password": "pw", "tags": "management"})
    me = api.as_user(user, "pw")
    assert me.ok("/api/whoami") == {"name": user, "tags": ["management"]}
    for path in ("/api/users", "/api/permissions", "/api/definitions"):
        assert me.get(path).json == {"error": "not_authorised", "reason": "Not administrator user"}
    assert me.get("/api/nodes").json == {"error": "not_authorised", "reason": "Not monitor user"}
    reply = me.get(f"/api/queues/{q(vhost)}")
    assert reply.json == {"error": "not_authorised", "reason": "User not authorised to access virtual host"}
    assert vhost not in [v["name"] for v in me.ok("/api/vhosts")]

    # With permissions there, the vhost is theirs to see and use (within the patterns).
    assert api.put(f"/api/permissions/{q(vhost)}/{q(user)}", {"configure": "^own-", "write": ".*", "read": ".*"}).status
    assert [v["name"] for v in me.ok("/api/vhosts")] == [vhost]
    assert me.put(f"/api/queues/{q(vhost)}/own-q").status == 201
    assert me.put(f"/api/queues/{q(vhost)}/other-q").json == {"error": "not_authorised", "reason": "Access refused."}
    assert [x["name"] for x in me.ok(f"/api/queues/{q(vhost)}")] == ["own-q"]
    reply = me.put(f"/api/policies/{q(vhost)}/p", {"pattern": ".*", "definition": {"max-length": 1}})
    assert reply.json == {"error": "not_authorised", "reason": "User not authorised to access object"}

    # policymaker: policies in its vhosts; monitoring: everything, read-only.
    api.put(f"/api/users/{q(user)}", {"password": "pw", "tags": ["policymaker"]})
    assert me.put(f"/api/policies/{q(vhost)}/p", {"pattern": "^own", "definition": {"max-length": 1}}).status == 201
    api.put(f"/api/users/{q(user)}", {"password": "pw", "tags": "monitoring"})
    assert me.ok("/api/nodes")[0]["running"] is True
    assert {"/", vhost} <= {v["name"] for v in me.ok("/api/vhosts")}


def test_users(api: Api, user: str, mgmt_server: ServerProcess) -> None:
    path = f"/api/users/{q(user)}"
    assert api.put(path, {"password": "pw"}).json == {"error": "bad_request", "reason": "tags_not_present"}
    assert api.put(path, {"password": "pw", "tags": "management"}).status == 201
    assert api.put(path, {"password": "pw2", "tags": ["management", "monitoring"]}).status == 204
    reply = api.put(path, {"password": "a", "password_hash": "b", "tags": ""})
    assert reply.json == {"error": "bad_request", "reason": "both_password_and_password_hash_are_provided"}
    info = api.ok(path)
    assert info["name"] == user and info["tags"] == ["management", "monitoring"] and info["limits"] == {}
    assert info["hashing_algorithm"] == "rabbit_password_hashing_sha256" and len(info["password_hash"]) == 48
    assert user in [u["name"] for u in api.ok("/api/users")]
    assert user in [u["name"] for u in api.ok("/api/users/without-permissions")]

    # The password works for AMQP too, with permissions.
    api.put(f"/api/permissions/%2F/{q(user)}", {"configure": ".*", "write": ".*", "read": ".*"})
    assert api.ok(f"{path}/permissions") == [
        {"user": user, "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}
    ]
    params = pika.ConnectionParameters("127.0.0.1", mgmt_server.port, credentials=pika.PlainCredentials(user, "pw2"))
    pika.BlockingConnection(params).close()

    # Setting a hash keeps the password (rabbitmqctl set_user_tags does this).
    assert api.put(path, {"password_hash": info["password_hash"], "tags": "administrator"}).status == 204
    assert api.as_user(user, "pw2").ok("/api/whoami")["tags"] == ["administrator"]
    assert api.delete(path).status == 204
    assert api.delete(path).json == NOT_FOUND
    assert api.get(path).json == NOT_FOUND
    assert api.get(f"/api/permissions/%2F/{q(user)}").json == NOT_FOUND


def test_vhosts_and_permissions(api: Api, user: str, mgmt_server: ServerProcess) -> None:
    vhost = f"mgmt-v-{uuid.uuid4().hex[:6]}"
    path = f"/api/vhosts/{q(vhost)}"
    assert api.put(path, {"description": "for tests", "tags": "a,b"}).status == 201
    assert api.put(path, {"description": "for tests", "tags": ["a", "b"]}).status == 204
    info = api.ok(path)
    assert (info["name"], info["description"], info["tags"], info["tracing"]) == (vhost, "for tests", ["a", "b"], False)
    assert info["metadata"] == {"description": "for tests", "tags": ["a", "b"]}
    assert info["messages"] == 0 and info["cluster_state"] == {mgmt_server_node(api): "running"}
    assert vhost in [v["name"] for v in api.ok("/api/vhosts")]
    # As RabbitMQ's API, the creator gets full permissions on the new vhost.
    assert api.ok(f"{path}/permissions") == [
        {"vhost": vhost, "user": "guest", "configure": ".*", "write": ".*", "read": ".*"}
    ]

    api.put(f"/api/users/{q(user)}", {"password": "pw", "tags": ""})
    perm = f"/api/permissions/{q(vhost)}/{q(user)}"
    assert api.put(perm, {"configure": "", "write": "^w", "read": ".*"}).status == 201
    assert api.put(perm, {"configure": "", "write": "^w", "read": ".*"}).status == 204
    assert api.ok(perm) == {"user": user, "vhost": vhost, "configure": "", "write": "^w", "read": ".*"}
    reply = api.put(perm, {"configure": ""})
    assert reply.json == {"error": "bad_request", "reason": "[{key_missing,write},{key_missing,read}]"}
    for bad in (f"/api/permissions/no-vhost/{q(user)}", f"/api/permissions/{q(vhost)}/no-user"):
        reply = api.put(bad, {"configure": "", "write": "", "read": ""})
        assert reply.json == {"error": "bad_request", "reason": "vhost_or_user_not_found"}
    assert {"user": user, "vhost": vhost, "configure": "", "write": "^w", "read": ".*"} in api.ok("/api/permissions")

    # Permissions apply to AMQP at once: configure is refused by the empty pattern.
    params = pika.ConnectionParameters(
        "127.0.0.1", mgmt_server.port, virtual_host=vhost, credentials=pika.PlainCredentials(user, "pw")
    )
    with pika.BlockingConnection(params) as conn:
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            conn.channel().queue_declare("anything")
        assert refused.value.reply_code == 403
    assert api.delete(perm).status == 204
    assert api.delete(perm).json == NOT_FOUND
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError):
        pika.BlockingConnection(params)

    assert api.delete(path).status == 204
    assert api.delete(path).json == NOT_FOUND
    assert api.get(path).json == NOT_FOUND


def mgmt_server_node(api: Api) -> str:
    return str(api.ok("/api/overview")["node"])


def test_policies(api: Api, vhost: str, amqp: pika.BlockingConnection) -> None:
    v = q(vhost)
    path = f"/api/policies/{v}/cap"
    body = {"pattern": "^capped\\.", "definition": {"max-length": 2}, "priority": 1, "apply-to": "queues"}
    assert api.put(path, body).status == 201
    assert api.put(path, body).status == 204
    expected = {
        "vhost": vhost,
        "name": "cap",
        "pattern": "^capped\\.",
        "apply-to": "queues",
        "definition": {"max-length": 2},
        "priority": 1,
    }
    assert api.ok(path) == expected
    assert api.ok(f"/api/policies/{v}") == [expected]
    assert expected in api.ok("/api/policies")

    ch = amqp.channel()
    ch.queue_declare("capped.q")
    for i in range(5):
        ch.basic_publish("", "capped.q", b"%d" % i)
    queue = wait_for(lambda: (s := api.ok(f"/api/queues/{v}/capped.q"))["messages"] == 2 and s, what="max-length")
    assert queue["policy"] == "cap" and queue["effective_policy_definition"] == {"max-length": 2}

    reply = api.put(f"/api/policies/{v}/bad", {"pattern": "x", "definition": {"nope": 1}})
    assert reply.status == 400 and reply.json["reason"].startswith("Validation failed\n\n")
    assert api.put(f"/api/policies/{v}/bad", {"pattern": "x"}).json["reason"] == "[{key_missing,definition}]"
    reply = api.put(f"/api/policies/{v}/bad", {"pattern": "x", "definition": {"max-length": 1}, "apply-to": "nope"})
    assert (
        reply.json["reason"]
        == "Validation failed\n\napply-to 'nope' unrecognised; should be 'queues', 'exchanges' or 'all'\n"
    )
    assert api.delete(path).status == 204
    assert api.delete(path).json == NOT_FOUND
    assert api.ok(f"/api/queues/{v}/capped.q")["policy"] is None


def test_definitions_export_and_import(api: Api, vhost: str, amqp: pika.BlockingConnection) -> None:
    v = q(vhost)
    api.put(f"/api/exchanges/{v}/defs-x", {"type": "topic", "durable": True})
    api.put(f"/api/queues/{v}/defs-q", {"durable": True, "arguments": {"x-max-length": 9}})
    api.put(f"/api/queues/{v}/defs-transient", {"durable": False})
    api.post(f"/api/bindings/{v}/e/defs-x/q/defs-q", {"routing_key": "a.*"})
    api.put(f"/api/policies/{v}/defs-p", {"pattern": "^defs", "definition": {"message-ttl": 1000}})
    amqp.channel().queue_declare("", exclusive=True)  # exclusive queues are not exported

    doc = api.ok("/api/definitions")
    for key in (
        "rabbit_version",
        "rabbitmq_version",
        "users",
        "vhosts",
        "permissions",
        "policies",
        "queues",
        "exchanges",
        "bindings",
    ):
        assert key in doc
    mine = [x for x in doc["queues"] if x["vhost"] == vhost]
    assert sorted(x["name"] for x in mine) == ["defs-q", "defs-transient"]  # as RabbitMQ: durable or not
    assert {
        "name": "defs-q",
        "vhost": vhost,
        "durable": True,
        "auto_delete": False,
        "arguments": {"x-max-length": 9},
    } in mine
    assert any(u["name"] == "guest" for u in doc["users"])

    one = api.ok(f"/api/definitions/{v}")
    assert set(one) == {"rabbit_version", "parameters", "policies", "queues", "exchanges", "bindings"}
    assert {
        "name": "defs-x",
        "type": "topic",
        "durable": True,
        "auto_delete": False,
        "internal": False,
        "arguments": {},
    } in one["exchanges"]
    assert one["bindings"] == [
        {
            "source": "defs-x",
            "destination": "defs-q",
            "destination_type": "queue",
            "routing_key": "a.*",
            "arguments": {},
        }
    ]
    reply = api.get("/api/definitions/no-such-vhost")
    assert reply.json == {"error": "bad_request", "reason": "vhost_not_found"}
    download = api.get("/api/definitions?download=defs.json")
    assert download.headers["Content-Disposition"] == "attachment; filename=defs.json"

    # Delete everything, import the vhost's export back: it is all there again.
    for path in (
        f"/api/exchanges/{v}/defs-x",
        f"/api/queues/{v}/defs-q",
        f"/api/queues/{v}/defs-transient",
        f"/api/policies/{v}/defs-p",
    ):
        assert api.delete(path).status == 204
    assert api.post(f"/api/definitions/{v}", one).status == 204
    assert api.ok(f"/api/queues/{v}/defs-q")["arguments"] == {"x-max-length": 9}
    assert api.ok(f"/api/queues/{v}/defs-q")["policy"] == "defs-p"
    assert api.ok(f"/api/bindings/{v}/e/defs-x/q/defs-q")[0]["routing_key"] == "a.*"

    # A whole-broker import creates vhosts, users and permissions.
    other = f"mgmt-imp-{uuid.uuid4().hex[:6]}"
    imported = {
        "vhosts": [{"name": other}],
        "users": [{"name": other, "password_hash": "", "tags": "management"}],
        "permissions": [{"user": other, "vhost": other, "configure": ".*", "write": ".*", "read": ".*"}],
        "queues": [{"name": "iq", "vhost": other, "durable": True, "auto_delete": False, "arguments": {}}],
    }
    assert api.post("/api/definitions", imported).status == 204
    assert api.ok(f"/api/queues/{q(other)}/iq")["durable"] is True
    assert api.ok(f"/api/users/{q(other)}")["tags"] == ["management"]
    assert api.ok(f"/api/permissions/{q(other)}/{q(other)}")["read"] == ".*"
    assert api.post("/api/definitions", b"{not json").json == {"error": "bad_request", "reason": "not_json"}
    api.delete(f"/api/vhosts/{q(other)}")
    api.delete(f"/api/users/{q(other)}")


def test_changes_survive_a_restart(tmp_path: Path) -> None:
    """Users, permissions, vhosts and policies made over the API are persisted like AMQP ones."""
    data = tmp_path / "data"
    server = ServerProcess(data, "--management-port", str(free_port())).start()
    try:
        api = Api(server.management_port)
        assert api.put("/api/vhosts/kept", {"description": "stays"}).status == 201
        assert api.put("/api/users/keeper", {"password": "pw", "tags": "management"}).status == 201
        assert api.put("/api/permissions/kept/keeper", {"configure": "", "write": ".*", "read": ".*"}).status == 201
        assert api.put("/api/policies/kept/p", {"pattern": ".*", "definition": {"max-length": 7}}).status == 201
        assert api.put("/api/queues/kept/durable-q", {"durable": True}).status == 201
        assert server.stop() == 0
        server = ServerProcess(data, "--management-port", str(free_port())).start()
        api = Api(server.management_port)
        assert api.ok("/api/vhosts/kept")["description"] == "stays"
        assert api.as_user("keeper", "pw").ok("/api/whoami") == {"name": "keeper", "tags": ["management"]}
        assert api.ok("/api/permissions/kept/keeper")["configure"] == ""
        assert api.ok("/api/policies/kept/p")["definition"] == {"max-length": 7}
        assert api.ok("/api/queues/kept/durable-q")["policy"] == "p"
    finally:
        assert server.stop() == 0, server.log
