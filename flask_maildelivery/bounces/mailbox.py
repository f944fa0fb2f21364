"""Where bounces arrive: an IMAP folder (``imaps://`` or ``imap://`` with STARTTLS) or a
Maildir (``maildir:///path``), read by ``flask maildelivery bounces fetch|watch``.

A message is marked read only once what it reports is committed, so a crash, a lost
connection or a parsing bug loses nothing: the next fetch reads what was not marked, and
``--reprocess`` reads everything again (repeats change nothing). Processed messages are
kept (IMAP: keyword ``$MailDeliveryRead``, or moved to ``MAILDELIVERY_BOUNCE_PROCESSED_FOLDER``;
Maildir: moved to ``cur/`` with the ``S`` flag) unless ``MAILDELIVERY_BOUNCE_DELETE_PROCESSED``
is set. Only the first :data:`~.reports.MAX_READ_BYTES` of a message are fetched.
``watch`` keeps an IMAP connection open and waits with IDLE (RFC 2177) where the server has
it, so a bounce is read as soon as it arrives; otherwise it polls.
"""

from __future__ import annotations

import contextlib
import imaplib
import logging
import os
import select
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from flask import Flask

from ..context import config_value
from .processing import BounceOutcome, read_bounce
from .reports import MAX_READ_BYTES
from .settings import mailbox_problem

logger = logging.getLogger("flask_maildelivery")

#: The IMAP keyword that marks a message as read by the package.
IMAP_KEYWORD = "$MailDeliveryRead"
#: The tag of the IDLE command (imaplib has no IDLE before Python 3.14).
_IDLE_TAG = b"MDIDLE"


class BounceSourceError(Exception):
    """The bounce mailbox cannot be read (bad URL, refused login, lost connection)."""


@dataclass
class FetchReport:
    """What one fetch did.

    :param outcomes: one per message read.
    :param failed: ``(message, error)`` for each message whose reading failed; it stays
        unmarked and is read again at the next fetch.
    """

    outcomes: list[BounceOutcome] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Messages read by outcome (``applied``, ``ignored``, ...)."""
        counts: dict[str, int] = {}
        for outcome in self.outcomes:
            counts[outcome.action] = counts.get(outcome.action, 0) + 1
        return counts


class Source(Protocol):
    """A bounce mailbox: yields ``(key, first bytes)`` of each message, marks a key done."""

    def connect(self) -> None: ...

    def close(self) -> None: ...

    def messages(self, reprocess: bool) -> Iterator[tuple[str, bytes]]: ...

    def mark_processed(self, key: str) -> None: ...

    def wait_for_mail(self, timeout: float, stop: threading.Event) -> None: ...


def open_source(app: Flask) -> Source:
    """The configured bounce mailbox.

    :raises BounceSourceError: no mailbox is configured.
    """
    url = config_value("BOUNCE_MAILBOX", app)
    if url is None:
        raise BounceSourceError(
            "no bounce mailbox: set MAILDELIVERY_BOUNCE_MAILBOX to an imaps:// or maildir:// URL"
        )
    delete = bool(config_value("BOUNCE_DELETE_PROCESSED", app))
    parts = urlsplit(str(url))
    if parts.scheme == "maildir":
        return MaildirSource(Path(unquote(parts.path)), delete=delete)
    return IMAPSource(
        str(url),
        timeout=float(config_value("BOUNCE_TIMEOUT", app)),
        processed_folder=config_value("BOUNCE_PROCESSED_FOLDER", app),
        delete=delete,
    )


def fetch_bounces(app: Flask, *, reprocess: bool = False) -> FetchReport:
    """Read the new messages of the bounce mailbox once (``flask maildelivery bounces
    fetch``; the entry point of a periodic task).

    :param reprocess: read every message again, processed ones included.
    :raises BounceSourceError: the mailbox cannot be opened, or the connection was lost;
        what was read before is kept and marked, the rest is read at the next fetch.
    """
    source = open_source(app)
    source.connect()
    try:
        return _read_messages(app, source, reprocess)
    finally:
        source.close()


def watch_bounces(
    app: Flask,
    *,
    interval: float | None = None,
    stop: threading.Event | None = None,
    on_fetch: Callable[[FetchReport], None] | None = None,
) -> None:
    """Read new messages until ``stop`` is set (``flask maildelivery bounces watch``): over
    IMAP with IDLE, as soon as the server announces one (the connection stays open);
    otherwise every ``interval`` seconds (default ``MAILDELIVERY_BOUNCE_POLL_INTERVAL``). A
    lost connection is logged and opened again after ``interval``."""
    stop = stop or threading.Event()
    wait = float(interval if interval is not None else config_value("BOUNCE_POLL_INTERVAL", app))
    while not stop.is_set():
        source = open_source(app)
        try:
            source.connect()
            try:
                while not stop.is_set():
                    report = _read_messages(app, source, reprocess=False)
                    if on_fetch is not None:
                        on_fetch(report)
                    source.wait_for_mail(wait, stop)
            finally:
                source.close()
        except BounceSourceError as exc:
            logger.warning("bounce mailbox: %s (trying again in %s s)", exc, wait)
            stop.wait(wait)


def _read_messages(app: Flask, source: Source, reprocess: bool) -> FetchReport:
    report = FetchReport()
    for key, data in source.messages(reprocess):
        try:
            outcome = read_bounce(app, data)
        except Exception as exc:  # a bug or a database error: keep the message for later
            logger.exception("bounce mailbox: message %s could not be read", key)
            report.failed.append((key, f"{type(exc).__name__}: {exc}"))
            continue
        report.outcomes.append(outcome)
        source.mark_processed(key)
    return report


class MaildirSource:
    """A Maildir: new messages are in ``new/`` (or in ``cur/`` without the ``S`` flag)."""

    def __init__(self, path: Path, *, delete: bool = False) -> None:
        self.path = path
        self.delete = delete

    def connect(self) -> None:
        """Nothing to open."""

    def close(self) -> None:
        """Nothing to close."""

    def wait_for_mail(self, timeout: float, stop: threading.Event) -> None:
        """Wait ``timeout`` seconds (or until ``stop``): a Maildir is polled."""
        stop.wait(timeout)

    def messages(self, reprocess: bool) -> Iterator[tuple[str, bytes]]:
        if not (self.path / "new").is_dir() or not (self.path / "cur").is_dir():
            raise BounceSourceError(
                f"{self.path} is not a Maildir (it needs new/ and cur/ folders)"
            )
        for subdir in ("new", "cur"):
            for entry in sorted(os.scandir(self.path / subdir), key=lambda e: e.name):
                if entry.name.startswith(".") or not entry.is_file():
                    continue
                if subdir == "cur" and not reprocess and "S" in _maildir_flags(entry.name):
                    continue
                try:
                    with open(entry.path, "rb") as file:
                        data = file.read(MAX_READ_BYTES)
                except FileNotFoundError:  # another reader took it meanwhile
                    continue
                yield f"{subdir}/{entry.name}", data

    def mark_processed(self, key: str) -> None:
        subdir, _, name = key.partition("/")
        path = self.path / subdir / name
        if self.delete:
            path.unlink(missing_ok=True)
            return
        base = name.partition(":")[0]
        flags = "".join(sorted(set(_maildir_flags(name)) | {"S"}))
        target = self.path / "cur" / f"{base}:2,{flags}"
        if target != path:
            os.replace(path, target)


def _maildir_flags(name: str) -> str:
    _, sep, info = name.partition(":2,")
    return info if sep else ""


class IMAPSource:
    """An IMAP folder: ``imaps://user:password@host[:port]/FOLDER``, or ``imap://`` with
    STARTTLS (``?tls=none`` on loopback only; ``?cafile=PATH`` trusts a private CA)."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 30,
        processed_folder: str | None = None,
        delete: bool = False,
    ) -> None:
        parts = urlsplit(url)
        self.secure = parts.scheme == "imaps"
        self.host = parts.hostname or ""
        self.port = parts.port or (993 if self.secure else 143)
        self.user = unquote(parts.username or "")
        self.password = unquote(parts.password or "")
        self.folder = unquote(parts.path.lstrip("/")) or "INBOX"
        options = parse_qs(parts.query)
        self.starttls = not self.secure and options.get("tls") != ["none"]
        cafile = options.get("cafile")
        self.ssl_context = ssl.create_default_context(cafile=cafile[0] if cafile else None)
        self.timeout = timeout
        self.processed_folder = processed_folder
        self.delete = delete
        self.connection: imaplib.IMAP4 | None = None
        self.keyword = True

    def _where(self) -> str:
        return f"IMAP server {self.host}:{self.port}"

    def connect(self) -> None:
        try:
            if self.secure:
                connection: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                    self.host, self.port, ssl_context=self.ssl_context, timeout=self.timeout
                )
            else:
                connection = imaplib.IMAP4(self.host, self.port, timeout=self.timeout)
        except (OSError, imaplib.IMAP4.error) as exc:
            raise BounceSourceError(f"cannot connect to {self._where()}: {exc}") from exc
        try:
            if self.starttls:
                connection.starttls(self.ssl_context)
            connection.login(self.user, self.password)
            status, data = connection.select(_quoted(self.folder))
            if status != "OK":
                raise BounceSourceError(
                    f"{self._where()}: cannot open folder {self.folder!r}: {_text(data)}"
                )
        except BaseException as exc:
            with contextlib.suppress(OSError):
                connection.shutdown()
            if isinstance(exc, imaplib.IMAP4.error):
                raise BounceSourceError(f"{self._where()} refused: {exc}") from exc
            if isinstance(exc, OSError):  # ssl.SSLError included
                raise BounceSourceError(f"cannot connect to {self._where()}: {exc}") from exc
            raise
        flags = _text(connection.response("PERMANENTFLAGS")[1])
        self.keyword = "\\*" in flags or IMAP_KEYWORD in flags
        self.connection = connection

    def close(self) -> None:
        connection, self.connection = self.connection, None
        if connection is None:
            return
        try:
            connection.logout()
        except (imaplib.IMAP4.error, OSError):
            # a lost connection cannot say LOGOUT; its socket is closed all the same
            with contextlib.suppress(OSError):
                connection.shutdown()

    def _command(self, *args: str) -> list[object]:
        assert self.connection is not None
        try:
            status, data = self.connection.uid(*args)
        except imaplib.IMAP4.abort as exc:
            raise BounceSourceError(
                f"the connection to {self._where()} was lost ({exc}); what was read so far is "
                "kept, the rest is read at the next fetch"
            ) from exc
        except (imaplib.IMAP4.error, OSError) as exc:
            raise BounceSourceError(f"{self._where()}: {args[0]} failed: {exc}") from exc
        if status != "OK":
            raise BounceSourceError(f"{self._where()}: {args[0]} answered {_text(data)}")
        return list(data)

    def messages(self, reprocess: bool) -> Iterator[tuple[str, bytes]]:
        unread = f"UNKEYWORD {IMAP_KEYWORD}" if self.keyword else "UNSEEN"
        criteria = "ALL" if reprocess else unread
        found = self._command("SEARCH", criteria)
        uids = _text(found).split()
        for uid in uids:
            data = self._command("FETCH", uid, f"(BODY.PEEK[]<0.{MAX_READ_BYTES}>)")
            body = next(
                (item[1] for item in data if isinstance(item, tuple) and len(item) == 2), None
            )
            if isinstance(body, bytes):
                yield uid, body

    def mark_processed(self, key: str) -> None:
        flags = f"({IMAP_KEYWORD} \\Seen)" if self.keyword else "(\\Seen)"
        self._command("STORE", key, "+FLAGS", flags)
        if self.delete:
            self._command("STORE", key, "+FLAGS", "(\\Deleted)")
            self._expunge()
        elif self.processed_folder:
            self._command("COPY", key, _quoted(self.processed_folder))
            self._command("STORE", key, "+FLAGS", "(\\Deleted)")
            self._expunge()

    def wait_for_mail(self, timeout: float, stop: threading.Event) -> None:
        """Wait until the server announces new mail (IMAP IDLE, RFC 2177), ``timeout``
        seconds pass or ``stop`` is set; a server without IDLE is polled."""
        connection = self.connection
        assert connection is not None
        if "IDLE" not in connection.capabilities:
            stop.wait(timeout)
            return
        try:
            connection.send(_IDLE_TAG + b" IDLE\r\n")
            if not connection.readline().startswith(b"+"):
                raise BounceSourceError(f"{self._where()} refused IDLE")
            sock = connection.socket()
            deadline = time.monotonic() + timeout
            while not stop.is_set() and time.monotonic() < deadline:
                pending = isinstance(sock, ssl.SSLSocket) and sock.pending() > 0
                if not pending and not select.select([sock], [], [], 0.5)[0]:
                    continue
                line = connection.readline()
                if not line:
                    raise BounceSourceError(f"{self._where()} closed the connection")
                if line.rstrip().upper().endswith((b"EXISTS", b"RECENT")):
                    break
            connection.send(b"DONE\r\n")
            while not (line := connection.readline()).startswith(_IDLE_TAG + b" "):
                if not line:
                    raise BounceSourceError(f"{self._where()} closed the connection")
        except (OSError, imaplib.IMAP4.error) as exc:
            raise BounceSourceError(f"the connection to {self._where()} was lost: {exc}") from exc

    def _expunge(self) -> None:
        assert self.connection is not None
        try:
            self.connection.expunge()
        except (imaplib.IMAP4.error, OSError) as exc:
            raise BounceSourceError(f"{self._where()}: EXPUNGE failed: {exc}") from exc


def _quoted(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _text(data: object) -> str:
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    if isinstance(data, list | tuple):
        return " ".join(_text(item) for item in data if item is not None)
    return "" if data is None else str(data)


__all__ = [
    "BounceSourceError",
    "FetchReport",
    "IMAPSource",
    "MaildirSource",
    "fetch_bounces",
    "mailbox_problem",
    "open_source",
    "watch_bounces",
]
