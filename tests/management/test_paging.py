"""Paged lists (RabbitMQ's page, page_size, name, use_regex, sort, sort_reverse) answer exactly
the slice of the full sorted list, whichever way the server chose the page."""

from __future__ import annotations

import urllib.parse

import pika

from tests.management.conftest import Api, q, wait_for
from tests.server import ServerProcess


def _page(api: Api, path: str, **params: str) -> dict:
    return api.ok(f"{path}?{urllib.parse.urlencode(params)}")


def test_pages_are_slices_of_the_sorted_list(api: Api, vhost: str, mgmt_server: ServerProcess) -> None:
    v = q(vhost)
    names = [f"pg-{i:02d}{'x' if i % 3 == 0 else ''}" for i in range(12)]
    connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", mgmt_server.port, virtual_host=vhost))
    try:
        ch = connection.channel()
        ch.confirm_delivery()
        for i, name in enumerate(reversed(names)):
            ch.queue_declare(name)
            for _ in range(i % 4):
                ch.basic_publish("", name, b"m")
    finally:
        connection.close()
    path = f"/api/queues/{v}"
    wait_for(lambda: sum(x["messages"] for x in api.ok(path)) == sum(i % 4 for i in range(12)), what="messages")
    for sort, reverse in [("", ""), ("name", "true"), ("vhost", ""), ("messages", ""), ("messages", "true"),
                          ("message_stats.publish", "true"), ("arguments", "")]:  # fmt: skip
        params = {"sort": sort, "sort_reverse": reverse} if sort else {}
        everything = [x["name"] for x in api.ok(f"{path}?{urllib.parse.urlencode(params)}")]
        for name_filter, regex in [("", ""), ("X", "false"), ("^pg-0[0-5]", "true")]:
            if regex == "true":
                wanted = [n for n in everything if n.startswith(("pg-00", "pg-01", "pg-02", "pg-03", "pg-04", "pg-05"))]
            else:
                wanted = [n for n in everything if name_filter.lower() in n]
            for number in range(1, max(1, (len(wanted) + 4) // 5) + 1):
                page = _page(api, path, page=str(number), page_size="5", name=name_filter, use_regex=regex, **params)
                assert [x["name"] for x in page["items"]] == wanted[(number - 1) * 5 : number * 5], (sort, name_filter)
                assert page["filtered_count"] == len(wanted) and page["total_count"] == 12
                assert page["item_count"] == len(page["items"]) and page["page_count"] == (len(wanted) + 4) // 5


def test_paged_queues_of_all_vhosts_show_only_the_users_own(api: Api, vhost: str, name: str) -> None:
    v = q(vhost)
    assert api.put(f"/api/users/{name}", {"password": "pw", "tags": "management"}).status == 201
    try:
        api.put(f"/api/permissions/{v}/{name}", {"configure": ".*", "write": ".*", "read": ".*"})
        api.put(f"/api/queues/{v}/mine")
        api.put("/api/queues/%2F/" + q(name))  # in a vhost the user may not see
        user = api.as_user(name, "pw")
        for params in ("page=1", "page=1&sort=messages"):
            page = user.ok(f"/api/queues?{params}")
            assert [(x["vhost"], x["name"]) for x in page["items"]] == [(vhost, "mine")]
            assert page["total_count"] == 1
    finally:
        api.delete(f"/api/users/{name}")
        api.delete("/api/queues/%2F/" + q(name))


def test_bad_page_parameters(api: Api, vhost: str) -> None:
    path = f"/api/queues/{q(vhost)}"
    api.put(f"{path}/a")
    assert api.get(f"{path}?page=3&page_size=1").json["error"] == "page_out_of_range"
    assert api.get(f"{path}?page=1&page_size=501").json["error"] == "invalid_pagination_parameters"
    assert api.get(f"{path}?page=x").status == 400
    assert api.get(f"{path}?page=1&name=(&use_regex=true").status == 400
    # An empty list has page 1 (RabbitMQ answers an empty page, not an error).
    assert api.ok(f"{path}?page=1&name=nothing")["items"] == []
