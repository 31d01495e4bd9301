//! Outbound webhooks against a real receiver on 127.0.0.1: messages signed as Standard
//! Webhooks says (checked by the specification's reference verifier, not Herald's code),
//! retried on the schedule with the same `webhook-id`, `Retry-After` honoured, `410` and
//! long failure disabling the endpoint, rotation signing with both secrets, the deliveries
//! log and its retry, the guard against private targets, receivers that misbehave, and
//! at-least-once across SIGKILL.

use std::time::Duration;

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::support::app::Api;
use crate::support::process::ServerProcess;
use crate::support::receiver::{Answer, Receiver, verify_independently};
use crate::support::{TestTenant, assert_error, spawn_app, spawn_app_with};

/// Long enough for any attempt of these tests to arrive.
const ARRIVES: Duration = Duration::from_secs(10);

impl Api {
    /// A request of the tenant's backend (its API key).
    pub async fn backend(
        &self,
        tenant: &TestTenant,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Response {
        let mut request = self
            .client
            .request(method, self.url(path))
            .bearer_auth(&tenant.api_key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap()
    }

    /// A backend request that must be answered `expected`: the answer's JSON.
    pub async fn backend_answer(
        &self,
        tenant: &TestTenant,
        method: Method,
        path: &str,
        body: Option<Value>,
        expected: StatusCode,
    ) -> Value {
        let response = self.backend(tenant, method, path, body).await;
        assert_eq!(response.status(), expected, "{path}");
        response.json().await.unwrap()
    }

    /// A new endpoint of the tenant's, as its creation answers it (the secret shown once).
    pub async fn create_webhook(&self, tenant: &TestTenant, url: &str, events: Value) -> Value {
        let body = json!({"url": url, "events": events});
        self.backend_answer(
            tenant,
            Method::POST,
            "/v1/webhooks",
            Some(body),
            StatusCode::CREATED,
        )
        .await
    }

    /// Sends the endpoint a test message: its id.
    async fn test_message(&self, tenant: &TestTenant, webhook: &str) -> String {
        let path = format!("/v1/webhooks/{webhook}/test");
        let body = self
            .backend_answer(tenant, Method::POST, &path, None, StatusCode::ACCEPTED)
            .await;
        body["message_id"].as_str().unwrap().to_owned()
    }

    async fn webhook(&self, tenant: &TestTenant, webhook: &str) -> Value {
        let path = format!("/v1/webhooks/{webhook}");
        self.backend_answer(tenant, Method::GET, &path, None, StatusCode::OK)
            .await
    }

    async fn deliveries(&self, tenant: &TestTenant, webhook: &str, query: &str) -> Value {
        let path = format!("/v1/webhooks/{webhook}/deliveries?{query}");
        self.backend_answer(tenant, Method::GET, &path, None, StatusCode::OK)
            .await
    }

    /// Waits until the endpoint's newest message has `status`: that delivery.
    async fn newest_delivery_becomes(
        &self,
        tenant: &TestTenant,
        webhook: &str,
        status: &str,
    ) -> Value {
        let deadline = std::time::Instant::now() + ARRIVES;
        loop {
            let page = self.deliveries(tenant, webhook, "limit=1").await;
            let newest = page["deliveries"][0].clone();
            if newest["status"] == status {
                return newest;
            }
            assert!(std::time::Instant::now() < deadline, "still {newest}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn id_of(webhook: &Value) -> String {
    webhook["id"].as_str().unwrap().to_owned()
}

#[actix_web::test]
async fn a_message_carries_standard_webhooks_headers_that_the_reference_verifier_accepts() {
    let app = spawn_app().await;
    let tenant = app.api.create_tenant("acme").await;
    let receiver = Receiver::start().await;
    let webhook = app
        .api
        .create_webhook(&tenant, &receiver.url, json!(["*"]))
        .await;
    let secret = webhook["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"));
    let listed = app.api.webhook(&tenant, &id_of(&webhook)).await;
    assert!(
        listed.get("secret").is_none(),
        "the secret is shown once: {listed}"
    );

    let message_id = app.api.test_message(&tenant, &id_of(&webhook)).await;
    let request = receiver.wait_for(1, ARRIVES).await.remove(0);
    assert_eq!(request.header("webhook-id"), message_id);
    assert_eq!(request.header("content-type"), "application/json");
    let timestamp: i64 = request.header("webhook-timestamp").parse().unwrap();
    assert!((timestamp - crate::support::now_secs()).abs() < 60);
    assert!(request.header("webhook-signature").starts_with("v1,"));
    let body = request.json();
    assert_eq!(body["type"], "webhook.test");
    assert_eq!(body["data"]["webhook_id"], id_of(&webhook));
    assert!(chrono::DateTime::parse_from_rfc3339(body["timestamp"].as_str().unwrap()).is_ok());

    let mut tampered = request.clone();
    tampered.body = tampered.body.replace("webhook.test", "webhook.tset");
    let other = app
        .api
        .create_webhook(&tenant, &receiver.url, json!(["user.online"]))
        .await;
    let Some(verdicts) = verify_independently(&[
        (secret, &request),
        (secret, &tampered),
        (other["secret"].as_str().unwrap(), &request),
    ]) else {
        return;
    };
    assert_eq!(verdicts[0], "ok");
    assert_ne!(verdicts[1], "ok", "a changed body must not verify");
    assert_ne!(
        verdicts[2], "ok",
        "another endpoint's secret must not verify"
    );
    let newest = app
        .api
        .newest_delivery_becomes(&tenant, &id_of(&webhook), "delivered")
        .await;
    assert_eq!(newest["message_id"], message_id);
    assert_eq!(newest["attempts"][0]["status_code"], 204);
    let delivered = app
        .api
        .metric(r#"herald_webhook_messages_total{type="webhook.test",outcome="delivered"}"#)
        .await;
    assert_eq!(delivered, 1.0);
    assert_eq!(app.api.metric("herald_webhook_attempts_total").await, 1.0);
}

#[actix_web::test]
async fn a_failed_message_is_retried_on_the_schedule_with_the_same_webhook_id_until_it_is_delivered()
 {
    let app = spawn_app_with(|s| s.webhooks.retry_schedule_secs = vec![0.3, 0.3, 0.3]).await;
    let tenant = app.api.create_tenant("acme").await;
    let receiver = Receiver::start().await;
    receiver.answer_next([Answer::Status(500), Answer::Status(502)]);
    let webhook = id_of(
        &app.api
            .create_webhook(&tenant, &receiver.url, json!(["*"]))
            .await,
    );
    let message_id = app.api.test_message(&tenant, &webhook).await;

    let requests = receiver.wait_for(3, ARRIVES).await;
    assert!(
        requests
            .iter()
            .all(|r| r.header("webhook-id") == message_id)
    );
    assert!(
        requests.iter().all(|r| r.body == requests[0].body),
        "every attempt sends the same body"
    );
    for pair in requests.windows(2) {
        let waited = pair[1].at - pair[0].at;
        assert!(
            waited >= Duration::from_millis(250),
            "retried after {waited:?}"
        );
    }
    let delivery = app
        .api
        .newest_delivery_becomes(&tenant, &webhook, "delivered")
        .await;
    let codes: Vec<&Value> = delivery["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["status_code"])
        .collect();
    assert_eq!(codes, [&json!(500), &json!(502), &json!(204)]);
    assert!(delivery["next_attempt_at"].is_null());
}

#[actix_web::test]
async fn a_message_whose_retries_are_spent_has_failed_and_retry_sends_it_again_with_its_id() {
    let app = spawn_app_with(|s| s.webhooks.retry_schedule_secs = vec![0.1]).await;
    let tenant = app.api.create_tenant("acme").await;
    let receiver = Receiver::start().await;
    receiver.answer_next([Answer::Status(500), Answer::Status(500)]);
    let webhook = id_of(
        &app.api
            .create_webhook(&tenant, &receiver.url, json!(["*"]))
            .await,
    );
    let message_id = app.api.test_message(&tenant, &webhook).await;
    let failed = app
        .api
        .newest_delivery_becomes(&tenant, &webhook, "failed")
        .await;
    assert_eq!(failed["attempts"].as_array().unwrap().len(), 2);
    assert_eq!(
        failed["attempts"][1]["error"],
        "answered 500 Internal Server Error"
    );

    let path = format!("/v1/webhooks/{webhook}/deliveries/{message_id}/retry");
    let retried = app.api.backend(&tenant, Method::POST, &path, None).await;
    assert_eq!(retried.status(), StatusCode::ACCEPTED);
    let requests = receiver.wait_for(3, ARRIVES).await;
    assert_eq!(requests[2].header("webhook-id"), message_id);
    app.api
        .newest_delivery_becomes(&tenant, &webhook, "delivered")
        .await;

    let unknown = format!("/v1/webhooks/{webhook}/deliveries/msg_nope/retry");
    let response = app.api.backend(&tenant, Method::POST, &unknown, None).await;
    assert_error(response, StatusCode::NOT_FOUND, "message_not_found").await;
}

#[actix_web::test]
async fn retry_after_on_a_429_or_503_sets_when_the_message_comes_back() {
    let app = spawn_app_with(|s| s.webhooks.retry_schedule_secs = vec![0.05, 0.05]).await;
    let tenant = app.api.create_tenant("acme").await;
    let receiver = Receiver::start().await;
    receiver.answer_next([Answer::StatusWith(503, vec![("Retry-After", "2".into())])]);
    let webhook = id_of(
        &app.api
            .create_webhook(&tenant, &receiver.url, json!(["*"]))
            .await,
    );
    app.api.test_message(&tenant, &webhook).await;
    let requests = receiver.wait_for(2, ARRIVES).await;
    let waited = requests[1].at - requests[0].at;
    assert!(
        waited >= Duration::from_millis(1900),
        "came back after {waited:?}, not Retry-After's 2 s"
    );
}

#[actix_web::test]
async fn gone_disables_the_endpoint_at_once_until_it_is_enabled_again() {
    let app = spawn_app_with(|s| s.webhooks.retry_schedule_secs = vec![0.1, 0.1]).await;
    let tenant = app.api.create_tenant("acme").await;
    let receiver = Receiver::start().await;
    receiver.answer_next([Answer::Status(410)]);
    let webhook = id_of(
        &app.api
            .create_webhook(&tenant, &receiver.url, json!(["*"]))
            .await,
    );
    app.api.test_message(&tenant, &webhook).await;
    let failed = app
        .api
        .newest_delivery_becomes(&tenant, &webhook, "failed")
        .await;
    assert_eq!(
        failed["attempts"].as_array().unwrap().len(),
        1,
        "a 410 is not retried"
    );
    let disabled = app.api.webhook(&tenant, &webhook).await;
    assert!(disabled["disabled_at"].is_string());
    assert_eq!(disabled["disabled_reason"], "gone");

    let path = format!("/v1/webhooks/{webhook}");
    let enabled = app
        .api
        .backend(
            &tenant,
            Method::PATCH,
            &path,
            Some(json!({"disabled": false})),
        )
        .await;
    assert_eq!(enabled.status(), StatusCode::OK);
    let enabled: Value = enabled.json().await.unwrap();
    assert!(enabled["disabled_at"].is_null());
    app.api.test_message(&tenant, &webhook).await;
    app.api
        .newest_delivery_becomes(&tenant, &webhook, "delivered")
        .await;
}

/// A backlog to a fast endpoint is served from messages claimed ahead of its free slots;
/// the endpoint's 410 stops them at once: what was claimed ahead is never sent.
#[actix_web::test]
async fn a_backlog_is_delivered_once_each_and_a_410_stops_what_was_claimed_ahead() {
    let per_endpoint = 4;
    let app = spawn_app_with(|s| s.webhooks.per_endpoint = per_endpoint).await;
    let tenant = app.api.create_tenant("acme").await;
    let receiver = Receiver::start().await;
    // The first attempts hang while the backlog builds, then the endpoint answers fast.
    receiver.answer_next(
        std::iter::repeat_n(Answer::After(Duration::from_secs(1)), per_endpoint)
            .chain(std::iter::repeat_n(Answer::Status(204), 60)),
    );
    receiver.answer_all(Answer::Status(410));
    let delivered = per_endpoint + 60;
    let webhook = id_of(
        &app.api
            .create_webhook(&tenant, &receiver.url, json!(["*"]))
            .await,
    );
    for _ in 0..150 {
        app.api.test_message(&tenant, &webhook).await;
    }
    receiver.wait_for(delivered + 1, ARRIVES).await;
    let deadline = std::time::Instant::now() + ARRIVES;
    let statuses = loop {
        let page = app.api.deliveries(&tenant, &webhook, "limit=500").await;
        let statuses: Vec<String> = page["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["status"].as_str().unwrap().to_owned())
            .collect();
        if !statuses.iter().any(|s| s == "pending") {
            break statuses;
        }
        assert!(std::time::Instant::now() < deadline, "still pending");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let count = |status: &str| statuses.iter().filter(|s| *s == status).count();
    assert_eq!(
        (count("delivered"), count("failed")),
        (delivered, 150 - delivered)
    );
    let received = receiver.received();
    // The 410 and the attempts already in flight beside it: nothing that was only held.
    assert!(
        received.len() <= delivered + per_endpoint,
        "{} requests for {delivered} delivered",
        received.len()
    );
    let mut ids: Vec<&str> = received.iter().map(|r| r.header("webhook-id")).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), received.len(), "a message was sent twice");
    let disabled = app.api.webhook(&tenant, &webhook).await;
    assert_eq!(disabled["disabled_reason"], "gone");
}

#[actix_web::test]
async fn an_endpoint_failing_for_longer_than_disable_after_is_disabled() {
    let app = spawn_app_with(|s| {
        s.webhooks.retry_schedule_secs = vec![0.2; 20];
        s.webhooks.disable_after_secs = 0.5;
    })
    .await;
    let tenant = app.api.create_tenant("acme").await;
    let receiver = Receiver::start().await;
    receiver.answer_all(Answer::Status(500));
    let webhook = id_of(
        &app.api
            .create_webhook(&tenant, &receiver.url, json!(["*"]))
            .await,
    );
    app.api.test_message(&tenant, &webhook).await;
    let failed = app
        .api
        .newest_delivery_becomes(&tenant, &webhook, "failed")
        .await;
    let attempts = failed["attempts"].as_array().unwrap().len();
    assert!(
        (2..20).contains(&attempts),
        "{attempts} attempts: disabled before the schedule was spent"
    );
    let endpoint = app.api.webhook(&tenant, &webhook).await;
    assert_eq!(endpoint["disabled_reason"], "failing");
    let count = receiver.received().len();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        receiver.received().len(),
        count,
        "a disabled endpoint gets nothing"
    );
}

#[actix_web::test]
async fn after_a_rotation_messages_carry_both_signatures_and_each_secret_verifies() {
    let app = spawn_app().await;
    let tenant = app.api.create_tenant("acme").await;
    let receiver = Receiver::start().await;
    let created = app
        .api
        .create_webhook(&tenant, &receiver.url, json!(["*"]))
        .await;
    let (webhook, old) = (
        id_of(&created),
        created["secret"].as_str().unwrap().to_owned(),
    );
    let path = format!("/v1/webhooks/{webhook}/rotate-secret");
    let rotated = app.api.backend(&tenant, Method::POST, &path, None).await;
    assert_eq!(rotated.status(), StatusCode::OK);
    let rotated: Value = rotated.json().await.unwrap();
    let new = rotated["secret"].as_str().unwrap();
    assert!(new.starts_with("whsec_") && new != old);

    app.api.test_message(&tenant, &webhook).await;
    let request = receiver.wait_for(1, ARRIVES).await.remove(0);
    let signatures: Vec<&str> = request.header("webhook-signature").split(' ').collect();
    assert_eq!(signatures.len(), 2, "{signatures:?}");
    let Some(verdicts) = verify_independently(&[(new, &request), (&old, &request)]) else {
        return;
    };
    assert_eq!(verdicts, ["ok", "ok"]);
}

#[actix_web::test]
async fn the_deliveries_log_pages_newest_first() {
    let app = spawn_app().await;
    let tenant = app.api.create_tenant("acme").await;
    let receiver = Receiver::start().await;
    let webhook = id_of(
        &app.api
            .create_webhook(&tenant, &receiver.url, json!(["*"]))
            .await,
    );
    let mut sent = Vec::new();
    for _ in 0..3 {
        sent.push(app.api.test_message(&tenant, &webhook).await);
    }
    receiver.wait_for(3, ARRIVES).await;
    let first = app.api.deliveries(&tenant, &webhook, "limit=2").await;
    let next = first["next"].as_str().unwrap();
    let second = app
        .api
        .deliveries(&tenant, &webhook, &format!("limit=2&before={next}"))
        .await;
    assert!(second["next"].is_null());
    let listed: Vec<&str> = first["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["deliveries"].as_array().unwrap())
        .map(|d| d["message_id"].as_str().unwrap())
        .collect();
    let newest_first: Vec<&str> = sent.iter().rev().map(String::as_str).collect();
    assert_eq!(listed, newest_first);
    assert!(first["deliveries"][0]["type"] == "webhook.test");
}

#[actix_web::test]
async fn endpoints_are_the_tenants_own_and_bad_ones_change_nothing() {
    let app = spawn_app().await;
    let (acme, other) = (
        app.api.create_tenant("acme").await,
        app.api.create_tenant("other").await,
    );
    let receiver = Receiver::start().await;
    let webhook = id_of(
        &app.api
            .create_webhook(&acme, &receiver.url, json!(["user.online"]))
            .await,
    );
    for (body, code) in [
        (
            json!({"url": "not a url", "events": ["*"]}),
            "invalid_webhook_url",
        ),
        (
            json!({"url": "ftp://example.com/", "events": ["*"]}),
            "invalid_webhook_url",
        ),
        (
            json!({"url": receiver.url, "events": ["user.nope"]}),
            "invalid_webhook_events",
        ),
        (
            json!({"url": receiver.url, "events": []}),
            "invalid_webhook_events",
        ),
        (
            json!({"url": receiver.url, "events": ["*", "user.online"]}),
            "invalid_webhook_events",
        ),
        (json!({"url": receiver.url}), "invalid_body"),
    ] {
        let response = app
            .api
            .backend(&acme, Method::POST, "/v1/webhooks", Some(body))
            .await;
        assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, code).await;
    }
    let list = app
        .api
        .backend(&acme, Method::GET, "/v1/webhooks", None)
        .await;
    let list: Value = list.json().await.unwrap();
    assert_eq!(list["webhooks"].as_array().unwrap().len(), 1);

    for (method, path) in [
        (Method::GET, format!("/v1/webhooks/{webhook}")),
        (Method::DELETE, format!("/v1/webhooks/{webhook}")),
        (Method::POST, format!("/v1/webhooks/{webhook}/test")),
        (
            Method::POST,
            format!("/v1/webhooks/{webhook}/rotate-secret"),
        ),
        (Method::GET, format!("/v1/webhooks/{webhook}/deliveries")),
    ] {
        let response = app.api.backend(&other, method, &path, None).await;
        assert_error(response, StatusCode::NOT_FOUND, "webhook_not_found").await;
    }
    let operator = app
        .api
        .admin(Method::GET, "/admin/tenants/acme/webhooks", None)
        .await;
    let operator: Value = operator.json().await.unwrap();
    assert_eq!(operator["webhooks"][0]["id"], webhook);
    assert!(operator["webhooks"][0].get("secret").is_none());

    let patched = app
        .api
        .backend(
            &acme,
            Method::PATCH,
            &format!("/v1/webhooks/{webhook}"),
            Some(json!({"events": ["bad"]})),
        )
        .await;
    assert_error(
        patched,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_webhook_events",
    )
    .await;
    assert_eq!(
        app.api.webhook(&acme, &webhook).await["events"],
        json!(["user.online"])
    );

    let deleted = app
        .api
        .backend(
            &acme,
            Method::DELETE,
            &format!("/v1/webhooks/{webhook}"),
            None,
        )
        .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let gone = app
        .api
        .backend(&acme, Method::GET, &format!("/v1/webhooks/{webhook}"), None)
        .await;
    assert_error(gone, StatusCode::NOT_FOUND, "webhook_not_found").await;
}

#[actix_web::test]
async fn a_tenant_has_at_most_max_webhooks_endpoints() {
    let app = spawn_app_with(|s| s.tenant_defaults.max_webhooks = 2).await;
    let tenant = app.api.create_tenant("acme").await;
    let receiver = Receiver::start().await;
    for _ in 0..2 {
        app.api
            .create_webhook(&tenant, &receiver.url, json!(["*"]))
            .await;
    }
    let third = app
        .api
        .backend(
            &tenant,
            Method::POST,
            "/v1/webhooks",
            Some(json!({"url": receiver.url, "events": ["*"]})),
        )
        .await;
    assert_error(third, StatusCode::UNPROCESSABLE_ENTITY, "too_many_webhooks").await;
}

#[actix_web::test]
async fn in_production_only_https_to_public_addresses_is_sent() {
    let app = spawn_app_with(|s| s.webhooks.allow_private_targets = false).await;
    let tenant = app.api.create_tenant("acme").await;
    for url in [
        "http://hooks.example.com/h",
        "https://127.0.0.1/h",
        "https://10.0.0.8/h",
        "https://[::1]/h",
        "https://169.254.169.254/latest/meta-data",
        "https://localhost/h",
    ] {
        let response = app
            .api
            .backend(
                &tenant,
                Method::POST,
                "/v1/webhooks",
                Some(json!({"url": url, "events": ["*"]})),
            )
            .await;
        assert_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_webhook_url",
        )
        .await;
    }
    // A name that resolves to a loopback or private address (this machine's own name)
    // passes the text check and is refused when the attempt connects.
    let receiver = Receiver::start().await;
    let port = receiver.url.rsplit(':').next().unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host = host.trim();
    let resolved: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host, 0))
        .await
        .map(Iterator::collect)
        .unwrap_or_default();
    if host.is_empty()
        || resolved.is_empty()
        || resolved
            .iter()
            .any(|a| herald::domain::webhook::is_public(a.ip()))
    {
        eprintln!(
            "skipped the resolved-address half: this machine's name does not resolve to private addresses only"
        );
        return;
    }
    let named = format!("https://{host}:{port}");
    let webhook = id_of(&app.api.create_webhook(&tenant, &named, json!(["*"])).await);
    app.api.test_message(&tenant, &webhook).await;
    let delivery = app
        .api
        .newest_delivery_becomes(&tenant, &webhook, "pending")
        .await;
    let deadline = std::time::Instant::now() + ARRIVES;
    let mut delivery = delivery;
    while delivery["attempts"].as_array().unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
        delivery = app.api.deliveries(&tenant, &webhook, "limit=1").await["deliveries"][0].clone();
    }
    assert_eq!(delivery["attempts"][0]["error"], "address not allowed");
    assert!(receiver.received().is_empty());
}

#[actix_web::test]
async fn receivers_that_misbehave_fail_their_attempt_with_a_clear_error_and_hold_up_no_one_else() {
    let app = spawn_app_with(|s| {
        s.webhooks.timeout_secs = 3.0;
        s.webhooks.retry_schedule_secs = Vec::new();
    })
    .await;
    let tenant = app.api.create_tenant("acme").await;
    let cases = [
        (
            Answer::After(Duration::from_secs(10)),
            "no answer within 3 s",
        ),
        (Answer::Redirect, "302 Found: redirects are not followed"),
        (Answer::BrokenOff, "the answer broke off"),
        (
            Answer::Huge(10 * 1024 * 1024),
            "the answer is larger than 64 KB",
        ),
    ];
    let mut failing = Vec::new();
    for (answer, error) in cases {
        let receiver = Receiver::start().await;
        receiver.answer_all(answer);
        let webhook = id_of(
            &app.api
                .create_webhook(&tenant, &receiver.url, json!(["*"]))
                .await,
        );
        app.api.test_message(&tenant, &webhook).await;
        failing.push((receiver, webhook, error));
    }
    // While those attempts hang or fail, another endpoint's message and a publish go
    // through at once.
    let healthy = Receiver::start().await;
    let webhook = id_of(
        &app.api
            .create_webhook(&tenant, &healthy.url, json!(["*"]))
            .await,
    );
    let sent = std::time::Instant::now();
    app.api.test_message(&tenant, &webhook).await;
    healthy.wait_for(1, ARRIVES).await;
    let published = app
        .api
        .publish(
            &tenant.api_key,
            &json!({"to": {"user": "u1"}, "data": "hi"}),
        )
        .await;
    assert_eq!(published.status(), StatusCode::CREATED);
    // Held behind the silent receiver, it would wait for the 3 s timeout.
    assert!(
        sent.elapsed() < Duration::from_millis(2500),
        "held up for {:?}",
        sent.elapsed()
    );

    for (_receiver, webhook, error) in &failing {
        let failed = app
            .api
            .newest_delivery_becomes(&tenant, webhook, "failed")
            .await;
        let said = failed["attempts"][0]["error"].as_str().unwrap_or_default();
        assert!(
            said.starts_with(error),
            "{webhook}: `{said}`, not `{error}`"
        );
    }
}

#[actix_web::test]
async fn messages_due_or_in_flight_when_herald_is_killed_are_delivered_after_it_restarts() {
    let hanging = Receiver::start().await;
    hanging.answer_next([Answer::After(Duration::from_secs(30))]);
    let failing = Receiver::start().await;
    failing.answer_next([Answer::Status(500)]);
    let server = ServerProcess::start(&[
        ("HERALD__WEBHOOKS__RETRY_SCHEDULE_SECS", "1,1"),
        ("HERALD__WEBHOOKS__TIMEOUT_SECS", "3"),
    ])
    .await;
    let tenant = server.create_tenant("acme").await;
    let in_flight = id_of(
        &server
            .create_webhook(&tenant, &hanging.url, json!(["*"]))
            .await,
    );
    let due = id_of(
        &server
            .create_webhook(&tenant, &failing.url, json!(["*"]))
            .await,
    );
    let in_flight_id = server.test_message(&tenant, &in_flight).await;
    let due_id = server.test_message(&tenant, &due).await;
    hanging.wait_for(1, ARRIVES).await;
    failing.wait_for(1, ARRIVES).await;

    let server = server.restart("KILL").await;
    // A claim the killed node held runs out within its lease (the attempt's timeout and
    // ten seconds); on SQLite the restarted node, the only one, gives it back at once.
    let within = Duration::from_secs(20);
    let again = hanging.wait_for(2, within).await;
    assert!(again.iter().all(|r| r.header("webhook-id") == in_flight_id));
    let again = failing.wait_for(2, within).await;
    assert!(again.iter().all(|r| r.header("webhook-id") == due_id));
    server
        .newest_delivery_becomes(&tenant, &in_flight, "delivered")
        .await;
    server
        .newest_delivery_becomes(&tenant, &due, "delivered")
        .await;
}

#[actix_web::test]
async fn with_two_nodes_each_message_is_attempted_by_one_node_at_a_time() {
    let Some(cluster) =
        crate::support::cluster::cluster_with(2, &[("HERALD__WEBHOOKS__POLL_SECS", "0.02")]).await
    else {
        return;
    };
    let receiver = Receiver::start().await;
    let tenant = &cluster.tenant;
    let webhook = id_of(
        &cluster.nodes[0]
            .create_webhook(tenant, &receiver.url, json!(["*"]))
            .await,
    );
    let mut sent = Vec::new();
    for n in 0..40 {
        sent.push(cluster.nodes[n % 2].test_message(tenant, &webhook).await);
    }
    receiver.wait_for(40, Duration::from_secs(20)).await;
    // Time for a second attempt by the other node, were there one.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut ids: Vec<String> = receiver
        .received()
        .iter()
        .map(|r| r.header("webhook-id").to_owned())
        .collect();
    ids.sort();
    sent.sort();
    assert_eq!(ids, sent);
}

#[actix_web::test]
async fn delivered_messages_are_pruned_after_keep_deliveries_and_pending_ones_stay() {
    let app = spawn_app().await;
    let tenant = app.api.create_tenant("acme").await;
    let receiver = Receiver::start().await;
    receiver.answer_next([Answer::Status(204), Answer::Status(500)]);
    let webhook = id_of(
        &app.api
            .create_webhook(&tenant, &receiver.url, json!(["*"]))
            .await,
    );
    app.api.test_message(&tenant, &webhook).await;
    app.api
        .newest_delivery_becomes(&tenant, &webhook, "delivered")
        .await;
    let pending = app.api.test_message(&tenant, &webhook).await;
    receiver.wait_for(2, ARRIVES).await;
    let removed = app
        .state
        .store
        .prune_webhook_messages(herald::domain::now_ms() + 1)
        .await
        .unwrap();
    assert_eq!(removed, 1);
    let left = app.api.deliveries(&tenant, &webhook, "").await;
    assert_eq!(left["deliveries"].as_array().unwrap().len(), 1);
    assert_eq!(left["deliveries"][0]["message_id"], pending);
}
