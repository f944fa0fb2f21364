"""SparkPost kit: a JSON array of ``{"msys": {"<class>_event": {...}}}`` elements; basic
auth."""

from __future__ import annotations

import secrets
from typing import Any, ClassVar

from .base import EXPECTED_TYPES, BasicAuthKit, Facts, epoch


class SparkPostKit(BasicAuthKit):
    provider: ClassVar[str] = "sparkpost"
    kinds: ClassVar[frozenset[str]] = frozenset(EXPECTED_TYPES)
    malformed_event: ClassVar[dict[str, Any]] = {"msys": {"message_event": {"type": "delivery"}}}
    batch: ClassVar[bool] = True

    def new_message_id(self) -> str:
        return str(secrets.randbelow(10**17) + 10**17)

    def shape(self, kind: str, facts: Facts) -> dict[str, Any]:
        body: dict[str, Any] = {
            "event_id": facts.event_id,
            "transmission_id": facts.message_id or "0",
            "message_id": "0000aaaa0000bbbb",
            "rcpt_to": facts.address,
            "raw_rcpt_to": facts.address,
            "timestamp": str(epoch(facts.at)),
            "campaign_id": "invoice",
            "rcpt_meta": {"maildelivery_id": facts.public_id} if facts.public_id else {},
        }
        klass, extra = {
            "processed": ("message_event", {"type": "injection"}),
            "delivered": ("message_event", {"type": "delivery"}),
            "deferred": (
                "message_event",
                {"type": "delay", "raw_reason": "421 try again", "error_code": "421"},
            ),
            "soft_bounce": (
                "message_event",
                {
                    "type": "bounce",
                    "bounce_class": "22",
                    "raw_reason": "452 mailbox full",
                    "error_code": "452",
                },
            ),
            "hard_bounce": (
                "message_event",
                {
                    "type": "bounce",
                    "bounce_class": "10",
                    "raw_reason": "550 5.1.1 no such user",
                    "error_code": "550",
                },
            ),
            "dropped": (
                "message_event",
                {"type": "policy_rejection", "raw_reason": "550 5.7.1 Recipient is suppressed"},
            ),
            "open": ("track_event", {"type": "open"}),
            "click": (
                "track_event",
                {"type": "click", "target_link_url": "https://acme.test/invoice/42"},
            ),
            "complaint": ("message_event", {"type": "spam_complaint", "fbtype": "abuse"}),
            "unsubscribe": ("unsubscribe_event", {"type": "list_unsubscribe"}),
            "unknown": ("relay_event", {"type": "future_event"}),
        }[kind]
        return {"msys": {klass: {**body, **extra}}}

    def wrap(self, events: list[dict[str, Any]]) -> Any:
        # always an array, even of one element
        return events
