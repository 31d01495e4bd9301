//! Live delivery over SSE: who gets what, the wire format, resume and reset.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::sse_client::SseEvent;
use crate::support::{assert_error, now_secs, seq_of, spawn_app, spawn_app_with};

const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(300);

fn data_of(events: &[SseEvent]) -> Vec<String> {
    events.iter().map(|e| e.data.clone()).collect()
}

#[actix_web::test]
async fn events_reach_exactly_the_streams_they_target() {
    let app = spawn_app().await;
    let t = app.create_tenant("deliver").await;
    let alice = t.token("alice", &["stock:*"]);
    let mut alice_tab1 = app.open_stream(&t, &alice, "topics=stock:AAPL", None).await;
    let mut alice_tab2 = app.open_stream(&t, &alice, "", None).await;
    let mut bob = app.open_stream(&t, &t.token("bob", &[]), "", None).await;
    let mut carol = app.open_stream(&t, &t.token("carol", &[]), "", None).await;
    app.wait_for_open_streams(4).await;

    app.publish_ok(
        &t.api_key,
        &json!({"events": [
            {"to": {"user": "alice"}, "type": "mail", "data": "a1"},
            {"to": {"users": ["alice", "bob"]}, "type": "mail", "data": "ab"},
            {"to": {"topic": "stock:AAPL"}, "type": "stock", "data": "aapl"},
            {"to": {"topic": "stock:MSFT"}, "type": "stock", "data": "msft"},
            {"to": {"broadcast": true}, "type": "score", "data": "all"},
            {"to": {"user": "bob"}, "data": "b1"}
        ]}),
    )
    .await;

    assert_eq!(
        data_of(&alice_tab1.take(4, WAIT).await),
        ["a1", "ab", "aapl", "all"]
    );
    assert_eq!(
        data_of(&alice_tab2.take(3, WAIT).await),
        ["a1", "ab", "all"]
    );
    assert_eq!(data_of(&bob.take(3, WAIT).await), ["ab", "all", "b1"]);
    assert_eq!(data_of(&carol.take(1, WAIT).await), ["all"]);
    for stream in [&mut alice_tab1, &mut alice_tab2, &mut bob, &mut carol] {
        assert_eq!(stream.next_event(QUIET).await, None, "nothing more");
    }
}

#[actix_web::test]
async fn one_tenants_events_never_reach_another_tenants_streams() {
    let app = spawn_app().await;
    let a = app.create_tenant("iso-a").await;
    let b = app.create_tenant("iso-b").await;
    // Same user id and topic name in both tenants.
    let mut in_b = app
        .open_stream(&b, &b.token("alice", &["news"]), "topics=news", None)
        .await;
    let mut in_a = app
        .open_stream(&a, &a.token("alice", &["news"]), "topics=news", None)
        .await;
    app.wait_for_open_streams(2).await;
    app.publish_ok(
        &a.api_key,
        &json!({"events": [
            {"to": {"user": "alice"}, "data": "A user"},
            {"to": {"topic": "news"}, "data": "A topic"},
            {"to": {"broadcast": true}, "data": "A all"}
        ]}),
    )
    .await;
    app.publish_ok(
        &b.api_key,
        &json!({"to": {"user": "alice"}, "data": "B user"}),
    )
    .await;
    assert_eq!(
        data_of(&in_a.take(3, WAIT).await),
        ["A user", "A topic", "A all"]
    );
    assert_eq!(data_of(&in_b.take(1, WAIT).await), ["B user"]);
    assert_eq!(in_b.next_event(QUIET).await, None);
    assert_eq!(in_a.next_event(QUIET).await, None);
}

#[actix_web::test]
async fn events_go_out_as_sse_frames_that_no_data_can_break() {
    let app = spawn_app().await;
    let t = app.create_tenant("wire").await;
    let response = app
        .stream_request(&t.slug, &t.token("u", &[]), "", None)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert_eq!(response.headers()["cache-control"], "no-cache");
    assert_eq!(response.headers()["x-accel-buffering"], "no");
    let mut stream = crate::support::sse_client::SseStream::new(response);
    app.wait_for_open_streams(1).await;
    let text = "first line\nsecond line\r\nthird — ünïcødé 🚀";
    app.publish_ok(
        &t.api_key,
        &json!({"events": [
            {"to": {"user": "u"}, "type": "mail", "data": text},
            {"to": {"user": "u"}, "type": "stock.tick:v2", "data": {"px": 1.5, "sym": "A\nB"}},
            {"to": {"user": "u"}, "data": "plain"},
            {"to": {"user": "u"}, "data": null}
        ]}),
    )
    .await;
    let events = stream.take(4, WAIT).await;
    assert_eq!(stream.retry_ms, Some(2000), "the stream opens with retry:");
    assert_eq!(events[0].event, "mail");
    // Each line break became its own data: line; the parser joins them with LF.
    assert_eq!(
        events[0].data,
        "first line\nsecond line\nthird — ünïcødé 🚀"
    );
    assert_eq!(events[1].event, "stock.tick:v2");
    assert_eq!(
        serde_json::from_str::<Value>(&events[1].data).unwrap(),
        json!({"px": 1.5, "sym": "A\nB"})
    );
    assert_eq!(
        events[1].data, r#"{"px":1.5,"sym":"A\nB"}"#,
        "compact JSON on one line"
    );
    assert_eq!(events[2].event, "message");
    assert_eq!(events[2].data, "plain");
    assert_eq!(events[3].data, "null");
    let seqs: Vec<i64> = events.iter().map(|e| seq_of(&json!(e.id))).collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
}

#[actix_web::test]
async fn idle_streams_get_keep_alive_comments() {
    let app = spawn_app_with(|s| s.stream.keepalive_secs = 0.2).await;
    let t = app.create_tenant("idle").await;
    let mut stream = app.open_stream(&t, &t.token("u", &[]), "", None).await;
    assert_eq!(stream.next_event(Duration::from_millis(900)).await, None);
    assert!(
        stream.comments >= 2,
        "{} keep-alive comments",
        stream.comments
    );
}

#[actix_web::test]
async fn a_fresh_stream_carries_its_position_so_a_reconnect_misses_nothing() {
    let app = spawn_app().await;
    let t = app.create_tenant("fresh").await;
    app.publish_ok(&t.api_key, &json!({"to": {"user": "u"}, "data": "before"}))
        .await;
    let token = t.token("u", &[]);
    let mut first = app.open_stream(&t, &token, "", None).await;
    // The opening frame moves lastEventId to the head of the log without firing an event.
    assert_eq!(
        first.next_event(QUIET).await,
        None,
        "no history on a fresh stream"
    );
    let position = first.last_event_id.clone();
    assert_eq!(seq_of(&json!(position)), 1);
    drop(first);
    app.publish_ok(
        &t.api_key,
        &json!({"to": {"user": "u"}, "data": "while away"}),
    )
    .await;
    let mut second = app.open_stream(&t, &token, "", Some(&position)).await;
    assert_eq!(data_of(&second.take(1, WAIT).await), ["while away"]);
}

#[actix_web::test]
async fn resume_replays_what_was_missed_then_goes_live() {
    let app = spawn_app().await;
    let t = app.create_tenant("resume").await;
    let token = t.token("u", &["t"]);
    let receipts = app
        .publish_ok(
            &t.api_key,
            &json!({"events": [
                {"to": {"user": "u"}, "data": "1"},
                {"to": {"user": "other"}, "data": "not mine"},
                {"to": {"topic": "t"}, "data": "2"},
                {"to": {"broadcast": true}, "data": "3"},
                {"to": {"user": "u"}, "data": "4"}
            ]}),
        )
        .await;
    let after_first = receipts[0]["id"].as_str().unwrap();
    // Header form.
    let mut by_header = app
        .open_stream(&t, &token, "topics=t", Some(after_first))
        .await;
    assert_eq!(data_of(&by_header.take(3, WAIT).await), ["2", "3", "4"]);
    // Query form, for clients that cannot set headers; the header wins when both are sent.
    let mut by_query = app
        .open_stream(
            &t,
            &token,
            &format!("topics=t&lastEventId={after_first}"),
            None,
        )
        .await;
    assert_eq!(data_of(&by_query.take(3, WAIT).await), ["2", "3", "4"]);
    let last = receipts[4]["id"].as_str().unwrap();
    let mut both = app
        .open_stream(
            &t,
            &token,
            &format!("topics=t&lastEventId={after_first}"),
            Some(last),
        )
        .await;
    app.wait_for_open_streams(3).await;
    app.publish_ok(&t.api_key, &json!({"to": {"user": "u"}, "data": "live"}))
        .await;
    assert_eq!(data_of(&both.take(1, WAIT).await), ["live"]);
    assert_eq!(data_of(&by_header.take(1, WAIT).await), ["live"]);
}

#[actix_web::test]
async fn a_10000_event_backlog_arrives_in_one_response_in_order() {
    let app = spawn_app().await;
    let t = app.create_tenant("backlog").await;
    let token = t.token("u", &[]);
    let mut opened = app.open_stream(&t, &token, "", None).await;
    opened.next_event(QUIET).await;
    let start = opened.last_event_id.clone();
    drop(opened);
    for batch in 0..10 {
        let events: Vec<Value> = (0..1000)
            .map(|i| json!({"to": {"user": "u"}, "data": batch * 1000 + i}))
            .collect();
        app.publish_ok(&t.api_key, &json!({"events": events})).await;
    }
    let mut stream = app.open_stream(&t, &token, "", Some(&start)).await;
    let events = stream.take(10_000, WAIT).await;
    assert_eq!(events.len(), 10_000);
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event.data, i.to_string());
    }
    assert_eq!(stream.next_event(QUIET).await, None, "each once");
}

#[actix_web::test]
async fn each_bad_resume_id_gets_its_reset_reason() {
    let app = spawn_app().await;
    let t = app.create_tenant("reasons").await;
    let token = t.token("u", &[]);
    let receipts = app
        .publish_ok(&t.api_key, &json!({"events": (0..6).map(|i| json!({"to": {"user": "u"}, "data": i})).collect::<Vec<_>>()}))
        .await;
    let expired = receipts[1]["id"].as_str().unwrap().to_owned();
    let (epoch, _) = expired.rsplit_once('-').unwrap();
    app.patch_tenant("reasons", json!({"retention": {"max_events": 2}}))
        .await;
    app.state.store.prune(None).await.unwrap();
    let future = format!("{epoch}-99");
    for (last_id, reason) in [
        ("garbage", "malformed_id"),
        ("x-y-z", "malformed_id"),
        ("otherEpoch-3", "unknown_epoch"),
        (future.as_str(), "id_in_the_future"),
        (expired.as_str(), "history_expired"),
    ] {
        let mut stream = app.open_stream(&t, &token, "", Some(last_id)).await;
        let reset = stream.next_event(WAIT).await.expect("a reset event");
        assert_eq!(reset.event, "reset", "{last_id}");
        assert_eq!(
            serde_json::from_str::<Value>(&reset.data).unwrap()["reason"],
            reason,
            "{last_id}"
        );
        assert_eq!(reset.id, format!("{epoch}-6"), "the reset carries the head");
        assert_eq!(
            stream.next_event(QUIET).await,
            None,
            "no replay after a reset"
        );
    }
    // A retained id still resumes exactly.
    let kept = receipts[4]["id"].as_str().unwrap();
    let mut stream = app.open_stream(&t, &token, "", Some(kept)).await;
    assert_eq!(data_of(&stream.take(1, WAIT).await), ["5"]);
}

#[actix_web::test]
async fn an_expiring_token_ends_the_stream_with_session_expired() {
    let app = spawn_app().await;
    let t = app.create_tenant("expiry").await;
    let token = t.token_with(json!({"sub": "u", "aud": "herald", "exp": now_secs() + 2}));
    let mut stream = app.open_stream(&t, &token, "", None).await;
    let event = stream
        .next_event(Duration::from_secs(5))
        .await
        .expect("session-expired");
    assert_eq!(event.event, "session-expired");
    assert!(
        stream.wait_for_end(Duration::from_secs(2)).await,
        "the stream ends"
    );
    app.wait_for_open_streams(0).await;
}

#[actix_web::test]
async fn connection_caps_answer_429() {
    let app = spawn_app_with(|s| {
        s.tenant_defaults.max_streams_per_user = 2;
        s.stream.max_connections_per_tenant = 3;
    })
    .await;
    let t = app.create_tenant("caps").await;
    let alice = t.token("alice", &[]);
    let _one = app.open_stream(&t, &alice, "", None).await;
    let _two = app.open_stream(&t, &alice, "", None).await;
    let third = app.stream_request(&t.slug, &alice, "", None).await;
    assert_error(third, StatusCode::TOO_MANY_REQUESTS, "too_many_streams").await;
    let _bob = app.open_stream(&t, &t.token("bob", &[]), "", None).await;
    let carol = app
        .stream_request(&t.slug, &t.token("carol", &[]), "", None)
        .await;
    assert_error(carol, StatusCode::TOO_MANY_REQUESTS, "too_many_streams").await;
    // Refusals leave no trace in the counts: closing one stream makes room for one more.
    drop(_bob);
    app.wait_for_open_streams(2).await;
    let _carol = app.open_stream(&t, &t.token("carol", &[]), "", None).await;
    app.wait_for_open_streams(3).await;
}
