"""A real HTTP server on loopback (:mod:`http.server`, requests parsed with werkzeug) standing in for an email provider's API.

Each test file installs a ``responder`` that checks a request the way the provider does
(path, authentication, body shape) and answers the way the provider does. Every request is
kept, so a test can compare it with the documented shape.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from werkzeug.datastructures import Headers, MultiDict
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request, Response


@dataclass
class ReceivedRequest:
    """One request the fake provider received."""

    method: str
    path: str
    query: str
    headers: Headers
    body: bytes
    #: Form fields (urlencoded or multipart), repeated names kept.
    form: MultiDict[str, str]
    #: Uploaded files: ``(field name, filename, content type, content)``.
    files: list[tuple[str, str, str, bytes]]
    #: The client's source port: the same port on two requests means one reused connection.
    client_port: int

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


Responder = Callable[[ReceivedRequest], Response]


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    """A JSON answer."""
    return Response(
        json.dumps(body), status=status, mimetype="application/json", headers=headers or {}
    )


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    provider: FakeProvider


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 keep-alive (werkzeug's development server always closes the connection), so
    # a client can reuse its connection as it does with the real provider
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_POST(self) -> None:
        self._handle()

    def do_GET(self) -> None:
        self._handle()

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path, _, query = self.path.partition("?")
        environ = EnvironBuilder(
            path=path,
            method=self.command,
            query_string=query,
            headers=list(self.headers.items()),
            data=body,
        ).get_environ()
        response = self.server.provider.respond(environ, body, self.client_address[1])
        payload = response.get_data()
        self.send_response(response.status_code)
        for name, value in response.headers.items():
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        return None


@dataclass
class FakeProvider:
    """A running fake provider API; ``url`` is its base URL."""

    server: _Server
    thread: threading.Thread
    responder: Responder | None = None
    requests: list[ReceivedRequest] = field(default_factory=list)
    #: Set at teardown; a :meth:`hang` responder waits for it.
    released: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def hang(self, request: ReceivedRequest) -> Response:
        """A responder that answers only after the test is over (a provider that timed out)."""
        self.released.wait(30)
        return Response("too late", status=504)

    def respond(self, environ: dict[str, Any], body: bytes, client_port: int) -> Response:
        """Record the request and answer it with the responder."""
        request = Request(environ)
        with request:  # closes the uploaded files' temporary storage
            files = [
                (name, storage.filename or "", storage.mimetype, storage.read())
                for name, storage in request.files.items(multi=True)
            ]
            form = MultiDict(request.form.items(multi=True))
        received = ReceivedRequest(
            method=request.method,
            path=request.path,
            query=request.query_string.decode(),
            headers=Headers(request.headers),
            body=body,
            form=form,
            files=files,
            client_port=client_port,
        )
        self.requests.append(received)
        if self.responder is None:
            return Response("no responder installed", status=500)
        return self.responder(received)

    def stop(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def start_fake_provider() -> FakeProvider:
    """Start a fake provider on 127.0.0.1 and a free port, in a thread."""
    server = _Server(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        name="fake-provider",
        daemon=True,
    )
    provider = FakeProvider(server=server, thread=thread)
    server.provider = provider
    thread.start()
    return provider
