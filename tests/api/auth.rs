//! The user-token attack matrix: every way a token can be wrong is refused, with the status
//! the API documents. Keys under `keys/` were generated for these tests and guard nothing.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{TestApp, TestTenant, assert_error, now_secs, sign_hs256, spawn_app};

const EC_PRIVATE: &str = include_str!("keys/ec_private.pem");
const EC_PUBLIC: &str = include_str!("keys/ec_public.pem");
const ED_PRIVATE: &str = include_str!("keys/ed_private.pem");
const ED_PUBLIC: &str = include_str!("keys/ed_public.pem");
const RSA_PRIVATE: &str = include_str!("keys/rsa_private.pem");
const RSA_PUBLIC: &str = include_str!("keys/rsa_public.pem");

fn claims(user: &str) -> Value {
    json!({"sub": user, "aud": "herald", "exp": now_secs() + 600})
}

fn sign(alg: Algorithm, kid: &str, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

async fn upload(app: &TestApp, tenant: &TestTenant, alg: &str, pem: &str) -> String {
    let key = app
        .create_signing_key(&tenant.slug, json!({"alg": alg, "public_key_pem": pem}))
        .await;
    key["kid"].as_str().unwrap().to_owned()
}

async fn status_for(app: &TestApp, slug: &str, token: &str, query: &str) -> (StatusCode, Value) {
    let response = app.stream_request(slug, token, query, None).await;
    let status = response.status();
    if status == StatusCode::OK {
        return (status, Value::Null);
    }
    (status, response.json().await.unwrap())
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[actix_web::test]
async fn public_key_algorithms_verify_with_the_uploaded_key() {
    let app = spawn_app().await;
    let t = app.create_tenant("pk").await;
    for (alg, algorithm, private, public) in [
        (
            "ES256",
            Algorithm::ES256,
            EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap(),
            EC_PUBLIC,
        ),
        (
            "EdDSA",
            Algorithm::EdDSA,
            EncodingKey::from_ed_pem(ED_PRIVATE.as_bytes()).unwrap(),
            ED_PUBLIC,
        ),
        (
            "RS256",
            Algorithm::RS256,
            EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap(),
            RSA_PUBLIC,
        ),
    ] {
        let kid = upload(&app, &t, alg, public).await;
        let token = sign(algorithm, &kid, &private, &claims("u"));
        let (status, body) = status_for(&app, &t.slug, &token, "").await;
        assert_eq!(status, StatusCode::OK, "{alg}: {body}");
    }
}

#[actix_web::test]
async fn a_forged_or_misused_token_opens_no_stream() {
    let app = spawn_app().await;
    let t = app.create_tenant("victim").await;
    let other = app.create_tenant("other").await;
    let ec_kid = upload(&app, &t, "ES256", EC_PUBLIC).await;
    let rsa_kid = upload(&app, &t, "RS256", RSA_PUBLIC).await;
    let good = t.token("alice", &["stock:*"]);
    assert_eq!(
        status_for(&app, &t.slug, &good, "topics=stock:AAPL")
            .await
            .0,
        StatusCode::OK
    );

    let (header_b64, payload_b64, signature_b64) = {
        let parts: Vec<&str> = good.split('.').collect();
        (
            parts[0].to_owned(),
            parts[1].to_owned(),
            parts[2].to_owned(),
        )
    };
    let none_token = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "JWT", "kid": t.kid})
            .to_string()
            .as_bytes()),
        payload_b64
    );
    let tampered = {
        let mut payload: Value = serde_json::from_slice(
            &base64::Engine::decode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                &payload_b64,
            )
            .unwrap(),
        )
        .unwrap();
        payload["sub"] = json!("mallory");
        format!(
            "{header_b64}.{}.{signature_b64}",
            b64(payload.to_string().as_bytes())
        )
    };
    // HS256 "signed" with the tenant's public keys as the HMAC secret: the classic
    // algorithm-confusion forgery. The key records say ES256/RS256, so HS256 is refused.
    let confused_ec = sign_hs256(&ec_kid, EC_PUBLIC.as_bytes(), &claims("alice"));
    let confused_rsa = sign_hs256(&rsa_kid, RSA_PUBLIC.as_bytes(), &claims("alice"));
    let expired = t.token_with(json!({"sub": "alice", "aud": "herald", "exp": now_secs() - 120}));
    let not_yet = t.token_with(
        json!({"sub": "alice", "aud": "herald", "exp": now_secs() + 600, "nbf": now_secs() + 300}),
    );
    let wrong_aud =
        t.token_with(json!({"sub": "alice", "aud": "someone-else", "exp": now_secs() + 600}));
    let no_exp = t.token_with(json!({"sub": "alice", "aud": "herald"}));
    let no_sub = t.token_with(json!({"aud": "herald", "exp": now_secs() + 600}));
    let unknown_kid = sign_hs256("no-such-kid", t.secret.as_bytes(), &claims("alice"));
    let no_kid = {
        let header = Header::new(Algorithm::HS256);
        jsonwebtoken::encode(
            &header,
            &claims("alice"),
            &EncodingKey::from_secret(t.secret.as_bytes()),
        )
        .unwrap()
    };
    // Another tenant's key, named by its own kid, on this tenant's path.
    let other_tenants_key = other.token("alice", &[]);
    // This tenant's kid, but signed with another tenant's secret.
    let wrong_secret = sign_hs256(&t.kid, other.secret.as_bytes(), &claims("alice"));

    let unauthorized = StatusCode::UNAUTHORIZED;
    let cases: Vec<(&str, String, &str, StatusCode, &str)> = vec![
        ("alg none", none_token, "", unauthorized, "invalid_token"),
        (
            "HS256 over the EC public key",
            confused_ec,
            "",
            unauthorized,
            "invalid_token",
        ),
        (
            "HS256 over the RSA public key",
            confused_rsa,
            "",
            unauthorized,
            "invalid_token",
        ),
        ("expired", expired, "", unauthorized, "invalid_token"),
        (
            "nbf in the future",
            not_yet,
            "",
            unauthorized,
            "invalid_token",
        ),
        (
            "wrong audience",
            wrong_aud,
            "",
            unauthorized,
            "invalid_token",
        ),
        ("no exp", no_exp, "", unauthorized, "invalid_token"),
        ("no sub", no_sub, "", unauthorized, "invalid_token"),
        (
            "unknown kid",
            unknown_kid,
            "",
            unauthorized,
            "invalid_token",
        ),
        ("no kid", no_kid, "", unauthorized, "invalid_token"),
        (
            "another tenant's key",
            other_tenants_key,
            "",
            unauthorized,
            "invalid_token",
        ),
        (
            "signed with another secret",
            wrong_secret,
            "",
            unauthorized,
            "invalid_token",
        ),
        (
            "tampered payload",
            tampered,
            "",
            unauthorized,
            "invalid_token",
        ),
        (
            "garbage",
            "not.a.jwt".into(),
            "",
            unauthorized,
            "invalid_token",
        ),
        (
            "topic not allowed",
            good.clone(),
            "topics=news",
            StatusCode::FORBIDDEN,
            "topic_not_allowed",
        ),
        (
            "topic outside the pattern",
            good.clone(),
            "topics=stocks",
            StatusCode::FORBIDDEN,
            "topic_not_allowed",
        ),
    ];
    for (what, token, query, status, code) in cases {
        let (got, body) = status_for(&app, &t.slug, &token, query).await;
        assert_eq!(got, status, "{what}: {body}");
        assert_eq!(body["error"]["code"], code, "{what}");
    }

    // A token for tenant A on tenant B's path.
    let (got, _) = status_for(&app, &other.slug, &good, "").await;
    assert_eq!(got, unauthorized, "tenant A's token on tenant B");

    // No credentials at all.
    let bare = app
        .client
        .get(app.url("/t/victim/stream"))
        .send()
        .await
        .unwrap();
    assert_error(bare, unauthorized, "missing_credentials").await;
    let unknown_tenant = app.stream_request("nobody", &good, "", None).await;
    assert_error(unknown_tenant, StatusCode::NOT_FOUND, "tenant_not_found").await;

    // A revoked key stops working at once.
    let revoked = app.revoke_key("victim", "signing-keys", &t.kid).await;
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    let (got, body) = status_for(&app, &t.slug, &good, "").await;
    assert_eq!(got, unauthorized, "revoked key: {body}");
}

#[actix_web::test]
async fn the_session_cookie_is_an_identity_too() {
    let app = spawn_app().await;
    let t = app.create_tenant("cookie").await;
    let response = app
        .client
        .get(app.url("/t/cookie/stream"))
        .header("Cookie", format!("herald_session={}", t.token("u", &[])))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bad = app
        .client
        .get(app.url("/t/cookie/stream"))
        .header("Cookie", "herald_session=forged")
        .send()
        .await
        .unwrap();
    assert_error(bad, StatusCode::UNAUTHORIZED, "invalid_token").await;
}
