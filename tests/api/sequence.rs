//! Design invariant 2: sequence numbers are gap-free in commit order per tenant.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::helpers::{seq_of, spawn_app};

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
