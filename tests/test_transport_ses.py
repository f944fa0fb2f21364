"""The ``ses`` transport against a fake Amazon SES API v2 on loopback that verifies the
Signature Version 4 of every request; and the signer against AWS's published examples (the
scenarios shared by every provider are in ``test_transport_contract.py``)."""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import hmac
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from werkzeug.wrappers import Response

from flask_maildelivery import MailDelivery
from flask_maildelivery.transports.ses import SESTransport

from .aws_signature import canonical_request, signature, signing_key
from .conftest import AppFactory
from .fake_provider import FakeProvider, ReceivedRequest, json_response
from .transport_contract import HTML, PDF, TEXT, TransportKit, stored

REGION = "eu-west-1"
ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#: The keys of the AWS account the fake SES knows: key id -> secret.
KNOWN_KEYS = {ACCESS_KEY_ID: SECRET_ACCESS_KEY}
MESSAGE_ID = "0102018c9e3a2b1d-5f6a7b8c-9d0e-4f1a-8b2c-3d4e5f6a7b8c-000000"
UNVERIFIED = (
    "Email address is not verified. The following identities failed the check in region "
    "EU-WEST-1: billing@acme.test"
)

# -- the fake's verifier against AWS's Signature Version 4 test suite --------------------

SUITE_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SUITE_DATE = "20150830T123600Z"


def _suite_signature(
    method: str,
    url: str,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    service: str = "service",
) -> str:
    host = url.split("/")[2]
    signed = {**(headers or {}), "Host": host, "X-Amz-Date": SUITE_DATE}
    canonical = canonical_request(method, url, signed, body)
    return signature(SUITE_SECRET, SUITE_DATE, "us-east-1", service, canonical)


def test_sigv4_get_vanilla() -> None:
    assert _suite_signature("GET", "https://example.amazonaws.com/") == (
        "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    )


def test_sigv4_get_vanilla_query_order_key_case() -> None:
    assert _suite_signature(
        "GET", "https://example.amazonaws.com/?Param2=value2&Param1=value1"
    ) == ("b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500")


def test_sigv4_post_x_www_form_urlencoded() -> None:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    request = canonical_request(
        "POST",
        "https://example.amazonaws.com/",
        {**headers, "Host": "example.amazonaws.com", "X-Amz-Date": SUITE_DATE},
        b"Param1=value1",
    )
    # the payload hash ends the canonical request; the request's own hash is in the
    # published string to sign
    assert request.endswith(
        "\ncontent-type;host;x-amz-date\n"
        "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e"
    )
    assert hashlib.sha256(request.encode()).hexdigest() == (
        "42a5e5bb34198acb3e84da4f085bb7927f2bc277ca766e6d19c73c2154021281"
    )
    assert _suite_signature(
        "POST", "https://example.amazonaws.com/", headers, b"Param1=value1"
    ) == ("ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a")


def test_sigv4_iam_list_users_example() -> None:
    # the worked example of AWS's signing documentation, derived key included
    assert signing_key(SUITE_SECRET, "20150830", "us-east-1", "iam").hex() == (
        "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
    )
    assert _suite_signature(
        "GET",
        "https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08",
        {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        service="iam",
    ) == ("5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7")


# -- a fake SES API v2 -------------------------------------------------------------------


def ses_error(status: int, error_type: str, message: str) -> Response:
    return json_response(
        status,
        {"message": message},
        headers={"x-amzn-ErrorType": f"{error_type}:http://internal.amazon.com/coral/"},
    )


def _verify_signature(request: ReceivedRequest) -> str | None:
    """Check the request's SigV4 signature as AWS does; the reason it fails, or ``None``."""
    authorization = request.headers.get("Authorization", "")
    algorithm, _, rest = authorization.partition(" ")
    if algorithm != "AWS4-HMAC-SHA256":
        return "Missing Authentication Token"
    fields = dict(part.strip().split("=", 1) for part in rest.split(","))
    key_id, date, region, service, terminal = fields["Credential"].split("/")
    if key_id not in KNOWN_KEYS:
        return "The security token included in the request is invalid."
    amz_date = request.headers.get("X-Amz-Date", "")
    moment = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    if abs(datetime.now(UTC) - moment) > timedelta(minutes=5):
        return "Signature expired"
    if (date, region, service, terminal) != (amz_date[:8], REGION, "ses", "aws4_request"):
        return f"Credential should be scoped to a valid region and service, not {region}/{service}"
    signed_names = fields["SignedHeaders"].split(";")
    if not {"host", "x-amz-date", "content-type"} <= set(signed_names):
        return "host, x-amz-date and content-type must be signed"
    url = f"http://{request.headers['Host']}{request.path}"
    if request.query:
        url += f"?{request.query}"
    canonical = canonical_request(
        request.method, url, {n: request.headers[n] for n in signed_names}, request.body
    )
    expected = signature(KNOWN_KEYS[key_id], amz_date, region, service, canonical)
    if not hmac.compare_digest(expected, fields["Signature"]):
        return (
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method."
        )
    return None


def send_email_api(
    answer: Callable[[ReceivedRequest], Response] | None = None,
) -> Callable[[ReceivedRequest], Response]:
    """A fake ``POST /v2/email/outbound-emails``: verifies the signature, then the body's
    content and recipients, then gives ``answer`` (default: 200 with a MessageId)."""

    def respond(request: ReceivedRequest) -> Response:
        if request.method != "POST" or request.path != "/v2/email/outbound-emails":
            return ses_error(404, "NotFoundException", "Not found")
        problem = _verify_signature(request)
        if problem is not None:
            return ses_error(403, "InvalidSignatureException", problem)
        if request.headers.get("Content-Type") != "application/json":
            return ses_error(400, "BadRequestException", "Content-Type must be JSON")
        body = request.json()
        content = body.get("Content", {})
        if len(content) != 1 or not (content.get("Raw", {}).get("Data") or "Simple" in content):
            return ses_error(400, "BadRequestException", "Content must hold one message")
        if not any(body.get("Destination", {}).values()):
            return ses_error(400, "BadRequestException", "Missing required field Destination")
        if answer is not None:
            return answer(request)
        return json_response(200, {"MessageId": MESSAGE_ID})

    return respond


KIT = TransportKit(
    name="ses",
    credentials={
        "MAILDELIVERY_SES_REGION": REGION,
        "MAILDELIVERY_SES_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "MAILDELIVERY_SES_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
    },
    api_url_setting="MAILDELIVERY_SES_API_URL",
    api=send_email_api,
    missing_settings=tuple(
        (setting, f"needs {setting}: set it to")
        for setting in (
            "MAILDELIVERY_SES_REGION",
            "MAILDELIVERY_SES_ACCESS_KEY_ID",
            "MAILDELIVERY_SES_SECRET_ACCESS_KEY",
        )
    ),
    refusal=lambda request: ses_error(400, "MessageRejected", UNVERIFIED),
    refusal_error=f"Amazon SES refused the message (HTTP 400): MessageRejected: {UNVERIFIED}",
    # a wrong secret is never sent: the fake finds the signature does not match
    wrong_credentials={"MAILDELIVERY_SES_SECRET_ACCESS_KEY": "not-the-secret"},
    wrong_credentials_error=(
        "Amazon SES refused the message (HTTP 403): InvalidSignatureException: The request "
        "signature we calculated does not match the signature you provided. Check your AWS "
        "Secret Access Key and signing method. (check the Amazon SES credentials in the "
        "MAILDELIVERY_* settings)"
    ),
    wrong_credentials_header=None,
    transient={
        "429": lambda request: ses_error(429, "TooManyRequestsException", "Too many requests"),
        "400 throttling": lambda request: ses_error(
            400, "ThrottlingException", "Maximum sending rate exceeded."
        ),
        "500": lambda request: ses_error(500, "InternalFailure", "internal failure"),
    },
    stored_message_id=MESSAGE_ID,
    # SES events (through SNS) carry the SendEmail MessageId as mail.messageId
    webhook_message_id=MESSAGE_ID,
    webhook_recipient="archive@acme.test",
    options={"MAILDELIVERY_SES_CONFIGURATION_SET": "invoices"},
)


def _raw_message(data: str) -> EmailMessage:
    message = email.message_from_bytes(base64.b64decode(data), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_sends_the_documented_signed_request(
    make_app: AppFactory, provider_server: FakeProvider
) -> None:
    _, email_sent, request = KIT.send_invoice(make_app, provider_server, **KIT.options)
    assert request.path == "/v2/email/outbound-emails"
    assert request.headers["Authorization"].startswith(
        f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY_ID}/"
    )
    body = request.json()
    raw = body["Content"]["Raw"]["Data"]
    assert body == {
        "FromEmailAddress": "billing@acme.test",
        "Destination": {
            "ToAddresses": ["ann@customer.test", "bob@customer.test"],
            "CcAddresses": ["accounting@customer.test"],
            "BccAddresses": ["archive@acme.test"],
        },
        "Content": {"Raw": {"Data": raw}},
        "EmailTags": [{"Name": "maildelivery_id", "Value": email_sent.public_id}],
        "ConfigurationSetName": "invoices",
    }
    assert b"\r\n" in base64.b64decode(raw)
    message = _raw_message(raw)
    assert message["From"] == "Acme Billing <billing@acme.test>"
    assert message["To"] == "ann@customer.test, Bob Martin <bob@customer.test>"
    assert message["Cc"] == "accounting@customer.test"
    assert message["Reply-To"] == "accounts@acme.test"
    assert message["Subject"] == "Invoice INV-0042"
    assert message["X-MailDelivery-ID"] == email_sent.public_id
    assert message["X-Invoice"] == "INV-0042"
    assert "Bcc" not in message
    text_part = message.get_body(("plain",))
    html_part = message.get_body(("html",))
    assert text_part is not None
    assert html_part is not None
    assert text_part.get_content().strip() == TEXT
    assert html_part.get_content().strip() == HTML
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == "INV-0042.pdf"
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_content() == PDF


def test_the_default_endpoint_is_the_region_s(make_app: AppFactory) -> None:
    app = make_app(MAILDELIVERY_TRANSPORT="ses", **KIT.credentials)
    transport = MailDelivery.state(app).transport
    assert isinstance(transport, SESTransport)
    assert transport.url == ("https://email.eu-west-1.amazonaws.com/v2/email/outbound-emails")


# -- credentials: ours when set, else AWS's standard chain (botocore) ----------------------

#: Temporary credentials the chain hands out in these tests (known to the fake SES).
CHAIN_KEY_ID = "ASIAQCHAINEXAMPLE001"
CHAIN_SECRET = "cHaInSeCrEt/K7MDENG/bPxRfiCYEXAMPLEKEY"
CHAIN_TOKEN = "IQoJb3JpZ2luX2VjEXAMPLE-session-token"
#: Our settings with no access key: the chain decides.
NO_KEYS = {"MAILDELIVERY_SES_ACCESS_KEY_ID": None, "MAILDELIVERY_SES_SECRET_ACCESS_KEY": None}


@pytest.fixture
def aws_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A process whose AWS credentials are only what the test gives it: a temporary HOME
    (``~/.aws`` inside it), no ``AWS_*`` variables, the instance metadata service off; the
    fake SES knows the chain's key."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setitem(KNOWN_KEYS, CHAIN_KEY_ID, CHAIN_SECRET)
    return tmp_path


def _chain_key_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", CHAIN_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CHAIN_SECRET)


def _credential(request: ReceivedRequest) -> str:
    """The access key id a request was signed with."""
    return request.headers["Authorization"].split("Credential=", 1)[1].split("/", 1)[0]


def test_credentials_from_environment_variables(
    make_app: AppFactory,
    provider_server: FakeProvider,
    aws_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _chain_key_in_environment(monkeypatch)
    monkeypatch.setenv("AWS_SESSION_TOKEN", CHAIN_TOKEN)
    app, sent, request = KIT.send_invoice(make_app, provider_server, **NO_KEYS)
    assert _credential(request) == CHAIN_KEY_ID
    # temporary credentials: the token is sent and signed
    assert request.headers["X-Amz-Security-Token"] == CHAIN_TOKEN
    assert "x-amz-security-token" in request.headers["Authorization"]
    assert stored(app, sent.id).result == "queued"


def test_credentials_from_a_profile_of_the_shared_credentials_file(
    make_app: AppFactory,
    provider_server: FakeProvider,
    aws_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (aws_home / ".aws").mkdir()
    (aws_home / ".aws" / "credentials").write_text(
        "[default]\n"
        "aws_access_key_id = AKIAOTHERPROFILE0000\n"
        "aws_secret_access_key = not-this-one\n"
        "\n"
        "[invoices]\n"
        f"aws_access_key_id = {CHAIN_KEY_ID}\n"
        f"aws_secret_access_key = {CHAIN_SECRET}\n"
    )
    monkeypatch.setenv("AWS_PROFILE", "invoices")
    app, sent, request = KIT.send_invoice(make_app, provider_server, **NO_KEYS)
    assert _credential(request) == CHAIN_KEY_ID
    assert "X-Amz-Security-Token" not in request.headers
    assert stored(app, sent.id).provider_message_id == MESSAGE_ID


def test_our_keys_win_over_the_chain(
    make_app: AppFactory,
    provider_server: FakeProvider,
    aws_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _chain_key_in_environment(monkeypatch)
    _, _, request = KIT.send_invoice(make_app, provider_server)
    assert _credential(request) == ACCESS_KEY_ID


def test_no_credentials_anywhere_fails_at_init_app(make_app: AppFactory, aws_home: Path) -> None:
    with pytest.raises(ValueError, match="found no AWS credentials: set MAILDELIVERY_SES"):
        make_app(MAILDELIVERY_TRANSPORT="ses", MAILDELIVERY_SES_REGION=REGION)
