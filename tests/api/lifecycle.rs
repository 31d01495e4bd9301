//! Connections coming and going: slow consumers, leaks, shutdown.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::process::ServerProcess;
use crate::support::sse_client::SseStream;
use crate::support::{TestTenant, spawn_app_with};

const WAIT: Duration = Duration::from_secs(10);

/// A client that stops reading fills its queue and is dropped; the others keep receiving;
/// the dropped one resumes from the log and misses nothing.
#[actix_web::test]
async fn a_stuck_client_is_dropped_without_holding_up_the_others() {
    let app = spawn_app_with(|s| s.stream.queue_capacity = 16).await;
    let t = app.create_tenant("slow").await;
    let mut stuck = app.open_stream(&t, &t.token("stuck", &[]), "", None).await;
    let mut healthy = app
        .open_stream(&t, &t.token("healthy", &[]), "", None)
        .await;
    stuck.next_event(Duration::from_millis(100)).await;
    let start = stuck.last_event_id.clone();
    app.wait_for_open_streams(2).await;

    // 600 broadcasts of 32 KiB: far more than the socket buffers hold.
    const EVENTS: usize = 600;
    let payload = "x".repeat(32 * 1024);
    // The healthy client reads as fast as it can; the publisher keeps within 4 groups of
    // it, so a machine busy with other tests cannot make it the slow one.
    let read = std::cell::Cell::new(0);
    let publishing = async {
        // Small batches: many commit groups, and the stuck queue holds only 16 of them.
        for batch in 0..(EVENTS / 10) {
            while batch * 10 > read.get() + 40 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let events: Vec<Value> = (0..10)
                .map(|i| json!({"to": {"broadcast": true}, "type": "bulk", "data": format!("{}:{payload}", batch * 10 + i)}))
                .collect();
            app.publish_ok(&t.api_key, &json!({"events": events})).await;
        }
    };
    let reading = async {
        let mut seen = Vec::new();
        while seen.len() < EVENTS {
            let Some(event) = healthy.next_event(WAIT).await else {
                break;
            };
            seen.push(
                event
                    .data
                    .split_once(':')
                    .unwrap()
                    .0
                    .parse::<usize>()
                    .unwrap(),
            );
            read.set(seen.len());
        }
        seen
    };
    let ((), seen) = tokio::join!(publishing, reading);
    assert_eq!(
        seen,
        (0..EVENTS).collect::<Vec<_>>(),
        "the healthy client got everything, in order"
    );
    assert!(
        app.state.hub.stats().slow_closed.load(Ordering::SeqCst) >= 1,
        "the stuck client was dropped"
    );
    app.wait_for_open_streams(1).await;

    // The stuck client wakes up: it reads what reached it before the drop, sees the stream
    // end, and resumes from its last id.
    assert!(stuck.wait_for_end(WAIT).await, "the dropped stream ends");
    let mut got: Vec<usize> = stuck
        .drain_parsed()
        .iter()
        .map(|e| e.data.split_once(':').unwrap().0.parse().unwrap())
        .collect();
    assert!(got.len() < EVENTS, "it was dropped before the end");
    let resume_from = if stuck.last_event_id.is_empty() {
        start
    } else {
        stuck.last_event_id.clone()
    };
    let mut resumed = app
        .open_stream(&t, &t.token("stuck", &[]), "", Some(&resume_from))
        .await;
    while got.len() < EVENTS {
        let Some(event) = resumed.next_event(WAIT).await else {
            break;
        };
        got.push(event.data.split_once(':').unwrap().0.parse().unwrap());
    }
    assert_eq!(
        got,
        (0..EVENTS).collect::<Vec<_>>(),
        "after resuming: everything, once, in order"
    );
}

/// 1,000 streams, 50 at a time, opened and dropped; then waits until none is open.
async fn churn(app: &ServerProcess, t: &TestTenant, tokens: &[String]) {
    for round in 0..20 {
        let opened = join_all((0..50).map(|i| {
            let token = &tokens[(round + i) % tokens.len()];
            async move {
                let response = app.stream_request(&t.slug, token, "topics=t", None).await;
                assert_eq!(response.status(), 200);
                let mut stream = SseStream::new(response);
                stream.next_event(Duration::from_millis(1)).await;
                stream
            }
        }))
        .await;
        drop(opened);
    }
    wait_for_metric(app, "herald_streams_open", 0.0).await;
}

#[actix_web::test]
async fn a_thousand_connections_come_and_go_without_a_trace() {
    // Its own process, so its memory is its own.
    let server = ServerProcess::start(&[]).await;
    let t = server.create_tenant("churn").await;
    let tokens: Vec<String> = (0..20).map(|u| t.token(&format!("u{u}"), &["t"])).collect();
    churn(&server, &t, &tokens).await;
    let after_first = server.resident_kib();
    churn(&server, &t, &tokens).await;
    churn(&server, &t, &tokens).await;
    let after_third = server.resident_kib();
    assert_eq!(server.metric("herald_streams_open").await, 0.0);
    // Two thousand more connections may not leave memory behind (allocator noise aside).
    assert!(
        after_third < after_first + 2 * 1024,
        "RSS grew from {after_first} KiB to {after_third} KiB over 2000 connections"
    );
    // And the hub still delivers.
    let mut stream = server.open_stream(&t, &tokens[0], "topics=t", None).await;
    wait_for_metric(&server, "herald_streams_open", 1.0).await;
    server
        .publish_ok(
            &t.api_key,
            &json!({"to": {"topic": "t"}, "data": "still here"}),
        )
        .await;
    assert_eq!(stream.next_event(WAIT).await.unwrap().data, "still here");
}

/// The most connections the server's database pool holds (config/default.toml).
const DATABASE_POOL: usize = 8;

/// 20,000 streams through Herald's own path, 500 at a time, each opened and hung up: the
/// server is left with the sockets and pollers and (allocator noise aside) the memory it had. A
/// leak of as little as a stream's shard entry (~380 B, 7.6 MB over 20,000) would break
/// the 6 MiB bound.
#[actix_web::test]
async fn twenty_thousand_streams_on_heralds_path_leave_no_trace() {
    let server = ServerProcess::start(&[("HERALD__STREAM__HERALD_PATH", "true")]).await;
    let t = server.create_tenant("leak").await;
    let tokens: Vec<String> = (0..100).map(|u| t.token(&format!("u{u}"), &[])).collect();
    let address = server.address.trim_start_matches("http://").to_owned();
    let round = |round: usize| {
        let (address, tokens) = (&address, &tokens);
        async move {
            join_all((0..500).map(|i| async move {
                let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
                let request = format!(
                    "GET /t/leak/stream HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {}\r\n\r\n",
                    tokens[(round * 500 + i) % tokens.len()]
                );
                socket.write_all(request.as_bytes()).await.unwrap();
                // Up to the position frame: the stream is open and live.
                let mut received = Vec::new();
                let mut buf = [0; 1024];
                while !received.ends_with(b"\n\n") || !received.windows(4).any(|w| w == b"id: ") {
                    let n = tokio::time::timeout(WAIT, socket.read(&mut buf))
                        .await
                        .expect("the stream opens")
                        .unwrap();
                    assert!(n > 0, "{}", String::from_utf8_lossy(&received));
                    received.extend_from_slice(&buf[..n]);
                }
            }))
            .await;
        }
    };
    // Rounds first, back to back as below, so the allocator's and the pools' first growth
    // (up to the most streams ever in flight at once) is not counted.
    for r in 0..4 {
        round(r).await;
    }
    wait_for_metric(&server, "herald_streams_open", 0.0).await;
    let (files, resident) = (server.open_descriptors(), server.resident_kib());
    for r in 4..44 {
        round(r).await;
    }
    wait_for_metric(&server, "herald_streams_open", 0.0).await;
    assert_eq!(
        server
            .metric("herald_streams_opened_total{path=\"herald\"}")
            .await,
        22_000.0
    );
    // On PostgreSQL the pool's connections are sockets too: it may open more, up to its size
    // (`database.max_connections`, 8), as the load asks. A stream's leak would be thousands.
    let after = server.open_descriptors();
    assert!(
        after <= files + DATABASE_POOL,
        "open sockets and pollers: {files} before, {after} after"
    );
    let grown = server.resident_kib().saturating_sub(resident);
    eprintln!(
        "20,000 streams: {files} open sockets and pollers before, {after} after; RSS {resident} KiB, +{grown} KiB"
    );
    assert!(
        grown < 6 * 1024,
        "RSS grew by {grown} KiB over 20,000 streams"
    );
}

async fn wait_for_metric(server: &ServerProcess, name: &str, value: f64) {
    for _ in 0..200 {
        if server.metric(name).await == value {
            return;
        }
        actix_web::rt::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{name} never became {value}");
}

/// SIGTERM: open streams end at once and the process exits cleanly, well before the
/// graceful-shutdown timeout a hanging stream would run into.
#[actix_web::test]
async fn sigterm_ends_streams_and_exits_promptly() {
    let mut server = ServerProcess::start(&[("HERALD__SERVER__SHUTDOWN_TIMEOUT_SECS", "30")]).await;
    let t = server.create_tenant("term").await;
    let mut stream = server.open_stream(&t, &t.token("u", &[]), "", None).await;
    wait_for_metric(&server, "herald_streams_open", 1.0).await;
    let began = Instant::now();
    server.signal("TERM");
    assert!(
        stream.wait_for_end(Duration::from_secs(5)).await,
        "the stream outlived SIGTERM"
    );
    let status = server
        .wait_for_exit(Duration::from_secs(10))
        .expect("herald exited");
    assert!(status.success(), "exit status {status}");
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "shutdown took {:?}",
        began.elapsed()
    );
}

#[actix_web::test]
async fn shutting_down_ends_open_streams_at_once() {
    let app = spawn_app_with(|s| s.server.shutdown_timeout_secs = 30).await;
    let t = app.create_tenant("bye").await;
    let mut streams = Vec::new();
    for user in ["a", "b", "c"] {
        streams.push(app.open_stream(&t, &t.token(user, &[]), "", None).await);
    }
    app.wait_for_open_streams(3).await;
    let began = Instant::now();
    let stopping = app.stopper.clone();
    let stop = actix_web::rt::spawn(async move { stopping.stop().await });
    for stream in &mut streams {
        assert!(
            stream.wait_for_end(Duration::from_secs(3)).await,
            "a stream outlived the shutdown"
        );
    }
    stop.await.unwrap();
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "shutdown took {:?}",
        began.elapsed()
    );
}
