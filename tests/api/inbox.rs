//! The notification inbox: an exact unread count that equals the unread items listed,
//! through publishes to a user, to `users` and broadcasts, reads, unreads, read-all and
//! pruning; paging; isolation between users and tenants; bad requests change nothing.

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::support::app::Api;
use crate::support::{TestTenant, assert_error, spawn_app};

impl Api {
    /// The browser's inbox call for `user`, with a Bearer user token.
    async fn inbox_call(
        &self,
        tenant: &TestTenant,
        user: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Response {
        let mut request = self
            .client
            .request(method, self.url(&format!("/t/{}/inbox{path}", tenant.slug)))
            .bearer_auth(tenant.token(user, &[]));
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap()
    }

    /// One page of `user`'s inbox (`query` as the URL has it).
    async fn inbox(&self, tenant: &TestTenant, user: &str, query: &str) -> Value {
        let response = self
            .inbox_call(tenant, user, Method::GET, &format!("?{query}"), None)
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    /// All of `user`'s items (or only the unread), newest first, through every page.
    async fn whole_inbox(&self, tenant: &TestTenant, user: &str, unread: bool) -> Vec<Value> {
        let mut items = Vec::new();
        let mut before: Option<String> = None;
        loop {
            let mut query = format!("limit=7&unread={unread}");
            if let Some(before) = &before {
                query.push_str(&format!("&before={before}"));
            }
            let page = self.inbox(tenant, user, &query).await;
            items.extend(page["items"].as_array().unwrap().iter().cloned());
            match page["next"].as_str() {
                Some(next) => before = Some(next.to_owned()),
                None => return items,
            }
        }
    }

    /// Marks as the browser does; returns the count answered.
    async fn mark(&self, tenant: &TestTenant, user: &str, path: &str, body: Value) -> i64 {
        let response = self
            .inbox_call(tenant, user, Method::POST, path, Some(body))
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        let answer: Value = response.json().await.unwrap();
        answer["unread"].as_i64().unwrap()
    }

    /// Asserts that `user`'s count is exactly the unread items listed; returns it.
    async fn assert_exact(&self, tenant: &TestTenant, user: &str) -> i64 {
        let count = self.inbox(tenant, user, "limit=1").await["unread"]
            .as_i64()
            .unwrap();
        let unread = self.whole_inbox(tenant, user, true).await;
        let all = self.whole_inbox(tenant, user, false).await;
        let unread_in_all = all.iter().filter(|item| item["read"] == false).count();
        assert_eq!(
            count as usize,
            unread.len(),
            "count against the unread list"
        );
        assert_eq!(
            unread.len(),
            unread_in_all,
            "unread list against the full list"
        );
        assert!(unread.iter().all(|item| item["read"] == false));
        count
    }
}

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|item| item["id"].as_str().unwrap().to_owned())
        .collect()
}

#[actix_web::test]
async fn the_count_is_the_unread_items_through_publishes_reads_and_unreads() {
    let app = spawn_app().await;
    let t = app.create_tenant("mail").await;
    let to_ann =
        |n: i32| json!({"to": {"user": "ann"}, "type": "mail", "data": {"n": n}, "inbox": true});
    for n in 0..5 {
        app.publish_ok(&t.api_key, &to_ann(n)).await;
    }
    // Not inbox items: a plain event to ann, a topic, another user's item.
    app.publish_ok(&t.api_key, &json!({"to": {"user": "ann"}, "data": "tick"}))
        .await;
    app.publish_ok(&t.api_key, &json!({"to": {"topic": "news"}, "data": 1}))
        .await;
    app.publish_ok(
        &t.api_key,
        &json!({"to": {"users": ["ann", "bob"]}, "type": "mail", "data": "both", "inbox": true}),
    )
    .await;
    app.publish_ok(
        &t.api_key,
        &json!({"to": {"broadcast": true}, "type": "notice", "data": "all", "inbox": true}),
    )
    .await;
    assert_eq!(app.assert_exact(&t, "ann").await, 7);
    assert_eq!(app.assert_exact(&t, "bob").await, 2);
    // A user nobody wrote to still has the broadcast.
    assert_eq!(app.assert_exact(&t, "cid").await, 1);

    // Newest first, with their data and types.
    let items = app.whole_inbox(&t, "ann", false).await;
    assert_eq!(items.len(), 7);
    assert_eq!(items[0]["type"], "notice");
    assert_eq!(items[1]["data"], "both");
    assert_eq!(items[6]["data"], json!({"n": 0}));

    // Read two, one of them the broadcast: only ann's count moves.
    let read = vec![ids(&items)[0].clone(), ids(&items)[3].clone()];
    assert_eq!(app.mark(&t, "ann", "/read", json!({"ids": read})).await, 5);
    assert_eq!(app.assert_exact(&t, "ann").await, 5);
    assert_eq!(app.assert_exact(&t, "bob").await, 2);
    // Reading again changes nothing.
    assert_eq!(app.mark(&t, "ann", "/read", json!({"ids": read})).await, 5);
    let listed = app.whole_inbox(&t, "ann", false).await;
    assert_eq!(listed[0]["read"], true);
    assert_eq!(listed[3]["read"], true);
    assert_eq!(listed[1]["read"], false);

    // All read, then one unread again, then one new item.
    assert_eq!(app.mark(&t, "ann", "/read", json!({"all": true})).await, 0);
    assert_eq!(app.assert_exact(&t, "ann").await, 0);
    assert_eq!(
        app.mark(&t, "ann", "/unread", json!({"ids": [ids(&items)[6]]}))
            .await,
        1
    );
    app.publish_ok(&t.api_key, &to_ann(5)).await;
    assert_eq!(app.assert_exact(&t, "ann").await, 2);
    let unread = app.whole_inbox(&t, "ann", true).await;
    assert_eq!(unread[0]["data"], json!({"n": 5}));
    assert_eq!(unread[1]["data"], json!({"n": 0}));
    // Marking an unread item unread, and a read one read, change nothing.
    assert_eq!(
        app.mark(&t, "ann", "/unread", json!({"ids": [ids(&unread)[0]]}))
            .await,
        2
    );
    assert_eq!(
        app.mark(&t, "ann", "/read", json!({"ids": [ids(&items)[1]]}))
            .await,
        2
    );
    // Read it above the cursor, then unread it again.
    let newest = ids(&unread)[0].clone();
    assert_eq!(
        app.mark(&t, "ann", "/read", json!({"ids": [newest]})).await,
        1
    );
    assert_eq!(
        app.mark(&t, "ann", "/unread", json!({"ids": [newest]}))
            .await,
        2
    );
    assert_eq!(app.assert_exact(&t, "ann").await, 2);
    // Bob's state never moved.
    assert_eq!(app.assert_exact(&t, "bob").await, 2);
    assert!(app.metric("herald_inbox_marks_total").await >= 8.0);
}

#[actix_web::test]
async fn the_backend_reads_and_marks_any_user_s_inbox_with_its_api_key() {
    let app = spawn_app().await;
    let t = app.create_tenant("backend").await;
    app.publish_ok(
        &t.api_key,
        &json!({"to": {"users": ["ann", "bob"]}, "data": 1, "inbox": true}),
    )
    .await;
    let get = |query: &str| {
        app.client
            .get(app.url(&format!("/v1/inbox?{query}")))
            .bearer_auth(&t.api_key)
            .send()
    };
    let page: Value = get("user=ann").await.unwrap().json().await.unwrap();
    assert_eq!(page["unread"], 1);
    let id = page["items"][0]["id"].as_str().unwrap().to_owned();
    let post = |path: &str, body: Value| {
        app.client
            .post(app.url(&format!("/v1/inbox/{path}?user=ann")))
            .bearer_auth(&t.api_key)
            .json(&body)
            .send()
    };
    let answer: Value = post("read", json!({"ids": [id]}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["unread"], 0);
    assert_eq!(app.assert_exact(&t, "ann").await, 0);
    assert_eq!(app.assert_exact(&t, "bob").await, 1);
    let answer: Value = post("unread", json!({"ids": [id]}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["unread"], 1);
    // Without a key, or with a user id that is not one: refused.
    let response = app
        .client
        .get(app.url("/v1/inbox?user=ann"))
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::UNAUTHORIZED, "missing_credentials").await;
    assert_error(
        get("user=").await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_user",
    )
    .await;
}

#[actix_web::test]
async fn no_one_lists_counts_or_marks_another_user_s_or_tenant_s_items() {
    let app = spawn_app().await;
    let a = app.create_tenant("tenant-a").await;
    let b = app.create_tenant("tenant-b").await;
    app.publish_ok(
        &a.api_key,
        &json!({"to": {"user": "ann"}, "data": "a's", "inbox": true}),
    )
    .await;
    app.publish_ok(
        &a.api_key,
        &json!({"to": {"user": "eve"}, "data": "eve's", "inbox": true}),
    )
    .await;
    app.publish_ok(
        &b.api_key,
        &json!({"to": {"user": "ann"}, "data": "b's", "inbox": true}),
    )
    .await;
    let anns = app.whole_inbox(&a, "ann", false).await;
    assert_eq!(anns.len(), 1);
    assert_eq!(anns[0]["data"], "a's");
    let eves = ids(&app.whole_inbox(&a, "eve", false).await);
    let b_anns = ids(&app.whole_inbox(&b, "ann", false).await);

    // Eve names ann's item, and tenant B's ann names tenant A's: nothing changes for ann.
    assert_eq!(
        app.mark(&a, "eve", "/read", json!({"ids": ids(&anns)}))
            .await,
        1
    );
    assert_eq!(
        app.mark(&b, "ann", "/read", json!({"ids": ids(&anns)}))
            .await,
        1
    );
    assert_eq!(app.assert_exact(&a, "ann").await, 1);
    // An id of a plain event, and of no event at all: ignored.
    let plain = app
        .publish_ok(&a.api_key, &json!({"to": {"user": "ann"}, "data": 0}))
        .await;
    let plain_id = plain[0]["id"].as_str().unwrap();
    let nowhere = format!("{}-999999", plain_id.rsplit_once('-').unwrap().0);
    assert_eq!(
        app.mark(
            &a,
            "ann",
            "/read",
            json!({"ids": [plain_id, nowhere, "zzz-1"]})
        )
        .await,
        1
    );
    // Tenant B's token lists tenant B's items only; A's key cannot reach B's users.
    assert_eq!(app.whole_inbox(&b, "ann", false).await.len(), 1);
    let response = app
        .client
        .post(app.url("/v1/inbox/read?user=ann"))
        .bearer_auth(&a.api_key)
        .json(&json!({"ids": b_anns}))
        .send()
        .await
        .unwrap();
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["unread"], 1, "A's ann, untouched");
    assert_eq!(app.assert_exact(&b, "ann").await, 1);
    assert_eq!(app.assert_exact(&a, "eve").await, 1);
    assert_eq!(eves.len(), 1);
    // A token of tenant A does not open tenant B's inbox.
    let response = app
        .client
        .get(app.url("/t/tenant-b/inbox"))
        .bearer_auth(a.token("ann", &[]))
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
}

#[actix_web::test]
async fn bad_inbox_requests_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    let t = app.create_tenant("bad").await;
    let published = app
        .publish_ok(
            &t.api_key,
            &json!({"to": {"user": "ann"}, "data": 1, "inbox": true}),
        )
        .await;
    let id = published[0]["id"].as_str().unwrap().to_owned();
    // An inbox item on a topic.
    let response = app
        .publish(
            &t.api_key,
            &json!({"to": {"topic": "news"}, "data": 1, "inbox": true}),
        )
        .await;
    assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_inbox").await;
    let response = app
        .publish(&t.api_key, &json!({"to": {"user": "ann"}, "inbox": "yes"}))
        .await;
    assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body").await;

    let too_many: Vec<String> = (0..1001).map(|_| id.clone()).collect();
    for (path, body, code) in [
        ("/read", json!({"ids": too_many}), "invalid_inbox"),
        ("/read", json!({}), "invalid_inbox"),
        ("/read", json!({"all": false}), "invalid_inbox"),
        ("/read", json!({"ids": [id], "all": true}), "invalid_inbox"),
        ("/unread", json!({"all": true}), "invalid_inbox"),
        ("/read", json!({"ids": ["not an id"]}), "invalid_inbox"),
        ("/read", json!({"ids": [7]}), "invalid_body"),
        ("/read", json!({"ids": [id], "extra": 1}), "invalid_body"),
    ] {
        let response = app
            .inbox_call(&t, "ann", Method::POST, path, Some(body.clone()))
            .await;
        assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, code).await;
    }
    for (query, status, code) in [
        ("limit=0", StatusCode::BAD_REQUEST, "invalid_limit"),
        ("limit=1001", StatusCode::BAD_REQUEST, "invalid_limit"),
        ("before=nope", StatusCode::BAD_REQUEST, "invalid_cursor"),
        ("before=otherepoch-1", StatusCode::GONE, "cursor_expired"),
        ("unread=maybe", StatusCode::BAD_REQUEST, "invalid_query"),
        ("what=1", StatusCode::BAD_REQUEST, "invalid_query"),
    ] {
        let response = app
            .inbox_call(&t, "ann", Method::GET, &format!("?{query}"), None)
            .await;
        let body = assert_error(response, status, code).await;
        assert!(body["error"]["message"].is_string(), "{query}");
    }
    // No credentials; a token of another tenant's key.
    let response = app
        .client
        .get(app.url("/t/bad/inbox"))
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::UNAUTHORIZED, "missing_credentials").await;
    assert_eq!(app.assert_exact(&t, "ann").await, 1);
}

#[actix_web::test]
async fn pruned_items_leave_the_inbox_and_the_count() {
    let app = spawn_app().await;
    let t = app.create_tenant("pruned").await;
    let response = app
        .patch_tenant("pruned", json!({"limits": {"max_stored_events": 4}}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut stream = app.open_stream(&t, &t.token("ann", &[]), "", None).await;
    // Retention as the server's pruner runs it: streams of tenants whose items went recount.
    let prune = || async {
        let pruned = app.state.store.prune(None).await.unwrap();
        for tenant in pruned.inboxes {
            app.state.inbox_pruned(tenant);
        }
    };
    let to_ann = |n: i32| json!({"to": {"user": "ann"}, "data": n, "inbox": true});
    for n in 0..3 {
        app.publish_ok(&t.api_key, &to_ann(n)).await;
    }
    app.publish_ok(
        &t.api_key,
        &json!({"to": {"broadcast": true}, "data": "b", "inbox": true}),
    )
    .await;
    let items = app.whole_inbox(&t, "ann", false).await;
    assert_eq!(items.len(), 4);
    // The oldest two: one marked read above the cursor, one left unread.
    app.mark(&t, "ann", "/read", json!({"ids": [ids(&items)[3]]}))
        .await;
    assert_eq!(app.assert_exact(&t, "ann").await, 3);
    for n in 3..6 {
        app.publish_ok(&t.api_key, &to_ann(n)).await;
    }
    assert!(stream.wait_for_inbox(6, WAIT).await);
    prune().await;
    // Four events are kept: the broadcast and items 3, 4, 5.
    let left = app.whole_inbox(&t, "ann", false).await;
    let data: Vec<&Value> = left.iter().map(|item| &item["data"]).collect();
    assert_eq!(data, [&json!(5), &json!(4), &json!(3), &json!("b")]);
    assert_eq!(app.assert_exact(&t, "ann").await, 4);
    assert!(
        stream.wait_for_inbox(4, WAIT).await,
        "the stream's count follows the prune"
    );
    // Read all, then prune past the cursor: still exact.
    assert_eq!(app.mark(&t, "ann", "/read", json!({"all": true})).await, 0);
    app.mark(&t, "ann", "/unread", json!({"ids": [ids(&left)[3]]}))
        .await;
    for n in 6..10 {
        app.publish_ok(&t.api_key, &to_ann(n)).await;
    }
    prune().await;
    assert_eq!(app.assert_exact(&t, "ann").await, 4);
    app.publish_ok(&t.api_key, &to_ann(10)).await;
    assert!(stream.wait_for_inbox(5, WAIT).await);
    assert_eq!(app.assert_exact(&t, "ann").await, 5);
    while stream.next_inbox(QUIET).await.is_some() {}
    assert_eq!(stream.inbox_counts.last(), Some(&5));
}

const WAIT: std::time::Duration = std::time::Duration::from_secs(10);
const QUIET: std::time::Duration = std::time::Duration::from_millis(300);

/// Two tabs of one user: each gets the count after its replay and every change of it —
/// from a publish to the user, a broadcast, or a read or unread in either tab.
#[actix_web::test]
async fn every_stream_of_the_user_follows_the_count_live() {
    let app = spawn_app().await;
    let t = app.create_tenant("live").await;
    let mut tabs = Vec::new();
    for _ in 0..2 {
        tabs.push(app.open_stream(&t, &t.token("ann", &[]), "", None).await);
    }
    let mut bob = app.open_stream(&t, &t.token("bob", &[]), "", None).await;
    app.wait_for_open_streams(3).await;
    for tab in tabs.iter_mut().chain([&mut bob]) {
        assert_eq!(
            tab.next_inbox(WAIT).await,
            Some(0),
            "the count after the replay"
        );
    }
    // Each change and then its count: changes close together may share one count (the
    // stream sends the count after the frames it writes together).
    let item = app
        .publish_ok(
            &t.api_key,
            &json!({"to": {"user": "ann"}, "data": 1, "inbox": true}),
        )
        .await;
    for tab in &mut tabs {
        assert_eq!(tab.next_inbox(WAIT).await, Some(1));
    }
    app.publish_ok(
        &t.api_key,
        &json!({"to": {"broadcast": true}, "data": 2, "inbox": true}),
    )
    .await;
    for tab in &mut tabs {
        assert_eq!(tab.next_inbox(WAIT).await, Some(2));
    }
    assert_eq!(bob.next_inbox(WAIT).await, Some(1), "the broadcast only");
    // Not an inbox item: no count.
    app.publish_ok(&t.api_key, &json!({"to": {"user": "ann"}, "data": 3}))
        .await;
    for tab in &mut tabs {
        assert_eq!(tab.take(3, WAIT).await.len(), 3, "the events themselves");
        assert_eq!(tab.next_inbox(QUIET).await, None);
    }

    // A read (as one tab's page does it), an unread, a read of everything.
    let id = item[0]["id"].as_str().unwrap();
    for (path, body, expected) in [
        ("/read", json!({"ids": [id]}), 1),
        ("/unread", json!({"ids": [id]}), 2),
        ("/read", json!({"all": true}), 0),
    ] {
        assert_eq!(app.mark(&t, "ann", path, body).await, expected);
        for tab in &mut tabs {
            assert_eq!(tab.next_inbox(WAIT).await, Some(expected));
        }
    }
    // Bob's streams hear nothing of ann's reads.
    assert_eq!(bob.next_inbox(QUIET).await, None);
    assert_eq!(bob.inbox_counts, [0, 1]);
}

/// A stream that resumes gets what it missed and then the count, once.
#[actix_web::test]
async fn a_resumed_stream_gets_its_replay_then_the_count_once() {
    let app = spawn_app().await;
    let t = app.create_tenant("resumed").await;
    let published = app
        .publish_ok(
            &t.api_key,
            &json!({"events": [
                {"to": {"user": "ann"}, "data": 1, "inbox": true},
                {"to": {"user": "ann"}, "data": 2, "inbox": true},
                {"to": {"broadcast": true}, "data": 3, "inbox": true}
            ]}),
        )
        .await;
    let first = published[0]["id"].as_str().unwrap();
    let mut stream = app
        .open_stream(&t, &t.token("ann", &[]), "", Some(first))
        .await;
    assert_eq!(stream.take(2, WAIT).await.len(), 2);
    assert_eq!(stream.next_inbox(WAIT).await, Some(3));
    assert_eq!(stream.next_inbox(QUIET).await, None);
    assert_eq!(stream.inbox_counts, [3]);
    // Its wire order: the replayed events, then the count.
    let mut raw = app
        .stream_request(&t.slug, &t.token("ann", &[]), "", Some(first))
        .await;
    let mut text = String::new();
    while !text.contains("event: inbox") {
        let chunk = tokio::time::timeout(WAIT, raw.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let inbox = text.find("event: inbox\ndata: {\"unread\":3}\n\n").unwrap();
    let last_event = text.rfind("id: ").unwrap();
    assert!(last_event < inbox, "{text}");
    assert!(
        !text[inbox..].contains("id:"),
        "the count carries no id: {text}"
    );
}

/// Publishers and readers at once: the count each stream ends on is the count, and the
/// count is what the list says.
#[actix_web::test]
async fn under_concurrent_publishes_and_reads_the_streams_end_on_the_exact_count() {
    let app = spawn_app().await;
    let t = app.create_tenant("busy").await;
    let mut tabs = Vec::new();
    for _ in 0..2 {
        tabs.push(app.open_stream(&t, &t.token("ann", &[]), "", None).await);
    }
    app.wait_for_open_streams(2).await;
    let publishers = (0..8).map(|p| {
        let app = &app;
        let t = &t;
        async move {
            let mut ids = Vec::new();
            for n in 0..20 {
                let to = match n % 5 {
                    4 => json!({"broadcast": true}),
                    _ => json!({"user": "ann"}),
                };
                let published = app
                    .publish_ok(
                        &t.api_key,
                        &json!({"to": to, "data": p * 100 + n, "inbox": true}),
                    )
                    .await;
                ids.push(published[0]["id"].as_str().unwrap().to_owned());
            }
            ids
        }
    });
    let readers = (0..4).map(|r| {
        let app = &app;
        let t = &t;
        async move {
            for n in 0..15 {
                let page = app.inbox(t, "ann", "limit=5").await;
                let ids = ids(page["items"].as_array().unwrap());
                let body = match (r + n) % 4 {
                    0 => json!({"all": true}),
                    1 | 2 => json!({"ids": ids}),
                    _ => json!({"ids": ids.iter().take(2).collect::<Vec<_>>()}),
                };
                let path = if n % 3 == 2 { "/unread" } else { "/read" };
                if path == "/unread" && body.get("all").is_some() {
                    continue;
                }
                app.mark(t, "ann", path, body).await;
            }
        }
    });
    let (published, ()) = tokio::join!(futures_util::future::join_all(publishers), async {
        futures_util::future::join_all(readers).await;
    });
    assert_eq!(published.concat().len(), 160);
    let count = app.assert_exact(&t, "ann").await;
    for tab in &mut tabs {
        assert_eq!(tab.take(160, WAIT).await.len(), 160);
        // Whatever else it said on the way, the stream ends on the count.
        while tab.next_inbox(QUIET).await.is_some() {}
        assert_eq!(
            tab.inbox_counts.last(),
            Some(&count),
            "{:?}",
            tab.inbox_counts
        );
    }
}
