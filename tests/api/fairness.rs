//! One tenant's storm does not hold up another tenant's events: the writer takes append
//! requests in turns per tenant, and each shard hands out a large fan-out a slice at a time
//! with other tenants' deliveries in between.
//!
//! Tenant A holds 2,000 streams (raw sockets whose bytes are read and dropped, so the test
//! client costs little) and four publishers send it 500-event broadcast batches as fast as
//! they are answered; tenant B publishes single events to one user and times each from the
//! publish to its arrival. Measured here (2 cores): B's p99 ~4 ms with A idle, 230–330 ms
//! with A storming, most of it waiting for A's commit groups; without the turns, B's events
//! waited more than 30 s. The bound asserted is generous — this machine is shared by the
//! suite — and the figures are printed.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::sse_client::SseStream;
use crate::support::{TestApp, TestTenant, spawn_app};

const STREAMS: usize = 2_000;
const BATCH: usize = 500;
const PUBLISHERS: usize = 4;
const SAMPLES: usize = 40;

/// A stream of `user` on a raw socket, its bytes read and dropped.
async fn drained_stream(app: &TestApp, tenant: &TestTenant, user: &str) {
    let address = app.address.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!(
        "GET /t/{}/stream HTTP/1.1\r\nHost: herald\r\nAuthorization: Bearer {}\r\n\r\n",
        tenant.slug,
        tenant.token(user, &[])
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0; 64 * 1024];
        while matches!(socket.read(&mut buf).await, Ok(n) if n > 0) {}
    });
}

/// Tenant B's figures for `SAMPLES` single events published one at a time: how long each
/// publish took to be answered, and to arrive on B's stream (sorted).
struct Timings {
    answered: Vec<Duration>,
    arrived: Vec<Duration>,
    /// From the answer to the arrival: the fan-out's part.
    after_answer: Vec<Duration>,
}

async fn b_timings(app: &TestApp, b: &TestTenant, stream: &mut SseStream) -> Timings {
    let mut timings = Timings {
        answered: Vec::with_capacity(SAMPLES),
        arrived: Vec::with_capacity(SAMPLES),
        after_answer: Vec::with_capacity(SAMPLES),
    };
    for n in 0..SAMPLES {
        let began = Instant::now();
        app.publish_ok(&b.api_key, &json!({"to": {"user": "b"}, "data": n}))
            .await;
        let answered = began.elapsed();
        timings.answered.push(answered);
        let event = stream
            .next_event(Duration::from_secs(30))
            .await
            .expect("B's event arrives");
        assert_eq!(event.data, n.to_string());
        timings.arrived.push(began.elapsed());
        timings.after_answer.push(began.elapsed() - answered);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    timings.answered.sort();
    timings.arrived.sort();
    timings.after_answer.sort();
    timings
}

fn p99(sorted: &[Duration]) -> Duration {
    sorted[(sorted.len() * 99).div_ceil(100) - 1]
}

#[actix_web::test]
async fn a_tenant_s_broadcast_storm_does_not_hold_up_another_tenant_s_events() {
    let app = spawn_app().await;
    let a = app.create_tenant("storm").await;
    let b = app.create_tenant("quiet").await;
    for i in 0..STREAMS {
        drained_stream(&app, &a, &format!("a{i}")).await;
    }
    let mut b_stream = app.open_stream(&b, &b.token("b", &[]), "", None).await;
    app.wait_for_open_streams(STREAMS as u64 + 1).await;

    let idle = b_timings(&app, &b, &mut b_stream).await;

    let storming = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let batch: Value = json!({"events": (0..BATCH)
        .map(|i| json!({"to": {"broadcast": true}, "data": i}))
        .collect::<Vec<_>>()});
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|_| {
            let (api, key, batch, storming) = (
                crate::support::Api {
                    address: app.address.clone(),
                    client: reqwest::Client::new(),
                },
                a.api_key.clone(),
                batch.clone(),
                storming.clone(),
            );
            tokio::spawn(async move {
                let mut batches = 0;
                while storming.load(std::sync::atomic::Ordering::Relaxed) {
                    api.publish_ok(&key, &batch).await;
                    batches += 1;
                }
                batches
            })
        })
        .collect();
    // Let the storm build up before measuring.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = b_timings(&app, &b, &mut b_stream).await;
    storming.store(false, std::sync::atomic::Ordering::Relaxed);
    let mut batches = 0;
    for publisher in publishers {
        batches += publisher.await.unwrap();
    }

    let (idle_p99, storm_p99) = (p99(&idle.arrived), p99(&during.arrived));
    let fan_out_p99 = p99(&during.after_answer);
    eprintln!(
        "fairness: B's delivery p99 {idle_p99:?} with A idle, {storm_p99:?} with A storming \
         (its publish answered within {:?} and {:?}; delivered within {fan_out_p99:?} of the \
         answer); {batches} batches of {BATCH} broadcasts to {STREAMS} streams",
        p99(&idle.answered),
        p99(&during.answered),
    );
    assert!(batches >= PUBLISHERS as u64, "A stormed: {batches} batches");
    // Without turns per tenant B's events waited behind every group A had queued (more than
    // 30 s here); with them, B waits for a shard's turn of A's at most once its publish is
    // answered. How long the answer takes depends on how loaded the machine is (the suite
    // runs beside this test), so that bound is looser.
    assert!(
        fan_out_p99 <= Duration::from_secs(1),
        "B's events waited {fan_out_p99:?} (p99) after their publish was answered"
    );
    assert!(
        storm_p99 <= Duration::from_secs(5),
        "B's p99 {storm_p99:?} under A's storm, {idle_p99:?} without"
    );
}
