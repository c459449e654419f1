"""The lab's Hetzner Cloud API: the subset failover uses, over HTTP, for the official clients.

    GET  /v1/servers[?name=&label_selector=&status=&page=&per_page=]   GET /v1/servers/{id}
    POST /v1/servers/{id}/actions/{poweroff,poweron,reset,shutdown}
    GET  /v1/volumes[?name=&label_selector=&status=&page=&per_page=]   GET /v1/volumes/{id}
    POST /v1/volumes/{id}/actions/attach  {"server": <id>, "automount": false}
    POST /v1/volumes/{id}/actions/detach
    GET  /v1/actions/{id}  (also /v1/servers/actions/{id}, /v1/volumes/actions/{id})

Every request needs `Authorization: Bearer <the lab's token>` (401 `unauthorized` without);
errors are Hetzner's `{"error": {"code", "message", "details"}}`. What the answers mean is in
`mailstack.lab.cloudmodel`; `mailstack.lab.cloudservice` runs this per lab (`python -m
mailstack.lab.cloudapi --lab NAME ...`).
"""

import argparse
import hmac
import json
import os
import re
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from mailstack.lab import cloudservice
from mailstack.lab.cloudmodel import MAX_PER_PAGE, ApiError, LabCloud, matches_selector
from mailstack.lab.lab import Lab
from mailstack.settings import Settings

MAX_BODY_BYTES = 64 * 1024


def _int(value: str, what: str) -> int:
    if not re.fullmatch(r"[0-9]{1,18}", value):
        raise ApiError(400, "invalid_input", f"invalid {what}: {value!r}")
    return int(value)


def _page(items: list[dict], key: str, query: dict[str, list[str]]) -> dict:
    """One page of a list answer with Hetzner's `meta.pagination`, after the filters."""
    if "name" in query:
        items = [item for item in items if item["name"] == query["name"][-1]]
    for selector in query.get("label_selector", []):
        items = [item for item in items if matches_selector(item["labels"], selector)]
    if "status" in query:
        items = [item for item in items if item["status"] in query["status"]]
    page = _int(query.get("page", ["1"])[-1], "page") or 1
    per_page = min(_int(query.get("per_page", ["25"])[-1], "per_page") or 25, MAX_PER_PAGE)
    last = max(1, -(-len(items) // per_page))
    return {
        key: items[(page - 1) * per_page : page * per_page],
        "meta": {
            "pagination": {
                "page": page,
                "per_page": per_page,
                "previous_page": page - 1 if page > 1 else None,
                "next_page": page + 1 if page < last else None,
                "last_page": last,
                "total_entries": len(items),
            }
        },
    }


def route(cloud: LabCloud, method: str, path: str, query: dict, body: dict) -> tuple[int, dict]:
    """The answer (HTTP status, JSON document) to one authenticated request."""
    parts = path.strip("/").split("/")
    if not parts or parts[0] != "v1":
        raise ApiError(404, "not_found", f"no such endpoint: {path}")
    parts = parts[1:]
    match method, parts:
        case "GET", ["servers"]:
            return 200, _page(cloud.servers(), "servers", query)
        case "GET", ["servers", server_id]:
            return 200, {"server": cloud.server(_int(server_id, "server ID"))}
        case "POST", ["servers", server_id, "actions", command]:
            return 201, {"action": cloud.server_action(_int(server_id, "server ID"), command)}
        case "GET", ["volumes"]:
            return 200, _page(cloud.volumes(), "volumes", query)
        case "GET", ["volumes", volume_id]:
            return 200, {"volume": cloud.volume(_int(volume_id, "volume ID"))}
        case "POST", ["volumes", volume_id, "actions", "attach"]:
            return 201, {"action": cloud.attach(_int(volume_id, "volume ID"), body)}
        case "POST", ["volumes", volume_id, "actions", "detach"]:
            return 201, {"action": cloud.detach(_int(volume_id, "volume ID"))}
        case "GET", ["actions", action_id] | ["servers" | "volumes", "actions", action_id]:
            return 200, {"action": cloud.action(_int(action_id, "action ID"))}
    raise ApiError(404, "not_found", f"no such endpoint: {method} {path}")


class Handler(BaseHTTPRequestHandler):
    server_version = "mailstack-lab-cloud-api"
    protocol_version = "HTTP/1.1"
    server: "CloudApiServer"

    def do_GET(self) -> None:
        self._answer("GET")

    def do_POST(self) -> None:
        self._answer("POST")

    def do_PUT(self) -> None:
        self._answer("PUT")

    def do_DELETE(self) -> None:
        self._answer("DELETE")

    def _answer(self, method: str) -> None:
        try:
            status, document = self._handle(method)
        except ApiError as error:
            status, document = error.status, error.payload()
        except Exception:
            self.log_error("failed: %s", sys.exc_info()[1])
            status = 500
            document = ApiError(500, "server_error", "internal error").payload()
        data = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> tuple[int, dict]:
        length = self.headers.get("Content-Length", "0")
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            self.close_connection = True
            raise ApiError(400, "invalid_input", "bad or too large Content-Length")
        raw = self.rfile.read(int(length))
        given = self.headers.get("Authorization", "")
        expected = f"Bearer {self.server.token}"
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise ApiError(401, "unauthorized", "unable to authenticate")
        body = {}
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                raise ApiError(400, "json_error", "invalid JSON in the request body") from None
            if not isinstance(body, dict):
                raise ApiError(400, "json_error", "the request body must be a JSON object")
        url = urlsplit(self.path)
        return route(self.server.cloud, method, url.path, parse_qs(url.query), body)

    def log_message(self, format: str, *args) -> None:
        sys.stderr.write(f"{self.log_date_time_string()} {self.address_string()} {format % args}\n")


class CloudApiServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, cloud: LabCloud, token: str, address: str, port: int):
        if not token:
            raise ValueError("the cloud API needs a token")
        self.cloud = cloud
        self.token = token
        super().__init__((address, port), Handler)

    @property
    def endpoint(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/v1"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the lab's Hetzner Cloud API")
    parser.add_argument("--lab", required=True, help="lab name")
    parser.add_argument("--stack-file", required=True, help="the lab's stack file")
    parser.add_argument("--listen", required=True, help="ADDRESS:PORT to listen on")
    parser.add_argument("--pid-file", required=True, help="where to write the PID")
    args = parser.parse_args(argv)
    lab = Lab(args.lab, args.stack_file)
    settings = Settings.model_validate_json(lab.settings_file.read_text())
    address, port = args.listen.rsplit(":", 1)
    server = CloudApiServer(
        LabCloud(lab, settings), cloudservice.token(lab.state_dir), address, int(port)
    )
    Path(args.pid_file).write_text(f"{os.getpid()}\n")
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"lab {lab.name}: cloud API on {server.endpoint}", file=sys.stderr, flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
