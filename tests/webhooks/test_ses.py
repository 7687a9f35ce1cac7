"""Amazon SES through SNS webhook: what only this provider's calls do."""

from __future__ import annotations

import json
import secrets
import uuid

import httpx
import pytest

from digest.errors import ConfigError
from digest.web.webhooks import ses
from digest.web.webhooks.base import WebhookRejected
from support.http_server import HttpServer, Response
from webhooks.calls import CERT_URL, TOPIC_ARN, Call, ago, iso, sns_certificate_pem
from webhooks.drivers import SesDriver
from webhooks.site import FakeSns, snapshot, suppression, webhook_request


# A notification really signed by SNS (SignatureVersion 1), with the certificate SNS signed it
# with (sns.amazonaws.com, issued by VeriSign; expired in 2015: this code does not check
# expiry, see the module). From the author tests of the Perl module AWS::SNS::Verify.
AWS_CERTIFICATE = b"""-----BEGIN CERTIFICATE-----
MIIFFzCCA/+gAwIBAgIQfXvtWTP5lfZLpmyNHLk1TDANBgkqhkiG9w0BAQUFADCB
tTELMAkGA1UEBhMCVVMxFzAVBgNVBAoTDlZlcmlTaWduLCBJbmMuMR8wHQYDVQQL
ExZWZXJpU2lnbiBUcnVzdCBOZXR3b3JrMTswOQYDVQQLEzJUZXJtcyBvZiB1c2Ug
YXQgaHR0cHM6Ly93d3cudmVyaXNpZ24uY29tL3JwYSAoYykxMDEvMC0GA1UEAxMm
VmVyaVNpZ24gQ2xhc3MgMyBTZWN1cmUgU2VydmVyIENBIC0gRzMwHhcNMTQwODIz
MDAwMDAwWhcNMTUwODIyMjM1OTU5WjBrMQswCQYDVQQGEwJVUzETMBEGA1UECBMK
V2FzaGluZ3RvbjEQMA4GA1UEBxQHU2VhdHRsZTEZMBcGA1UEChQQQW1hem9uLmNv
bSwgSW5jLjEaMBgGA1UEAxQRc25zLmFtYXpvbmF3cy5jb20wggEiMA0GCSqGSIb3
DQEBAQUAA4IBDwAwggEKAoIBAQDP/HD18qyBx4IgBvgVCkLTW18bULmoaaOQYtRY
yVpPxIFkNSHxT4uYH9knKUqddKQd1TEXHh0bF50lBiHZpuascNc3+FP2YKbF2t/z
a+zHfLipW01np85VDdIWedvB9TpnMdY9PQYTVx41+2fnei9WgjwXVM085WRSECh3
aRdkvOjwTN/Tlrgy3hoebVN3V5kB67b139m3xAlZjoB8MPdk/tlsk+wgVxuAY/gz
xGIZRJxlgEtsu2g8+rDkjS2tk3457Cz8aXRZSCGi+BB6yN2WhvWwPzSDJMDKxwXY
I8fGw0xutF4WHN414KBUp/s/+E6Ib7GxLUCwFon1swKRz9NxAgMBAAGjggFqMIIB
ZjAcBgNVHREEFTATghFzbnMuYW1hem9uYXdzLmNvbTAJBgNVHRMEAjAAMA4GA1Ud
DwEB/wQEAwIFoDAdBgNVHSUEFjAUBggrBgEFBQcDAQYIKwYBBQUHAwIwZQYDVR0g
BF4wXDBaBgpghkgBhvhFAQc2MEwwIwYIKwYBBQUHAgEWF2h0dHBzOi8vZC5zeW1j
Yi5jb20vY3BzMCUGCCsGAQUFBwICMBkaF2h0dHBzOi8vZC5zeW1jYi5jb20vcnBh
MB8GA1UdIwQYMBaAFA1EXBZTRMGCfh0gqyX0AWPYvnmlMCsGA1UdHwQkMCIwIKAe
oByGGmh0dHA6Ly9zZC5zeW1jYi5jb20vc2QuY3JsMFcGCCsGAQUFBwEBBEswSTAf
BggrBgEFBQcwAYYTaHR0cDovL3NkLnN5bWNkLmNvbTAmBggrBgEFBQcwAoYaaHR0
cDovL3NkLnN5bWNiLmNvbS9zZC5jcnQwDQYJKoZIhvcNAQEFBQADggEBABm5RaeH
sLtJftDeGghHAUkco8wkCshKQO1obhuMDJkJHAHbUrweP4Gw7WRhHNHo1jgA6Q61
NXik2w6H7SDVngCVIqOLFsr1DQ7fB5oSevMwjLvlaLxWBAvgKPSsjCt+QF1aNQiv
sfhOIgiJZTObBERsSs9FXWQ/vMkoisPKYJGn3KigzZj0GXSAB0do8Ejq8siBczgM
9o8NixqVvD7AOoE/QWXCtRDMRnQ5oIAc/Q9iUCJ8oAlbljDFkSqwgunpaG0iuHQZ
6Q4iHgmrgHM302H9fFxupyW46zwLH9gmbrUulmLRZT14bIzd0cZXqIl6nd8il4nq
kqQRCW8P2LDot4s=
-----END CERTIFICATE-----
"""
AWS_MESSAGE = {
    "Type": "Notification",
    "MessageId": "a890c547-5d98-55e2-971d-8826fff56413",
    "TopicArn": "arn:aws:sns:us-east-1:041977924901:foo",
    "Subject": "test subject",
    "Message": "test message",
    "Timestamp": "2015-02-20T20:59:25.401Z",
    "SignatureVersion": "1",
    "Signature": "kzi3JBQz64uFAXG9ZuAwPI2gYW5tT7OF83oeHb8v0/XRPsy0keq2NHTCpQVRxCgPOJ/QUB2Yl/L29/W4h"
                 "iHMo9+Ns0hrqyasgUfjq+XkVR1WDuYLtNaEA1vLnA0H9usSh3eVVlLhpYzoT4GUoGgstRVvFceW2QVF9E"
                 "YUQyromlcbOVtVpKCEINAvGEEKJNGTXQQUkPUka3YMhHitgQg1WlFBmf+oweSYUEj8+RoguWsn6vluxD0"
                 "VtIOGOml5jlUecfhDqnetF5pUVYMqCHPfHn6RBguiW+XD6XWsdKKxkjqo90a65Nlb72gPSRw6+sIEIgf4"
                 "J39WFZK+FCpeSm0qAg==",
    "SigningCertURL": "https://sns.us-east-1.amazonaws.com/"
                      "SimpleNotificationService-d6d679a1d18e95c2f9ffcf11f4f9e198.pem",
    "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn="
                      "arn:aws:sns:us-east-1:041977924901:foo:20b2d060-2a32-4506-9cb0-24b8b9e605e1",
}


def test_ses_verifies_a_message_really_signed_by_sns():
    sns = FakeSns(AWS_CERTIFICATE)
    hook = ses.SesWebhook(AWS_MESSAGE["TopicArn"], fetch_certificate=sns.fetch_certificate)
    hook.verify(webhook_request(Call(json.dumps(AWS_MESSAGE).encode(), {})))
    assert sns.fetched == [AWS_MESSAGE["SigningCertURL"]]
    assert hook.parse(webhook_request(Call(json.dumps(AWS_MESSAGE).encode(), {}))) == []
    tampered = {**AWS_MESSAGE, "Message": "TAMPERED MESSAGE"}
    with pytest.raises(WebhookRejected) as refused:
        hook.verify(webhook_request(Call(json.dumps(tampered).encode(), {})))
    assert refused.value.status == 403


def test_ses_accepts_signature_version_2_and_fetches_a_certificate_once(sqlite_site):
    driver = SesDriver()
    sqlite_site.subscribe("v2@example.com", "v1@example.com")
    v2 = driver.signed(driver.bounce_message("v2@example.com"), version="2",
                       subject="Amazon SES Email Event Notification")
    v1 = driver.hard_bounce("v1@example.com")

    assert sqlite_site.post("ses", v2).status_code == 200
    assert sqlite_site.post("ses", v1).status_code == 200

    assert suppression(sqlite_site.engine, "v2@example.com").reason == "hard-bounce"
    assert suppression(sqlite_site.engine, "v1@example.com").reason == "hard-bounce"
    assert sqlite_site.sns.fetched == [CERT_URL]


def test_ses_confirms_a_subscription_after_verifying_it(sqlite_site):
    driver = SesDriver()
    token = secrets.token_hex(64)
    subscribe_url = ("https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription"
                     f"&TopicArn={TOPIC_ARN}&Token={token}")
    confirmation = driver.sign({
        "Type": "SubscriptionConfirmation", "MessageId": str(uuid.uuid4()), "Token": token,
        "TopicArn": TOPIC_ARN,
        "Message": f"You have chosen to subscribe to the topic {TOPIC_ARN}.\n"
                   "To confirm the subscription, visit the SubscribeURL included in this message.",
        "SubscribeURL": subscribe_url, "Timestamp": iso(ago(seconds=3)),
        "SigningCertURL": CERT_URL})
    forged = {**confirmation, "SubscribeURL": "https://sns.us-east-1.amazonaws.com/?evil"}

    assert sqlite_site.post("ses", driver.call(forged)).status_code == 403
    assert sqlite_site.sns.confirmed == []
    response = sqlite_site.post("ses", driver.call(confirmation))

    assert response.status_code == 200, response.text
    assert response.json()["events"] == 0
    assert sqlite_site.sns.confirmed == [subscribe_url]


def test_ses_reads_bounces_for_several_recipients_and_event_publishing(site):
    driver = SesDriver()
    site.subscribe("one@example.com", "two@example.com", "three@example.com")
    both = driver.signed(driver.bounce_message("one@example.com", "two@example.com"))
    published = driver.signed(driver.bounce_message("three@example.com", key="eventType"))

    assert site.post("ses", both).json()["suppressed"] == 2
    assert site.post("ses", published).json()["suppressed"] == 1
    for email in ("one@example.com", "two@example.com", "three@example.com"):
        assert suppression(site.engine, email).reason == "hard-bounce"


def test_ses_ignores_what_says_nothing_about_an_address(sqlite_site):
    driver = SesDriver()
    sqlite_site.subscribe("fine@example.com")
    before = snapshot(sqlite_site.engine)
    calls = [driver.signed(driver.complaint_message("fine@example.com", feedback="not-spam")),
             driver.signed("Successfully validated SNS topic for Amazon SES event publishing."),
             driver.signed({"eventType": "Open", "mail": driver.mail("fine@example.com"),
                            "open": {"ipAddress": "192.0.2.1", "timestamp": iso(ago())}}),
             driver.signed({"notificationType": "AmazonSnsSubscriptionSucceeded",
                            "message": "You have successfully subscribed your Amazon SNS topic "
                                       f"'{TOPIC_ARN}' to receive 'Bounce' notifications from "
                                       "Amazon SES for identity 'news.example.com'."})]
    for call in calls:
        response = sqlite_site.post("ses", call)
        assert (response.status_code, response.json()["events"]) == (200, 0)
    assert snapshot(sqlite_site.engine) == before


def test_ses_logs_the_subscribe_url_when_confirming_fails(caplog):
    def refuse(url: str) -> bytes:
        raise httpx.ConnectError("connection refused")

    sns = FakeSns(sns_certificate_pem())
    hook = ses.SesWebhook(TOPIC_ARN, fetch_certificate=sns.fetch_certificate,
                          confirm_subscription=refuse)
    url = "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=abc"
    call = SesDriver().call(SesDriver().sign({
        "Type": "SubscriptionConfirmation", "MessageId": "m", "Token": "abc",
        "TopicArn": TOPIC_ARN, "Message": "confirm", "SubscribeURL": url,
        "Timestamp": iso(ago()), "SigningCertURL": CERT_URL}))
    hook.verify(webhook_request(call))
    with pytest.raises(httpx.ConnectError):
        hook.parse(webhook_request(call))
    assert url in caplog.text


def test_ses_answers_503_when_the_certificate_cannot_be_fetched(sqlite_site):
    sqlite_site.sns.fail = True
    response = sqlite_site.post("ses", SesDriver().hard_bounce("x@example.com"))
    assert response.status_code == 503
    sqlite_site.sns.fail = False
    assert sqlite_site.post("ses", SesDriver().hard_bounce("x@example.com")).status_code == 200


@pytest.mark.parametrize("url, accepted", [
    ("https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem", True),
    ("https://sns.us-east-1.amazonaws.com:443/SimpleNotificationService-abc.pem", True),
    ("http://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem", False),
    ("https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-abc.pem", False),
    ("https://sns.us-east-1.amazonaws.com.evil.example/SimpleNotificationService-abc.pem", False),
    ("https://evil.example/sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem", False),
    ("https://user@sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem", False),
    ("https://sns.us-east-1.amazonaws.com:8443/SimpleNotificationService-abc.pem", False),
    ("https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.txt", False),
    ("https://s3.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem", False),
])
def test_ses_fetches_certificates_only_from_sns_in_the_topics_region(url, accepted):
    hook = ses.SesWebhook(TOPIC_ARN)
    assert hook.is_sns_url(url, path_suffix=".pem") is accepted


def test_ses_refuses_a_topic_arn_that_is_not_one():
    with pytest.raises(ConfigError, match="sns_topic_arn"):
        ses.SesWebhook("digest-ses-notifications")


def test_ses_fetches_over_http_with_a_size_limit(http_server: HttpServer):
    http_server.route("GET", "/cert.pem", lambda _r: Response(200, sns_certificate_pem()))
    http_server.route("GET", "/huge.pem", lambda _r: Response(200, b"x" * 70_000))
    assert ses.http_get(f"{http_server.url}/cert.pem") == sns_certificate_pem()
    for path in ("/huge.pem", "/missing.pem"):
        with pytest.raises(httpx.HTTPError):
            ses.http_get(f"{http_server.url}{path}")
