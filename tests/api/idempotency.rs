use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{assert_error, spawn_app};

#[actix_web::test]
async fn a_repeated_request_gets_the_first_answer_and_writes_nothing() {
    let app = spawn_app().await;
    let t = app.create_tenant("idem").await;
    let body = json!({"to": {"users": ["a", "b"]}, "type": "mail", "data": {"n": 1}});
    let send = |body: Value, key: &'static str| {
        let request = app
            .client
            .post(app.url("/v1/events"))
            .bearer_auth(&t.api_key)
            .header("Idempotency-Key", key)
            .json(&body);
        async move { request.send().await.unwrap() }
    };

    let first = send(body.clone(), "order-42").await;
    assert_eq!(first.status(), StatusCode::CREATED);
    assert!(first.headers().get("Idempotent-Replayed").is_none());
    let first: Value = first.json().await.unwrap();

    let again = send(body.clone(), "order-42").await;
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.headers()["Idempotent-Replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap(), first);

    // The same JSON with other spacing and key order is the same body.
    let respelled = app
        .client
        .post(app.url("/v1/events"))
        .bearer_auth(&t.api_key)
        .header("Idempotency-Key", "order-42")
        .header("Content-Type", "application/json")
        .body(r#"{ "data": {"n":1}, "type":"mail", "to": {"users":["a","b"]} }"#)
        .send()
        .await
        .unwrap();
    assert_eq!(respelled.status(), StatusCode::CREATED);
    assert_eq!(respelled.headers()["Idempotent-Replayed"], "true");

    let other = send(json!({"to": {"user": "a"}}), "order-42").await;
    assert_error(
        other,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
    )
    .await;

    // Another key is another request.
    let fresh = send(body.clone(), "order-43").await;
    assert_eq!(fresh.status(), StatusCode::CREATED);

    let a = app.full_history(&t.api_key, "user=a").await;
    assert_eq!(a.len(), 2, "one event per distinct request: {a:?}");
}

#[actix_web::test]
async fn an_idempotency_key_of_one_tenant_never_answers_for_another() {
    let app = spawn_app().await;
    let one = app.create_tenant("one").await;
    let two = app.create_tenant("two").await;
    for tenant in [&one, &two] {
        let response = app
            .client
            .post(app.url("/v1/events"))
            .bearer_auth(&tenant.api_key)
            .header("Idempotency-Key", "same")
            .json(&json!({"to": {"user": "u"}, "data": tenant.slug}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        assert!(response.headers().get("Idempotent-Replayed").is_none());
    }
}

/// Concurrent requests with one key: while the first is being appended the others get
/// 409; whichever way the race goes, the events are written exactly once.
#[actix_web::test]
async fn concurrent_requests_with_one_key_write_once_and_conflict_while_in_flight() {
    let app = spawn_app().await;
    let t = app.create_tenant("race").await;
    // A large fan-out keeps the first request's commit busy for a while.
    let users: Vec<String> = (0..2000).map(|i| format!("user-{i}")).collect();
    let body = json!({"to": {"users": users[..1000]}, "data": "x".repeat(2000)});
    let mut saw_conflict = false;
    let mut attempts = 0;
    for attempt in 0..10 {
        attempts += 1;
        let key = format!("race-{attempt}");
        let requests = (0..8).map(|_| {
            app.client
                .post(app.url("/v1/events"))
                .bearer_auth(&t.api_key)
                .header("Idempotency-Key", &key)
                .json(&body)
                .send()
        });
        let responses = join_all(requests).await;
        let mut created = Vec::new();
        for response in responses {
            let response = response.unwrap();
            match response.status() {
                StatusCode::CREATED => created.push(response.json::<Value>().await.unwrap()),
                StatusCode::CONFLICT => {
                    let error: Value = response.json().await.unwrap();
                    assert_eq!(error["error"]["code"], "idempotency_key_in_flight");
                    saw_conflict = true;
                }
                other => panic!("unexpected {other}"),
            }
        }
        assert!(!created.is_empty());
        assert!(
            created.iter().all(|answer| *answer == created[0]),
            "one answer for one key"
        );
        if saw_conflict {
            break;
        }
    }
    assert!(
        saw_conflict,
        "no request ever overlapped the first one's append"
    );
    // Every attempt used its own key, and each key's events were written exactly once.
    for user in ["user-0", "user-999"] {
        let events = app.full_history(&t.api_key, &format!("user={user}")).await;
        assert_eq!(events.len(), attempts, "{user}");
    }
}
