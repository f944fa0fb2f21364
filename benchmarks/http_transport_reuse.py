"""What the provider API transports cost, and what reusing their connection saves.

A local HTTP/1.1 server (its own process, keep-alive) answers like SendGrid's Mail Send API
(202 with ``X-Message-Id``). N messages of 3 recipients, one attachment, go out three ways:

* baseline: plain ``httpx`` on one reused client posting an already-built JSON body;
* ``SendGridTransport.send()``: builds the body from the message and parses the answer, on
  the transport's own pooled client (what ``MAILDELIVERY_TRANSPORT = "sendgrid"`` does);
* a new client per message (a new TCP connection, and httpx's per-client setup, TLS
  context included), as a transport without a long-lived client would; on the first 200
  messages only, as it is slow.

Prints each rate and the ratios to the baseline. Targets: the transport within 1.5x of the
baseline; a connection per message visibly slower than the pooled transport.

    .venv/bin/python benchmarks/http_transport_reuse.py [-n 1000]
"""

from __future__ import annotations

import argparse
import multiprocessing
import socket
import statistics
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_maildelivery import MailDelivery
from flask_maildelivery.context import get_state
from flask_maildelivery.mime import build_mime
from flask_maildelivery.sending import parse_address
from flask_maildelivery.transports import Attachment, OutgoingMessage
from flask_maildelivery.transports.sendgrid import SendGridTransport

PDF = b"%PDF-1.4 " + b"x" * 20_000
#: Messages sent by the slow "new client per message" way.
PER_MESSAGE_RUN = 200


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(202)
        self.send_header("X-Message-Id", "W86EgYT6SQKk0lRflfLRsA")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return None


def run_server(port: int, ready: Any) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
    server.daemon_threads = True
    ready.set()
    server.serve_forever()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def message(n: int) -> OutgoingMessage:
    public_id = f"{n:032x}"
    fields: dict[str, Any] = {
        "sender": parse_address("billing@acme.test", role="sender"),
        "to": [
            parse_address(f"customer{n}@customer.test", role="to"),
            parse_address(f"buyer{n}@customer.test", role="to"),
        ],
        "cc": [parse_address("accounting@acme.test", role="cc")],
        "subject": f"Invoice INV-{n:05d}",
        "text": f"Please find invoice INV-{n:05d} attached.",
        "html": None,
        "reply_to": None,
        "attachments": [Attachment(f"INV-{n:05d}.pdf", PDF, "application/pdf")],
        "headers": {},
    }
    outgoing = OutgoingMessage(public_id=public_id, bcc=[], **fields)
    outgoing.mime = build_mime(outgoing)
    return outgoing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=1000, help="messages per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per way (median kept)")
    args = parser.parse_args()

    port = free_port()
    ready = multiprocessing.Event()
    server = multiprocessing.Process(target=run_server, args=(port, ready), daemon=True)
    server.start()
    ready.wait(10)
    url = f"http://127.0.0.1:{port}"

    app = Flask("bench")
    app.config.update(
        SECRET_KEY="benchmark",
        MAILDELIVERY_TRANSPORT="sendgrid",
        MAILDELIVERY_SENDGRID_API_KEY="SG.bench",
        MAILDELIVERY_SENDGRID_API_URL=url,
        MAILDELIVERY_HTTP_TIMEOUT=10,
    )
    app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite://"
    MailDelivery(app, db=SQLAlchemy(app))
    messages = [message(n) for n in range(args.n)]
    transport = get_state(app).transport
    assert isinstance(transport, SendGridTransport)
    bodies = [transport.payload(m) for m in messages]
    headers = {"Authorization": "Bearer SG.bench"}

    def baseline() -> None:
        with httpx.Client(timeout=10) as client:
            for body in bodies:
                client.post(f"{url}/v3/mail/send", json=body, headers=headers)

    def pooled() -> None:
        for m in messages:
            transport.send(m)

    def per_message() -> None:
        for body in bodies[:PER_MESSAGE_RUN]:
            with httpx.Client(timeout=10) as client:
                client.post(f"{url}/v3/mail/send", json=body, headers=headers)

    rates: dict[str, float] = {}
    try:
        for name, run in (
            ("baseline (httpx, one client)", baseline),
            ("SendGridTransport (pooled)", pooled),
            ("new client per message", per_message),
        ):
            timings = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                run()
                timings.append(time.perf_counter() - start)
            count = min(args.n, PER_MESSAGE_RUN) if run is per_message else args.n
            rates[name] = count / statistics.median(timings)
    finally:
        transport.close()
        server.terminate()
        server.join(5)

    base = rates["baseline (httpx, one client)"]
    print(f"{args.n} messages per run, median of {args.repeat} runs")
    for name, rate in rates.items():
        print(f"  {name:32} {rate:8.0f} msg/s   time ratio to baseline {base / rate:5.2f}x")
    pooled_rate = rates["SendGridTransport (pooled)"]
    per_rate = rates["new client per message"]
    print(f"  pooled transport vs a connection per message: {pooled_rate / per_rate:.2f}x faster")


if __name__ == "__main__":
    main()
