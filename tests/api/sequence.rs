//! Sequence numbers are gap-free in commit order per tenant.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::support::{seq_of, spawn_app};

#[actix_web::test]
async fn concurrent_publishers_give_one_contiguous_sequence_that_readers_never_see_out_of_order() {
    let app = Arc::new(spawn_app().await);
    let t = Arc::new(app.create_tenant("seq").await);
    const PUBLISHERS: usize = 12;
    const REQUESTS: usize = 25;
    let done = Arc::new(AtomicBool::new(false));

    // The reader follows the log from where it last was. Every event is a broadcast, so it
    // sees every seq; a page that starts anywhere but right after what it saw last would
    // mean an event committed below a seq it had already seen.
    let reader = {
        let (app, t, done) = (app.clone(), t.clone(), done.clone());
        actix_web::rt::spawn(async move {
            let mut last: Option<String> = None;
            let mut last_seq = 0;
            let mut reads = 0;
            loop {
                let finished = done.load(Ordering::SeqCst);
                let query = match &last {
                    Some(id) => format!("user=reader&limit=1000&after={id}"),
                    None => "user=reader&limit=1000".to_owned(),
                };
                let page: Value = app.history(&t.api_key, &query).await.json().await.unwrap();
                reads += 1;
                for event in page["events"].as_array().unwrap() {
                    let seq = seq_of(&event["id"]);
                    assert_eq!(
                        seq,
                        last_seq + 1,
                        "the reader saw seq {seq} right after {last_seq}"
                    );
                    last_seq = seq;
                    last = Some(event["id"].as_str().unwrap().to_owned());
                }
                if finished && page["next"].is_null() {
                    return (last_seq, reads);
                }
            }
        })
    };

    let publishers = (0..PUBLISHERS).map(|p| {
        let (app, t) = (app.clone(), t.clone());
        async move {
            let mut seqs = Vec::new();
            for r in 0..REQUESTS {
                // Mix single events and small batches.
                let body = if r % 3 == 0 {
                    json!({"events": [
                        {"to": {"broadcast": true}, "data": [p, r, 0]},
                        {"to": {"broadcast": true}, "data": [p, r, 1]}
                    ]})
                } else {
                    json!({"to": {"broadcast": true}, "data": [p, r]})
                };
                let receipts = app.publish_ok(&t.api_key, &body).await;
                let mine: Vec<i64> = receipts.iter().map(|e| seq_of(&e["id"])).collect();
                // A request's own events are consecutive.
                assert!(mine.windows(2).all(|w| w[1] == w[0] + 1));
                seqs.extend(mine);
            }
            seqs
        }
    });
    let mut all: Vec<i64> = join_all(publishers).await.into_iter().flatten().collect();
    done.store(true, Ordering::SeqCst);
    let (reader_last, reads) = reader.await.unwrap();

    all.sort_unstable();
    let expected = PUBLISHERS * (REQUESTS + REQUESTS.div_ceil(3));
    assert_eq!(
        all,
        (1..=expected as i64).collect::<Vec<_>>(),
        "acknowledged seqs are exactly 1..N"
    );
    assert_eq!(reader_last, expected as i64);
    assert!(reads > 1, "the reader ran alongside the publishers");
    let history = app.full_history(&t.api_key, "user=anyone").await;
    assert_eq!(history.len(), expected);
}

/// Concurrent publishes share transactions (group commit), and each still gets its own
/// answer with its own events.
#[actix_web::test]
async fn concurrent_publishes_are_grouped_into_fewer_transactions() {
    let app = spawn_app().await;
    let t = app.create_tenant("group").await;
    let before_groups = app.state.log.stats().groups.load(Ordering::SeqCst);
    let before_requests = app.state.log.stats().requests.load(Ordering::SeqCst);
    const REQUESTS: usize = 64;
    let bodies: Vec<Value> = (0..REQUESTS)
        .map(|i| json!({"to": {"user": format!("u{i}")}, "data": i}))
        .collect();
    let publishes = bodies.iter().map(|body| app.publish_ok(&t.api_key, body));
    let answers = join_all(publishes).await;
    for (i, receipts) in answers.iter().enumerate() {
        assert_eq!(receipts.len(), 1);
        assert_eq!(receipts[0]["to"]["user"], format!("u{i}"));
    }
    let groups = app.state.log.stats().groups.load(Ordering::SeqCst) - before_groups;
    let requests = app.state.log.stats().requests.load(Ordering::SeqCst) - before_requests;
    assert_eq!(requests, REQUESTS as u64);
    assert!(
        groups < requests,
        "{REQUESTS} concurrent publishes took {groups} transactions"
    );
}

#[actix_web::test]
async fn retention_removes_the_oldest_events_and_old_cursors_expire() {
    let app = spawn_app().await;
    let t = app.create_tenant("retain").await;
    app.patch_tenant("retain", json!({"retention": {"max_events": 4}}))
        .await;
    let events: Vec<Value> = (0..10)
        .map(|i| json!({"to": {"broadcast": true}, "data": i}))
        .collect();
    let receipts = app.publish_ok(&t.api_key, &json!({"events": events})).await;
    let removed = app.state.store.prune(None).await.unwrap().removed;
    assert_eq!(removed, 6);
    let kept: Vec<i64> = app
        .full_history(&t.api_key, "user=u")
        .await
        .iter()
        .map(|e| seq_of(&e["id"]))
        .collect();
    assert_eq!(kept, vec![7, 8, 9, 10]);
    // A cursor inside the removed range would silently skip events: it expires instead.
    let stale = app
        .history(
            &t.api_key,
            &format!("user=u&after={}", receipts[2]["id"].as_str().unwrap()),
        )
        .await;
    crate::support::assert_error(stale, reqwest::StatusCode::GONE, "cursor_expired").await;
    // The last removed event is exactly where the kept history starts: still a valid cursor.
    let edge = app
        .history(
            &t.api_key,
            &format!("user=u&after={}", receipts[5]["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(edge.status(), 200);
    assert_eq!(
        app.state.store.prune(None).await.unwrap().removed,
        0,
        "nothing more to remove"
    );
}
