"""Postmark kit: one JSON record per request, routed on ``RecordType``; basic auth."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from .base import EXPECTED_TYPES, BasicAuthKit, Facts

#: Test kind -> bounce ``Type`` and ``TypeCode`` (postmark.js ``BounceTypeCode``).
BOUNCES = {
    "soft_bounce": ("SoftBounce", 4096),
    "hard_bounce": ("HardBounce", 1),
    "dropped": ("ManuallyDeactivated", 100002),
    "unsubscribe": ("Unsubscribe", 16),
}


def postmark_time(at: datetime) -> str:
    """``at`` as Postmark writes times: UTC, seven fractional digits, ``Z``."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


class PostmarkKit(BasicAuthKit):
    provider: ClassVar[str] = "postmark"
    kinds: ClassVar[frozenset[str]] = frozenset(EXPECTED_TYPES) - {"processed", "deferred"}
    malformed_event: ClassVar[dict[str, Any]] = {
        "RecordType": "Delivery",
        "Recipient": "ann@customer.test",
    }

    def new_message_id(self) -> str:
        return str(uuid.uuid4())

    def shape(self, kind: str, facts: Facts) -> dict[str, Any]:
        common = {
            "MessageID": facts.message_id or "00000000-0000-4000-8000-000000000000",
            "MessageStream": "outbound",
            "ServerID": 23,
            "Tag": "invoice",
            "Metadata": {"maildelivery_id": facts.public_id} if facts.public_id else {},
        }
        when = postmark_time(facts.at)
        if kind in BOUNCES or kind == "complaint":
            name, code = BOUNCES.get(kind, ("SpamComplaint", 100001))
            return {
                **common,
                "RecordType": "SpamComplaint" if kind == "complaint" else "Bounce",
                "ID": abs(hash(facts.event_id)) % 10**12,
                "Type": name,
                "TypeCode": code,
                "Email": facts.address,
                "BouncedAt": when,
                "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist",
                "Description": "The server was unable to deliver your message",
                "Inactive": kind != "soft_bounce",
                "CanActivate": True,
            }
        records: dict[str, dict[str, Any]] = {
            "delivered": {
                "RecordType": "Delivery",
                "Recipient": facts.address,
                "DeliveredAt": when,
                "Details": "Test delivery webhook details",
            },
            "open": {
                "RecordType": "Open",
                "Recipient": facts.address,
                "ReceivedAt": when,
                "FirstOpen": True,
            },
            "click": {
                "RecordType": "Click",
                "Recipient": facts.address,
                "ReceivedAt": when,
                "OriginalLink": "https://acme.test/invoice/42",
            },
            "unknown": {
                "RecordType": "FutureRecord",
                "Recipient": facts.address,
                "ReceivedAt": when,
            },
        }
        return {**common, **records[kind]}
