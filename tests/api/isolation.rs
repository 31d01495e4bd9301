use reqwest::StatusCode;
use serde_json::json;

use crate::support::{assert_error, spawn_app};

#[actix_web::test]
async fn one_tenants_key_cannot_publish_to_or_read_another() {
    let app = spawn_app().await;
    let a = app.create_tenant("tenant-a").await;
    let b = app.create_tenant("tenant-b").await;
    // The same user id and topic name in both tenants.
    app.publish_ok(
        &a.api_key,
        &json!({"to": {"user": "alice"}, "data": "for A"}),
    )
    .await;
    app.publish_ok(
        &a.api_key,
        &json!({"to": {"topic": "news"}, "data": "A news"}),
    )
    .await;
    app.publish_ok(
        &a.api_key,
        &json!({"to": {"broadcast": true}, "data": "A all"}),
    )
    .await;
    app.publish_ok(
        &b.api_key,
        &json!({"to": {"user": "alice"}, "data": "for B"}),
    )
    .await;

    let seen_by_b = app.full_history(&b.api_key, "user=alice&topics=news").await;
    assert_eq!(seen_by_b.len(), 1);
    assert_eq!(seen_by_b[0]["data"], "for B");
    let seen_by_a = app.full_history(&a.api_key, "user=alice&topics=news").await;
    assert_eq!(seen_by_a.len(), 3);
    assert!(
        seen_by_a
            .iter()
            .all(|e| e["data"].as_str().unwrap().starts_with('A') || e["data"] == "for A")
    );

    // Each tenant's sequence is its own.
    assert_eq!(crate::support::seq_of(&seen_by_b[0]["id"]), 1);

    // An id from tenant A's log means nothing in tenant B's.
    let foreign = app
        .history(
            &b.api_key,
            &format!("user=alice&after={}", seen_by_a[2]["id"].as_str().unwrap()),
        )
        .await;
    assert_error(foreign, StatusCode::GONE, "cursor_expired").await;

    // Tenant B's admin paths cannot reach tenant A's keys.
    let cross = app.revoke_key("tenant-b", "api-keys", &a.api_key_id).await;
    assert_error(cross, StatusCode::NOT_FOUND, "api_key_not_found").await;
    app.publish_ok(&a.api_key, &json!({"to": {"user": "alice"}}))
        .await;
}
