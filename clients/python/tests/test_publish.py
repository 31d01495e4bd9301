"""Publishing: every target form, inbox items and fallbacks; retries that store once."""

import sqlite3
import threading
import time

import httpx
import pytest

from herald_client import Herald, HeraldError, Retries


def test_every_target_form_is_published_and_answered_in_order(herald: Herald) -> None:
    one = herald.publish({"to": {"user": "alice"}, "type": "mail", "data": {"subject": "Hi"}, "inbox": True})
    assert [(e["to"], e["type"]) for e in one] == [({"user": "alice"}, "mail")]
    batch = herald.publish(
        [
            {"to": {"users": ["bob", "carol"]}, "data": 1, "fallback": {"after_secs": 600, "unless": "seen"}},
            {"to": {"topic": "stock:AAPL"}, "type": "stock", "data": {"px": 187.3}},
            {"to": {"broadcast": True}, "type": "score", "data": "2 – 1", "inbox": True},
        ]
    )
    assert [e["to"] for e in batch] == [
        {"user": "bob"},
        {"user": "carol"},
        {"topic": "stock:AAPL"},
        {"broadcast": True},
    ]
    seqs = [int(e["id"].rsplit("-", 1)[1]) for e in one + batch]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    stored = list(herald.history("bob", topics=["stock:AAPL"]))
    assert [e["data"] for e in stored] == [1, {"px": 187.3}, "2 – 1"]
    pending = herald.receipts("bob", [batch[0]["id"]])[0]["fallback"]
    assert pending["status"] == "pending" and pending["unless"] == "seen"


def test_a_429_is_waited_out_and_the_retry_stores_one_event_with_the_same_key(
    server, operator, tenant
) -> None:
    operator.set_limits(tenant.slug, publish_per_sec=1, publish_burst=1)
    sent = []
    client = httpx.Client(
        base_url=server.url,
        headers={"Authorization": f"Bearer {tenant.api_key}"},
        event_hooks={"request": [lambda request: sent.append(request.headers.get("idempotency-key"))]},
    )
    with Herald(server.url, tenant.api_key, client=client) as herald:
        herald.publish({"to": {"user": "u"}, "data": "first"})
        sent.clear()
        began = time.monotonic()
        answer = herald.publish({"to": {"user": "u"}, "data": "second"})
        assert time.monotonic() - began >= 0.5, "it waited for Retry-After"
        assert len(sent) == 2 and sent[0] == sent[1] and sent[0], sent
        assert [e["data"] for e in herald.history("u")] == ["first", "second"]
        assert answer[0]["id"] == list(herald.history("u"))[-1]["id"]
        # Without retries the 429 is the caller's, with Herald's Retry-After.
        with Herald(server.url, tenant.api_key, retries=Retries(attempts=1)) as impatient:
            with pytest.raises(HeraldError) as refused:
                impatient.publish({"to": {"user": "u"}, "data": "third"})
        assert refused.value.status == 429 and refused.value.code == "rate_limited"
        assert refused.value.retry_after is not None and refused.value.retry_after >= 1


def test_a_503_while_the_database_is_away_is_retried_until_it_is_back(server, tenant, herald: Herald) -> None:
    herald.publish({"to": {"user": "u"}, "data": "before"})
    # Another process holds SQLite's write lock: Herald answers 503 storage_unavailable.
    other = sqlite3.connect(server.database, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    with Herald(server.url, tenant.api_key, retries=Retries(attempts=1)) as once:
        with pytest.raises(HeraldError) as away:
            once.publish({"to": {"user": "u"}, "data": "refused"})
    assert away.value.status == 503 and away.value.code == "storage_unavailable"
    threading.Timer(2.0, lambda: (other.execute("ROLLBACK"), other.close())).start()
    retries = Retries(attempts=20, first_wait=0.2, longest_wait=5)
    with Herald(server.url, tenant.api_key, retries=retries) as patient:
        answer = patient.publish({"to": {"user": "u"}, "data": "during"})
    stored = list(herald.history("u"))
    assert [e["data"] for e in stored] == ["before", "during"]
    assert stored[-1]["id"] == answer[0]["id"]
