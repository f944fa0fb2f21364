"""The checking side of AWS Signature Version 4, as AWS documents it ("Create a signed AWS
API request"): what the fake SES API recomputes to verify a request, independent of the
signer the transport uses (botocore). Checked against AWS's published test-suite values in
``test_transport_ses.py``."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import parse_qsl, quote, unquote, urlsplit

ALGORITHM = "AWS4-HMAC-SHA256"


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def _encode(value: str) -> str:
    # RFC 3986 unreserved characters stay; everything else is %XX (upper-case hex)
    return quote(value, safe="-_.~")


def canonical_request(method: str, url: str, headers: Mapping[str, str], body: bytes) -> str:
    """The canonical request of the signing process (step 1)."""
    parts = urlsplit(url)
    path = "/".join(_encode(unquote(s)) for s in parts.path.split("/")) if parts.path else "/"
    pairs = sorted(
        (_encode(n), _encode(v)) for n, v in parse_qsl(parts.query, keep_blank_values=True)
    )
    normalized = sorted(
        (name.strip().lower(), " ".join(str(value).split())) for name, value in headers.items()
    )
    return "\n".join(
        [
            method.upper(),
            path,
            "&".join(f"{n}={v}" for n, v in pairs),
            "".join(f"{name}:{value}\n" for name, value in normalized),
            ";".join(name for name, _ in normalized),
            hashlib.sha256(body).hexdigest(),
        ]
    )


def signing_key(secret_access_key: str, date: str, region: str, service: str) -> bytes:
    """The derived signing key for a day (``YYYYMMDD``), region and service (step 3)."""
    key = _hmac(f"AWS4{secret_access_key}".encode(), date)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    return key


def signature(
    secret_access_key: str, amz_date: str, region: str, service: str, canonical: str
) -> str:
    """The hex signature of a canonical request made at ``amz_date`` (steps 2 and 4)."""
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join(
        [ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = signing_key(secret_access_key, amz_date[:8], region, service)
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
