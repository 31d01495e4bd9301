//! What the console reads, through the public API: the live tail of a tenant (its events
//! as committed, Herald's notices about it, ended at once when its key is revoked), the
//! admin token acting as a tenant (`Herald-Tenant`), a key's own tenant, and the hourly
//! usage figures, per tenant and summed over all.

use std::time::Duration;

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::support::app::ADMIN_TOKEN;
use crate::support::receiver::{Answer, Receiver};
use crate::support::sse_client::{SseEvent, SseStream};
use crate::support::{TestApp, TestTenant, assert_error, spawn_app, spawn_app_with};

const WAIT: Duration = Duration::from_secs(5);

/// `GET /v1/tail` with `bearer` (and `Herald-Tenant` when given), asserting it opened.
async fn open_tail(app: &TestApp, bearer: &str, as_tenant: Option<&str>) -> SseStream {
    let mut request = app.client.get(app.url("/v1/tail")).bearer_auth(bearer);
    if let Some(slug) = as_tenant {
        request = request.header("Herald-Tenant", slug);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut tail = SseStream::new(response);
    // The first bytes say the tail is open: nothing committed after this is missed.
    assert!(tail.next_event(Duration::from_millis(300)).await.is_none());
    assert_eq!(tail.comments, 1, "the opening comment");
    tail
}

fn data(event: &SseEvent) -> Value {
    serde_json::from_str(&event.data).unwrap()
}

#[actix_web::test]
async fn the_tail_shows_committed_events_and_herald_s_notices_and_ends_when_its_key_is_revoked() {
    let app = spawn_app().await;
    let tenant = app.create_tenant("acme").await;
    let other = app.create_tenant("other").await;
    app.patch_tenant(
        "acme",
        json!({"limits": {"publish_per_sec": 1, "publish_burst": 2}}),
    )
    .await;
    let mut tail = open_tail(&app, &tenant.api_key, None).await;

    let published = app
        .publish_ok(
            &tenant.api_key,
            &json!({"events": [
                {"to": {"user": "alice"}, "type": "mail", "data": {"subject": "Hi"}, "inbox": true},
                {"to": {"topic": "news"}, "data": "text"},
            ]}),
        )
        .await;
    app.publish_ok(
        &other.api_key,
        &json!({"to": {"broadcast": true}, "data": 1}),
    )
    .await;
    let events = tail.take(2, WAIT).await;
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e.event == "event"));
    let first = data(&events[0]);
    assert_eq!(first["id"], published[0]["id"]);
    assert_eq!(first["to"], json!({"user": "alice"}));
    assert_eq!(first["type"], "mail");
    assert_eq!(first["data"], json!({"subject": "Hi"}));
    assert_eq!(first["size"], r#"{"subject":"Hi"}"#.len());
    assert_eq!(first["inbox"], true);
    assert!(first["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(data(&events[1])["to"], json!({"topic": "news"}));

    // A publish the rate limit refuses is Herald's doing: a notice.
    let refused = app
        .publish(
            &tenant.api_key,
            &json!({"to": {"user": "alice"}, "data": 2}),
        )
        .await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let notice = tail.next_event(WAIT).await.expect("a notice");
    assert_eq!(notice.event, "notice");
    let notice = data(&notice);
    assert_eq!(notice["kind"], "rate_limited");
    assert_eq!(notice["events"], 1);
    assert!(notice["retry_after_secs"].as_u64().unwrap() >= 1);

    // The other tenant's events never showed.
    assert!(tail.next_event(Duration::from_millis(300)).await.is_none());

    // Revoked: the tail ends at once, as the key's every other use does.
    let revoked = app.revoke_key("acme", "api-keys", &tenant.api_key_id).await;
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    assert!(tail.wait_for_end(WAIT).await, "the tail outlived its key");
}

#[actix_web::test]
async fn the_tail_tells_refused_streams_and_failed_webhook_attempts() {
    let app = spawn_app().await;
    let tenant = app.create_tenant("acme").await;
    app.patch_tenant("acme", json!({"limits": {"max_streams_per_user": 1}}))
        .await;
    let receiver = Receiver::start().await;
    receiver.answer_all(Answer::Status(500));
    let mut tail = open_tail(&app, &tenant.api_key, None).await;

    let token = tenant.token("alice", &[]);
    let _first = app.open_stream(&tenant, &token, "", None).await;
    let second = app.stream_request("acme", &token, "", None).await;
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    let notice = data(&tail.next_event(WAIT).await.expect("a notice"));
    assert_eq!(notice["kind"], "stream_refused");
    assert_eq!(notice["user"], "alice");
    assert_eq!(notice["reason"], "too_many_for_user");

    let created: Value = app
        .client
        .post(app.url("/v1/webhooks"))
        .bearer_auth(&tenant.api_key)
        .json(&json!({"url": receiver.url, "events": ["*"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let webhook = created["id"].as_str().unwrap();
    let sent: Value = app
        .client
        .post(app.url(&format!("/v1/webhooks/{webhook}/test")))
        .bearer_auth(&tenant.api_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut failed = None;
    while let Some(frame) = tail.next_event(Duration::from_secs(10)).await {
        if frame.event == "notice" && data(&frame)["kind"] == "webhook_failed" {
            failed = Some(data(&frame));
            break;
        }
    }
    let failed = failed.expect("a webhook_failed notice");
    assert_eq!(failed["endpoint_id"], webhook);
    assert_eq!(failed["message_id"], sent["message_id"]);
    assert_eq!(failed["type"], "webhook.test");
    assert_eq!(failed["status_code"], 500);
}

#[actix_web::test]
async fn the_operator_tails_any_tenant_and_its_tail_ends_with_the_tenant() {
    let app = spawn_app().await;
    let tenant = app.create_tenant("acme").await;
    let mut tail = open_tail(&app, ADMIN_TOKEN, Some("acme")).await;
    app.publish_ok(&tenant.api_key, &json!({"to": {"user": "bob"}, "data": 1}))
        .await;
    let event = tail.next_event(WAIT).await.expect("the event");
    assert_eq!(data(&event)["to"], json!({"user": "bob"}));
    assert_eq!(
        app.delete_tenant("acme").await.status(),
        StatusCode::NO_CONTENT
    );
    assert!(
        tail.wait_for_end(WAIT).await,
        "the tail outlived its tenant"
    );
}

#[actix_web::test]
async fn the_admin_token_acts_as_the_tenant_herald_tenant_names_and_only_then() {
    let app = spawn_app().await;
    let tenant = app.create_tenant("acme").await;
    let as_acme = |method: Method, path: &str| {
        app.client
            .request(method, app.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .header("Herald-Tenant", "acme")
    };
    let answer: Value = as_acme(Method::POST, "/v1/events")
        .json(&json!({"to": {"user": "alice"}, "data": "from the console"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = answer["events"][0]["id"].clone();
    assert!(id.is_string(), "{answer}");
    let history = app.full_history(&tenant.api_key, "user=alice").await;
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["id"], id);
    let own: Value = tenant_as(&app, ADMIN_TOKEN, Some("acme"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(own["slug"], "acme");

    let unnamed = tenant_as(&app, ADMIN_TOKEN, None).await;
    let body = assert_error(unnamed, StatusCode::UNAUTHORIZED, "missing_credentials").await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("Herald-Tenant"), "{message}");
    let unknown = tenant_as(&app, ADMIN_TOKEN, Some("nobody")).await;
    assert_error(unknown, StatusCode::NOT_FOUND, "tenant_not_found").await;
    // The header gives an API key nothing: a key acts as its own tenant whatever it says.
    let other = app.create_tenant("other").await;
    let own: Value = tenant_as(&app, &other.api_key, Some("acme"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(own["slug"], "other");
    let wrong = tenant_as(&app, "not-the-admin-token", Some("acme")).await;
    assert_error(wrong, StatusCode::UNAUTHORIZED, "invalid_api_key").await;
}

/// `GET /v1/tenant` with `bearer`, and `Herald-Tenant` when given.
async fn tenant_as(app: &TestApp, bearer: &str, herald_tenant: Option<&str>) -> Response {
    let mut request = app.client.get(app.url("/v1/tenant")).bearer_auth(bearer);
    if let Some(slug) = herald_tenant {
        request = request.header("Herald-Tenant", slug);
    }
    request.send().await.unwrap()
}

/// The last hour's figures of a usage answer.
fn this_hour(usage: &Value) -> Value {
    usage["hours"].as_array().unwrap().last().cloned().unwrap()
}

#[actix_web::test]
async fn hourly_usage_counts_publishes_deliveries_refusals_and_open_streams() {
    let app = spawn_app_with(|s| {
        s.tenant_defaults.publish_per_sec = 1;
        s.tenant_defaults.publish_burst = 4;
    })
    .await;
    let acme = app.create_tenant("acme").await;
    let other = app.create_tenant("other").await;
    let usage = |t: &TestTenant| {
        let key = t.api_key.clone();
        let app = &app;
        async move { app.get_json("/v1/usage", &key).await }
    };
    let empty = usage(&acme).await;
    assert_eq!(empty["hours"], json!([]), "no figures yet");

    let token = acme.token("alice", &[]);
    let mut first = app.open_stream(&acme, &token, "", None).await;
    let _second = app.open_stream(&acme, &token, "", None).await;
    app.publish_ok(
        &acme.api_key,
        &json!({"events": [
            {"to": {"user": "alice"}, "data": 1},
            {"to": {"user": "alice"}, "data": 2},
            {"to": {"user": "bob"}, "data": 3},
        ]}),
    )
    .await;
    assert_eq!(first.take(2, WAIT).await.len(), 2);
    let refused = app
        .publish(
            &acme.api_key,
            &json!({"events": [
                {"to": {"user": "bob"}, "data": 4}, {"to": {"user": "bob"}, "data": 5},
            ]}),
        )
        .await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    app.publish_ok(&other.api_key, &json!({"to": {"user": "zed"}, "data": 1}))
        .await;

    // Deliveries reach the figures as the shards count them: wait for both streams' two.
    let mut hour = Value::Null;
    for _ in 0..50 {
        hour = this_hour(&usage(&acme).await);
        if hour["delivered"] == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(hour["published"], 3, "{hour}");
    assert_eq!(hour["delivered"], 4, "{hour}");
    assert_eq!(hour["rate_limited"], 1, "{hour}");
    assert_eq!(hour["fallbacks_fired"], 0, "{hour}");
    assert_eq!(hour["streams_open"], 2, "{hour}");
    let start = hour["hour"].as_str().unwrap();
    assert!(start.ends_with(":00:00Z"), "{start}");
    // The operator sees the same figures for the tenant, and every tenant's summed.
    let operator: Value = app
        .admin(Method::GET, "/admin/tenants/acme/usage", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(this_hour(&operator)["published"], 3);
    let today = operator["days"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(today["published"], 3);
    assert_eq!(
        today["streams_open"], 2,
        "the day's most streams open at once"
    );
    let all: Value = app
        .admin(Method::GET, "/admin/usage", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(all["tenants"], 2);
    assert_eq!(this_hour(&all)["published"], 4, "{all}");
    assert_eq!(
        all["days"].as_array().unwrap().last().unwrap()["published"],
        4
    );
    // A key sees its own tenant's figures only.
    assert_eq!(this_hour(&usage(&other).await)["published"], 1);
}

#[actix_web::test]
async fn a_usage_answer_counts_every_publish_acknowledged_before_it() {
    // The node adds its counts to the rows every second; an answer must not miss what that
    // flush had taken but not yet written.
    let app = spawn_app().await;
    let tenant = app.create_tenant("acme").await;
    for published in 1..=60 {
        app.publish_ok(
            &tenant.api_key,
            &json!({"to": {"user": "u"}, "data": published}),
        )
        .await;
        let usage = app.get_json("/v1/usage", &tenant.api_key).await;
        assert_eq!(this_hour(&usage)["published"], published, "{usage}");
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
}
