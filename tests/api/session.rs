//! Session cookies and per-tenant CORS, over plain HTTP (the browser tests show the same in
//! Chromium).

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{assert_error, now_secs, spawn_app_with};

fn production_cookies(settings: &mut herald::config::Settings) {
    settings.cookie.secure = true;
    settings.cookie.same_site = herald::config::SameSite::None;
    settings.cookie.partitioned = true;
}

#[actix_web::test]
async fn the_session_cookie_carries_the_token_until_it_expires() {
    let app = spawn_app_with(production_cookies).await;
    let t = app.create_tenant("sess").await;
    let token = t.token_with(json!({"sub": "u", "aud": "herald", "exp": now_secs() + 1800}));
    let response = app.post_session("sess", &token).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    let attributes: Vec<&str> = cookie.split("; ").collect();
    assert_eq!(attributes[0], format!("herald_session={token}"));
    for expected in [
        "Path=/t/sess",
        "HttpOnly",
        "Secure",
        "SameSite=None",
        "Partitioned",
    ] {
        assert!(
            attributes.contains(&expected),
            "{expected} missing: {cookie}"
        );
    }
    let max_age: i64 = attributes
        .iter()
        .find_map(|a| a.strip_prefix("Max-Age="))
        .unwrap()
        .parse()
        .unwrap();
    assert!((1795..=1800).contains(&max_age), "Max-Age={max_age}");

    // The cookie alone opens the stream.
    let stream = app
        .client
        .get(app.url("/t/sess/stream"))
        .header("Cookie", format!("herald_session={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);

    let cleared = app
        .client
        .delete(app.url("/t/sess/session"))
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), StatusCode::NO_CONTENT);
    let cookie = cleared.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cookie.starts_with("herald_session=; Path=/t/sess; Max-Age=0"),
        "{cookie}"
    );
}

#[actix_web::test]
async fn a_bad_token_gets_no_cookie() {
    let app = spawn_app_with(production_cookies).await;
    let t = app.create_tenant("nocookie").await;
    let expired = t.token_with(json!({"sub": "u", "aud": "herald", "exp": now_secs() - 60}));
    for token in [expired.as_str(), "garbage"] {
        let response = app.post_session("nocookie", token).await;
        assert!(response.headers().get("set-cookie").is_none());
        assert_error(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
    }
    let none = app
        .client
        .post(app.url("/t/nocookie/session"))
        .send()
        .await
        .unwrap();
    assert_error(none, StatusCode::UNAUTHORIZED, "missing_credentials").await;
}

#[actix_web::test]
async fn local_cookie_settings_relax_the_attributes() {
    let app = spawn_app_with(|s| {
        s.cookie.secure = false;
        s.cookie.same_site = herald::config::SameSite::Lax;
        s.cookie.partitioned = false;
    })
    .await;
    let t = app.create_tenant("local").await;
    let response = app.post_session("local", &t.token("u", &[])).await;
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cookie.contains("SameSite=Lax") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    assert!(
        !cookie.contains("Secure") && !cookie.contains("Partitioned"),
        "{cookie}"
    );
}

const PAGE: &str = "https://app.example.com";

#[actix_web::test]
async fn cors_echoes_only_the_tenants_own_origins() {
    let app = spawn_app_with(production_cookies).await;
    let t = app.create_tenant("cors").await; // allowed_origins: https://app.example.com
    let token = t.token("u", &[]);

    let allowed = app
        .client
        .post(app.url("/t/cors/session"))
        .header("Origin", PAGE)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), StatusCode::NO_CONTENT);
    assert_eq!(allowed.headers()["access-control-allow-origin"], PAGE);
    assert_eq!(
        allowed.headers()["access-control-allow-credentials"],
        "true"
    );
    assert_eq!(allowed.headers()["vary"], "Origin");

    let preflight = app
        .client
        .request(Method::OPTIONS, app.url("/t/cors/stream"))
        .header("Origin", PAGE)
        .header("Access-Control-Request-Method", "GET")
        .header(
            "Access-Control-Request-Headers",
            "last-event-id, authorization",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), StatusCode::NO_CONTENT);
    let headers = preflight.headers();
    assert_eq!(headers["access-control-allow-origin"], PAGE);
    assert_eq!(headers["access-control-allow-credentials"], "true");
    let allowed_headers = headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    for header in ["authorization", "last-event-id", "content-type"] {
        assert!(allowed_headers.contains(header), "{allowed_headers}");
    }
    assert!(
        headers["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );

    for (method, path) in [
        (Method::POST, "/t/cors/session"),
        (Method::GET, "/t/cors/stream"),
        (Method::OPTIONS, "/t/cors/stream"),
    ] {
        let refused = app
            .client
            .request(method.clone(), app.url(path))
            .header("Origin", "https://evil.example.net")
            .header("Access-Control-Request-Method", "GET")
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert!(
            refused
                .headers()
                .get("access-control-allow-origin")
                .is_none(),
            "{method} {path}"
        );
        assert!(refused.headers().get("set-cookie").is_none());
        assert_error(refused, StatusCode::FORBIDDEN, "origin_not_allowed").await;
    }

    // Another tenant's origin is not this tenant's.
    app.patch_tenant(
        "cors",
        json!({"allowed_origins": ["https://other.example.com"]}),
    )
    .await;
    let moved = app
        .client
        .get(app.url("/t/cors/stream"))
        .header("Origin", PAGE)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_error(moved, StatusCode::FORBIDDEN, "origin_not_allowed").await;
}

#[actix_web::test]
async fn operator_and_publish_routes_send_no_cors_headers() {
    let app = spawn_app_with(production_cookies).await;
    let t = app.create_tenant("nocors").await;
    let responses = [
        app.client
            .post(app.url("/v1/events"))
            .header("Origin", PAGE)
            .bearer_auth(&t.api_key)
            .json(&json!({"to": {"user": "u"}}))
            .send()
            .await
            .unwrap(),
        app.client
            .get(app.url("/v1/events?user=u"))
            .header("Origin", PAGE)
            .bearer_auth(&t.api_key)
            .send()
            .await
            .unwrap(),
        app.client
            .get(app.url("/admin/tenants"))
            .header("Origin", PAGE)
            .bearer_auth(crate::support::ADMIN_TOKEN)
            .send()
            .await
            .unwrap(),
        app.client
            .request(Method::OPTIONS, app.url("/v1/events"))
            .header("Origin", PAGE)
            .header("Access-Control-Request-Method", "POST")
            .send()
            .await
            .unwrap(),
    ];
    for response in responses {
        let access: Vec<_> = response
            .headers()
            .keys()
            .filter(|name| name.as_str().starts_with("access-control-"))
            .collect();
        assert!(access.is_empty(), "{} has {access:?}", response.url());
    }
}
