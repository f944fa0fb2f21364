"""VERP: the envelope sender of each SMTP send is a tagged bounce address whose token
names the email and is signed, so a bounce finds its email and a forged one is refused.

``bounces@erp.example`` becomes ``bounces+<token>@erp.example``: the token is the email's
``public_id`` (16 bytes) and the first 8 bytes of an HMAC-SHA256 of it, in lower-case
base32 (39 characters, case-insensitive, as some mail servers fold local parts). Pure
functions: no database, no Flask.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

#: Between the bounce address's local part and the token.
DELIMITER = "+"
#: Bytes of the HMAC kept in the token: 64 bits, beyond any guessing by mail.
MAC_BYTES = 8
#: Length of a token.
TOKEN_LENGTH = 39
#: RFC 5321's limit on the local part of an address.
MAX_LOCAL_PART = 64
_CONTEXT = b"flask-maildelivery verp\n"


def secret_bytes(secret: str | bytes) -> bytes:
    """A secret as the HMAC key."""
    return secret if isinstance(secret, bytes) else secret.encode()


def _mac(secret: str | bytes, raw_id: bytes) -> bytes:
    return hmac.new(secret_bytes(secret), _CONTEXT + raw_id, hashlib.sha256).digest()[:MAC_BYTES]


def make_token(public_id: str, secret: str | bytes) -> str | None:
    """The token of the email ``public_id`` (32 hex characters), signed with ``secret``;
    ``None`` for an id that is not 32 hex characters (no VERP for it)."""
    try:
        raw_id = bytes.fromhex(public_id)
    except ValueError:
        return None
    if len(raw_id) != 16:
        return None
    token = base64.b32encode(raw_id + _mac(secret, raw_id)).decode().rstrip("=").lower()
    assert len(token) == TOKEN_LENGTH
    return token


def tagged_address(bounce_address: str, public_id: str, secret: str | bytes) -> str:
    """The envelope sender of the email ``public_id``: ``local+token@domain``, or the bounce
    address itself when the id cannot be tagged."""
    token = make_token(public_id, secret)
    if token is None:
        return bounce_address
    local, _, domain = bounce_address.rpartition("@")
    return f"{local}{DELIMITER}{token}@{domain}"


def bounce_address_problem(bounce_address: str) -> str | None:
    """Why ``bounce_address`` cannot carry a token, or ``None``."""
    local, at, domain = bounce_address.rpartition("@")
    if not at or not local or not domain or any(c.isspace() for c in bounce_address):
        return f"MAILDELIVERY_BOUNCE_ADDRESS={bounce_address!r} is not an address like bounces@erp.example"
    if DELIMITER in local:
        return (
            f"MAILDELIVERY_BOUNCE_ADDRESS={bounce_address!r} already has a {DELIMITER!r} in its "
            "local part; give the untagged address (the token is added after a '+')"
        )
    if len(local) + len(DELIMITER) + TOKEN_LENGTH > MAX_LOCAL_PART:
        return (
            f"the local part of MAILDELIVERY_BOUNCE_ADDRESS={bounce_address!r} is too long to "
            f"carry a token: at most {MAX_LOCAL_PART - len(DELIMITER) - TOKEN_LENGTH} characters"
        )
    return None


@dataclass(frozen=True)
class TokenCheck:
    """What an address says about the email a bounce is for.

    :param tagged: the address is the bounce address with a token.
    :param public_id: the email's ``public_id`` when the token verifies with one of the
        secrets, else ``None`` (a tagged address with ``public_id=None`` is forged).
    """

    tagged: bool
    public_id: str | None = None


def check_address(address: str, bounce_address: str, secrets: Sequence[str | bytes]) -> TokenCheck:
    """Whether ``address`` is ``bounce_address`` tagged with a token, and whether the token
    verifies with one of ``secrets`` (the current one first, older ones while they rotate
    out)."""
    local, _, domain = address.strip().strip("<>").rpartition("@")
    base_local, _, base_domain = bounce_address.rpartition("@")
    prefix = (base_local + DELIMITER).lower()
    if domain.lower() != base_domain.lower() or not local.lower().startswith(prefix):
        return TokenCheck(tagged=False)
    token = local[len(prefix) :].upper()
    try:
        raw = base64.b32decode(token + "=" * (-len(token) % 8))
    except (binascii.Error, ValueError):
        return TokenCheck(tagged=True)
    raw_id, mac = raw[:16], raw[16:]
    if len(raw_id) != 16 or len(mac) != MAC_BYTES:
        return TokenCheck(tagged=True)
    for secret in secrets:
        if hmac.compare_digest(_mac(secret, raw_id), mac):
            return TokenCheck(tagged=True, public_id=raw_id.hex())
    return TokenCheck(tagged=True)
