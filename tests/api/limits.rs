//! Tenant limits on one node: limits set, shown and refused; the publish rate limit (bursts,
//! 429 with Retry-After, batches whole or not at all, nothing stored, other tenants
//! untouched, changes at once); per-tenant event size, stored events and stream caps;
//! usage figures across a restart; per-tenant metrics under a label cap.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{
    TestApp, TestTenant, assert_error, retry_after, spawn_app, spawn_app_with, spawn_with_settings,
};

async fn set_limits(app: &TestApp, slug: &str, limits: Value) -> Value {
    let response = app.patch_tenant(slug, json!({ "limits": limits })).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// `n` events to user `u`, as one batch.
fn batch(n: usize) -> Value {
    let events: Vec<Value> = (0..n)
        .map(|i| json!({"to": {"user": "u"}, "data": i}))
        .collect();
    json!({ "events": events })
}

async fn stored(app: &TestApp, t: &TestTenant) -> usize {
    app.full_history(&t.api_key, "user=u").await.len()
}

#[actix_web::test]
async fn limits_are_shown_effective_set_reset_and_refused_when_bad() {
    let app = spawn_app_with(|s| {
        s.tenant_defaults.publish_per_sec = 50;
        s.tenant_defaults.publish_burst = 2000;
    })
    .await;
    let created = app
        .post_tenant(json!({"slug": "lim", "limits": {"publish_burst": 5, "max_streams": null}}))
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let tenant: Value = created.json().await.unwrap();
    assert_eq!(
        tenant["limits"],
        json!({"publish_per_sec": 50, "publish_burst": 5, "max_streams": 100000,
               "max_streams_per_user": 32, "max_event_data_bytes": 65536,
               "max_stored_events": null, "max_webhooks": 20})
    );
    let tenant = set_limits(
        &app,
        "lim",
        json!({"publish_per_sec": 7, "max_stored_events": 10}),
    )
    .await;
    assert_eq!(tenant["limits"]["publish_per_sec"], 7);
    assert_eq!(tenant["limits"]["publish_burst"], 5, "absent: unchanged");
    assert_eq!(tenant["limits"]["max_stored_events"], 10);
    let tenant = set_limits(&app, "lim", json!({"publish_burst": null})).await;
    assert_eq!(
        tenant["limits"]["publish_burst"], 2000,
        "null: the default again"
    );
    assert_eq!(tenant["limits"]["publish_per_sec"], 7);

    for (limits, field) in [
        (json!({"publish_per_sec": 0}), "publish_per_sec"),
        (json!({"publish_burst": -1}), "publish_burst"),
        (json!({"max_streams": 1.5}), "max_streams"),
        (json!({"max_streams_per_user": "2"}), "max_streams_per_user"),
        (
            json!({"max_event_data_bytes": 65537}),
            "max_event_data_bytes",
        ),
        (json!({"max_stored_events": 1e30}), "max_stored_events"),
    ] {
        let response = app.patch_tenant("lim", json!({ "limits": limits })).await;
        let error =
            assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_limits").await;
        assert!(
            error["error"]["message"].as_str().unwrap().contains(field),
            "{error}"
        );
        let response = app
            .post_tenant(json!({"slug": "other", "limits": limits}))
            .await;
        assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_limits").await;
    }
    let unchanged: Value = app.get_tenant("lim").await.json().await.unwrap();
    assert_eq!(unchanged["limits"], tenant["limits"]);
    assert_eq!(
        app.get_tenant("other").await.status(),
        StatusCode::NOT_FOUND
    );
    let response = app
        .patch_tenant("nobody", json!({"limits": {"publish_per_sec": 1}}))
        .await;
    assert_error(response, StatusCode::NOT_FOUND, "tenant_not_found").await;
}

#[actix_web::test]
async fn a_burst_is_admitted_then_429_with_retry_after_and_admitted_again_after_waiting() {
    let app = spawn_app().await;
    let t = app.create_tenant("bursty").await;
    let calm = app.create_tenant("calm").await;
    set_limits(
        &app,
        "bursty",
        json!({"publish_per_sec": 2, "publish_burst": 4}),
    )
    .await;

    let first = app.publish(&t.api_key, &batch(3)).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    assert_eq!(first.headers()["ratelimit-policy"], "\"publish\";q=4;w=2");
    assert_eq!(first.headers()["ratelimit"], "\"publish\";r=1;t=2");

    // Two more than the one left: refused whole, nothing stored.
    let refused = app.publish(&t.api_key, &batch(2)).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait = retry_after(&refused);
    assert!((1..=2).contains(&wait), "{wait}");
    assert!(refused.headers().contains_key("ratelimit"));
    assert_error(refused, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert_eq!(stored(&app, &t).await, 3);

    // Another tenant is not touched by this one's limit.
    for _ in 0..5 {
        app.publish_ok(&calm.api_key, &batch(2)).await;
    }

    // The one left still fits; then the bucket is empty until it refills.
    app.publish_ok(&t.api_key, &batch(1)).await;
    let response = app.publish(&t.api_key, &batch(1)).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait = retry_after(&response);
    tokio::time::sleep(Duration::from_secs(wait)).await;
    app.publish_ok(&t.api_key, &batch(1)).await;
    assert_eq!(stored(&app, &t).await, 5);

    // More than the bucket ever holds is a client error, not a wait.
    let response = app.publish(&t.api_key, &batch(5)).await;
    assert_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "too_many_events",
    )
    .await;
}

#[actix_web::test]
async fn a_changed_limit_takes_effect_at_once_and_a_429_leaves_the_idempotency_key_unused() {
    let app = spawn_app().await;
    let t = app.create_tenant("change").await;
    set_limits(
        &app,
        "change",
        json!({"publish_per_sec": 1, "publish_burst": 1}),
    )
    .await;
    app.publish_ok(&t.api_key, &batch(1)).await;
    let keyed = |body: &Value| {
        app.client
            .post(app.url("/v1/events"))
            .bearer_auth(&t.api_key)
            .header("Idempotency-Key", "order-1")
            .json(body)
            .send()
    };
    let refused = keyed(&batch(1)).await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);

    set_limits(
        &app,
        "change",
        json!({"publish_per_sec": 1000, "publish_burst": 1000}),
    )
    .await;
    // The same key with the same body is written now: the 429 did not use it up.
    let written = keyed(&batch(1)).await.unwrap();
    assert_eq!(written.status(), StatusCode::CREATED);
    assert!(!written.headers().contains_key("idempotent-replayed"));
    app.publish_ok(&t.api_key, &batch(500)).await;
    assert_eq!(stored(&app, &t).await, 502);
}

#[actix_web::test]
async fn a_tenant_s_event_size_stored_events_and_stream_caps_hold() {
    let app = spawn_app().await;
    let t = app.create_tenant("small").await;
    set_limits(
        &app,
        "small",
        json!({"max_event_data_bytes": 10, "max_stored_events": 3,
               "max_streams": 2, "max_streams_per_user": 1}),
    )
    .await;
    let response = app
        .publish(
            &t.api_key,
            &json!({"to": {"user": "u"}, "data": "more than ten"}),
        )
        .await;
    assert_error(response, StatusCode::PAYLOAD_TOO_LARGE, "data_too_large").await;

    for i in 0..5 {
        app.publish_ok(&t.api_key, &json!({"to": {"user": "u"}, "data": i}))
            .await;
    }
    app.state.store.prune(None).await.unwrap();
    let kept: Vec<Value> = app
        .full_history(&t.api_key, "user=u")
        .await
        .into_iter()
        .map(|e| e["data"].clone())
        .collect();
    assert_eq!(kept, [json!(2), json!(3), json!(4)]);

    let alice = t.token("alice", &[]);
    let _one = app.open_stream(&t, &alice, "", None).await;
    let second = app.stream_request(&t.slug, &alice, "", None).await;
    assert_error(second, StatusCode::TOO_MANY_REQUESTS, "too_many_streams").await;
    let _bob = app.open_stream(&t, &t.token("bob", &[]), "", None).await;
    let carol = app
        .stream_request(&t.slug, &t.token("carol", &[]), "", None)
        .await;
    assert_error(carol, StatusCode::TOO_MANY_REQUESTS, "too_many_streams").await;
}

async fn usage(app: &TestApp, slug: &str) -> Value {
    let response = app
        .admin(
            reqwest::Method::GET,
            &format!("/admin/tenants/{slug}/usage"),
            None,
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

#[actix_web::test]
async fn usage_equals_what_was_done_and_survives_a_restart() {
    let tempdir = tempfile::TempDir::new().unwrap();
    let url = crate::support::fresh_database_url(tempdir.path()).await;
    let settings = crate::support::test_settings(&url);
    let app = spawn_with_settings(settings.clone(), tempdir.path().to_path_buf(), None).await;
    let t = app.create_tenant("used").await;
    set_limits(
        &app,
        "used",
        json!({"publish_per_sec": 1, "publish_burst": 6}),
    )
    .await;
    let mut stream = app.open_stream(&t, &t.token("u", &[]), "", None).await;
    app.publish_ok(&t.api_key, &batch(4)).await;
    app.publish_ok(&t.api_key, &json!({"to": {"broadcast": true}}))
        .await;
    for _ in 0..2 {
        let response = app.publish(&t.api_key, &batch(4)).await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    }
    assert_eq!(stream.take(5, Duration::from_secs(5)).await.len(), 5);
    let figures = usage(&app, "used").await;
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let hour = chrono::Utc::now().format("%Y-%m-%dT%H:00:00Z").to_string();
    let zero = json!({"today": 0});
    assert_eq!(
        figures,
        json!({"streams_open": 1, "events_stored": 5,
               "published": {"today": 5, "month": 5},
               "rate_limited": {"today": 2}, "delivered": {"today": 5},
               "receipts": {"delivered": zero, "seen": zero, "read": zero},
               "fallbacks_fired": zero,
               "days": [{"day": today, "published": 5, "rate_limited": 2, "delivered": 5,
                         "receipts_delivered": 0, "receipts_seen": 0, "receipts_read": 0,
                         "fallbacks_fired": 0, "streams_open": 1}],
               "hours": [{"hour": hour, "published": 5, "delivered": 5, "rate_limited": 2,
                          "fallbacks_fired": 0, "streams_open": 1}]})
    );
    drop(stream);
    app.stopper.stop().await;

    let again = spawn_with_settings(settings, tempdir.path().to_path_buf(), None).await;
    let figures = usage(&again, "used").await;
    assert_eq!(figures["published"], json!({"today": 5, "month": 5}));
    assert_eq!(figures["rate_limited"]["today"], 2);
    assert_eq!(figures["delivered"]["today"], 5);
    assert_eq!(figures["streams_open"], 0);
    assert_eq!(
        figures["hours"][0]["published"], 5,
        "hours survive a restart too"
    );
    let response = again
        .admin(reqwest::Method::GET, "/admin/tenants/nobody/usage", None)
        .await;
    assert_error(response, StatusCode::NOT_FOUND, "tenant_not_found").await;
}

#[actix_web::test]
async fn per_tenant_metrics_label_the_first_tenants_and_sum_the_rest() {
    let app = spawn_app_with(|s| s.metrics.max_tenant_labels = 2).await;
    let mut tenants = Vec::new();
    for slug in ["m-one", "m-two", "m-three", "m-four"] {
        let t = app.create_tenant(slug).await;
        app.publish_ok(&t.api_key, &batch(2)).await;
        tenants.push(t);
    }
    let published = |tenant: &str| format!("herald_tenant_published_total{{tenant=\"{tenant}\"}}");
    assert_eq!(app.metric(&published("m-one")).await, 2.0);
    assert_eq!(app.metric(&published("m-two")).await, 2.0);
    assert_eq!(
        app.metric(&published("m-three")).await,
        0.0,
        "no label of its own"
    );
    assert_eq!(app.metric(&published("other")).await, 4.0);
}

/// Counts a node still holds for a tenant that is removed meanwhile go with it: they never
/// stop the other tenants' usage from being written.
#[actix_web::test]
async fn a_removed_tenant_s_unwritten_counts_do_not_hold_up_the_others() {
    let app = spawn_app().await;
    let gone = app.create_tenant("gone").await;
    let kept = app.create_tenant("kept").await;
    set_limits(
        &app,
        "gone",
        json!({"publish_per_sec": 1, "publish_burst": 1}),
    )
    .await;
    app.publish_ok(&gone.api_key, &batch(1)).await;
    let refused = app.publish(&gone.api_key, &batch(1)).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        app.delete_tenant("gone").await.status(),
        StatusCode::NO_CONTENT
    );

    app.publish_ok(&kept.api_key, &batch(2)).await;
    let figures = usage(&app, "kept").await;
    assert_eq!(figures["published"]["today"], 2);
}
