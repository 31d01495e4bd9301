use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, assert_error, captured_logs, spawn_app};

const EC_PUBLIC_KEY: &str = include_str!("keys/ec_public.pem");
const ED_PUBLIC_KEY: &str = include_str!("keys/ed_public.pem");

#[actix_web::test]
async fn tenant_lifecycle() {
    let app = spawn_app().await;
    let created = app
        .admin(
            Method::POST,
            "/admin/tenants",
            Some(json!({"slug": "acme", "name": "Acme Inc", "allowed_origins": ["https://app.acme.test"],
                        "retention": {"max_age_secs": 86400, "max_events": 1000}})),
        )
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

    let again = app
        .admin(
            Method::POST,
            "/admin/tenants",
            Some(json!({"slug": "acme"})),
        )
        .await;
    assert_error(again, StatusCode::CONFLICT, "slug_taken").await;

    let patched = app
        .admin(
            Method::PATCH,
            "/admin/tenants/acme",
            Some(json!({"name": "Acme", "allowed_origins": ["https://a.acme.test", "http://localhost:3000"]})),
        )
        .await;
    assert_eq!(patched.status(), StatusCode::OK);
    let one: Value = app
        .admin(Method::GET, "/admin/tenants/acme", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(one["name"], "Acme");
    assert_eq!(
        one["allowed_origins"],
        json!(["https://a.acme.test", "http://localhost:3000"])
    );
    assert_eq!(
        one["retention"]["max_events"], 1000,
        "untouched by the patch"
    );

    let list: Value = app
        .admin(Method::GET, "/admin/tenants", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["tenants"].as_array().unwrap().len(), 1);

    let deleted = app.admin(Method::DELETE, "/admin/tenants/acme", None).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let gone = app.admin(Method::GET, "/admin/tenants/acme", None).await;
    assert_error(gone, StatusCode::NOT_FOUND, "tenant_not_found").await;
    let gone = app.admin(Method::DELETE, "/admin/tenants/acme", None).await;
    assert_error(gone, StatusCode::NOT_FOUND, "tenant_not_found").await;
}

#[actix_web::test]
async fn deleting_a_tenant_kills_its_keys_and_frees_the_slug() {
    let app = spawn_app().await;
    let tenant = app.create_tenant("short").await;
    app.publish_ok(&tenant.api_key, &json!({"to": {"user": "u"}}))
        .await;
    app.admin(Method::DELETE, "/admin/tenants/short", None)
        .await;
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
    let second: Value = app
        .admin(Method::POST, "/admin/tenants/keys/api-keys", None)
        .await
        .json()
        .await
        .unwrap();
    let second_key = second["key"].as_str().unwrap().to_owned();
    assert_ne!(second_key, tenant.api_key);

    app.publish_ok(&tenant.api_key, &json!({"to": {"user": "u"}}))
        .await;

    let list = app
        .admin(Method::GET, "/admin/tenants/keys/api-keys", None)
        .await;
    let text = list.text().await.unwrap();
    assert!(
        !text.contains(&tenant.api_key) && !text.contains(&second_key),
        "{text}"
    );
    let list: Value = serde_json::from_str(&text).unwrap();
    let keys = list["api_keys"].as_array().unwrap();
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

    let revoked = app
        .admin(
            Method::DELETE,
            &format!("/admin/tenants/keys/api-keys/{}", tenant.api_key_id),
            None,
        )
        .await;
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    let refused = app
        .publish(&tenant.api_key, &json!({"to": {"user": "u"}}))
        .await;
    assert_error(refused, StatusCode::UNAUTHORIZED, "invalid_api_key").await;
    let refused = app.history(&tenant.api_key, "user=u").await;
    assert_error(refused, StatusCode::UNAUTHORIZED, "invalid_api_key").await;
    app.publish_ok(&second_key, &json!({"to": {"user": "u"}}))
        .await;

    let list: Value = app
        .admin(Method::GET, "/admin/tenants/keys/api-keys", None)
        .await
        .json()
        .await
        .unwrap();
    let first = list["api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == tenant.api_key_id.as_str())
        .unwrap()
        .clone();
    assert!(first["revoked_at"].is_string());

    let unknown = app
        .admin(Method::DELETE, "/admin/tenants/keys/api-keys/nope", None)
        .await;
    assert_error(unknown, StatusCode::NOT_FOUND, "api_key_not_found").await;

    let logs = captured_logs();
    assert!(
        !logs.contains(&tenant.api_key) && !logs.contains(&second_key),
        "an API key reached the logs"
    );
}

#[actix_web::test]
async fn signing_keys_lifecycle() {
    let app = spawn_app().await;
    app.create_tenant("sign").await;
    let hs: Value = app
        .admin(
            Method::POST,
            "/admin/tenants/sign/signing-keys",
            Some(json!({"alg": "HS256"})),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(hs["alg"], "HS256");
    let secret = hs["secret"].as_str().unwrap().to_owned();
    assert!(secret.len() >= 43);
    let kid = hs["kid"].as_str().unwrap().to_owned();

    for (alg, pem) in [("ES256", EC_PUBLIC_KEY), ("EdDSA", ED_PUBLIC_KEY)] {
        let response = app
            .admin(
                Method::POST,
                "/admin/tenants/sign/signing-keys",
                Some(json!({"alg": alg, "public_key_pem": pem})),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED, "{alg}");
        let key: Value = response.json().await.unwrap();
        assert_eq!(key["alg"], alg);
        assert!(key.get("secret").is_none());
    }
    // A key of the wrong kind for the algorithm, or none at all, is refused.
    let mismatched = app
        .admin(
            Method::POST,
            "/admin/tenants/sign/signing-keys",
            Some(json!({"alg": "RS256", "public_key_pem": EC_PUBLIC_KEY})),
        )
        .await;
    assert_error(
        mismatched,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_public_key",
    )
    .await;
    let none = app
        .admin(
            Method::POST,
            "/admin/tenants/sign/signing-keys",
            Some(json!({"alg": "none"})),
        )
        .await;
    assert_error(none, StatusCode::UNPROCESSABLE_ENTITY, "invalid_alg").await;

    let list = app
        .admin(Method::GET, "/admin/tenants/sign/signing-keys", None)
        .await
        .text()
        .await
        .unwrap();
    assert!(!list.contains(&secret), "a secret in a list: {list}");
    let list: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(
        list["signing_keys"].as_array().unwrap().len(),
        4,
        "create_tenant made one too"
    );

    let revoked = app
        .admin(
            Method::DELETE,
            &format!("/admin/tenants/sign/signing-keys/{kid}"),
            None,
        )
        .await;
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    let list: Value = app
        .admin(Method::GET, "/admin/tenants/sign/signing-keys", None)
        .await
        .json()
        .await
        .unwrap();
    let entry = list["signing_keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .unwrap()
        .clone();
    assert!(entry["revoked_at"].is_string());

    assert!(
        !captured_logs().contains(&secret),
        "a signing secret reached the logs"
    );
}
