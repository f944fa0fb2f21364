"""What is particular to the Amazon SES webhook; the mapping of each documented event, like the
rest of what every provider webhook keeps, is in ``test_webhooks_contract.py``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from .kits import SESKit, post
from .kits.ses import CERT_URL, rsa_key
from .webhook_helpers import email_result, recipient_states, send_email, stored_events


def delivered(
    kit: SESKit, public_id: str | None, address: str = "ann@customer.test"
) -> dict[str, Any]:
    return kit.one_event("delivered", public_id, message_id="0100018c-test", address=address)


def confirmation(
    kit: SESKit, message_id: str, subscribe_url: str, text: str = "subscribe"
) -> dict[str, Any]:
    """An SNS ``SubscriptionConfirmation`` envelope, unsigned."""
    return kit.envelope(
        text,
        message_id,
        datetime.now(UTC),
        kind="SubscriptionConfirmation",
        Token="abc",
        SubscribeURL=subscribe_url,
    )


def test_subscription_confirmation_is_confirmed(make_app: Any) -> None:
    kit = SESKit()
    app = kit.start(make_app)
    url = "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=abc"
    envelope = confirmation(kit, "conf-1", url, "You have chosen to subscribe to the topic.")
    response = post(app, kit, kit.post(kit.sign(envelope)))
    assert response.status_code == 200
    assert kit.subscriptions.confirmed == [url]
    assert stored_events(app) == []


def test_unsigned_subscription_confirmation_is_not_fetched(make_app: Any) -> None:
    kit = SESKit()
    app = kit.start(make_app)
    envelope = confirmation(
        kit, "conf-2", "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription"
    )
    forged = {**kit.sign(envelope, key=rsa_key(1))}
    assert post(app, kit, kit.post(forged)).status_code == 403
    assert kit.subscriptions.confirmed == []


def test_subscription_url_outside_aws_is_refused(make_app: Any) -> None:
    kit = SESKit()
    app = kit.start(make_app)
    envelope = confirmation(kit, "conf-3", "https://attacker.test/confirm")
    assert post(app, kit, kit.post(kit.sign(envelope))).status_code == 403
    assert kit.subscriptions.confirmed == []


@pytest.mark.parametrize(
    "url",
    [
        "https://sns.evil.com/cert.pem",
        "https://s3.amazonaws.com/cert.pem",
        "http://sns.us-east-1.amazonaws.com/cert.pem",
        "https://sns.us-east-1.amazonaws.com/cert.txt",
        "https://sns.us-east-1.amazonaws.com.evil.test/cert.pem",
        "https://user@sns.us-east-1.amazonaws.com/cert.pem",
    ],
)
def test_certificate_url_must_be_an_sns_pem(make_app: Any, url: str) -> None:
    kit = SESKit()
    kit.certificates.pems[url] = kit.certificates.pems[CERT_URL]
    app = kit.start(make_app)
    _, public_id = send_email(app)
    event = delivered(kit, public_id)
    envelope = kit.envelope(
        json.dumps(event["event"]), "m-1", datetime.now(UTC), SigningCertURL=url
    )
    response = post(app, kit, kit.post(kit.sign(envelope)))
    assert response.status_code == 403
    assert "SigningCertURL" in response.get_json()["error"]
    assert kit.certificates.fetched == []  # refused before any download
    assert stored_events(app) == []


def test_signature_version_1_is_accepted(make_app: Any) -> None:
    kit = SESKit(signature_version="1")
    app = kit.start(make_app)
    email_id, public_id = send_email(app)
    assert kit.post_events(app, [delivered(kit, public_id)]).status_code == 200
    assert recipient_states(app, email_id)["ann@customer.test"][0] == "delivered"


def test_certificate_is_fetched_once(make_app: Any) -> None:
    kit = SESKit()
    app = kit.start(make_app)
    _, public_id = send_email(app)
    for _ in range(3):
        assert kit.post_events(app, [delivered(kit, public_id)]).status_code == 200
    assert kit.certificates.fetched == [CERT_URL]


def test_topic_outside_the_allow_list_is_refused(make_app: Any) -> None:
    kit = SESKit()
    app = kit.start(make_app, MAILDELIVERY_SES_TOPIC_ARNS=["arn:aws:sns:us-east-1:1:other"])
    _, public_id = send_email(app)
    response = kit.post_events(app, [delivered(kit, public_id)])
    assert response.status_code == 403
    assert "MAILDELIVERY_SES_TOPIC_ARNS" in response.get_json()["error"]


def test_message_type_header_must_match(make_app: Any) -> None:
    kit = SESKit()
    app = kit.start(make_app)
    _, public_id = send_email(app)
    body, headers = kit.request([delivered(kit, public_id)])
    headers["x-amz-sns-message-type"] = "SubscriptionConfirmation"
    assert post(app, kit, (body, headers)).status_code == 403


def test_subject_is_part_of_the_signed_string(make_app: Any) -> None:
    kit = SESKit()
    app = kit.start(make_app)
    email_id, public_id = send_email(app)
    event = delivered(kit, public_id)
    envelope = kit.sign(
        kit.envelope(json.dumps(event["event"]), "m-2", datetime.now(UTC), Subject="SES")
    )
    tampered = {**envelope, "Subject": "Other"}
    assert post(app, kit, kit.post(tampered)).status_code == 403
    assert post(app, kit, kit.post(envelope)).status_code == 200
    assert recipient_states(app, email_id)["ann@customer.test"][0] == "delivered"


def test_topic_validation_notice_is_acknowledged(make_app: Any) -> None:
    kit = SESKit()
    app = kit.start(make_app)
    text = "Successfully validated SNS topic for Amazon SES event publishing."
    response = post(app, kit, kit.post(kit.sign(kit.envelope(text, "m-3", datetime.now(UTC)))))
    assert response.status_code == 200
    assert stored_events(app) == []


def test_bounce_naming_several_recipients(make_app: Any) -> None:
    kit = SESKit()
    app = kit.start(make_app)
    email_id, public_id = send_email(
        app, to=("ann@customer.test", "bob@customer.test", "cy@customer.test")
    )
    event = kit.one_event("hard_bounce", public_id, message_id="0100018c-test")
    event["event"]["bounce"]["bouncedRecipients"].append(
        {
            "emailAddress": "bob@customer.test",
            "status": "5.1.1",
            "diagnosticCode": "smtp; 550 unknown",
        }
    )
    assert kit.post_events(app, [event]).status_code == 200
    states = recipient_states(app, email_id)
    assert states["ann@customer.test"][0] == "bounced"
    assert states["bob@customer.test"][0] == "bounced"
    assert states["cy@customer.test"][0] == "queued"
    assert email_result(app, email_id) == ("warning", "bounced")
    assert len(stored_events(app)) == 2


def test_suppressed_bounce_is_dropped(make_app: Any) -> None:
    kit = SESKit()
    app = kit.start(make_app)
    email_id, public_id = send_email(app)
    event = kit.one_event("hard_bounce", public_id, message_id="0100018c-test")
    event["event"]["bounce"]["bounceSubType"] = "OnAccountSuppressionList"
    assert kit.post_events(app, [event]).status_code == 200
    assert recipient_states(app, email_id)["ann@customer.test"][0] == "dropped"


def test_certificate_download_failure_is_a_502_so_sns_retries(make_app: Any) -> None:
    kit = SESKit()
    app = kit.start(make_app)
    kit.certificates.pems.clear()
    _, public_id = send_email(app)
    assert kit.post_events(app, [delivered(kit, public_id)]).status_code == 502
