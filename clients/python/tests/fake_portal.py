"""A real, tiny OpsPortal stand-in: an HTTP server on 127.0.0.1 that answers the client's REST contract."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN = "opk_test-token"
USERNAME, PASSWORD = "dana", "s3cret"
FORMATS = ("skops", "onnx", "pickle")
TASKS = ("binary_classification", "multiclass_classification", "regression")
ENGINE = {"name": "sklearn", "version": "1.9.1"}


@dataclass
class Upload:
    """One multipart version upload as the server received it."""

    headers: dict[str, str]
    body_length: int
    fields: dict[str, str]
    files: dict[str, tuple[str, bytes, str]]  # field -> (filename, bytes, content type)


@dataclass
class Outcome:
    """What validation of the next upload ends in, after how many `validating` answers."""

    status: str = "ready"
    polls: int = 0
    reason: str = ""


@dataclass
class FakePortal:
    url: str = ""
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    versions: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    uploads: list[Upload] = field(default_factory=list)
    polls: dict[tuple[str, int], int] = field(default_factory=dict)
    created: list[str] = field(default_factory=list)
    outcome: Outcome = field(default_factory=Outcome)

    def add_model(self, name: str, task: str = "binary_classification") -> dict[str, Any]:
        model = {"name": name, "title": name.title(), "task": task, "versions": [], "aliases": {}}
        self.models[name] = model
        return model


def error(status: int, code: str, message: str, details: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    return status, {"error": {"code": code, "message": message, "details": details or {}}}


def parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, tuple[str, bytes, str]]]:
    """Split a multipart/form-data body exactly, byte for byte (no newline normalisation)."""
    boundary = content_type.split("boundary=", 1)[1].strip('"').encode()
    fields: dict[str, str] = {}
    files: dict[str, tuple[str, bytes, str]] = {}
    for chunk in body.split(b"--" + boundary)[1:-1]:
        head, _, content = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        content = content.removesuffix(b"\r\n")
        headers = head.decode()
        name = re.search(r'; name="([^"]*)"', headers)
        filename = re.search(r'; filename="([^"]*)"', headers)
        ctype = re.search(r"Content-Type: (\S+)", headers)
        assert name, headers
        if filename:
            files[name.group(1)] = (filename.group(1), content, ctype.group(1) if ctype else "")
        else:
            fields[name.group(1)] = content.decode()
    return fields, files


class Handler(BaseHTTPRequestHandler):
    portal: FakePortal  # set on the subclass made per server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep pytest output clean

    def do_GET(self) -> None:
        self._answer("GET")

    def do_POST(self) -> None:
        self._answer("POST")

    def _answer(self, method: str) -> None:
        # Always read the whole body first, so error answers never reset a half-sent upload.
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, payload = self._route(method, self.path, body)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _route(self, method: str, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        if (method, path) == ("POST", "/api/v1/auth/token/"):
            return self._token(json.loads(body))
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return error(401, "not_authenticated", "Invalid or missing API token.")
        if (method, path) == ("POST", "/api/v1/models/"):
            return self._create_model(json.loads(body))
        if match := re.fullmatch(r"/api/v1/models/([^/]+)/", path):
            return self._get_model(match.group(1)) if method == "GET" else error(405, "method_not_allowed", "No.")
        if (match := re.fullmatch(r"/api/v1/models/([^/]+)/versions/", path)) and method == "POST":
            return self._upload(match.group(1), body)
        if (match := re.fullmatch(r"/api/v1/models/([^/]+)/versions/(\d+)/", path)) and method == "GET":
            return self._get_version(match.group(1), int(match.group(2)))
        return error(404, "not_found", "Not found.")

    def _token(self, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if (data.get("username"), data.get("password")) != (USERNAME, PASSWORD):
            return error(401, "authentication_failed", "Wrong username or password.")
        return 201, {"token": TOKEN, "name": data.get("name"), "expires_at": None}

    def _get_model(self, name: str) -> tuple[int, dict[str, Any]]:
        if name not in self.portal.models:
            return error(404, "not_found", f"No model named {name}.")
        return 200, self.portal.models[name]

    def _create_model(self, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if data.get("task") not in TASKS:
            return error(400, "invalid", "Invalid input.", {"task": ["Not a valid choice."]})
        if data["name"] in self.portal.models:
            return error(409, "conflict", f"A model named {data['name']} already exists.")
        model = self.portal.add_model(data["name"], data["task"])
        model.update({k: v for k, v in data.items() if k not in ("name", "task")})
        self.portal.created.append(data["name"])
        return 201, model

    def _upload(self, name: str, body: bytes) -> tuple[int, dict[str, Any]]:
        if name not in self.portal.models:
            return error(404, "not_found", f"No model named {name}.")
        fields, files = parse_multipart(self.headers["Content-Type"], body)
        self.portal.uploads.append(Upload(dict(self.headers.items()), len(body), fields, files))
        if "artifact" not in files or fields.get("format") not in FORMATS:
            return error(400, "invalid", "Invalid input.", {"artifact": ["Required."]})
        digest = hashlib.sha256(files["artifact"][1]).hexdigest()
        model = self.portal.models[name]
        for summary in model["versions"]:
            if self.portal.versions[(name, summary["number"])]["sha256"] == digest:
                return error(
                    409, "duplicate_artifact", "This artifact is already registered.", {"version": summary["number"]}
                )
        return 201, self._new_version(model, digest, fields)

    def _new_version(self, model: dict[str, Any], digest: str, fields: dict[str, str]) -> dict[str, Any]:
        number = len(model["versions"]) + 1
        outcome = self.portal.outcome
        version = {
            "model": model["name"],
            "number": number,
            "status": "validating",
            "status_reason": "",
            "sha256": digest,
        }
        version.update(metrics=json.loads(fields.get("metrics", "{}")), signature=None, engine=None)
        version["_outcome"], version["_polls_left"] = outcome, outcome.polls
        self.portal.versions[(model["name"], number)] = version
        model["versions"].append({"number": number, "status": "validating"})
        return _public(version)

    def _get_version(self, name: str, number: int) -> tuple[int, dict[str, Any]]:
        version = self.portal.versions.get((name, number))
        if version is None:
            return error(404, "not_found", "No such version.")
        self.portal.polls[(name, number)] = self.portal.polls.get((name, number), 0) + 1
        if version["_polls_left"] > 0:
            version["_polls_left"] -= 1
        else:
            outcome: Outcome = version["_outcome"]
            version.update(status=outcome.status, status_reason=outcome.reason)
            if outcome.status == "ready":
                version.update(engine=ENGINE, signature={"inputs": [{"name": "x0", "type": "double"}]})
        return 200, _public(version)


def _public(version: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in version.items() if not k.startswith("_")}


def start(state: FakePortal) -> ThreadingHTTPServer:
    """Serve `state` on a free loopback port from a daemon thread; the caller shuts it down."""
    handler = type("BoundHandler", (Handler,), {"portal": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server
