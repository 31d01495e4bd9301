use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{ADMIN_TOKEN, assert_error, captured_logs, spawn_app};

const EC_PUBLIC_KEY: &str = include_str!("keys/ec_public.pem");
const ED_PUBLIC_KEY: &str = include_str!("keys/ed_public.pem");

#[actix_web::test]
async fn a_tenant_is_created_once_per_slug_changed_listed_and_removed() {
    let app = spawn_app().await;
    let created = app
        .post_tenant(json!({
            "slug": "acme", "name": "Acme Inc", "allowed_origins": ["https://app.acme.test"],
            "retention": {"max_age_secs": 86400, "max_events": 1000}
        }))
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let tenant: Value = created.json().await.unwrap();
    assert_eq!(tenant["slug"], "acme");
    assert_eq!(tenant["name"], "Acme Inc");
    assert_eq!(tenant["allowed_origins"], json!(["https://app.acme.test"]));
    assert_eq!(
        tenant["retention"],
        json!({"max_age_secs": 86400, "max_events": 1000})
    );

    let again = app.post_tenant(json!({"slug": "acme"})).await;
    assert_error(again, StatusCode::CONFLICT, "slug_taken").await;

    let patched = app
        .patch_tenant(
            "acme",
            json!({"name": "Acme", "allowed_origins": ["https://a.acme.test", "http://localhost:3000"]}),
        )
        .await;
    assert_eq!(patched.status(), StatusCode::OK);
    let one: Value = app.get_tenant("acme").await.json().await.unwrap();
    assert_eq!(one["name"], "Acme");
    assert_eq!(
        one["allowed_origins"],
        json!(["https://a.acme.test", "http://localhost:3000"])
    );
    assert_eq!(
        one["retention"]["max_events"], 1000,
        "untouched by the patch"
    );

    assert_eq!(app.list_tenants().await.len(), 1);

    let deleted = app.delete_tenant("acme").await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let gone = app.get_tenant("acme").await;
    assert_error(gone, StatusCode::NOT_FOUND, "tenant_not_found").await;
    let gone = app.delete_tenant("acme").await;
    assert_error(gone, StatusCode::NOT_FOUND, "tenant_not_found").await;
}

#[actix_web::test]
async fn the_tenant_list_pages_by_slug_when_asked() {
    let app = spawn_app().await;
    for slug in ["delta", "alpha", "echo", "charlie", "bravo"] {
        assert_eq!(
            app.post_tenant(json!({"slug": slug})).await.status(),
            StatusCode::CREATED
        );
    }
    let mut seen = Vec::new();
    let mut path = "/admin/tenants?limit=2".to_owned();
    loop {
        let page: Value = app
            .admin(reqwest::Method::GET, &path, None)
            .await
            .json()
            .await
            .unwrap();
        let slugs: Vec<String> = page["tenants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["slug"].as_str().unwrap().to_owned())
            .collect();
        assert!(slugs.len() <= 2);
        seen.extend(slugs);
        match page["next"].as_str() {
            Some(next) => path = format!("/admin/tenants?limit=2&after={next}"),
            None => break,
        }
    }
    assert_eq!(seen, ["alpha", "bravo", "charlie", "delta", "echo"]);
    // Without a limit, every tenant at once, as before.
    assert_eq!(app.list_tenants().await.len(), 5);
    let bad = app
        .admin(reqwest::Method::GET, "/admin/tenants?limit=0", None)
        .await;
    assert_error(bad, StatusCode::BAD_REQUEST, "invalid_limit").await;
    let bad = app
        .admin(
            reqwest::Method::GET,
            "/admin/tenants?limit=2&after=0.5",
            None,
        )
        .await;
    assert_error(bad, StatusCode::BAD_REQUEST, "invalid_query").await;
}

#[actix_web::test]
async fn deleting_a_tenant_kills_its_keys_and_frees_the_slug() {
    let app = spawn_app().await;
    let tenant = app.create_tenant("short").await;
    app.publish_ok(&tenant.api_key, &json!({"to": {"user": "u"}}))
        .await;
    app.delete_tenant("short").await;
    let response = app
        .publish(&tenant.api_key, &json!({"to": {"user": "u"}}))
        .await;
    assert_error(response, StatusCode::UNAUTHORIZED, "invalid_api_key").await;
    let again = app.create_tenant("short").await;
    let history = app.full_history(&again.api_key, "user=u").await;
    assert!(history.is_empty(), "a new tenant starts with an empty log");
}

#[actix_web::test]
async fn admin_routes_need_the_admin_token() {
    let app = spawn_app().await;
    let none = app
        .client
        .get(app.url("/admin/tenants"))
        .send()
        .await
        .unwrap();
    assert_error(none, StatusCode::UNAUTHORIZED, "missing_credentials").await;
    let wrong = app
        .client
        .get(app.url("/admin/tenants"))
        .bearer_auth(format!("{ADMIN_TOKEN}x"))
        .send()
        .await
        .unwrap();
    assert_error(wrong, StatusCode::UNAUTHORIZED, "invalid_admin_token").await;
    let tenant = app.create_tenant("t").await;
    let api_key_as_admin = app
        .client
        .get(app.url("/admin/tenants"))
        .bearer_auth(&tenant.api_key)
        .send()
        .await
        .unwrap();
    assert_error(
        api_key_as_admin,
        StatusCode::UNAUTHORIZED,
        "invalid_admin_token",
    )
    .await;
}

#[actix_web::test]
async fn api_keys_are_shown_once_listed_without_secrets_and_revoked_at_once() {
    let app = spawn_app().await;
    let tenant = app.create_tenant("keys").await;
    assert!(tenant.api_key.starts_with("hk_"));
    assert!(tenant.api_key.len() >= 3 + 43, "32 random bytes, base64url");
    let second = app.create_api_key("keys").await;
    let second_key = second["key"].as_str().unwrap().to_owned();
    assert_ne!(second_key, tenant.api_key);

    app.publish_ok(&tenant.api_key, &json!({"to": {"user": "u"}}))
        .await;

    let keys = app.list_api_keys("keys").await;
    let text = Value::from(keys.clone()).to_string();
    assert!(
        !text.contains(&tenant.api_key) && !text.contains(&second_key),
        "{text}"
    );
    assert_eq!(keys.len(), 2);
    let first = keys
        .iter()
        .find(|k| k["id"] == tenant.api_key_id.as_str())
        .unwrap();
    assert!(
        first["last_used_at"].is_string(),
        "use is recorded: {first}"
    );
    assert!(
        tenant
            .api_key
            .starts_with(first["prefix"].as_str().unwrap())
    );

    let revoked = app.revoke_key("keys", "api-keys", &tenant.api_key_id).await;
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    let refused = app
        .publish(&tenant.api_key, &json!({"to": {"user": "u"}}))
        .await;
    assert_error(refused, StatusCode::UNAUTHORIZED, "invalid_api_key").await;
    let refused = app.history(&tenant.api_key, "user=u").await;
    assert_error(refused, StatusCode::UNAUTHORIZED, "invalid_api_key").await;
    app.publish_ok(&second_key, &json!({"to": {"user": "u"}}))
        .await;

    let first = app
        .list_api_keys("keys")
        .await
        .into_iter()
        .find(|k| k["id"] == tenant.api_key_id.as_str())
        .unwrap();
    assert!(first["revoked_at"].is_string());

    let unknown = app.revoke_key("keys", "api-keys", "nope").await;
    assert_error(unknown, StatusCode::NOT_FOUND, "api_key_not_found").await;

    let logs = captured_logs();
    assert!(
        !logs.contains(&tenant.api_key) && !logs.contains(&second_key),
        "an API key reached the logs"
    );
}

#[actix_web::test]
async fn signing_keys_are_created_listed_without_secrets_and_revoked() {
    let app = spawn_app().await;
    app.create_tenant("sign").await;
    let hs = app
        .create_signing_key("sign", json!({"alg": "HS256"}))
        .await;
    assert_eq!(hs["alg"], "HS256");
    let secret = hs["secret"].as_str().unwrap().to_owned();
    assert!(secret.len() >= 43);
    let kid = hs["kid"].as_str().unwrap().to_owned();

    for (alg, pem) in [("ES256", EC_PUBLIC_KEY), ("EdDSA", ED_PUBLIC_KEY)] {
        let response = app
            .post_signing_key("sign", json!({"alg": alg, "public_key_pem": pem}))
            .await;
        assert_eq!(response.status(), StatusCode::CREATED, "{alg}");
        let key: Value = response.json().await.unwrap();
        assert_eq!(key["alg"], alg);
        assert!(key.get("secret").is_none());
    }
    // A key of the wrong kind for the algorithm, or none at all, is refused.
    let mismatched = app
        .post_signing_key(
            "sign",
            json!({"alg": "RS256", "public_key_pem": EC_PUBLIC_KEY}),
        )
        .await;
    assert_error(
        mismatched,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_public_key",
    )
    .await;
    let none = app.post_signing_key("sign", json!({"alg": "none"})).await;
    assert_error(none, StatusCode::UNPROCESSABLE_ENTITY, "invalid_alg").await;

    let keys = app.list_signing_keys("sign").await;
    let text = Value::from(keys.clone()).to_string();
    assert!(!text.contains(&secret), "a secret in a list: {text}");
    assert_eq!(keys.len(), 4, "create_tenant made one too");

    let revoked = app.revoke_key("sign", "signing-keys", &kid).await;
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    let entry = app
        .list_signing_keys("sign")
        .await
        .into_iter()
        .find(|k| k["kid"] == kid.as_str())
        .unwrap();
    assert!(entry["revoked_at"].is_string());

    assert!(
        !captured_logs().contains(&secret),
        "a signing secret reached the logs"
    );
}
