"""What is particular to the Amazon SES webhook, and payloads copied from the AWS
documentation posted as they are written there; the mapping of each kind of event, like the
rest of what every provider webhook keeps, is in ``test_webhooks_contract.py``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from .conftest import AppFactory
from .kits import SESKit, iso, post
from .kits.ses import CERT_URL, TOPIC_ARN, rsa_key
from .log_helpers import ADMIN, make_log_app
from .webhook_helpers import (
    Outcome,
    email_result,
    event_outcome,
    recipient_outcome,
    recipient_states,
    send_email,
    set_message_id,
    stored_events,
)


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


def test_documented_bounce_record(make_app: Any) -> None:
    """The Bounce record of "Examples of event data that Amazon SES publishes to Amazon SNS"
    (docs.aws.amazon.com/ses/latest/dg/event-publishing-retrieving-sns-examples.html) inside
    the Notification of "Amazon SNS message and JSON formats"
    (docs.aws.amazon.com/sns/latest/dg/sns-message-and-json-formats.html), signed with
    SignatureVersion 1 by the certificate at its SigningCertURL. Changed: the SNS
    ``Timestamp`` (checked against the tolerance) and the message tags, which also carry the
    email's correlation id; the email's message id is the documented one."""
    kit = SESKit(signature_version="1")
    cert_url = (
        "https://sns.us-west-2.amazonaws.com/"
        "SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem"
    )
    kit.certificates.pems[cert_url] = kit.certificates.pems[CERT_URL]
    app = kit.start(
        make_app, MAILDELIVERY_SES_TOPIC_ARNS=["arn:aws:sns:us-west-2:123456789012:MyTopic"]
    )
    email_id, public_id = send_email(app, to=("recipient@example.com",))
    set_message_id(app, email_id, "EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000")
    record = {
        "eventType": "Bounce",
        "bounce": {
            "bounceType": "Permanent",
            "bounceSubType": "General",
            "bouncedRecipients": [
                {
                    "emailAddress": "recipient@example.com",
                    "action": "failed",
                    "status": "5.1.1",
                    "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                }
            ],
            "timestamp": "2017-08-05T00:41:02.669Z",
            "feedbackId": "01000157c44f053b-61b59c11-9236-11e6-8f96-7be8aexample-000000",
            "reportingMTA": "dsn; mta.example.com",
        },
        "mail": {
            "timestamp": "2017-08-05T00:40:02.012Z",
            "source": "Sender Name <sender@example.com>",
            "sourceArn": "arn:aws:ses:us-east-1:123456789012:identity/sender@example.com",
            "sendingAccountId": "123456789012",
            "messageId": "EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000",
            "destination": ["recipient@example.com"],
            "headersTruncated": False,
            "headers": [
                {"name": "From", "value": "Sender Name <sender@example.com>"},
                {"name": "To", "value": "recipient@example.com"},
                {"name": "Subject", "value": "Message sent from Amazon SES"},
                {"name": "MIME-Version", "value": "1.0"},
                {
                    "name": "Content-Type",
                    "value": 'multipart/alternative; boundary="----=_Part_7307378_1629847660.1516840721503"',
                },
            ],
            "commonHeaders": {
                "from": ["Sender Name <sender@example.com>"],
                "to": ["recipient@example.com"],
                "messageId": "EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000",
                "subject": "Message sent from Amazon SES",
            },
            "tags": {
                "ses:configuration-set": ["ConfigSet"],
                "ses:source-ip": ["192.0.2.0"],
                "ses:from-domain": ["example.com"],
                "ses:caller-identity": ["ses_user"],
                "maildelivery_id": [public_id],
            },
        },
    }
    notification = {
        "Type": "Notification",
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": "arn:aws:sns:us-west-2:123456789012:MyTopic",
        "Subject": "My First Message",
        "Message": json.dumps(record),
        "Timestamp": iso(datetime.now(UTC)),
        "SignatureVersion": "1",
        "SigningCertURL": cert_url,
        "UnsubscribeURL": (
            "https://sns.us-west-2.amazonaws.com/?Action=Unsubscribe&SubscriptionArn="
            "arn:aws:sns:us-west-2:123456789012:MyTopic:c9135db0-26c4-47ec-8998-413945fb5a96"
        ),
    }
    response = post(app, kit, kit.post(kit.sign(notification)))
    assert response.status_code == 200, response.get_json()
    [event] = stored_events(app)
    assert event_outcome(event) == Outcome(
        "bounced", "smtp; 550 5.1.1 user unknown", "5.1.1", "hard"
    )
    assert (event.email_id, event.correlation_id) == (email_id, public_id)
    assert event.provider_message_id == (
        "EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000"
    )
    assert event.provider_event_id == "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324:recipient@example.com"
    assert event.occurred_at == datetime(2017, 8, 5, 0, 41, 2, 669000, tzinfo=UTC)
    assert recipient_outcome(app, email_id, "recipient@example.com") == Outcome(
        "bounced", "smtp; 550 5.1.1 user unknown", "5.1.1", "hard"
    )
    assert email_result(app, email_id) == ("error", "bounced")


def test_bounce_in_a_notification_without_subject(make_app: Any) -> None:
    """A bounce in an SNS notification with no ``Subject`` (so none in the signed string),
    SignatureVersion 2, the SES event written as SNS sends it (a JSON string) with the
    email's correlation id as a message tag."""
    kit = SESKit()
    app = kit.start(make_app)
    email_id, public_id = send_email(app, to=("rcpt@example.org",))
    message = (
        '{"eventType":"Bounce","bounce":{"bounceType":"Permanent","bounceSubType":"General",'
        '"feedbackId":"fb-1","timestamp":"2024-01-01T00:00:00.500Z","bouncedRecipients":'
        '[{"emailAddress":"rcpt@example.org","action":"failed","status":"5.1.1",'
        '"diagnosticCode":"smtp; 550 5.1.1 no such user"}]},"mail":{"messageId":'
        '"0100018c-test-000000","timestamp":"2024-01-01T00:00:00.000Z","destination":'
        '["rcpt@example.org"],"tags":{"maildelivery_id":["' + public_id + '"]}}}'
    )
    notification = {
        "Type": "Notification",
        "MessageId": "11111111-2222-4333-8444-555555555555",
        "TopicArn": TOPIC_ARN,
        "Timestamp": iso(datetime.now(UTC)),
        "SignatureVersion": "2",
        "SigningCertURL": CERT_URL,
        "Message": message,
    }
    response = post(app, kit, kit.post(kit.sign(notification)))
    assert response.status_code == 200, response.get_json()
    [event] = stored_events(app)
    assert event_outcome(event) == Outcome(
        "bounced", "smtp; 550 5.1.1 no such user", "5.1.1", "hard"
    )
    assert (event.email_id, event.correlation_id) == (email_id, public_id)
    assert event.provider_message_id == "0100018c-test-000000"
    assert recipient_outcome(app, email_id, "rcpt@example.org") == Outcome(
        "bounced", "smtp; 550 5.1.1 no such user", "5.1.1", "hard"
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


def test_open_and_click_are_the_emails_events_not_a_recipients(make_app: AppFactory) -> None:
    """SES reports an open or a click per message (the tracking pixel and links are the same
    in every copy): one event with no recipient, shown in the email's log, changing no
    recipient; the email stays delivered with no status, not "opened"."""
    kit = SESKit()
    log = make_log_app(make_app, **kit.config())
    log.viewer.user = ADMIN
    email_id, public_id = send_email(log.app, to=("ann@customer.test",), cc=["bob@customer.test"])
    for address in ("ann@customer.test", "bob@customer.test"):
        assert kit.post_events(log.app, [delivered(kit, public_id, address)]).status_code == 200
    per_message = []
    for kind in ("open", "click"):
        event = kit.one_event(kind, public_id, message_id="0100018c-test")
        event["event"]["mail"]["destination"] = ["ann@customer.test", "bob@customer.test"]
        per_message.append(event)
    assert kit.post_events(log.app, per_message[:1]).status_code == 200
    assert kit.post_events(log.app, per_message[1:]).status_code == 200

    events = stored_events(log.app)
    opens = [e for e in events if e.type in ("opened", "clicked")]
    assert [(e.type, e.raw_type) for e in opens] == [("opened", "Open"), ("clicked", "Click")]
    for stored in opens:
        assert (stored.email_id, stored.recipient_id, stored.address) == (email_id, None, None)
    assert {a: s for a, (s, _) in recipient_states(log.app, email_id).items()} == {
        "ann@customer.test": "delivered",
        "bob@customer.test": "delivered",
    }
    assert email_result(log.app, email_id) == ("delivered", "")

    body = log.client().get(f"/maildelivery/api/emails/{email_id}").get_json()
    assert [e["type"] for e in body["other_events"]] == ["opened", "clicked"]
    html = log.client().get(f"/maildelivery/{email_id}").get_data(as_text=True)
    other = html.split("Other events", 1)[1]
    assert 'data-status="opened"' in other
    assert 'data-status="clicked"' in other


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
