"""warrenctl's list commands print what rabbitmqctl prints.

The expected texts were taken from rabbitmqctl 3.10.8 (RabbitMQ on the same machine) after
building the same state with the same client code: banners ("Timeout: 60.0 seconds ...",
"Listing queues for vhost v ..."), a header line, tab-separated rows, ``-q`` dropping the
banners, ``-s`` dropping the header too, and the streamed JSON lists of ``--formatter json``.
"""

from __future__ import annotations

import json

import pika

from tests.cli.conftest import Ctl
from tests.management.conftest import Api, q, wait_for


def build_state(
    amqp: pika.BlockingConnection, api: Api, vhost: str
) -> pika.adapters.blocking_connection.BlockingChannel:
    """Queue "a" with 3 messages; queue "b" with 5, 2 of them delivered to a consumer and unacked."""
    ch = amqp.channel()
    ch.confirm_delivery()
    ch.queue_declare("a", durable=True)
    ch.queue_declare("b", arguments={"x-max-length": 100})
    ch.exchange_declare("x", "topic", durable=True)
    ch.queue_bind("a", "x", "k.#", arguments={"h": "v", "n": 1})
    for i in range(3):
        ch.basic_publish("x", "k.a", b"a%d" % i)
    for i in range(5):
        ch.basic_publish("", "b", b"b%d" % i)
    consumer = amqp.channel()
    consumer.basic_qos(prefetch_count=2)
    consumer.basic_consume("b", lambda *args: None, consumer_tag="ctag")
    wait_for(
        lambda: (amqp.process_data_events(0.01), api.ok(f"/api/queues/{q(vhost)}/b")["messages_unacknowledged"] == 2)[1]
    )
    return consumer


def test_list_queues_byte_for_byte(ctl: Ctl, api: Api, amqp: pika.BlockingConnection, vhost: str) -> None:
    build_state(amqp, api, vhost)
    result = ctl("list_queues", "-p", vhost)
    assert result.code == 0 and result.err == ""
    assert result.out == (
        f"Timeout: 60.0 seconds ...\nListing queues for vhost {vhost} ...\nname\tmessages\na\t3\nb\t5\n"
    )
    assert ctl("-q", "list_queues", "-p", vhost).out == "name\tmessages\na\t3\nb\t5\n"
    assert ctl("list_queues", "--vhost", vhost, "-s", "name").out == "a\nb\n"
    assert ctl("list_queues", "-p", vhost, "--no-table-headers", "-q").out == "a\t3\nb\t5\n"
    columns = ["name", "messages_ready", "messages_unacknowledged", "consumers", "durable", "auto_delete"]
    out = ctl("list_queues", "-p", vhost, *columns, "arguments", "policy", "exclusive").out
    assert out.splitlines()[2:] == [
        "name\tmessages_ready\tmessages_unacknowledged\tconsumers\tdurable\tauto_delete\targuments\tpolicy\texclusive",
        "a\t3\t0\t0\ttrue\tfalse\t[]\t\tfalse",
        'b\t3\t2\t1\tfalse\tfalse\t[{"x-max-length",100}]\t\tfalse',
    ]
    assert ctl("list_queues", "-p", vhost, "--formatter", "json", "name", "messages", "arguments", "durable").out == (
        '[\n{"name":"a","messages":3,"arguments":[],"durable":true}\n'
        ',{"name":"b","messages":5,"arguments":[["x-max-length","signedint",100]],"durable":false}\n]\n'
    )
    # a vhost without queues (or without existence): the banners and nothing else
    assert ctl("list_queues", "-p", "no-such-vhost").out == (
        "Timeout: 60.0 seconds ...\nListing queues for vhost no-such-vhost ...\n"
    )
    assert ctl("list_queues", "-p", "no-such-vhost", "--formatter", "json").out == "[\n]\n"


def test_unknown_column_is_a_usage_error(ctl: Ctl) -> None:
    result = ctl("list_queues", "name", "nosuchcol")
    assert result.code == 64 and result.out == ""
    assert result.err.startswith(
        "Error (argument validation): Info key(s) nosuchcol are not supported\nArguments given:\n\t--management-port "
    )


def test_other_lists(ctl: Ctl, api: Api, amqp: pika.BlockingConnection, vhost: str) -> None:
    build_state(amqp, api, vhost)
    out = ctl("list_exchanges", "-p", vhost).out.splitlines()
    assert out[:2] == [f"Listing exchanges for vhost {vhost} ...", "name\ttype"]
    assert set(out[2:]) == {
        "\tdirect",
        "amq.direct\tdirect",
        "amq.fanout\tfanout",
        "amq.topic\ttopic",
        "amq.headers\theaders",
        "amq.match\theaders",
        "amq.rabbitmq.trace\ttopic",
        "x\ttopic",
    }
    assert (
        ctl("list_exchanges", "-p", vhost, "-q", "name", "durable", "arguments").out.splitlines()[-1] == "x\ttrue\t[]"
    )

    assert ctl("list_bindings", "-p", vhost).out == (
        f"Listing bindings for vhost {vhost}...\n"
        "source_name\tsource_kind\tdestination_name\tdestination_kind\trouting_key\targuments\n"
        "\texchange\ta\tqueue\ta\t[]\n"
        "\texchange\tb\tqueue\tb\t[]\n"
        'x\texchange\ta\tqueue\tk.#\t[{"h","v"},{"n",1}]\n'
    )
    binding = json.loads(ctl("list_bindings", "-p", vhost, "--formatter", "json").out)[2]
    assert binding["arguments"] == [["h", "longstr", "v"], ["n", "signedint", 1]]

    connections = ctl("list_connections", "-q", "user", "vhost", "peer_host", "state", "channels", "protocol").out
    assert f"guest\t{vhost}\t127.0.0.1\trunning\t2\t{{0,9,1}}" in connections.splitlines()
    assert ctl("list_connections").out.startswith("Listing connections ...\nuser\tpeer_host\tpeer_port\tstate\n")

    channels = [
        line.split("\t")
        for line in ctl(
            "list_channels", "-q", "vhost", "number", "prefetch_count", "consumer_count", "messages_unacknowledged"
        ).out.splitlines()
    ]
    assert [vhost, "2", "2", "1", "2"] in channels
    assert ctl("list_channels").out.startswith(
        "Listing channels ...\npid\tuser\tconsumer_count\tmessages_unacknowledged\n"
    )

    consumers = ctl("list_consumers", "-p", vhost).out.splitlines()
    assert consumers[:2] == [
        f"Listing consumers in vhost {vhost} ...",
        "queue_name\tchannel_pid\tconsumer_tag\tack_required\tprefetch_count\tactive\targuments",
    ]
    assert consumers[2].startswith("b\t127.0.0.1:") and consumers[2].endswith(" (2)\tctag\ttrue\t2\ttrue\t[]")
    # As rabbitmqctl 3.10: consumer columns come in their own order, whatever the order asked.
    assert (
        ctl("list_consumers", "-p", vhost, "-q", "active", "consumer_tag").out == "consumer_tag\tactive\nctag\ttrue\n"
    )

    vhosts = ctl("list_vhosts", "name", "tracing").out.splitlines()
    assert vhosts[:2] == ["Listing vhosts ...", "name\ttracing"] and f"{vhost}\tfalse" in vhosts
    assert "guest\t[administrator]" in ctl("list_users").out.splitlines()
    assert ctl("list_users", "--formatter", "json").out.startswith('[\n{"user":"guest","tags":["administrator"]}')
    assert ctl("list_permissions", "-p", vhost).out == (
        f'Listing permissions for vhost "{vhost}" ...\nuser\tconfigure\twrite\tread\nguest\t.*\t.*\t.*\n'
    )
    assert ctl("list_permissions", "-p", vhost, "--formatter", "json").out == (
        '[\n{"user":"guest","configure":".*","write":".*","read":".*"}\n]\n'
    )
    assert f"{vhost}\t.*\t.*\t.*" in ctl("list_user_permissions", "guest").out.splitlines()
    # rabbitmqctl's non-streamed lists print an empty line (or []) when empty
    assert ctl("list_policies", "-p", vhost).out == f'Listing policies for vhost "{vhost}" ...\n\n'
    assert ctl("list_policies", "-p", vhost, "--formatter", "json").out == "[]\n"


def test_list_queues_where_they_live(ctl: Ctl, api: Api, vhost: str) -> None:
    """leader/members/online as rabbitmqctl 3.10.8 prints them (empty for a classic queue), and
    --online/--offline/--local: on a single node every queue is online and local."""
    assert api.put(f"/api/queues/{q(vhost)}/c", {"durable": True}).status == 201
    quorum = {"durable": True, "arguments": {"x-queue-type": "quorum"}}
    assert api.put(f"/api/queues/{q(vhost)}/qq", quorum).status == 201
    node = api.ok("/api/overview")["node"]
    out = ctl("list_queues", "-p", vhost, "-q", "name", "type", "leader", "members", "online").out
    assert out.splitlines() == [
        "name\ttype\tleader\tmembers\tonline",
        "c\tclassic\t\t\t",
        f"qq\tquorum\t{node}\t[{node}]\t[{node}]",
    ]
    as_json = ctl("list_queues", "-p", vhost, "--formatter", "json", "name", "leader", "members", "online").out
    assert json.loads(as_json) == [
        {"name": "c", "leader": "", "members": "", "online": ""},
        {"name": "qq", "leader": node, "members": [node], "online": [node]},
    ]
    for flags in (["--online"], ["--local"], ["--online", "--local"]):
        assert ctl("list_queues", "-p", vhost, "-s", "name", *flags).out == "c\nqq\n", flags
    assert ctl("list_queues", "-p", vhost, "-s", "name", "--offline").out == ""
