//! Input the contract refuses or normalises, one request each: names that could never be
//! streamed, wildcards that never match, Herald's own event types, repeated recipients,
//! audiences as arrays, sessions longer than the configured maximum.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{assert_error, now_secs, spawn_app, spawn_app_with};

#[actix_web::test]
async fn a_topic_with_a_comma_is_refused_at_publish_and_too_many_topics_at_history() {
    let app = spawn_app().await;
    let t = app.create_tenant("commas").await;
    let response = app
        .publish(&t.api_key, &json!({"to": {"topic": "a,b"}, "data": 1}))
        .await;
    assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_topic").await;
    assert!(
        app.full_history(&t.api_key, "user=u&topics=a")
            .await
            .is_empty()
    );

    let topics: Vec<String> = (0..65).map(|i| format!("t{i}")).collect();
    let response = app
        .history(&t.api_key, &format!("user=u&topics={}", topics.join(",")))
        .await;
    assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_topic").await;
    let response = app
        .stream_request(
            &t.slug,
            &t.token("u", &["t*"]),
            &format!("topics={}", topics.join(",")),
            None,
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[actix_web::test]
async fn a_wildcard_origin_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    app.create_tenant("wild").await;
    let response = app
        .patch_tenant(
            "wild",
            json!({"allowed_origins": ["https://*.example.com"]}),
        )
        .await;
    assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_origin").await;
    let tenant: Value = app.get_tenant("wild").await.json().await.unwrap();
    assert_eq!(
        tenant["allowed_origins"],
        json!(["https://app.example.com"])
    );
}

#[actix_web::test]
async fn herald_s_own_event_types_are_reserved() {
    let app = spawn_app().await;
    let t = app.create_tenant("reserved").await;
    for reserved in ["reset", "session-expired", "inbox"] {
        let response = app
            .publish(
                &t.api_key,
                &json!({"to": {"user": "u"}, "type": reserved, "data": 1}),
            )
            .await;
        assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_type").await;
    }
    assert!(app.full_history(&t.api_key, "user=u").await.is_empty());
}

#[actix_web::test]
async fn a_user_listed_twice_gets_the_event_once() {
    let app = spawn_app().await;
    let t = app.create_tenant("twice").await;
    let receipts = app
        .publish_ok(
            &t.api_key,
            &json!({"to": {"users": ["x", "y", "x"]}, "data": "hi"}),
        )
        .await;
    let recipients: Vec<&Value> = receipts.iter().map(|r| &r["to"]["user"]).collect();
    assert_eq!(recipients, [&json!("x"), &json!("y")]);
    assert_eq!(app.full_history(&t.api_key, "user=x").await.len(), 1);
}

#[actix_web::test]
async fn an_audience_may_be_an_array_and_a_session_never_outlives_the_maximum() {
    let app = spawn_app_with(|s| s.jwt.max_session_secs = 600).await;
    let t = app.create_tenant("aud").await;
    let years_ahead = now_secs() + 5 * 365 * 24 * 3600;
    let token = t.token_with(json!({"sub": "u", "aud": ["other", "herald"], "exp": years_ahead}));
    let response = app.post_session("aud", &token).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    let max_age: i64 = cookie
        .split("; ")
        .find_map(|attribute| attribute.strip_prefix("Max-Age="))
        .unwrap()
        .parse()
        .unwrap();
    assert!((590..=600).contains(&max_age), "Max-Age={max_age}");
    // An array without Herald's audience is still refused.
    let foreign = t.token_with(json!({"sub": "u", "aud": ["other"], "exp": now_secs() + 60}));
    let response = app.stream_request(&t.slug, &foreign, "", None).await;
    assert_error(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
    // The stream opens with the array audience.
    app.open_stream(&t, &token, "", None).await;
}

#[actix_web::test]
async fn a_wrong_method_gets_405_with_allow_in_the_json_shape_everywhere() {
    let app = spawn_app().await;
    app.create_tenant("methods").await;
    for (method, path, allow) in [
        (reqwest::Method::PUT, "/v1/events", "GET, POST"),
        (reqwest::Method::DELETE, "/healthz", "GET"),
        (reqwest::Method::POST, "/metrics", "GET"),
        (
            reqwest::Method::PUT,
            "/admin/tenants/methods",
            "GET, PATCH, DELETE",
        ),
        (
            reqwest::Method::GET,
            "/admin/tenants/methods/api-keys/x",
            "DELETE",
        ),
        (reqwest::Method::PUT, "/t/methods/stream", "GET"),
        (reqwest::Method::GET, "/t/methods/session", "POST, DELETE"),
    ] {
        let response = app
            .client
            .request(method.clone(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.headers().get("allow").map(|v| v.to_str().unwrap()),
            Some(allow),
            "{method} {path}"
        );
        assert_error(
            response,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        )
        .await;
    }
    let response = app
        .client
        .get(app.url("/no/such/path"))
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::NOT_FOUND, "not_found").await;
}
