//! Which path serves a stream, and how Herald's own path meets bad input — over raw
//! sockets, since an HTTP client would hide what goes over the wire.
//!
//! A fresh plain-HTTP connection whose first request opens a stream is served by Herald's
//! own handler; a keep-alive connection that began with another request by actix-web. Bad
//! heads get the same answer as with the own path switched off (`stream.herald_path`), and
//! nothing a peer does leaves a stream registered behind it.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{TestApp, TestTenant, spawn_app_with};

/// Herald with its own stream path on (`true`) or off.
async fn herald(own_path: bool) -> TestApp {
    spawn_app_with(|s| s.stream.herald_path = own_path).await
}

async fn connect(app: &TestApp) -> TcpStream {
    let address = app.address.trim_start_matches("http://");
    TcpStream::connect(address).await.unwrap()
}

/// Whatever arrives within `wait` (or until the peer closes).
async fn read_for(socket: &mut TcpStream, wait: Duration) -> String {
    let mut received = Vec::new();
    let mut buf = [0; 4096];
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, socket.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        received.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&received).into_owned()
}

/// Reads until `needle` has arrived; fails after a few seconds.
async fn read_until(socket: &mut TcpStream, needle: &str) -> String {
    let mut received = String::new();
    let mut buf = [0; 4096];
    while !received.contains(needle) {
        let read = tokio::time::timeout(Duration::from_secs(5), socket.read(&mut buf)).await;
        match read {
            Ok(Ok(n)) if n > 0 => received.push_str(&String::from_utf8_lossy(&buf[..n])),
            _ => panic!("`{needle}` never came; got {received:?}"),
        }
    }
    received
}

fn stream_request(tenant: &TestTenant, token: &str, extra: &str) -> String {
    format!(
        "GET /t/{}/stream HTTP/1.1\r\nHost: herald\r\nAuthorization: Bearer {token}\r\n{extra}\r\n",
        tenant.slug
    )
}

/// A fresh connection carrying `alice`'s stream request, read up to its `retry:`.
async fn open_raw(app: &TestApp, tenant: &TestTenant, extra: &str) -> TcpStream {
    let mut socket = connect(app).await;
    let request = stream_request(tenant, &tenant.token("alice", &[]), "") + extra;
    socket.write_all(request.as_bytes()).await.unwrap();
    read_until(&mut socket, "retry:").await;
    socket
}

fn opened(app: &TestApp) -> (u64, u64) {
    let opened = &app.state.hub.stats().opened;
    (
        opened.herald.load(Ordering::SeqCst),
        opened.actix.load(Ordering::SeqCst),
    )
}

#[actix_web::test]
async fn a_fresh_connection_streams_on_heralds_path_a_reused_one_on_actix() {
    let app = herald(true).await;
    let t = app.create_tenant("paths").await;
    let token = t.token("alice", &[]);

    let mut fresh = connect(&app).await;
    fresh
        .write_all(stream_request(&t, &token, "").as_bytes())
        .await
        .unwrap();
    let head = read_until(&mut fresh, "retry:").await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    assert_eq!(opened(&app), (1, 0));

    let mut reused = connect(&app).await;
    reused
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: herald\r\n\r\n")
        .await
        .unwrap();
    read_until(&mut reused, "\"ok\"").await;
    reused
        .write_all(stream_request(&t, &token, "").as_bytes())
        .await
        .unwrap();
    read_until(&mut reused, "retry:").await;
    assert_eq!(opened(&app), (1, 1));

    // Both streams get the same event.
    app.wait_for_open_streams(2).await;
    app.publish_ok(
        &t.api_key,
        &json!({"to": {"user": "alice"}, "data": "both"}),
    )
    .await;
    read_until(&mut fresh, "data: both").await;
    read_until(&mut reused, "data: both").await;
}

#[actix_web::test]
async fn refusals_on_heralds_path_are_actix_webs_answers() {
    let own = herald(true).await;
    let actix = herald(false).await;
    let mut answers = Vec::new();
    for app in [&own, &actix] {
        let t = app.create_tenant("refusals").await;
        app.patch_tenant(
            "refusals",
            json!({"allowed_origins": ["https://app.example.com"]}),
        )
        .await;
        let cases = [
            stream_request(&t, "not-a-jwt", ""),
            stream_request(
                &t,
                &t.token("u", &[]),
                "Origin: https://evil.example.com\r\n",
            ),
            stream_request(&t, &t.token("u", &["a"]), "").replace("/stream", "/stream?topics=b"),
            stream_request(&t, &t.token("u", &[]), "").replace("/t/refusals/", "/t/nobody/"),
            format!(
                "GET /t/refusals/stream HTTP/1.1\r\nX-Big: {}\r\n\r\n",
                "x".repeat(200_000)
            ),
        ];
        let mut app_answers = Vec::new();
        for case in cases {
            let mut socket = connect(app).await;
            let _ = socket.write_all(case.as_bytes()).await;
            let answer = read_for(&mut socket, Duration::from_millis(700)).await;
            let status = answer.lines().next().unwrap_or("").to_owned();
            let body = answer.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
            app_answers.push((status, body));
        }
        answers.push(app_answers);
    }
    let statuses: Vec<&str> = answers[0].iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        statuses[..4],
        [
            "HTTP/1.1 401 Unauthorized",
            "HTTP/1.1 403 Forbidden",
            "HTTP/1.1 403 Forbidden",
            "HTTP/1.1 404 Not Found"
        ]
    );
    assert_eq!(
        answers[0], answers[1],
        "Herald's path answers as actix-web does"
    );
    assert_eq!(opened(&own), (0, 0));
}

#[actix_web::test]
async fn pipelined_requests_after_the_stream_request_do_not_disturb_it() {
    let app = herald(true).await;
    let t = app.create_tenant("pipelined").await;
    let pipelined = "GET /healthz HTTP/1.1\r\nHost: herald\r\n\r\nPOST /v1/events HTTP/1.1\r\n\r\n";
    let mut socket = open_raw(&app, &t, pipelined).await;
    app.wait_for_open_streams(1).await;
    app.publish_ok(
        &t.api_key,
        &json!({"to": {"user": "alice"}, "data": "still here"}),
    )
    .await;
    let received = read_until(&mut socket, "data: still here").await;
    assert!(
        !received.contains("\"ok\""),
        "a pipelined request was answered"
    );
    assert_eq!(opened(&app), (1, 0));
}

#[actix_web::test]
async fn peers_that_leave_leave_nothing_behind() {
    let app = herald(true).await;
    let t = app.create_tenant("leavers").await;
    // Half-closed after the head: the stream ends at once.
    let mut half = open_raw(&app, &t, "").await;
    app.wait_for_open_streams(1).await;
    half.shutdown().await.unwrap();
    app.wait_for_open_streams(0).await;
    // Many connections that send nothing, and a head that never completes.
    let mut silent = Vec::new();
    for _ in 0..200 {
        silent.push(connect(&app).await);
    }
    let mut partial = connect(&app).await;
    partial
        .write_all(b"GET /t/leavers/stream HTTP/1.1\r\nHost: her")
        .await
        .unwrap();
    drop(silent);
    drop(partial);
    // Herald still serves streams on its own path, and none is left registered.
    let socket = open_raw(&app, &t, "").await;
    app.wait_for_open_streams(1).await;
    drop(socket);
    app.wait_for_open_streams(0).await;
}

#[actix_web::test]
async fn a_head_that_trickles_in_past_the_wait_is_actix_webs_to_time_out() {
    let app = herald(true).await;
    let t = app.create_tenant("slow").await;
    let mut socket = connect(&app).await;
    let request = stream_request(&t, &t.token("alice", &[]), "");
    let (start, rest) = request.split_at(20);
    socket.write_all(start.as_bytes()).await.unwrap();
    // Past the router's wait, the connection is actix-web's, whose request timeout ends it.
    let answer = read_for(&mut socket, Duration::from_secs(9)).await;
    let _ = socket.write_all(rest.as_bytes()).await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer:?}"
    );
    assert_eq!(opened(&app), (0, 0));
}

/// Heads Herald's path does not take — HTTP/1.0, a malformed request line, credentials that
/// are not text — get exactly the answer they get with the path switched off; a header
/// that is not text elsewhere in the head does not stop a stream.
#[actix_web::test]
async fn heads_that_are_not_a_clean_http_1_1_stream_request_get_the_same_answer_either_way() {
    let own = herald(true).await;
    let actix = herald(false).await;
    let mut answers = Vec::new();
    for app in [&own, &actix] {
        let t = app.create_tenant("odd").await;
        let token = t.token("u", &[]);
        let with_bytes = |extra: &[u8]| {
            let mut request = format!(
                "GET /t/odd/stream HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {token}\r\n"
            )
            .into_bytes();
            request.extend_from_slice(extra);
            request.extend_from_slice(b"\r\n");
            request
        };
        let cases: Vec<Vec<u8>> = vec![
            format!("GET /t/odd/stream HTTP/1.0\r\nAuthorization: Bearer {token}\r\n\r\n")
                .into_bytes(),
            format!("GET /t/odd/stream HTTP/1.1 now\r\nAuthorization: Bearer {token}\r\n\r\n")
                .into_bytes(),
            b"GET /t/odd/stream HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer \xff\xfe\r\n\r\n"
                .to_vec(),
            with_bytes(b"X-Junk: caf\xe9\r\n"),
        ];
        let mut app_answers = Vec::new();
        for case in cases {
            let mut socket = connect(app).await;
            socket.write_all(&case).await.unwrap();
            let answer = read_for(&mut socket, Duration::from_millis(500)).await;
            let status = answer.lines().next().unwrap_or("").to_owned();
            // A refusal's body; for a stream (chunked on actix-web's path only), that it
            // opened.
            let body = match status.contains(" 200 ") {
                true => answer.contains("\nretry: ").to_string(),
                false => answer.split("\r\n\r\n").nth(1).unwrap_or("").to_owned(),
            };
            app_answers.push((status, body));
        }
        answers.push(app_answers);
    }
    let statuses: Vec<&str> = answers[0].iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        statuses,
        [
            "HTTP/1.0 200 OK",
            "HTTP/1.1 400 Bad Request",
            "HTTP/1.1 401 Unauthorized",
            "HTTP/1.1 200 OK"
        ]
    );
    assert_eq!(answers[0], answers[1], "either path, the same answer");
    // HTTP/1.0 is actix-web's to serve; the last head is a clean stream request.
    assert_eq!(opened(&own), (1, 1));
}

/// A peer on Herald's path that never reads: its backlog passes the limit, the shard closes
/// it as slow, and a healthy stream on the same shard misses nothing meanwhile.
#[actix_web::test]
async fn a_peer_that_never_reads_is_closed_as_slow_and_holds_up_no_one() {
    let app = spawn_app_with(|s| {
        s.stream.herald_path = true;
        s.stream.queue_capacity = 8;
    })
    .await;
    let t = app.create_tenant("stuck").await;
    let _stuck = open_raw(&app, &t, "").await;
    let mut healthy = app.open_stream(&t, &t.token("alice", &[]), "", None).await;
    app.wait_for_open_streams(2).await;
    let payload = "x".repeat(32 * 1024);
    let mut published = 0;
    while app.state.hub.stats().slow_closed.load(Ordering::SeqCst) == 0 {
        assert!(published < 2_000, "the stuck peer was never closed");
        let events: Vec<_> = (0..10)
            .map(|i| json!({"to": {"user": "alice"}, "data": format!("{}:{payload}", published + i)}))
            .collect();
        app.publish_ok(&t.api_key, &json!({ "events": events }))
            .await;
        published += 10;
        // The healthy stream keeps up as it goes.
        for expected in published - 10..published {
            let event = healthy.next_event(Duration::from_secs(5)).await.unwrap();
            assert_eq!(event.data.split_once(':').unwrap().0, expected.to_string());
        }
    }
    app.wait_for_open_streams(1).await;
    assert_eq!(opened(&app).0, 1, "the stuck peer was on Herald's path");
}

/// The answer head of a stream on Herald's path names its request id, as actix-web's does.
#[actix_web::test]
async fn a_stream_answer_names_its_request_id() {
    let app = herald(true).await;
    let t = app.create_tenant("ids").await;
    let mut socket = connect(&app).await;
    let request = stream_request(&t, &t.token("alice", &[]), "");
    socket.write_all(request.as_bytes()).await.unwrap();
    let head = read_until(&mut socket, "\r\n\r\n").await;
    let id = head
        .lines()
        .find_map(|line| line.strip_prefix("x-request-id: "))
        .expect("an x-request-id header");
    assert!(uuid::Uuid::parse_str(id.trim()).is_ok(), "{id}");
}

/// A `Last-Event-ID` that is not visible ASCII cannot be resumed from: like any unusable id,
/// it gets `reset` (`malformed_id`), on either path.
#[actix_web::test]
async fn a_last_event_id_that_is_not_text_gets_a_reset() {
    for own_path in [true, false] {
        let app = herald(own_path).await;
        let t = app.create_tenant("bytes").await;
        let mut request = stream_request(&t, &t.token("alice", &[]), "").into_bytes();
        request.truncate(request.len() - 2);
        request.extend_from_slice(b"Last-Event-ID: caf\xe9-1\r\n\r\n");
        let mut socket = connect(&app).await;
        socket.write_all(&request).await.unwrap();
        let received = read_until(&mut socket, "malformed_id").await;
        assert!(received.contains("event: reset"), "{received}");
    }
}

/// The session cookie rides along with any request a page of another site makes to Herald
/// (an `<img>`, a link): only an EventSource (`Sec-Fetch-Mode: cors`) may open a stream with
/// it; a client that sends no Sec-Fetch-Mode is not a browser that does. Either path.
#[actix_web::test]
async fn only_an_event_source_may_open_a_stream_with_the_session_cookie() {
    for own_path in [true, false] {
        let app = herald(own_path).await;
        let t = app.create_tenant("sites").await;
        let token = t.token("alice", &[]);
        let with_cookie = |extra: &str| {
            format!(
                "GET /t/sites/stream HTTP/1.1\r\nHost: herald\r\nCookie: herald_session={token}\r\n{extra}\r\n"
            )
        };
        let mut answers = Vec::new();
        for extra in [
            "Sec-Fetch-Mode: no-cors\r\nSec-Fetch-Dest: image\r\n",
            "Sec-Fetch-Mode: navigate\r\n",
            "Sec-Fetch-Mode: cors\r\nSec-Fetch-Dest: empty\r\n",
            "",
        ] {
            let mut socket = connect(&app).await;
            socket
                .write_all(with_cookie(extra).as_bytes())
                .await
                .unwrap();
            let answer = read_for(&mut socket, Duration::from_millis(500)).await;
            answers.push(answer.lines().next().unwrap_or("").to_owned());
        }
        assert_eq!(
            answers,
            [
                "HTTP/1.1 403 Forbidden",
                "HTTP/1.1 403 Forbidden",
                "HTTP/1.1 200 OK",
                "HTTP/1.1 200 OK"
            ],
            "own path: {own_path}"
        );
        // Bearer is not a cookie: no browser attaches it on its own.
        let mut socket = connect(&app).await;
        let request = stream_request(&t, &token, "Sec-Fetch-Mode: no-cors\r\n");
        socket.write_all(request.as_bytes()).await.unwrap();
        read_until(&mut socket, "retry:").await;
    }
}
