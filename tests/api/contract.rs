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
    let published = app
        .publish_ok(
            &t.api_key,
            &json!({"to": {"users": ["x", "y", "x"]}, "data": "hi"}),
        )
        .await;
    let recipients: Vec<&Value> = published.iter().map(|r| &r["to"]["user"]).collect();
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

#[actix_web::test]
async fn a_body_must_be_an_object_and_so_must_every_object_in_it() {
    let app = spawn_app().await;
    let t = app.create_tenant("shapes").await;
    for (path, body) in [
        ("/admin/tenants/shapes/api-keys", "[null,null]"),
        ("/admin/tenants/shapes/signing-keys", "[null,null]"),
        ("/admin/tenants", "[\"x\",\"x\"]"),
    ] {
        let response = app.admin_raw(reqwest::Method::POST, path, body).await;
        let error = assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body").await;
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .contains("not an array"),
            "{path}: {error}"
        );
    }
    let response = app
        .post_tenant(json!({"slug": "arrays", "retention": [1, 1]}))
        .await;
    assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body").await;
    let response = app
        .patch_tenant("shapes", json!({"retention": [1, 1]}))
        .await;
    assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body").await;
    let response = app
        .publish(
            &t.api_key,
            &json!({"events": [[{"broadcast": true}, "x", 1]]}),
        )
        .await;
    let error = assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body").await;
    assert_eq!(error["error"]["index"], 0);

    // Nothing changed: no tenant, no key, no limits, no event.
    assert_eq!(
        app.get_tenant("arrays").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.list_api_keys("shapes").await.len(), 1);
    assert_eq!(app.list_signing_keys("shapes").await.len(), 1);
    let tenant: Value = app.get_tenant("shapes").await.json().await.unwrap();
    assert_eq!(
        tenant["retention"],
        json!({"max_age_secs": null, "max_events": null})
    );
    assert!(app.full_history(&t.api_key, "user=u").await.is_empty());
}

#[actix_web::test]
async fn a_key_repeated_in_any_object_is_refused() {
    let app = spawn_app().await;
    let t = app.create_tenant("twice").await;
    let publish = |body: &'static str| {
        app.client
            .post(app.url("/v1/events"))
            .bearer_auth(&t.api_key)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    for body in [
        r#"{"to":{"user":"a"},"to":{"user":"b"}}"#,
        r#"{"to":{"user":"a","user":"b"}}"#,
        r#"{"to":{"user":"a"},"data":{"x":1,"x":2}}"#,
    ] {
        let error = assert_error(
            publish(body).await.unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        )
        .await;
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .contains("appears twice")
        );
    }
    let response = app
        .admin_raw(
            reqwest::Method::POST,
            "/admin/tenants",
            r#"{"slug":"one","slug":"two"}"#,
        )
        .await;
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_json").await;
    assert!(app.full_history(&t.api_key, "user=a").await.is_empty());
    assert_eq!(app.get_tenant("two").await.status(), StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn a_query_whose_escapes_are_not_utf8_is_refused_on_every_route_and_path() {
    for own_path in [true, false] {
        let app = spawn_app_with(|s| s.stream.herald_path = own_path).await;
        let t = app.create_tenant("escapes").await;
        let response = app.history(&t.api_key, "user=%FF%FE").await;
        assert_error(response, StatusCode::BAD_REQUEST, "invalid_query").await;
        let response = app
            .stream_request(&t.slug, &t.token("u", &["*"]), "topics=a%C3", None)
            .await;
        assert_error(response, StatusCode::BAD_REQUEST, "invalid_query").await;
        // The same text, escaped as UTF-8, is read.
        let response = app.history(&t.api_key, "user=%C3%A9").await;
        assert_eq!(response.status(), StatusCode::OK);
    }
}

#[actix_web::test]
async fn an_oversized_body_gets_413_in_the_json_shape_on_every_route() {
    let app = spawn_app_with(|s| s.server.max_body_bytes = 1024).await;
    let t = app.create_tenant("large").await;
    let padding = "x".repeat(2048);
    let body = format!(r#"{{"name":"{padding}"}}"#);
    for path in [
        "/admin/tenants",
        "/admin/tenants/large",
        "/admin/tenants/large/api-keys",
        "/admin/tenants/large/signing-keys",
    ] {
        let method = match path {
            "/admin/tenants/large" => reqwest::Method::PATCH,
            _ => reqwest::Method::POST,
        };
        let response = app.admin_raw(method, path, &body).await;
        assert_error(response, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large").await;
    }
    let response = app
        .publish(
            &t.api_key,
            &json!({"to": {"broadcast": true}, "data": padding}),
        )
        .await;
    assert_error(response, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large").await;
}

#[actix_web::test]
async fn a_body_that_trickles_in_is_cut_off_with_408_and_the_connection_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let app = spawn_app_with(|s| s.server.body_timeout_secs = 1).await;
    let t = app.create_tenant("slow").await;
    let address = app.address.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: herald\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n",
        t.api_key
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    let trickle = async {
        // One byte every 200 ms: the body would take 20 s.
        for byte in r#"{"to":{"broadcast":true},"data":"#.bytes().cycle() {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            if socket.write_all(&[byte]).await.is_err() {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(3), trickle).await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        socket.read_to_end(&mut answer),
    )
    .await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(read.is_ok(), "the connection stays open: {answer:?}");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(answer.contains("\"code\":\"body_timeout\""), "{answer:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(8));
    assert!(app.full_history(&t.api_key, "user=u").await.is_empty());
}

/// A client's mistakes are counted, not logged one line each: no WARN or ERROR line for a
/// refused request or a malformed one, and `/metrics` counts both.
#[actix_web::test]
async fn client_mistakes_are_counted_in_metrics_not_logged_as_warnings() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let app = spawn_app().await;
    let refused = r#"herald_error_answers_total{code="invalid_admin_token"}"#;
    let malformed = "herald_malformed_requests_total";
    let before = (app.metric(refused).await, app.metric(malformed).await);

    let response = app
        .client
        .get(app.url("/admin/tenants"))
        .bearer_auth("not-the-admin-token")
        .send()
        .await
        .unwrap();
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let address = app.address.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
    socket
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        socket.read_to_end(&mut answer),
    )
    .await;
    assert!(answer.starts_with(b"HTTP/1.1 400"));

    assert!(app.metric(refused).await > before.0);
    assert!(app.metric(malformed).await > before.1);
    let logs = crate::support::captured_logs();
    let loud =
        |line: &&str| line.contains("\"level\":\"WARN\"") || line.contains("\"level\":\"ERROR\"");
    let request_lines: Vec<&str> = logs.lines().filter(|l| l.contains(&request_id)).collect();
    assert!(
        !request_lines.is_empty(),
        "the request is logged (its access line)"
    );
    assert!(!request_lines.iter().any(loud), "{request_lines:?}");
    assert!(
        !logs.lines().filter(loud).any(|l| l.contains("parse error")),
        "a malformed request is no warning or error"
    );
}

#[actix_web::test]
async fn the_demo_page_answers_a_wrong_method_with_405() {
    let app = spawn_app_with(|s| {
        s.seed.demo_tenant = true;
        s.demo.enabled = true;
        s.demo.port = 0;
    })
    .await;
    let port = app.demo_page.expect("the demo page is served");
    let response = app
        .client
        .get(format!("http://127.0.0.1:{port}/token"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["allow"], "POST");
    assert_error(
        response,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;
}

#[actix_web::test]
async fn history_reads_every_stream_merged_in_order_up_to_the_limit() {
    let app = spawn_app().await;
    let t = app.create_tenant("merged").await;
    let topics: Vec<String> = (0..64).map(|i| format!("t{i}")).collect();
    let mut published = Vec::new();
    for round in 0..3 {
        for (i, topic) in topics.iter().enumerate().filter(|(i, _)| i % 9 == round) {
            let ids = app
                .publish_ok(&t.api_key, &json!({"to": {"topic": topic}, "data": i}))
                .await;
            published.push(ids[0]["id"].clone());
        }
        let ids = app
            .publish_ok(&t.api_key, &json!({"to": {"user": "u"}, "data": round}))
            .await;
        published.push(ids[0]["id"].clone());
        let ids = app
            .publish_ok(
                &t.api_key,
                &json!({"to": {"broadcast": true}, "data": round}),
            )
            .await;
        published.push(ids[0]["id"].clone());
        app.publish_ok(&t.api_key, &json!({"to": {"user": "someone-else"}}))
            .await;
    }
    let query = format!("user=u&topics={}", topics.join(","));
    let all: Vec<Value> = app
        .full_history(&t.api_key, &query)
        .await
        .into_iter()
        .map(|e| e["id"].clone())
        .collect();
    assert_eq!(all, published);
    let page: Value = app
        .history(&t.api_key, &format!("{query}&limit=5"))
        .await
        .json()
        .await
        .unwrap();
    let first: Vec<Value> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].clone())
        .collect();
    assert_eq!(first, published[..5]);
}
