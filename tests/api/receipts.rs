//! Receipts and fallbacks from outside: pages tell what they got and saw, the backend reads
//! it back, and a fallback sends `notification.unseen` — once, deployment-wide, across a
//! SIGKILL — for each recipient whose fact did not happen in time, and nothing for the
//! others. The browser library's side is in `browser_library.rs`.

use std::time::{Duration, Instant};

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::support::app::Api;
use crate::support::process::ServerProcess;
use crate::support::receiver::{Receiver, verify_independently};
use crate::support::{TestTenant, assert_error, spawn_app};

/// Long enough for a due fallback's message to arrive.
const ARRIVES: Duration = Duration::from_secs(10);

impl Api {
    /// A page's receipt, as `user`.
    pub async fn post_receipt(&self, tenant: &TestTenant, user: &str, body: Value) -> Response {
        self.client
            .post(self.url(&format!("/t/{}/receipts", tenant.slug)))
            .bearer_auth(tenant.token(user, &[]))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn receipt_ok(&self, tenant: &TestTenant, user: &str, body: Value) {
        let response = self.post_receipt(tenant, user, body).await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }

    /// The backend's view of `ids` with `user`.
    pub async fn receipts(&self, tenant: &TestTenant, user: &str, ids: &[&str]) -> Vec<Value> {
        let path = format!("/v1/receipts?user={user}&ids={}", ids.join(","));
        let answer = self
            .backend_answer(tenant, Method::GET, &path, None, StatusCode::OK)
            .await;
        answer["receipts"].as_array().unwrap().clone()
    }

    /// Publishes `body` and answers the stored events' ids.
    async fn publish_ids(&self, tenant: &TestTenant, body: Value) -> Vec<String> {
        self.publish_ok(&tenant.api_key, &body)
            .await
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect()
    }

    async fn fallbacks_webhook(&self, tenant: &TestTenant, receiver: &Receiver) -> Value {
        self.create_webhook(tenant, &receiver.url, json!(["notification.unseen"]))
            .await
    }
}

/// Which facts a receipt answer holds.
fn facts(receipt: &Value) -> (bool, bool, bool) {
    (
        receipt["delivered_at"].is_string(),
        receipt["seen_at"].is_string(),
        receipt["read_at"].is_string(),
    )
}

/// The users the `notification.unseen` messages a receiver got were for, sorted.
fn unseen_users(receiver: &Receiver) -> Vec<String> {
    let mut users: Vec<String> = receiver
        .received()
        .iter()
        .map(|r| r.json())
        .filter(|m| m["type"] == "notification.unseen")
        .map(|m| m["data"]["user"].as_str().unwrap().to_owned())
        .collect();
    users.sort();
    users
}

#[actix_web::test]
async fn a_pages_receipts_are_the_backends_facts_each_implying_the_one_before() {
    let app = spawn_app().await;
    let tenant = app.api.create_tenant("acme").await;
    let ids = app
        .api
        .publish_ids(
            &tenant,
            json!({"events": [
                {"to": {"user": "u1"}, "data": 1},
                {"to": {"user": "u1"}, "data": 2, "inbox": true},
                {"to": {"broadcast": true}, "data": 3},
                {"to": {"user": "u1"}, "data": 4},
            ]}),
        )
        .await;
    let asked: Vec<&str> = ids.iter().map(String::as_str).collect();
    let before = app.api.receipts(&tenant, "u1", &asked).await;
    assert!(before.iter().all(|r| facts(r) == (false, false, false)));
    assert_eq!(before[2]["id"], ids[2]);

    // Delivered up to the broadcast; the last one seen (which implies delivered).
    app.api
        .receipt_ok(
            &tenant,
            "u1",
            json!({"delivered": ids[2], "seen": [ids[3]]}),
        )
        .await;
    let after = app.api.receipts(&tenant, "u1", &asked).await;
    let got: Vec<_> = after.iter().map(facts).collect();
    assert_eq!(
        got,
        [
            (true, false, false),
            (true, false, false),
            (true, false, false),
            (true, true, false)
        ]
    );
    assert_eq!(after[3]["delivered_at"], after[3]["seen_at"]);

    // An inbox read is the third fact, and implies the other two.
    let read = app
        .api
        .backend(
            &tenant,
            Method::POST,
            "/v1/inbox/read?user=u1",
            Some(json!({"ids": [ids[1]]})),
        )
        .await;
    assert_eq!(read.status(), StatusCode::OK);
    let item = app.api.receipts(&tenant, "u1", &[&ids[1]]).await;
    assert_eq!(facts(&item[0]), (true, true, true));

    // Another user has none of it: the broadcast was not delivered to them.
    let other = app.api.receipts(&tenant, "u2", &asked).await;
    assert!(other.iter().all(|r| facts(r) == (false, false, false)));
}

#[actix_web::test]
async fn receipts_sent_together_by_many_users_each_tell_only_their_own_facts() {
    let app = spawn_app().await;
    let tenant = app.api.create_tenant("acme").await;
    let users: Vec<String> = (0..40).map(|n| format!("u{n}")).collect();
    // Each user gets two events of their own around one broadcast.
    let mut events = Vec::new();
    for user in &users {
        events.push(json!({"to": {"user": user}, "data": 1}));
    }
    events.push(json!({"to": {"broadcast": true}, "data": 2}));
    for user in &users {
        events.push(json!({"to": {"user": user}, "data": 3}));
    }
    let ids = app
        .api
        .publish_ids(&tenant, json!({"events": events}))
        .await;
    let (first, broadcast, last) = (&ids[..40], &ids[40], &ids[41..]);
    // At once, so that they share commits: even users acknowledge their first event and see
    // it; odd ones acknowledge everything up to their last, and see the broadcast. One odd
    // user names another's event as seen, which changes nothing.
    let posts = users.iter().enumerate().map(|(n, user)| {
        let body = if n % 2 == 0 {
            json!({"delivered": first[n], "seen": [first[n]]})
        } else {
            json!({"delivered": last[n], "seen": [broadcast, first[(n + 1) % 40]]})
        };
        let (api, tenant) = (&app.api, &tenant);
        async move { api.receipt_ok(tenant, user, body).await }
    });
    futures_util::future::join_all(posts).await;
    for (n, user) in users.iter().enumerate() {
        let asked = [first[n].as_str(), broadcast.as_str(), last[n].as_str()];
        let got: Vec<_> = app
            .api
            .receipts(&tenant, user, &asked)
            .await
            .iter()
            .map(facts)
            .collect();
        let expected = if n % 2 == 0 {
            [
                (true, true, false),
                (false, false, false),
                (false, false, false),
            ]
        } else {
            [
                (true, false, false),
                (true, true, false),
                (true, false, false),
            ]
        };
        assert_eq!(got, expected, "{user}");
    }
    // Each event counted once per user that acknowledged it: 20 users × 1, 20 × 3.
    let usage = app
        .api
        .admin(Method::GET, "/admin/tenants/acme/usage", None)
        .await;
    let usage: Value = usage.json().await.unwrap();
    assert_eq!(usage["receipts"]["delivered"]["today"], 20 + 20 * 3);
    assert_eq!(usage["receipts"]["seen"]["today"], 20 + 20);
}

#[actix_web::test]
async fn receipts_for_ids_that_are_not_the_callers_events_change_nothing() {
    let app = spawn_app().await;
    let tenant = app.api.create_tenant("acme").await;
    let other_tenant = app.api.create_tenant("globex").await;
    let mine = app
        .api
        .publish_ids(&tenant, json!({"to": {"user": "u1"}, "data": 1}))
        .await;
    let theirs = app
        .api
        .publish_ids(&tenant, json!({"to": {"user": "u2"}, "data": 2}))
        .await;
    let topic = app
        .api
        .publish_ids(&tenant, json!({"to": {"topic": "news"}, "data": 3}))
        .await;
    let elsewhere = app
        .api
        .publish_ids(&other_tenant, json!({"to": {"user": "u1"}, "data": 4}))
        .await;
    let beyond = format!("{}-{}", mine[0].rsplit_once('-').unwrap().0, 999_999_999);
    app.api
        .receipt_ok(
            &tenant,
            "u1",
            json!({"seen": [theirs[0], topic[0], elsewhere[0], "not an id", "", beyond]}),
        )
        .await;
    app.api
        .receipt_ok(&tenant, "u1", json!({"delivered": "garbage"}))
        .await;
    app.api
        .receipt_ok(&tenant, "u1", json!({"delivered": beyond}))
        .await;
    for (user, id) in [("u1", &mine[0]), ("u2", &theirs[0]), ("u1", &topic[0])] {
        let receipt = app.api.receipts(&tenant, user, &[id]).await;
        assert_eq!(facts(&receipt[0]), (false, false, false), "{user} {id}");
    }
    let receipt = app
        .api
        .receipts(&other_tenant, "u1", &[&elsewhere[0]])
        .await;
    assert_eq!(facts(&receipt[0]), (false, false, false));

    // The shape is checked; the count of seen ids is bounded.
    let too_many: Vec<String> = (0..1001).map(|n| format!("{}-{n}", "ab")).collect();
    let response = app
        .api
        .post_receipt(&tenant, "u1", json!({"seen": too_many}))
        .await;
    assert_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_receipts",
    )
    .await;
    let response = app
        .api
        .post_receipt(&tenant, "u1", json!({"delivered": 5}))
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let anonymous = app
        .api
        .client
        .post(app.api.url("/t/acme/receipts"))
        .json(&json!({"delivered": mine[0]}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    // The backend's question is checked too.
    for bad in ["ids=", "ids=x", "user=u1", "user=u1&ids=nope"] {
        let response = app
            .api
            .backend(&tenant, Method::GET, &format!("/v1/receipts?{bad}"), None)
            .await;
        assert!(response.status().is_client_error(), "{bad}");
    }
    let hundred_and_one = vec![mine[0].as_str(); 101].join(",");
    let response = app
        .api
        .backend(
            &tenant,
            Method::GET,
            &format!("/v1/receipts?user=u1&ids={hundred_and_one}"),
            None,
        )
        .await;
    assert_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_receipts",
    )
    .await;
}

#[actix_web::test]
async fn a_fallback_is_refused_where_it_cannot_be_and_nothing_is_stored() {
    let app = spawn_app().await;
    let tenant = app.api.create_tenant("acme").await;
    for fallback_event in [
        json!({"to": {"topic": "news"}, "fallback": {"after_secs": 10}}),
        json!({"to": {"broadcast": true}, "fallback": {"after_secs": 10}}),
        json!({"to": {"user": "u1"}, "fallback": {"after_secs": 0}}),
        json!({"to": {"user": "u1"}, "fallback": {"after_secs": 604_801}}),
        json!({"to": {"user": "u1"}, "fallback": {"after_secs": 1.5}}),
        json!({"to": {"user": "u1"}, "fallback": {}}),
        json!({"to": {"user": "u1"}, "fallback": {"after_secs": 10, "unless": "opened"}}),
        json!({"to": {"user": "u1"}, "fallback": {"after_secs": 10, "unless": "read"}}),
        json!({"to": {"user": "u1"}, "fallback": {"after_secs": 10, "then": "email"}}),
        json!({"to": {"user": "u1"}, "fallback": 10}),
    ] {
        let body = json!({"events": [{"to": {"user": "u1"}}, fallback_event]});
        let response = app.api.publish(&tenant.api_key, &body).await;
        let error = assert_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_fallback",
        )
        .await;
        assert_eq!(error["error"]["index"], 1, "{body}");
    }
    assert!(
        app.api
            .full_history(&tenant.api_key, "user=u1")
            .await
            .is_empty()
    );
    assert_eq!(app.state.store.next_fallback_due().await.unwrap(), None);
    // The edges are accepted.
    for after in [1, 604_800] {
        let body = json!({"to": {"user": "u1"}, "inbox": true,
                          "fallback": {"after_secs": after, "unless": "read"}});
        app.api.publish_ok(&tenant.api_key, &body).await;
    }
}

#[actix_web::test]
async fn a_user_who_never_acknowledges_gets_notification_unseen_with_what_is_known() {
    let app = spawn_app().await;
    let tenant = app.api.create_tenant("acme").await;
    let receiver = Receiver::start().await;
    let webhook = app.api.fallbacks_webhook(&tenant, &receiver).await;
    // A raw SSE client, no herald.js: it gets the event and never says so.
    let token = tenant.token("u1", &[]);
    let mut stream = app.api.open_stream(&tenant, &token, "", None).await;
    // Within the event limit (64 KiB), too large for a message body with it.
    let large = "x".repeat(65_400);
    let ids = app
        .api
        .publish_ids(
            &tenant,
            json!({"events": [
                {"to": {"user": "u1"}, "type": "mail", "data": {"subject": "hi"},
                 "fallback": {"after_secs": 1}},
                {"to": {"user": "u1"}, "type": "mail", "data": large,
                 "fallback": {"after_secs": 1, "unless": "delivered"}},
            ]}),
        )
        .await;
    assert_eq!(stream.take(2, ARRIVES).await.len(), 2);
    let published = Instant::now();
    let got = receiver.wait_for(2, ARRIVES).await;
    assert!(published.elapsed() < Duration::from_secs(5));
    let mut messages: Vec<Value> = got.iter().map(|r| r.json()).collect();
    messages.sort_by_key(seq);
    let first = &messages[0]["data"];
    assert_eq!(messages[0]["type"], "notification.unseen");
    assert_eq!(first["user"], "u1");
    assert_eq!(first["event"]["id"], ids[0]);
    assert_eq!(first["event"]["to"], json!({"user": "u1"}));
    assert_eq!(first["event"]["type"], "mail");
    assert_eq!(first["event"]["data"], json!({"subject": "hi"}));
    assert!(first["event"]["created_at"].is_string());
    assert_eq!(
        (&first["unless"], &first["after_secs"]),
        (&json!("seen"), &json!(1))
    );
    assert_eq!(
        (&first["delivered"], &first["seen"], &first["read"]),
        (&json!(false), &json!(false), &json!(false))
    );
    assert_eq!(first["presence"]["online"], true);
    // The large event comes as where to fetch it.
    let second = &messages[1]["data"]["event"];
    assert_eq!(second["id"], ids[1]);
    assert_eq!(second["data"], Value::Null);
    assert_eq!(second["data_omitted"], true);
    let fetched = app
        .api
        .history(
            &tenant.api_key,
            second["fetch"].as_str().unwrap().split_once('?').unwrap().1,
        )
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(fetched["events"][0]["data"], json!(large));
    // Signed as the specification says, by its own reference verifier.
    let secret = webhook["secret"].as_str().unwrap();
    let verdicts = verify_independently(&[(secret, &got[0]), (secret, &got[1])]);
    if let Some(verdicts) = verdicts {
        assert!(verdicts.iter().all(|v| v == "ok"), "{verdicts:?}");
    }
    // Decided once: nothing more comes, and the backend sees it fired.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.received().len(), 2);
    let receipt = app.api.receipts(&tenant, "u1", &[&ids[0]]).await;
    assert_eq!(receipt[0]["fallback"]["status"], "fired");
    let usage = app
        .api
        .admin(Method::GET, "/admin/tenants/acme/usage", None)
        .await;
    let usage: Value = usage.json().await.unwrap();
    assert_eq!(usage["fallbacks_fired"]["today"], 2);
    // The metric is the process's (other tests' apps count in it too).
    assert!(
        app.api
            .metric("herald_fallbacks_total{outcome=\"fired\"}")
            .await
            >= 2.0
    );
}

fn seq(message: &Value) -> i64 {
    crate::support::seq_of(&message["data"]["event"]["id"])
}

#[actix_web::test]
async fn a_fallback_sends_nothing_for_a_recipient_whose_fact_happened_in_time() {
    let app = spawn_app().await;
    let tenant = app.api.create_tenant("acme").await;
    let receiver = Receiver::start().await;
    app.api.fallbacks_webhook(&tenant, &receiver).await;
    let ids = app
        .api
        .publish_ids(
            &tenant,
            json!({"to": {"users": ["a", "b", "c"]}, "data": "ping",
                   "fallback": {"after_secs": 2}}),
        )
        .await;
    // b saw it; c's page only got it (delivered, not seen).
    app.api
        .receipt_ok(&tenant, "b", json!({"seen": [ids[1]]}))
        .await;
    app.api
        .receipt_ok(&tenant, "c", json!({"delivered": ids[2]}))
        .await;
    receiver.wait_for(2, ARRIVES).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(unseen_users(&receiver), ["a", "c"]);
    let c = receiver
        .received()
        .iter()
        .map(|r| r.json())
        .find(|m| m["data"]["user"] == "c")
        .unwrap();
    assert_eq!(c["data"]["delivered"], true);
    assert_eq!(c["data"]["seen"], false);
    let b = app.api.receipts(&tenant, "b", &[&ids[1]]).await;
    assert_eq!(b[0]["fallback"]["status"], "skipped");

    // A receipt after it fired changes the facts, and sends no second message.
    app.api
        .receipt_ok(&tenant, "a", json!({"seen": [ids[0]]}))
        .await;
    let a = app.api.receipts(&tenant, "a", &[&ids[0]]).await;
    assert_eq!(facts(&a[0]), (true, true, false));
    assert_eq!(a[0]["fallback"]["status"], "fired");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(receiver.received().len(), 2);
}

#[actix_web::test]
async fn unless_read_is_settled_by_an_inbox_read_and_a_cancel_stops_the_rest() {
    let app = spawn_app().await;
    let tenant = app.api.create_tenant("acme").await;
    let receiver = Receiver::start().await;
    app.api.fallbacks_webhook(&tenant, &receiver).await;
    let read = app
        .api
        .publish_ids(
            &tenant,
            json!({"to": {"user": "u1"}, "inbox": true,
                   "fallback": {"after_secs": 1, "unless": "read"}}),
        )
        .await;
    let cancelled = app
        .api
        .publish_ids(
            &tenant,
            json!({"to": {"users": ["u2", "u3"]}, "fallback": {"after_secs": 1}}),
        )
        .await;
    let unread = app
        .api
        .publish_ids(
            &tenant,
            json!({"to": {"user": "u4"}, "inbox": true,
                   "fallback": {"after_secs": 1, "unless": "read"}}),
        )
        .await;
    // Seen is not read: u4's page saw the item, which does not settle `unless: read`.
    app.api
        .receipt_ok(&tenant, "u4", json!({"seen": [unread[0]]}))
        .await;
    let response = app
        .api
        .client
        .post(app.api.url("/t/acme/inbox/read"))
        .bearer_auth(tenant.token("u1", &[]))
        .json(&json!({"all": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // Any id of a `users` publish cancels the fallback for all of its recipients.
    let path = format!("/v1/events/{}/fallback", cancelled[1]);
    let response = app.api.backend(&tenant, Method::DELETE, &path, None).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    receiver.wait_for(1, ARRIVES).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(unseen_users(&receiver), ["u4"]);
    let u2 = app.api.receipts(&tenant, "u2", &[&cancelled[0]]).await;
    assert_eq!(u2[0]["fallback"]["status"], "cancelled");
    let u1 = app.api.receipts(&tenant, "u1", &[&read[0]]).await;
    assert_eq!(facts(&u1[0]), (true, true, true));
    assert_eq!(u1[0]["fallback"]["status"], "skipped");

    // Cancelling again, or an event without a fallback, is done already; none is not found.
    for id in [&cancelled[0], &read[0]] {
        let path = format!("/v1/events/{id}/fallback");
        let response = app.api.backend(&tenant, Method::DELETE, &path, None).await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }
    let epoch = read[0].rsplit_once('-').unwrap().0;
    for missing in [
        format!("{epoch}-999999"),
        "other-1".into(),
        "nonsense".into(),
    ] {
        let path = format!("/v1/events/{missing}/fallback");
        let response = app.api.backend(&tenant, Method::DELETE, &path, None).await;
        assert_error(response, StatusCode::NOT_FOUND, "event_not_found").await;
    }
}

#[actix_web::test]
async fn fallbacks_due_while_herald_was_killed_fire_once_each_after_it_restarts() {
    let receiver = Receiver::start().await;
    let server = ServerProcess::start(&[]).await;
    let tenant = server.create_tenant("acme").await;
    server.fallbacks_webhook(&tenant, &receiver).await;
    let users: Vec<String> = (0..20).map(|n| format!("u{n}")).collect();
    server
        .publish_ids(
            &tenant,
            json!({"to": {"users": users}, "fallback": {"after_secs": 2}}),
        )
        .await;
    let server = server
        .restart_after("KILL", tokio::time::sleep(Duration::from_secs(3)))
        .await;
    let started = Instant::now();
    receiver.wait_for(20, ARRIVES).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let mut expected = users.clone();
    expected.sort();
    assert_eq!(unseen_users(&receiver), expected);
    drop(server);
}

#[actix_web::test]
async fn with_two_nodes_each_fallback_fires_once() {
    let Some(cluster) = crate::support::cluster::cluster_with(2, &[]).await else {
        return;
    };
    let receiver = Receiver::start().await;
    let tenant = &cluster.tenant;
    cluster.nodes[0].fallbacks_webhook(tenant, &receiver).await;
    let mut expected = Vec::new();
    for n in 0..40 {
        let user = format!("u{n}");
        let body = json!({"to": {"user": user}, "fallback": {"after_secs": 1}});
        cluster.nodes[n % 2].publish_ids(tenant, body).await;
        expected.push(user);
    }
    receiver.wait_for(40, Duration::from_secs(20)).await;
    // Time for a second message from the other node, were there one.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    expected.sort();
    assert_eq!(unseen_users(&receiver), expected);
}
