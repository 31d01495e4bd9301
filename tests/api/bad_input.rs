//! Bad input gets a clear 4xx with a stable code and changes nothing.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{TestApp, assert_error, spawn_app};

/// Each case: a description, the raw body, the content type, the status and code expected.
fn publish_cases() -> Vec<(&'static str, String, &'static str, StatusCode, &'static str)> {
    let json_ct = "application/json";
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    let event = |to: Value| json!({"to": to, "data": 1}).to_string();
    let many: Vec<Value> = (0..1001).map(|_| json!({"to": {"user": "u"}})).collect();
    let big_data = "x".repeat(64 * 1024);
    vec![
        (
            "malformed JSON",
            "{\"to\": ".into(),
            json_ct,
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "wrong content type",
            event(json!({"user": "u"})),
            "text/plain",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "body over the limit",
            format!(
                "{{\"to\":{{\"user\":\"u\"}},\"data\":\"{}\"}}",
                "x".repeat(9 * 1024 * 1024)
            ),
            json_ct,
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
        ),
        (
            "data over 64 KiB",
            json!({"to": {"user": "u"}, "data": big_data}).to_string(),
            json_ct,
            StatusCode::PAYLOAD_TOO_LARGE,
            "data_too_large",
        ),
        (
            "1001 events",
            json!({"events": many}).to_string(),
            json_ct,
            unprocessable,
            "too_many_events",
        ),
        (
            "empty batch",
            json!({"events": []}).to_string(),
            json_ct,
            unprocessable,
            "empty_batch",
        ),
        (
            "not an object",
            "[1]".into(),
            json_ct,
            unprocessable,
            "invalid_body",
        ),
        (
            "unknown field",
            json!({"to": {"user": "u"}, "tpye": "x"}).to_string(),
            json_ct,
            unprocessable,
            "invalid_body",
        ),
        (
            "missing to",
            json!({"data": 1}).to_string(),
            json_ct,
            unprocessable,
            "invalid_target",
        ),
        (
            "empty to",
            event(json!({})),
            json_ct,
            unprocessable,
            "invalid_target",
        ),
        (
            "two targets",
            event(json!({"user": "u", "topic": "t"})),
            json_ct,
            unprocessable,
            "invalid_target",
        ),
        (
            "broadcast false",
            event(json!({"broadcast": false})),
            json_ct,
            unprocessable,
            "invalid_target",
        ),
        (
            "empty users",
            event(json!({"users": []})),
            json_ct,
            unprocessable,
            "invalid_target",
        ),
        (
            "empty user id",
            event(json!({"user": ""})),
            json_ct,
            unprocessable,
            "invalid_user",
        ),
        (
            "user id too long",
            event(json!({"user": "u".repeat(257)})),
            json_ct,
            unprocessable,
            "invalid_user",
        ),
        (
            "user id with newline",
            event(json!({"user": "a\nb"})),
            json_ct,
            unprocessable,
            "invalid_user",
        ),
        (
            "user id not a string",
            event(json!({"users": ["a", 7]})),
            json_ct,
            unprocessable,
            "invalid_user",
        ),
        (
            "topic with control char",
            event(json!({"topic": "a\u{7}b"})),
            json_ct,
            unprocessable,
            "invalid_topic",
        ),
        (
            "type with newline",
            json!({"to": {"user": "u"}, "type": "mail\ndata: x"}).to_string(),
            json_ct,
            unprocessable,
            "invalid_type",
        ),
        (
            "type with space",
            json!({"to": {"user": "u"}, "type": "a b"}).to_string(),
            json_ct,
            unprocessable,
            "invalid_type",
        ),
        (
            "type too long",
            json!({"to": {"user": "u"}, "type": "t".repeat(65)}).to_string(),
            json_ct,
            unprocessable,
            "invalid_type",
        ),
        (
            "type not a string",
            json!({"to": {"user": "u"}, "type": 5}).to_string(),
            json_ct,
            unprocessable,
            "invalid_type",
        ),
    ]
}

async fn assert_log_empty(app: &TestApp, api_key: &str) {
    let history = app.full_history(api_key, "user=u&topics=t").await;
    assert!(history.is_empty(), "bad input changed the log: {history:?}");
}

#[actix_web::test]
async fn bad_publish_requests_get_specific_errors_and_change_nothing() {
    let app = spawn_app().await;
    let t = app.create_tenant("bad").await;
    for (what, body, content_type, status, code) in publish_cases() {
        let response = app
            .client
            .post(app.url("/v1/events"))
            .bearer_auth(&t.api_key)
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{what}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["error"]["code"], code, "{what}: {answer}");
    }
    assert_log_empty(&app, &t.api_key).await;
}

#[actix_web::test]
async fn one_bad_event_rejects_the_whole_batch_and_names_its_index() {
    let app = spawn_app().await;
    let t = app.create_tenant("batch").await;
    let response = app
        .publish(
            &t.api_key,
            &json!({"events": [
                {"to": {"user": "u"}, "data": "fine"},
                {"to": {"user": "u"}, "data": "fine too"},
                {"to": {"topic": ""}, "data": "bad"}
            ]}),
        )
        .await;
    let body = assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_topic").await;
    assert_eq!(body["error"]["index"], 2);
    assert_log_empty(&app, &t.api_key).await;
}

#[actix_web::test]
async fn credentials_are_checked_before_anything_else() {
    let app = spawn_app().await;
    let t = app.create_tenant("creds").await;
    let event = json!({"to": {"user": "u"}});
    let no_key = app
        .client
        .post(app.url("/v1/events"))
        .json(&event)
        .send()
        .await
        .unwrap();
    assert_error(no_key, StatusCode::UNAUTHORIZED, "missing_credentials").await;
    let basic = app
        .client
        .post(app.url("/v1/events"))
        .header("Authorization", "Basic dXNlcjpwYXNz")
        .json(&event)
        .send()
        .await
        .unwrap();
    assert_error(basic, StatusCode::UNAUTHORIZED, "missing_credentials").await;
    for key in ["hk_unknown", "nonsense", &format!("{}x", t.api_key)] {
        let response = app.publish(key, &event).await;
        assert_error(response, StatusCode::UNAUTHORIZED, "invalid_api_key").await;
    }
    // An unauthenticated request with a broken body is still just unauthorized.
    let both = app
        .client
        .post(app.url("/v1/events"))
        .bearer_auth("hk_unknown")
        .header("Content-Type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_error(both, StatusCode::UNAUTHORIZED, "invalid_api_key").await;
    assert_log_empty(&app, &t.api_key).await;
}

#[actix_web::test]
async fn a_bad_history_query_gets_its_400_and_reads_nothing() {
    let app = spawn_app().await;
    let t = app.create_tenant("hist").await;
    app.publish_ok(&t.api_key, &json!({"to": {"user": "u"}}))
        .await;
    let cases = [
        ("limit=10", StatusCode::BAD_REQUEST, "invalid_query"),
        ("user=u&limit=0", StatusCode::BAD_REQUEST, "invalid_limit"),
        (
            "user=u&limit=1001",
            StatusCode::BAD_REQUEST,
            "invalid_limit",
        ),
        ("user=u&limit=ten", StatusCode::BAD_REQUEST, "invalid_query"),
        (
            "user=u&after=garbage",
            StatusCode::BAD_REQUEST,
            "invalid_cursor",
        ),
        (
            "user=u&after=otherepoch-1",
            StatusCode::GONE,
            "cursor_expired",
        ),
        ("user=", StatusCode::UNPROCESSABLE_ENTITY, "invalid_user"),
        (
            "user=u&topics=a,%0A",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_topic",
        ),
    ];
    for (query, status, code) in cases {
        assert_error(app.history(&t.api_key, query).await, status, code).await;
    }
    let page: Value = app
        .history(&t.api_key, "user=u")
        .await
        .json()
        .await
        .unwrap();
    let id = page["events"][0]["id"].as_str().unwrap();
    // Beyond the end of the log (restored from an older copy, say): start again, as a
    // stream gets `reset`.
    let future = id.replace("-1", "-99");
    assert_error(
        app.history(&t.api_key, &format!("user=u&after={future}"))
            .await,
        StatusCode::GONE,
        "cursor_expired",
    )
    .await;
}

#[actix_web::test]
async fn bad_operator_requests_get_specific_errors_and_change_nothing() {
    let app = spawn_app().await;
    let cases = [
        (json!({"slug": "Bad Slug"}), "invalid_slug"),
        (json!({"slug": "-x"}), "invalid_slug"),
        (
            json!({"slug": "ok", "allowed_origins": ["*"]}),
            "invalid_origin",
        ),
        (
            json!({"slug": "ok", "allowed_origins": ["https://a.test/"]}),
            "invalid_origin",
        ),
        (
            json!({"slug": "ok", "retention": {"max_events": 0}}),
            "invalid_retention",
        ),
        (json!({"slug": "ok", "name": ""}), "invalid_name"),
        (json!({"slug": "ok", "colour": "red"}), "invalid_body"),
        (json!({"name": "no slug"}), "invalid_body"),
    ];
    for (body, code) in cases {
        let response = app.post_tenant(body.clone()).await;
        assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, code).await;
    }
    let response = app
        .admin_raw(Method::POST, "/admin/tenants", "{\"slug\":")
        .await;
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_json").await;
    app.create_tenant("ok").await;
    let patch = app.patch_tenant("ok", json!({"slug": "renamed"})).await;
    assert_error(patch, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body").await;
    let key = app
        .admin_raw(Method::POST, "/admin/tenants/ok/api-keys", "{oops")
        .await;
    assert_error(key, StatusCode::BAD_REQUEST, "invalid_json").await;
    let missing = app.post_api_key("nope", None).await;
    assert_error(missing, StatusCode::NOT_FOUND, "tenant_not_found").await;

    let tenants = app.list_tenants().await;
    let slugs: Vec<&str> = tenants
        .iter()
        .map(|t| t["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["ok"]);
    assert_eq!(
        app.list_api_keys("ok").await.len(),
        1,
        "only create_tenant's key"
    );
}
