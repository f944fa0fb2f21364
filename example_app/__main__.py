"""``python -m example_app``: run the example ERP with its local SMTP server and SendGrid
simulator, on SQLite unless ``DATABASE_URL`` says otherwise."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys

from .demo import DEMO_PASSWORD, DEMO_USERS
from .simulator import DESCRIPTIONS, OUTCOMES, REFUSED_DOMAINS, SimulatorTiming
from .stack import start_stack


def main(argv: list[str] | None = None) -> int:
    """Start everything, print the URL and the demo logins, serve until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m example_app", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "5000")))
    parser.add_argument("--smtp-port", type=int, default=None, help="default: a free port")
    parser.add_argument(
        "--late-bounce",
        type=float,
        default=30.0,
        help="seconds before the simulator reports the delayed bounce (default: 30)",
    )
    parser.add_argument(
        "--deferral",
        type=float,
        default=45.0,
        help="seconds a deferred message waits before the next attempt (default: 45)",
    )
    parser.add_argument(
        "--queue",
        choices=["none", "celery"],
        default="none",
        help="celery: a Celery worker (in this process) sends the emails and applies the "
        "webhook events; default: in the request, no outside service",
    )
    parser.add_argument(
        "--broker",
        default=None,
        help="the Celery broker with --queue celery (default: redis://127.0.0.1:6379/0)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("example_app").setLevel(logging.INFO)
    # one line per request is noise next to the story the simulator tells
    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    try:
        stack = start_stack(
            host=args.host,
            port=args.port,
            smtp_port=args.smtp_port,
            timing=SimulatorTiming(late_bounce=args.late_bounce, deferral=args.deferral),
            queue=None if args.queue == "none" else args.queue,
            broker_url=args.broker,
        )
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        print(
            f"cannot listen on {args.host}:{args.port} (or the SMTP port): it is in use; "
            "pass --port (and --smtp-port) with free ports",
            file=sys.stderr,
        )
        return 1
    app = stack.app
    print()
    print(f"Example ERP: {stack.url}")
    print(f"  database:  {app.config['SQLALCHEMY_DATABASE_URI']}")
    if stack.simulator is not None and stack.smtp is not None:
        print(f"  mail:      local SMTP server on {stack.smtp.hostname}:{stack.smtp.port}")
        print(
            f"  webhooks:  SendGrid simulator posting signed events to {stack.simulator.webhook_url}"
        )
        print("  what happens to a recipient, by its domain:")
        for domain, outcome in OUTCOMES.items():
            print(f"    @{domain:<16} {DESCRIPTIONS[outcome]}")
        for domain in sorted(REFUSED_DOMAINS):
            print(f"    @{domain:<16} refused by the SMTP server")
        print(f"    {'anything else':<17} {DESCRIPTIONS['open']}")
    if stack.bounce_maildir is not None:
        print(
            f"  bounces:   @late.example's bounce arrives as a DSN in {stack.bounce_maildir}, "
            "read every second (flask maildelivery bounces watch)"
        )
    else:
        print(
            f"  mail:      MAILDELIVERY_TRANSPORT={app.config['MAILDELIVERY_TRANSPORT']} (real delivery)"
        )
    if stack.worker is not None:
        print(f"  queue:     Celery worker on {stack.worker.celery_app.conf.broker_url}")
    if stack.seeded:
        print("  demo data created")
    print(f"  logins (password '{DEMO_PASSWORD}'):")
    for user in DEMO_USERS:
        log = "sees the email log" if user.sees_email_log else "no email log access"
        print(f"    {user.username:<14} {user.company}, {user.role} ({log})")
    print("Press Ctrl+C to stop.")
    sys.stdout.flush()
    try:
        stack.server.serve_forever()
    except KeyboardInterrupt:
        print("stopping")
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
