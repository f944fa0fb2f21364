"""The ``memory`` transport: keeps every message in an outbox list (for tests)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from .base import OutgoingMessage, SendResult, Transport

if TYPE_CHECKING:
    from flask import Flask


class MemoryTransport(Transport):
    """Appends each message to :attr:`outbox`; nothing leaves the process."""

    name = "memory"

    def __init__(self, app: Flask) -> None:
        super().__init__(app)
        #: Every message sent through this app, oldest first.
        self.outbox: list[OutgoingMessage] = []
        self._lock = threading.Lock()

    def send(self, message: OutgoingMessage) -> SendResult:
        with self._lock:
            self.outbox.append(message)
        return SendResult()
