//! Several Herald processes on one PostgreSQL database and one Redis server: any node takes
//! any publish and any stream, sequences stay contiguous with every node publishing, and
//! neither a Redis restart nor a node killed mid-publish costs a stream an event; a node
//! rides out a PostgreSQL restart (on a server of that test's own, which it stops).
//!
//! They run in the suite's PostgreSQL pass (`HERALD_TEST_POSTGRES`) and skip, saying so, in
//! the SQLite one. They also need `redis-server`: without it they say so and pass — except
//! under CI, which installs it, where that is a failure. Each test starts a Redis of its
//! own, so it can kill and restart it.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::support::cluster::{Postgres, cluster, wait_for_readiness, wait_until_ready};
use crate::support::process::ServerProcess;
use crate::support::sse_client::SseEvent;
use crate::support::{assert_error, seq_of, skip_unless_ci};

fn broadcast(data: &str) -> Value {
    json!({"to": {"broadcast": true}, "data": data})
}

fn data_of(events: &[SseEvent]) -> Vec<String> {
    events.iter().map(|event| event.data.clone()).collect()
}

/// Asserts ids strictly increasing: in order, none twice.
fn assert_in_order(events: &[SseEvent]) {
    let seqs: Vec<i64> = events.iter().map(|e| seq_of(&json!(e.id))).collect();
    assert!(
        seqs.windows(2).all(|pair| pair[0] < pair[1]),
        "out of order or repeated: {seqs:?}"
    );
}

#[actix_web::test]
async fn events_published_on_any_node_reach_streams_on_every_node() {
    let Some(cluster) = cluster(3).await else {
        return;
    };
    let mut streams = Vec::new();
    for node in 0..3 {
        streams.push(cluster.stream(node, None).await);
    }
    let to_user = |data: &str| json!({"to": {"user": "u1"}, "data": data});
    cluster.publish(0, &to_user("from a")).await;
    cluster.publish(1, &to_user("from b")).await;
    cluster.publish(2, &broadcast("from c")).await;
    for stream in &mut streams {
        let events = stream.take(3, Duration::from_secs(10)).await;
        assert_eq!(data_of(&events), ["from a", "from b", "from c"]);
        assert_in_order(&events);
    }
    // The migrations ran once however many nodes started together.
    let history = cluster.nodes[1]
        .full_history(&cluster.tenant.api_key, "user=u1")
        .await;
    assert_eq!(history.len(), 3);
}

/// Revoking a signing key on one node ends the streams it opened on every node.
#[actix_web::test]
async fn a_signing_key_revoked_on_one_node_ends_its_streams_on_every_node() {
    let Some(cluster) = cluster(2).await else {
        return;
    };
    let mut streams = vec![cluster.stream(0, None).await, cluster.stream(1, None).await];
    let tenant = &cluster.tenant;
    let response = cluster.nodes[0]
        .revoke_key(&tenant.slug, "signing-keys", &tenant.kid)
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    for stream in &mut streams {
        let last = stream
            .next_event(Duration::from_secs(10))
            .await
            .expect("a session-expired event");
        assert_eq!(last.event, "session-expired");
        assert!(stream.wait_for_end(Duration::from_secs(10)).await);
    }
    // Node 2 had the key in memory from its stream's opening; the notice dropped it.
    let response = cluster.nodes[1]
        .stream_request(&tenant.slug, &cluster.token, "", None)
        .await;
    assert_error(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
}

/// API keys are kept in memory: a key revoked on one node is refused on the others as soon
/// as the notice arrives, and a node that cannot hear notices (Redis away) keeps none.
#[actix_web::test]
async fn an_api_key_revoked_on_one_node_is_refused_on_every_node_at_once() {
    let Some(mut cluster) = cluster(2).await else {
        return;
    };
    let event = json!({"to": {"user": "u1"}, "type": "t", "data": 1});
    let (node0, node1) = (&cluster.nodes[0], &cluster.nodes[1]);
    let key = node0.create_api_key("acme").await;
    let secret = key["key"].as_str().unwrap().to_owned();
    node1.publish_ok(&secret, &event).await;
    let response = node0
        .revoke_key("acme", "api-keys", key["id"].as_str().unwrap())
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let revoked = Instant::now();
    loop {
        let response = node1.publish(&secret, &event).await;
        if response.status() == StatusCode::UNAUTHORIZED {
            break;
        }
        assert_eq!(response.status(), StatusCode::CREATED);
        assert!(
            revoked.elapsed() < Duration::from_secs(1),
            "node 2 still takes the revoked key"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Without Redis the notice cannot travel: node 2 keeps no key in memory then.
    let key = node0.create_api_key("acme").await;
    let secret = key["key"].as_str().unwrap().to_owned();
    node1.publish_ok(&secret, &event).await;
    cluster.redis.kill();
    let (node0, node1) = (&cluster.nodes[0], &cluster.nodes[1]);
    wait_for_readiness(node1, |body| body["redis"] == "unreachable").await;
    node1.publish_ok(&secret, &event).await;
    let response = node0
        .revoke_key("acme", "api-keys", key["id"].as_str().unwrap())
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let response = node1.publish(&secret, &event).await;
    assert_error(response, StatusCode::UNAUTHORIZED, "invalid_api_key").await;
}

/// A user's unread count follows reads made on any node, on every node's streams.
#[actix_web::test]
async fn an_inbox_read_on_one_node_moves_the_count_on_every_node() {
    let Some(cluster) = cluster(2).await else {
        return;
    };
    let mut streams = vec![cluster.stream(0, None).await, cluster.stream(1, None).await];
    for stream in &mut streams {
        assert!(stream.wait_for_inbox(0, Duration::from_secs(10)).await);
    }
    let item = json!({"to": {"user": "u1"}, "type": "mail", "data": 1, "inbox": true});
    cluster.publish(0, &item).await;
    cluster.publish(1, &item).await;
    for stream in &mut streams {
        assert!(stream.wait_for_inbox(2, Duration::from_secs(10)).await);
    }
    let mark = |node: usize, path: &str, body: Value| {
        cluster.nodes[node]
            .client
            .post(cluster.nodes[node].url(&format!("/v1/inbox/{path}?user=u1")))
            .bearer_auth(&cluster.tenant.api_key)
            .json(&body)
            .send()
    };
    let answer: Value = mark(1, "read", json!({"all": true}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["unread"], 0);
    for stream in &mut streams {
        assert!(stream.wait_for_inbox(0, Duration::from_secs(10)).await);
    }
    let listed = cluster.nodes[0]
        .get_json("/v1/inbox?user=u1", &cluster.tenant.api_key)
        .await;
    let newest = listed["items"][0]["id"].clone();
    let answer: Value = mark(0, "unread", json!({"ids": [newest]}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["unread"], 1);
    for stream in &mut streams {
        assert!(stream.wait_for_inbox(1, Duration::from_secs(10)).await);
        assert_eq!(stream.inbox_counts.last(), Some(&1));
    }
}

#[actix_web::test]
async fn a_stream_cut_on_one_node_resumes_on_another_without_gap_or_repeat() {
    let Some(cluster) = cluster(2).await else {
        return;
    };
    let mut on_a = cluster.stream(0, None).await;
    for n in 1..=3 {
        cluster.publish(0, &broadcast(&format!("e{n}"))).await;
    }
    let seen = on_a.take(3, Duration::from_secs(10)).await;
    assert_eq!(data_of(&seen), ["e1", "e2", "e3"]);
    drop(on_a);
    cluster.publish(0, &broadcast("e4")).await;
    cluster.publish(1, &broadcast("e5")).await;
    let last_id = &seen[2].id;
    let mut on_b = cluster.stream(1, Some(last_id)).await;
    let missed = on_b.take(2, Duration::from_secs(10)).await;
    assert_eq!(data_of(&missed), ["e4", "e5"]);
    cluster.publish(0, &broadcast("e6")).await;
    let live = on_b.take(1, Duration::from_secs(10)).await;
    assert_eq!(data_of(&live), ["e6"]);
    assert_eq!(on_b.next_event(Duration::from_millis(500)).await, None);
    assert_in_order(&[seen, missed, live].concat());
}

#[actix_web::test]
async fn concurrent_publishers_on_both_nodes_give_one_contiguous_sequence() {
    let Some(cluster) = cluster(2).await else {
        return;
    };
    let mut streams = [cluster.stream(0, None).await, cluster.stream(1, None).await];
    const PUBLISHERS: usize = 8;
    const EACH: usize = 25;
    let cluster = &cluster;
    let publishers = (0..PUBLISHERS).map(|p| async move {
        for n in 0..EACH {
            cluster
                .publish(p % 2, &broadcast(&format!("p{p}-{n}")))
                .await;
        }
    });
    join_all(publishers).await;
    let total = PUBLISHERS * EACH;
    let contiguous: Vec<i64> = (1..=total as i64).collect();
    let stored = cluster.nodes[0]
        .full_history(&cluster.tenant.api_key, "user=u1")
        .await;
    let seqs: Vec<i64> = stored.iter().map(|e| seq_of(&e["id"])).collect();
    assert_eq!(seqs, contiguous);
    for stream in &mut streams {
        let events = stream.take(total, Duration::from_secs(20)).await;
        let seqs: Vec<i64> = events.iter().map(|e| seq_of(&json!(e.id))).collect();
        assert_eq!(seqs, contiguous);
    }
}

#[actix_web::test]
async fn a_redis_restart_while_publishing_costs_no_stream_an_event() {
    let Some(mut cluster) = cluster(2).await else {
        return;
    };
    let mut streams = [cluster.stream(0, None).await, cluster.stream(1, None).await];
    const EVENTS: usize = 60;
    for n in 0..EVENTS {
        if n == 20 {
            cluster.redis.kill();
            for node in &cluster.nodes {
                // Degraded, not out of service: publishing goes on (below).
                let body = wait_until_ready(node, "degraded").await;
                assert_eq!(body["redis"], "unreachable");
                assert_eq!(body["database"], "ok");
            }
        }
        if n == 40 {
            cluster.redis.restart();
            for node in &cluster.nodes {
                wait_until_ready(node, "ready").await;
            }
        }
        cluster.publish(n % 2, &broadcast(&format!("e{n}"))).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let expected: Vec<String> = (0..EVENTS).map(|n| format!("e{n}")).collect();
    for stream in &mut streams {
        let events = stream.take(EVENTS, Duration::from_secs(20)).await;
        assert_eq!(data_of(&events), expected);
        assert_in_order(&events);
        assert_eq!(stream.next_event(Duration::from_millis(300)).await, None);
    }
}

#[actix_web::test]
async fn a_node_killed_mid_publish_loses_no_acknowledged_event() {
    let Some(cluster) = cluster(2).await else {
        return;
    };
    let mut on_a = cluster.stream(0, None).await;
    // Publishers keep going on node A until it is gone; the ids it acknowledged are kept.
    let acknowledged = std::sync::Mutex::new(BTreeSet::new());
    let publishers = (0..4).map(|p| {
        let (node, key, acknowledged) = (&cluster.nodes[0], &cluster.tenant.api_key, &acknowledged);
        async move {
            for n in 0.. {
                let Ok(response) = node
                    .client
                    .post(node.url("/v1/events"))
                    .bearer_auth(key)
                    .json(&broadcast(&format!("p{p}-{n}")))
                    .send()
                    .await
                else {
                    return;
                };
                if response.status() != 201 {
                    return;
                }
                let Ok(body) = response.json::<Value>().await else {
                    return;
                };
                let id = body["events"][0]["id"].as_str().unwrap().to_owned();
                acknowledged.lock().unwrap().insert(id);
            }
        }
    });
    let killer = async {
        while acknowledged.lock().unwrap().len() < 40 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        cluster.nodes[0].signal("KILL");
    };
    tokio::join!(join_all(publishers), killer);
    let acknowledged = acknowledged.into_inner().unwrap();
    assert!(acknowledged.len() >= 40);

    // What node A sent before it died, then the rest from node B, resuming where A stopped.
    let mut received = Vec::new();
    while let Some(event) = on_a.next_event(Duration::from_secs(2)).await {
        received.push(event);
    }
    let mut on_b = cluster.stream(1, Some(&on_a.last_event_id)).await;
    let began = Instant::now();
    while !acknowledged
        .iter()
        .all(|id| received.iter().any(|event| &event.id == id))
    {
        assert!(
            began.elapsed() < Duration::from_secs(15),
            "acknowledged events never arrived"
        );
        if let Some(event) = on_b.next_event(Duration::from_secs(1)).await {
            received.push(event);
        }
    }
    assert_in_order(&received);
}

#[actix_web::test]
async fn a_node_rides_out_a_postgresql_restart() {
    let Some(cluster) = cluster(1).await else {
        return;
    };
    if let Some(reason) = Postgres::cannot_run() {
        skip_unless_ci("the PostgreSQL restart test", reason);
        return;
    }
    // A node of its own on a PostgreSQL of the test's own, beside the cluster's Redis.
    let postgres = Postgres::start();
    let redis_url = cluster.redis.url();
    let env = [("HERALD__REDIS__URL", redis_url.as_str())];
    let node = ServerProcess::start_on(&postgres.url(), TempDir::new().unwrap(), &env).await;
    let tenant = node.create_tenant("acme").await;
    let mut stream = node
        .open_stream(&tenant, &tenant.token("u1", &[]), "", None)
        .await;
    node.publish_ok(&tenant.api_key, &broadcast("before")).await;

    postgres.down();
    let body = wait_until_ready(&node, "unavailable").await;
    assert_eq!(body["database"], "unavailable");
    // Publishing while it is down is refused as unavailable, not as Herald's bug.
    let refused = node.publish(&tenant.api_key, &broadcast("never")).await;
    assert_error(
        refused,
        StatusCode::SERVICE_UNAVAILABLE,
        "storage_unavailable",
    )
    .await;
    postgres.up();
    wait_until_ready(&node, "ready").await;

    node.publish_ok(&tenant.api_key, &broadcast("after")).await;
    let events = stream.take(2, Duration::from_secs(10)).await;
    assert_eq!(data_of(&events), ["before", "after"]);
    assert_in_order(&events);
}

/// Publishes to `node` as fast as it answers until `until`; counts the 201s and 429s.
async fn hammer(node: &ServerProcess, api_key: &str, until: Instant) -> (u64, u64) {
    let (mut admitted, mut refused) = (0, 0);
    let one = json!({"to": {"user": "u"}});
    while Instant::now() < until {
        match node.publish(api_key, &one).await.status() {
            StatusCode::CREATED => admitted += 1,
            StatusCode::TOO_MANY_REQUESTS => refused += 1,
            other => panic!("publish answered {other}"),
        }
    }
    (admitted, refused)
}

/// The rate-limit test's tenant limit: events a second, and as many at once.
const RATE: u64 = 40;

/// Every node of `nodes` publishing as fast as it answers for `seconds`: the 201s of each
/// node with its 429s, their sum, and what a bucket of `RATE` lets through in the time it
/// took.
async fn hammer_all(
    nodes: &[ServerProcess],
    api_key: &str,
    seconds: u64,
) -> (Vec<(u64, u64)>, u64, f64) {
    let began = Instant::now();
    let until = began + Duration::from_secs(seconds);
    let each = join_all(nodes.iter().map(|node| hammer(node, api_key, until))).await;
    let admitted = each.iter().map(|(a, _)| a).sum();
    let rate = RATE as f64;
    (each, admitted, rate + rate * began.elapsed().as_secs_f64())
}

#[actix_web::test]
async fn a_tenant_s_rate_limit_is_the_deployment_s_and_survives_redis_going_away() {
    let Some(mut cluster) = cluster(2).await else {
        return;
    };
    let key = cluster.tenant.api_key.clone();
    let response = cluster.nodes[0]
        .patch_tenant(
            "acme",
            json!({"limits": {"publish_per_sec": RATE, "publish_burst": RATE}}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);

    // Both nodes publishing as fast as they are answered: together within the one limit.
    let (both, admitted, expected) = hammer_all(&cluster.nodes, &key, 3).await;
    assert!(
        (admitted as f64 - expected).abs() <= expected * 0.1,
        "{admitted} admitted across both nodes, {expected:.0} allowed ({both:?})"
    );
    assert!(both.iter().all(|(_, refused)| *refused > 0));

    // Redis gone: each node goes on with its share (half), so the deployment still keeps
    // to about the limit, and says so.
    cluster.redis.kill();
    for node in &cluster.nodes {
        let body = wait_for_readiness(node, |body| body["rate_limits"] == "node share").await;
        assert_eq!(body["status"], "degraded");
    }
    let (both, admitted, expected) = hammer_all(&cluster.nodes, &key, 3).await;
    assert!(admitted > 0, "publishing goes on without Redis");
    assert!(
        (admitted as f64) <= expected * 1.1,
        "{admitted} admitted without Redis, {expected:.0} allowed ({both:?})"
    );

    cluster.redis.restart();
    for node in &cluster.nodes {
        wait_for_readiness(node, |body| {
            body["rate_limits"] == "shared" && body["status"] == "ready"
        })
        .await;
    }
    let (both, admitted, expected) = hammer_all(&cluster.nodes, &key, 2).await;
    assert!(
        (admitted as f64 - expected).abs() <= expected * 0.1,
        "{admitted} admitted once Redis is back, {expected:.0} allowed ({both:?})"
    );
}

#[actix_web::test]
async fn stream_caps_and_usage_are_the_deployment_s() {
    let Some(cluster) = cluster(2).await else {
        return;
    };
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let t = &cluster.tenant;
    let response = a
        .patch_tenant(
            "acme",
            json!({"limits": {"max_streams": 3, "max_streams_per_user": 2}}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let (u1, u2, u3) = (t.token("u1", &[]), t.token("u2", &[]), t.token("u3", &[]));

    let first = a.open_stream(t, &u1, "", None).await;
    let _second = b.open_stream(t, &u1, "", None).await;
    for node in [a, b] {
        let third = node.stream_request(&t.slug, &u1, "", None).await;
        assert_error(third, StatusCode::TOO_MANY_REQUESTS, "too_many_streams").await;
    }
    let _other = b.open_stream(t, &u2, "", None).await;
    let over = a.stream_request(&t.slug, &u3, "", None).await;
    assert_error(over, StatusCode::TOO_MANY_REQUESTS, "too_many_streams").await;

    // Usage, asked of either node, is the deployment's.
    a.publish_ok(&t.api_key, &broadcast("one")).await;
    b.publish_ok(&t.api_key, &broadcast("two")).await;
    for node in [a, b] {
        let response = node
            .admin(reqwest::Method::GET, "/admin/tenants/acme/usage", None)
            .await;
        let usage: Value = response.json().await.unwrap();
        assert_eq!(usage["streams_open"], 3, "{usage}");
        assert_eq!(usage["published"]["today"], 2, "{usage}");
        assert_eq!(usage["events_stored"], 2, "{usage}");
    }

    // A stream that ends gives its place back, across the deployment.
    drop(first);
    let began = Instant::now();
    loop {
        let response = b.stream_request(&t.slug, &u3, "", None).await;
        if response.status() == StatusCode::OK {
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "the place never came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
