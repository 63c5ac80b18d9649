"""Standard Webhooks signatures: what the reference library verifies, and secrets' form."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from worker.webhooks import signing

BODY = b'{"event_type":"graph.completed"}'


def test_the_reference_library_verifies_our_signature() -> None:
    secret = signing.generate_secret()
    # The library refuses timestamps far from its clock: sign as of now.
    headers = signing.headers(signing.secret_key(secret), "msg_1", int(time.time()), BODY)
    assert Webhook(secret).verify(BODY, headers) == {"event_type": "graph.completed"}
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY + b" ", headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.generate_secret()).verify(BODY, headers)


def test_our_signature_is_the_reference_one() -> None:
    secret = signing.generate_secret()
    timestamp_s = 1_767_225_600
    ours = signing.signature(signing.secret_key(secret), "msg_1", timestamp_s, BODY)
    when = datetime.fromtimestamp(timestamp_s, UTC)
    assert Webhook(secret).sign("msg_1", when, BODY.decode()) == ours


def test_generated_secrets_are_whsec_with_a_32_byte_key() -> None:
    secret = signing.generate_secret()
    assert secret.startswith("whsec_")
    assert len(signing.parse_secret(secret)) == 32
    assert signing.generate_secret() != secret


@pytest.mark.parametrize(
    "secret",
    [
        "plain",
        "whsec_",
        "whsec_!!!!",
        "whsec_" + base64.b64encode(b"x" * 8).decode(),
        "whsec_" + base64.b64encode(b"x" * 65).decode(),
    ],
)
def test_bad_secrets_are_refused(secret: str) -> None:
    with pytest.raises(ValueError, match="secret"):
        signing.parse_secret(secret)


def test_a_configured_secret_without_the_prefix_is_the_key_itself() -> None:
    assert signing.secret_key("plain key") == b"plain key"


def test_no_key_no_signature() -> None:
    assert set(signing.headers(None, "msg_1", 1, b"{}")) == {"webhook-id", "webhook-timestamp"}
