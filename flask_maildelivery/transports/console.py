"""The ``console`` transport: writes each message to standard output (development)."""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING, TextIO

from .base import OutgoingMessage, SendResult, Transport

if TYPE_CHECKING:
    from flask import Flask


class ConsoleTransport(Transport):
    """Prints the full MIME message, envelope recipients first, to ``stream`` (stdout)."""

    name = "console"

    def __init__(self, app: Flask, stream: TextIO | None = None) -> None:
        super().__init__(app)
        self.stream = stream
        self._lock = threading.Lock()

    def send(self, message: OutgoingMessage) -> SendResult:
        stream = self.stream or sys.stdout
        with self._lock:
            stream.write(f"--- envelope to: {', '.join(message.envelope_recipients)}\n")
            stream.write(message.mime.as_string())
            stream.write("\n--- end of message\n")
            stream.flush()
        return SendResult()
