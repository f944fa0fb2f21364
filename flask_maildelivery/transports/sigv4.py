"""AWS Signature Version 4 request signing (``AWS4-HMAC-SHA256``), with :mod:`hmac` and
:mod:`hashlib` only, as AWS documents it ("Create a signed AWS API request").

Only what the ``ses`` transport needs: header-based signing of a request whose body is in
memory. Checked against the published examples of AWS's Signature Version 4 test suite
(``tests/test_transport_ses.py``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qsl, quote, unquote, urlsplit

ALGORITHM = "AWS4-HMAC-SHA256"


@dataclass(frozen=True)
class Credentials:
    """An AWS access key (and the session token of temporary credentials)."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def _encode(value: str) -> str:
    # RFC 3986 unreserved characters stay; everything else is %XX (upper-case hex)
    return quote(value, safe="-_.~")


def canonical_uri(path: str) -> str:
    """The path, each segment URI-encoded once (from its decoded form)."""
    if not path:
        return "/"
    return "/".join(_encode(unquote(segment)) for segment in path.split("/"))


def canonical_query(query: str) -> str:
    """The query parameters, encoded, sorted by name then value, joined with ``&``."""
    pairs = parse_qsl(query, keep_blank_values=True)
    encoded = sorted((_encode(name), _encode(value)) for name, value in pairs)
    return "&".join(f"{name}={value}" for name, value in encoded)


def canonical_headers(headers: Mapping[str, str]) -> tuple[str, str]:
    """``(canonical headers block, signed header names)`` for ``headers``: names
    lower-cased and sorted, values trimmed with inner runs of spaces collapsed."""
    normalized = sorted(
        (name.strip().lower(), " ".join(str(value).split())) for name, value in headers.items()
    )
    block = "".join(f"{name}:{value}\n" for name, value in normalized)
    signed = ";".join(name for name, _ in normalized)
    return block, signed


def canonical_request(method: str, url: str, headers: Mapping[str, str], body: bytes) -> str:
    """The canonical request of the signing process (step 1)."""
    parts = urlsplit(url)
    block, signed = canonical_headers(headers)
    return "\n".join(
        [
            method.upper(),
            canonical_uri(parts.path),
            canonical_query(parts.query),
            block,
            signed,
            hashlib.sha256(body).hexdigest(),
        ]
    )


def signing_key(secret_access_key: str, date: str, region: str, service: str) -> bytes:
    """The derived signing key for a day (``YYYYMMDD``), region and service (step 3)."""
    key = _hmac(f"AWS4{secret_access_key}".encode(), date)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, "aws4_request")


def sign_request(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    credentials: Credentials,
    region: str,
    service: str,
    now: datetime | None = None,
) -> dict[str, str]:
    """The headers of the signed request: ``headers`` plus ``Host`` (when absent),
    ``X-Amz-Date``, ``X-Amz-Security-Token`` (temporary credentials) and ``Authorization``.

    Every header given is signed, so send exactly the headers returned.
    """
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    amz_date = moment.strftime("%Y%m%dT%H%M%SZ")
    date = amz_date[:8]
    signed_headers = dict(headers)
    names = {name.lower() for name in signed_headers}
    if "host" not in names:
        signed_headers["Host"] = urlsplit(url).netloc
    signed_headers["X-Amz-Date"] = amz_date
    if credentials.session_token:
        signed_headers["X-Amz-Security-Token"] = credentials.session_token
    request = canonical_request(method, url, signed_headers, body)
    scope = f"{date}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join(
        [ALGORITHM, amz_date, scope, hashlib.sha256(request.encode("utf-8")).hexdigest()]
    )
    key = signing_key(credentials.secret_access_key, date, region, service)
    signature = hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    _, signed_names = canonical_headers(signed_headers)
    signed_headers["Authorization"] = (
        f"{ALGORITHM} Credential={credentials.access_key_id}/{scope}, "
        f"SignedHeaders={signed_names}, Signature={signature}"
    )
    return signed_headers


__all__ = [
    "ALGORITHM",
    "Credentials",
    "canonical_headers",
    "canonical_query",
    "canonical_request",
    "canonical_uri",
    "sign_request",
    "signing_key",
]
