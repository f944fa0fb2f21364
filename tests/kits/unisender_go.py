"""Unisender Go kit: ``{"auth", "events_by_user": [{"events": [...]}]}`` batches whose
``auth`` is the MD5 of the body written with the API key (generated here) in its place."""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from .base import EXPECTED_TYPES, Facts, Kit


def unisender_body(data: dict[str, Any], api_key: str) -> bytes:
    """``data`` as Unisender Go posts it: compact JSON whose ``auth`` is the MD5 of the same
    text with the API key as ``auth``."""
    with_key = json.dumps({**data, "auth": api_key}, separators=(",", ":"))
    auth = hashlib.md5(with_key.encode(), usedforsecurity=False).hexdigest()
    return json.dumps({**data, "auth": auth}, separators=(",", ":")).encode()


def unisender_time(at: datetime) -> str:
    """``at`` as Unisender Go writes times: UTC ``YYYY-MM-DD HH:MM:SS``."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


@dataclass
class UnisenderGoKit(Kit):
    provider: ClassVar[str] = "unisender_go"
    kinds: ClassVar[frozenset[str]] = frozenset(EXPECTED_TYPES) - {"dropped"}
    malformed_event: ClassVar[dict[str, Any]] = {"event_name": "transactional_email_status"}
    batch: ClassVar[bool] = True
    signs_time: ClassVar[bool] = False
    api_key: str = field(default_factory=lambda: secrets.token_hex(24))

    def config(self) -> dict[str, Any]:
        return {"MAILDELIVERY_UNISENDER_GO_API_KEY": self.api_key}

    def wrong_config(self) -> dict[str, Any]:
        return {"MAILDELIVERY_UNISENDER_GO_API_KEY": "another-api-key"}

    def new_message_id(self) -> str:
        return f"1a{secrets.token_hex(2)}-{secrets.token_hex(3)}-S0"

    def shape(self, kind: str, facts: Facts) -> dict[str, Any]:
        status, info = {
            "processed": ("sent", {}),
            "delivered": ("delivered", {}),
            "deferred": (
                "soft_bounced",
                {"delivery_status": "err_will_retry", "destination_response": "421 try later"},
            ),
            "soft_bounce": (
                "soft_bounced",
                {
                    "delivery_status": "err_mailbox_full",
                    "destination_response": "452 4.2.2 mailbox full",
                },
            ),
            "hard_bounce": (
                "hard_bounced",
                {
                    "delivery_status": "err_user_unknown",
                    "destination_response": "550 5.1.1 no such user",
                },
            ),
            "open": ("opened", {"user_agent": "Mozilla/5.0", "ip": "192.0.2.7"}),
            "click": ("clicked", {"user_agent": "Mozilla/5.0", "ip": "192.0.2.7"}),
            "complaint": ("spam", {}),
            "unsubscribe": ("unsubscribed", {}),
            "unknown": ("future_status", {}),
        }[kind]
        data: dict[str, Any] = {
            "job_id": facts.message_id or "1a0000-000000-S0",
            "metadata": {"maildelivery_id": facts.public_id, "event": facts.event_id}
            if facts.public_id
            else {"event": facts.event_id},
            "email": facts.address,
            "status": status,
            "event_time": unisender_time(facts.at),
        }
        if kind == "click":
            data["url"] = "https://acme.test/invoice/42"
        if info:
            data["delivery_info"] = info
        return {"event_name": "transactional_email_status", "event_data": data}

    def build_request(
        self, events: list[dict[str, Any]], mode: str, signed_at: datetime
    ) -> tuple[bytes, dict[str, str]]:
        data = {
            "events_by_user": [
                {
                    "user_id": 456,
                    "project_id": "6432890213745872",
                    "project_name": "ERP",
                    "events": events,
                }
            ]
        }
        key = {"valid": self.api_key, "forged": "guessed"}.get(mode)
        body = unisender_body(data, key) if key else json.dumps(data).encode()
        return body, {"Content-Type": "application/json"}
