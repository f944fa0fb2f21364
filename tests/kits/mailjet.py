"""Mailjet kit: one event object per request, or an array of them ("Version 2" grouping);
basic auth."""

from __future__ import annotations

import json
import secrets
from typing import Any, ClassVar

from .base import EXPECTED_TYPES, BasicAuthKit, Facts, epoch


class MailjetKit(BasicAuthKit):
    provider: ClassVar[str] = "mailjet"
    kinds: ClassVar[frozenset[str]] = frozenset(EXPECTED_TYPES) - {"processed", "deferred"}
    malformed_event: ClassVar[dict[str, Any]] = {"event": "sent", "MessageID": 1}
    batch: ClassVar[bool] = True

    def new_message_id(self) -> str:
        return str(1152921500000000000 + secrets.randbelow(10**15))

    def shape(self, kind: str, facts: Facts) -> dict[str, Any]:
        common: dict[str, Any] = {
            "time": epoch(facts.at),
            "MessageID": int(facts.message_id) if facts.message_id else 0,
            "Message_GUID": facts.event_id,
            "email": facts.address,
            "mj_campaign_id": 0,
            "mj_contact_id": 0,
            "customcampaign": "invoice",
            "CustomID": "",
            "Payload": json.dumps({"maildelivery_id": facts.public_id}) if facts.public_id else "",
        }
        extras: dict[str, dict[str, Any]] = {
            "delivered": {"event": "sent", "smtp_reply": "250 OK queued"},
            "soft_bounce": {
                "event": "bounce",
                "blocked": False,
                "hard_bounce": False,
                "error_related_to": "recipient",
                "error": "quota exceeded",
            },
            "hard_bounce": {
                "event": "bounce",
                "blocked": False,
                "hard_bounce": True,
                "error_related_to": "recipient",
                "error": "user unknown",
            },
            "dropped": {"event": "blocked", "error_related_to": "recipient", "error": "preblocked"},
            "open": {"event": "open", "ip": "192.0.2.1", "agent": "Mozilla/5.0"},
            "click": {"event": "click", "url": "https://acme.test/invoice/42"},
            "complaint": {"event": "spam", "source": "JMRPP"},
            "unsubscribe": {"event": "unsub", "mj_list_id": 1},
            "unknown": {"event": "future"},
        }
        return {**common, **extras[kind]}
