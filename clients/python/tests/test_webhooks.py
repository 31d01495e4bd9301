"""Webhooks end to end with a local receiver: messages verified by `verify_webhook` (and by
the standardwebhooks package, independently), a rotation signed with both secrets, a failed
delivery retried once the receiver is fixed."""

import time

import pytest
from standardwebhooks import Webhook

from herald_client import Herald, WebhookVerificationError, verify_webhook

from .receiver import Receiver


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.close()


def test_messages_verify_with_the_secret_and_after_a_rotation_with_either(herald: Herald, receiver) -> None:
    endpoint = herald.create_webhook(receiver.url, ["*"], description="tests")
    secret = endpoint["secret"]
    assert secret.startswith("whsec_")
    assert [w["id"] for w in herald.webhooks()] == [endpoint["id"]]
    message_id = herald.test_webhook(endpoint["id"])
    headers, body = receiver.next()
    message = verify_webhook(headers, body, secret)
    assert message["type"] == "webhook.test" and headers["webhook-id"] == message_id
    assert Webhook(secret).verify(body, headers)["type"] == "webhook.test"
    with pytest.raises(WebhookVerificationError):
        verify_webhook(headers, body.replace(b"webhook.test", b"webhook.tesx"), secret)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(headers, body, "whsec_" + "A" * 44)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(headers, body, secret, now=time.time() + 3600)

    rotated = herald.rotate_webhook_secret(endpoint["id"])
    assert rotated != secret
    herald.test_webhook(endpoint["id"])
    headers, body = receiver.next()
    assert len(headers["webhook-signature"].split(" ")) == 2, "both secrets sign for now"
    for either in (secret, rotated):
        assert verify_webhook(headers, body, either)["type"] == "webhook.test"
        assert Webhook(either).verify(body, headers)
    assert verify_webhook(headers, body, ["whsec_" + "A" * 44, rotated])


def test_a_failed_delivery_is_listed_with_its_attempts_and_retried(herald: Herald, receiver) -> None:
    receiver.status = 500
    endpoint = herald.create_webhook(receiver.url)
    message_id = herald.test_webhook(endpoint["id"])
    receiver.next()
    deliveries = []
    for _ in range(50):
        deliveries = list(herald.deliveries(endpoint["id"]))
        if deliveries and deliveries[0]["attempts"]:
            break
        time.sleep(0.1)
    assert deliveries[0]["message_id"] == message_id
    assert deliveries[0]["attempts"][0]["status_code"] == 500
    receiver.status = 204
    herald.retry_delivery(endpoint["id"], message_id)
    for _ in range(100):
        if herald.deliveries_page(endpoint["id"])["deliveries"][0]["status"] == "delivered":
            break
        time.sleep(0.1)
    assert herald.deliveries_page(endpoint["id"])["deliveries"][0]["status"] == "delivered"
    changed = herald.update_webhook(endpoint["id"], events=["user.online"], disabled=True)
    assert changed["events"] == ["user.online"] and changed["disabled_at"]
    assert herald.webhook(endpoint["id"])["disabled_reason"] == "disabled"
    herald.delete_webhook(endpoint["id"])
    assert herald.webhooks() == []
