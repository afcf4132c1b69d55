"""warrenctl's link to a running node: the management HTTP API, with basic auth (stdlib only)."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any


class Unreachable(Exception):
    """Nothing answers at the management address."""


class ApiError(Exception):
    """The API refused: HTTP status and RabbitMQ's error body."""

    def __init__(self, status: int, error: str, reason: Any) -> None:
        super().__init__(f"{status} {error}: {reason}")
        self.status = status
        self.error = error
        self.reason = reason


def quote(name: str) -> str:
    """A vhost, queue or exchange name as one URL path segment ("/" becomes %2F)."""
    return urllib.parse.quote(name, safe="")


class Client:
    def __init__(self, host: str, port: int, username: str, password: str, timeout: float = 60.0) -> None:
        self.base = f"http://{_host(host)}:{port}"
        self.username = username
        self.timeout = timeout
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}", "Accept": "application/json"}
        self.on_contact: Callable[[], None] = lambda: None  # called once the node has answered

    def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        data = None
        all_headers = dict(self.headers)
        if body is not None:
            data = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        all_headers.update(headers or {})
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=all_headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            if exc.code != 401:  # refused credentials: nothing was done
                self.on_contact()
            raw = exc.read()
            try:
                payload = json.loads(raw) if raw else {}
            except ValueError:
                payload = {}
            if not isinstance(payload, dict):
                payload = {}
            raise ApiError(exc.code, str(payload.get("error", exc.reason)), payload.get("reason", "")) from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            text = reason.strerror if isinstance(reason, OSError) and reason.strerror else str(reason)
            raise Unreachable(text.lower()) from None
        except TimeoutError:
            raise Unreachable("timed out") from None
        except (ConnectionError, OSError) as exc:
            raise Unreachable(exc.strerror or str(exc)) from None
        self.on_contact()  # out of the try: its output failing (a closed pipe) is no network error
        if not raw:
            return None
        return json.loads(raw)

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def put(self, path: str, body: Any) -> Any:
        return self.request("PUT", path, body)

    def post(self, path: str, body: Any) -> Any:
        return self.request("POST", path, body)

    def delete(self, path: str, headers: dict[str, str] | None = None) -> Any:
        return self.request("DELETE", path, headers=headers)


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
