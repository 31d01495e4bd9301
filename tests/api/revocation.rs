//! Revocation bites at once: revoking a signing key ends the open streams its tokens opened
//! (and only those), removing a tenant ends all of its streams — each with a last
//! `session-expired` saying why — and neither can be used to open another.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::sse_client::SseStream;
use crate::support::{assert_error, now_secs, sign_hs256, spawn_app};

const WAIT: Duration = Duration::from_secs(10);

/// The stream's last event is `session-expired` with this reason, and then it ends.
async fn assert_session_ends(stream: &mut SseStream, reason: &str) {
    let last = stream
        .next_event(WAIT)
        .await
        .expect("a session-expired event");
    assert_eq!(last.event, "session-expired");
    let data: Value = serde_json::from_str(&last.data).unwrap();
    assert_eq!(data["reason"], reason);
    assert!(stream.wait_for_end(WAIT).await, "the stream ends");
}

#[actix_web::test]
async fn revoking_a_signing_key_ends_the_streams_it_opened_and_only_those() {
    let app = spawn_app().await;
    let t = app.create_tenant("revoke").await;
    let second = app
        .create_signing_key("revoke", json!({"alg": "HS256"}))
        .await;
    let by_second = sign_hs256(
        second["kid"].as_str().unwrap(),
        second["secret"].as_str().unwrap().as_bytes(),
        &json!({"sub": "u", "aud": "herald", "exp": now_secs() + 600}),
    );
    let by_first = t.token("u", &[]);
    let mut first = app.open_stream(&t, &by_first, "", None).await;
    let mut other = app.open_stream(&t, &by_second, "", None).await;
    app.wait_for_open_streams(2).await;

    let response = app.revoke_key("revoke", "signing-keys", &t.kid).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_session_ends(
        &mut first,
        "the signing key of the session's token was revoked",
    )
    .await;
    app.wait_for_open_streams(1).await;
    app.publish_ok(
        &t.api_key,
        &json!({"to": {"user": "u"}, "data": "still here"}),
    )
    .await;
    assert_eq!(other.next_event(WAIT).await.unwrap().data, "still here");
    let response = app.stream_request(&t.slug, &by_first, "", None).await;
    assert_error(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
}

#[actix_web::test]
async fn removing_a_tenant_ends_all_its_streams() {
    let app = spawn_app().await;
    let t = app.create_tenant("gone").await;
    let kept = app.create_tenant("kept").await;
    let mut streams = vec![
        app.open_stream(&t, &t.token("a", &[]), "", None).await,
        app.open_stream(&t, &t.token("b", &[]), "", None).await,
    ];
    let mut other = app
        .open_stream(&kept, &kept.token("a", &[]), "", None)
        .await;
    app.wait_for_open_streams(3).await;

    assert_eq!(
        app.delete_tenant("gone").await.status(),
        StatusCode::NO_CONTENT
    );
    for stream in &mut streams {
        assert_session_ends(stream, "the tenant was removed").await;
    }
    app.wait_for_open_streams(1).await;
    app.publish_ok(
        &kept.api_key,
        &json!({"to": {"user": "a"}, "data": "unaffected"}),
    )
    .await;
    assert_eq!(other.next_event(WAIT).await.unwrap().data, "unaffected");
}

/// Streams read the tenant from memory, yet an operator's change applies to the very next
/// stream: the change drops what was kept.
#[actix_web::test]
async fn a_changed_origin_list_applies_to_the_next_stream_at_once() {
    let app = spawn_app().await;
    let t = app.create_tenant("origins").await;
    let token = t.token("u", &[]);
    let from_app = || {
        app.client
            .get(app.url("/t/origins/stream"))
            .header("Origin", "https://app.example.com")
            .bearer_auth(&token)
            .send()
    };
    let first = from_app().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    drop(first);
    let response = app
        .patch_tenant(
            "origins",
            json!({"allowed_origins": ["https://other.example.com"]}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_error(
        from_app().await.unwrap(),
        StatusCode::FORBIDDEN,
        "origin_not_allowed",
    )
    .await;
}
