//! Herald's HTTP API as the tests call it: typed helpers for the operator API, publishing,
//! history and streams, and the assertions every area shares.

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use super::app::{ADMIN_TOKEN, Api};
use super::sse_client::SseStream;

/// A tenant made through the operator API, with one API key and one HS256 signing key.
#[derive(Clone)]
pub struct TestTenant {
    pub slug: String,
    pub api_key: String,
    pub api_key_id: String,
    pub kid: String,
    pub secret: String,
}

impl TestTenant {
    /// A user token as a tenant backend mints it: HS256 with the tenant's key.
    pub fn token(&self, user: &str, topics: &[&str]) -> String {
        self.token_with(
            json!({"sub": user, "aud": "herald", "exp": now_secs() + 3600, "topics": topics}),
        )
    }

    /// A token with exactly these claims, signed with the tenant's HS256 key.
    pub fn token_with(&self, claims: Value) -> String {
        sign_hs256(&self.kid, self.secret.as_bytes(), &claims)
    }
}

/// A 429's `Retry-After`, in seconds.
pub fn retry_after(response: &Response) -> u64 {
    let value = response.headers()["retry-after"].to_str().unwrap();
    value.parse().unwrap()
}

pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub fn sign_hs256(kid: &str, secret: &[u8], claims: &Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(
        &header,
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .unwrap()
}

impl Api {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// Reads a counter or gauge from `/metrics` (`name` with its labels, as the line
    /// starts); 0 when there is none.
    pub async fn metric(&self, name: &str) -> f64 {
        let text = self
            .client
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|line| {
                line.strip_prefix(name)
                    .and_then(|rest| rest.trim().parse().ok())
            })
            .unwrap_or(0.0)
    }

    /// A request with the admin token: the building block of the operator helpers below.
    pub async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Response {
        let mut request = self
            .client
            .request(method, self.url(path))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap()
    }

    /// An operator request with a raw JSON body, well-formed or not.
    pub async fn admin_raw(&self, method: Method, path: &str, body: &str) -> Response {
        self.client
            .request(method, self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .header("Content-Type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap()
    }

    /// `POST /admin/tenants` with this body.
    pub async fn post_tenant(&self, body: Value) -> Response {
        self.admin(Method::POST, "/admin/tenants", Some(body)).await
    }

    /// `GET /admin/tenants/{slug}`.
    pub async fn get_tenant(&self, slug: &str) -> Response {
        self.admin(Method::GET, &format!("/admin/tenants/{slug}"), None)
            .await
    }

    /// `PATCH /admin/tenants/{slug}`.
    pub async fn patch_tenant(&self, slug: &str, patch: Value) -> Response {
        self.admin(
            Method::PATCH,
            &format!("/admin/tenants/{slug}"),
            Some(patch),
        )
        .await
    }

    /// `DELETE /admin/tenants/{slug}`.
    pub async fn delete_tenant(&self, slug: &str) -> Response {
        self.admin(Method::DELETE, &format!("/admin/tenants/{slug}"), None)
            .await
    }

    /// Every tenant, as `GET /admin/tenants` lists them.
    pub async fn list_tenants(&self) -> Vec<Value> {
        list_of(
            self.admin(Method::GET, "/admin/tenants", None).await,
            "tenants",
        )
        .await
    }

    /// `POST /admin/tenants/{slug}/api-keys` (`body`: none, or `{"name"}`).
    pub async fn post_api_key(&self, slug: &str, body: Option<Value>) -> Response {
        self.admin(
            Method::POST,
            &format!("/admin/tenants/{slug}/api-keys"),
            body,
        )
        .await
    }

    /// A new API key of the tenant, as its creation answers it (the key shown once).
    pub async fn create_api_key(&self, slug: &str) -> Value {
        created(self.post_api_key(slug, None).await).await
    }

    /// The tenant's API keys, as listed (never the keys themselves).
    pub async fn list_api_keys(&self, slug: &str) -> Vec<Value> {
        let path = format!("/admin/tenants/{slug}/api-keys");
        list_of(self.admin(Method::GET, &path, None).await, "api_keys").await
    }

    /// `POST /admin/tenants/{slug}/signing-keys` with this body.
    pub async fn post_signing_key(&self, slug: &str, body: Value) -> Response {
        let path = format!("/admin/tenants/{slug}/signing-keys");
        self.admin(Method::POST, &path, Some(body)).await
    }

    /// A new signing key of the tenant, as its creation answers it.
    pub async fn create_signing_key(&self, slug: &str, body: Value) -> Value {
        created(self.post_signing_key(slug, body).await).await
    }

    /// The tenant's signing keys, as listed (never an HS256 secret).
    pub async fn list_signing_keys(&self, slug: &str) -> Vec<Value> {
        let path = format!("/admin/tenants/{slug}/signing-keys");
        list_of(self.admin(Method::GET, &path, None).await, "signing_keys").await
    }

    /// `DELETE /admin/tenants/{slug}/{kind}/{id}`, `kind` being `api-keys` or
    /// `signing-keys`.
    pub async fn revoke_key(&self, slug: &str, kind: &str, id: &str) -> Response {
        self.admin(
            Method::DELETE,
            &format!("/admin/tenants/{slug}/{kind}/{id}"),
            None,
        )
        .await
    }

    /// A tenant made through the operator API, with one API key and one HS256 signing key.
    pub async fn create_tenant(&self, slug: &str) -> TestTenant {
        let response = self
            .post_tenant(json!({"slug": slug, "allowed_origins": ["https://app.example.com"]}))
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let key = created(self.post_api_key(slug, Some(json!({"name": "test"}))).await).await;
        let signing = self.create_signing_key(slug, json!({"alg": "HS256"})).await;
        let text = |value: &Value| value.as_str().unwrap().to_owned();
        TestTenant {
            slug: slug.to_owned(),
            api_key: text(&key["key"]),
            api_key_id: text(&key["id"]),
            kid: text(&signing["kid"]),
            secret: text(&signing["secret"]),
        }
    }

    /// `GET /t/{slug}/stream` with a bearer token, a query and optionally `Last-Event-ID`.
    pub async fn stream_request(
        &self,
        slug: &str,
        token: &str,
        query: &str,
        last_event_id: Option<&str>,
    ) -> Response {
        let mut request = self
            .client
            .get(self.url(&format!("/t/{slug}/stream?{query}")))
            .bearer_auth(token);
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        request.send().await.unwrap()
    }

    /// Opens a stream, asserting a 200 event stream.
    pub async fn open_stream(
        &self,
        tenant: &TestTenant,
        token: &str,
        query: &str,
        last_event_id: Option<&str>,
    ) -> SseStream {
        let response = self
            .stream_request(&tenant.slug, token, query, last_event_id)
            .await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{}",
            response.text().await.unwrap_or_default()
        );
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        SseStream::new(response)
    }

    /// `POST /t/{slug}/session` with the user token as Bearer, as a page does.
    pub async fn post_session(&self, slug: &str, token: &str) -> Response {
        self.client
            .post(self.url(&format!("/t/{slug}/session")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn publish(&self, api_key: &str, body: &Value) -> Response {
        self.client
            .post(self.url("/v1/events"))
            .bearer_auth(api_key)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Publishes with an `Idempotency-Key`; the transport's error if no answer came (a
    /// server killed mid-request).
    pub async fn publish_keyed(
        &self,
        api_key: &str,
        key: &str,
        body: &Value,
    ) -> reqwest::Result<Response> {
        self.client
            .post(self.url("/v1/events"))
            .bearer_auth(api_key)
            .header("Idempotency-Key", key)
            .json(body)
            .send()
            .await
    }

    /// Publishes and returns the receipts, asserting a 201.
    pub async fn publish_ok(&self, api_key: &str, body: &Value) -> Vec<Value> {
        let response = self.publish(api_key, body).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let answer: Value = response.json().await.unwrap();
        answer["events"].as_array().unwrap().clone()
    }

    /// `GET path` with a bearer credential; the JSON answer, whatever its status.
    pub async fn get_json(&self, path: &str, bearer: &str) -> Value {
        self.client
            .get(self.url(path))
            .bearer_auth(bearer)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn history(&self, api_key: &str, query: &str) -> Response {
        self.client
            .get(self.url(&format!("/v1/events?{query}")))
            .bearer_auth(api_key)
            .send()
            .await
            .unwrap()
    }

    /// Every event a user's stream would replay, following `next` through all pages.
    pub async fn full_history(&self, api_key: &str, query: &str) -> Vec<Value> {
        let mut events = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut q = format!("{query}&limit=1000");
            if let Some(after) = &after {
                q.push_str(&format!("&after={after}"));
            }
            let response = self.history(api_key, &q).await;
            assert_eq!(response.status(), StatusCode::OK);
            let page: Value = response.json().await.unwrap();
            events.extend(page["events"].as_array().unwrap().iter().cloned());
            match page["next"].as_str() {
                Some(next) => after = Some(next.to_owned()),
                None => return events,
            }
        }
    }
}

/// The body of a 201.
async fn created(response: Response) -> Value {
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.unwrap()
}

/// The list under `field` of a 200 answer.
async fn list_of(response: Response, field: &str) -> Vec<Value> {
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    body[field].as_array().unwrap().clone()
}

/// The sequence number of an event id (`<epoch>-<seq>`).
pub fn seq_of(id: &Value) -> i64 {
    id.as_str()
        .unwrap()
        .rsplit_once('-')
        .unwrap()
        .1
        .parse()
        .unwrap()
}

/// Asserts an error answer: its status and its stable code.
pub async fn assert_error(response: Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(response.status(), status, "expected {status} {code}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], code, "body: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    body
}

/// A test that needs something this machine lacks says so and skips — unless it runs under
/// CI, which provides everything, where that is a failure.
pub fn skip_unless_ci(what: &str, reason: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "{what} cannot run under CI: {reason}"
    );
    eprintln!("skipped: {reason}");
}
