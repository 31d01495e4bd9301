"""History paged by itself, the inbox, presence, receipts, fallbacks cancelled, the tail."""

import threading
import time

import httpx

from herald_client import Herald, mint_user_token


def test_history_pages_by_itself_over_2500_events(herald: Herald) -> None:
    for start in range(0, 2500, 500):
        herald.publish([{"to": {"user": "reader"}, "data": n} for n in range(start, start + 500)])
    pages = []
    original = herald.history_page

    def counted(*args, **kwargs):
        page = original(*args, **kwargs)
        pages.append(len(page["events"]))
        return page

    herald.history_page = counted  # type: ignore[method-assign]
    events = list(herald.history("reader", page_size=1000))
    assert [e["data"] for e in events] == list(range(2500))
    assert pages == [1000, 1000, 500]
    newest = herald.history_page("reader", newest_first=True, limit=3)
    assert [e["data"] for e in newest["events"]] == [2499, 2498, 2497]


def test_inbox_read_and_unread_and_receipts(herald: Herald) -> None:
    published = herald.publish([{"to": {"user": "ann"}, "type": "mail", "data": n, "inbox": True} for n in range(3)])
    ids = [e["id"] for e in published]
    page = herald.inbox("ann")
    assert page["unread"] == 3 and [i["data"] for i in page["items"]] == [2, 1, 0]
    assert herald.mark_read("ann", [ids[0]]) == 2
    assert herald.mark_unread("ann", [ids[0]]) == 3
    assert herald.mark_read("ann", everything=True) == 0
    receipts = herald.receipts("ann", ids)
    assert [r["id"] for r in receipts] == ids
    assert all(r["read_at"] and r["seen_at"] and r["delivered_at"] for r in receipts)


def test_a_fallback_is_cancelled(herald: Herald) -> None:
    published = herald.publish({"to": {"user": "bo"}, "data": 1, "fallback": {"after_secs": 600}})
    herald.cancel_fallback(published[0]["id"])
    assert herald.receipts("bo", [published[0]["id"]])[0]["fallback"]["status"] == "cancelled"


def test_presence_follows_a_stream(server, tenant, herald: Herald) -> None:
    assert herald.presence("pat") == {"user": "pat", "online": False, "streams": 0, "last_seen_at": None}
    token = mint_user_token(kid=tenant.kid, secret=tenant.secret, sub="pat")
    with httpx.stream("GET", f"{server.url}/t/{tenant.slug}/stream", headers={"Authorization": f"Bearer {token}"}) as stream:
        assert stream.status_code == 200
        chunks = stream.iter_raw()  # kept: a generator dropped closes the stream
        next(chunks)
        # Counted as the stream registers, a moment after its first bytes.
        for _ in range(50):
            if herald.presence("pat")["streams"] == 1:
                break
            time.sleep(0.05)
        assert herald.presence("pat")["streams"] == 1
        assert [p["online"] for p in herald.presence_of(["pat", "nobody"])] == [True, False]


def test_the_tail_shows_what_is_committed(herald: Herald, server, tenant) -> None:
    publisher = Herald(server.url, tenant.api_key)
    threading.Timer(0.5, lambda: publisher.publish({"to": {"user": "tia"}, "type": "ping", "data": 7})).start()
    frame = next(f for f in herald.tail() if f["event"] == "event")
    assert frame["data"]["to"] == {"user": "tia"} and frame["data"]["data"] == 7
    publisher.close()


def test_the_tenant_and_its_usage(herald: Herald, tenant) -> None:
    herald.publish({"to": {"user": "u"}, "data": 1})
    assert herald.tenant()["slug"] == tenant.slug
    assert herald.usage()["published"]["today"] == 1
