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
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::helpers::{
    TestTenant, assert_error, fresh_database_url, postgres_server, seq_of, skip_unless_ci,
};
use crate::process::ServerProcess;
use crate::sse_client::{SseEvent, SseStream};

/// A port nothing listens on now, for a server the test starts itself.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// A `redis-server` of the test's own on a free port, without persistence.
struct Redis {
    child: Child,
    port: u16,
    _dir: TempDir,
}

impl Redis {
    fn start() -> Redis {
        let port = free_port();
        let dir = TempDir::new().unwrap();
        let child = Redis::spawn(port, &dir);
        Redis {
            child,
            port,
            _dir: dir,
        }
    }

    fn spawn(port: u16, dir: &TempDir) -> Child {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let began = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                began.elapsed() < Duration::from_secs(10),
                "redis-server never listened"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: no goodbye to the subscribed nodes.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn restart(&mut self) {
        self.child = Redis::spawn(self.port, &self._dir);
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A PostgreSQL 15 server of the test's own (Debian's binaries, run as `postgres`), so the
/// test can stop and start it.
struct Postgres {
    dir: TempDir,
    port: u16,
}

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

impl Postgres {
    fn start() -> Postgres {
        let port = free_port();
        let dir = TempDir::new().unwrap();
        let path = dir.path().display().to_string();
        as_postgres(&format!("chown postgres {path}"), true);
        as_postgres(
            &format!("{PG_BIN}/initdb -D {path}/data -A trust -U postgres"),
            false,
        );
        let postgres = Postgres { dir, port };
        postgres.up();
        postgres
    }

    fn up(&self) {
        let path = self.dir.path().display();
        as_postgres(
            &format!(
                "{PG_BIN}/pg_ctl -D {path}/data -l {path}/log -w start -o '-p {} -k {path} -c listen_addresses=127.0.0.1'",
                self.port
            ),
            false,
        );
    }

    fn down(&self) {
        let path = self.dir.path().display();
        as_postgres(
            &format!("{PG_BIN}/pg_ctl -D {path}/data -m fast -w stop"),
            false,
        );
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let path = self.dir.path().display();
        let _ = Command::new("su")
            .args(["postgres", "-c"])
            .arg(format!("{PG_BIN}/pg_ctl -D {path}/data -m immediate stop"))
            .output();
    }
}

/// Runs `command` as the `postgres` user (initdb refuses root), or as root where `as_root`.
fn as_postgres(command: &str, as_root: bool) {
    let output = if as_root {
        Command::new("sh").args(["-c", command]).output()
    } else {
        Command::new("su")
            .args(["postgres", "-c", command])
            .output()
    }
    .unwrap();
    assert!(
        output.status.success(),
        "{command}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

struct Cluster {
    nodes: Vec<ServerProcess>,
    redis: Redis,
    /// `acme`, made through node 0, and a token for its user `u1`.
    tenant: TestTenant,
    token: String,
}

impl Cluster {
    /// `u1`'s stream on node `node`, from `last_event_id` if given.
    async fn stream(&self, node: usize, last_event_id: Option<&str>) -> SseStream {
        self.nodes[node]
            .open_stream(&self.tenant, &self.token, "", last_event_id)
            .await
    }

    async fn publish(&self, node: usize, body: &Value) {
        self.nodes[node]
            .publish_ok(&self.tenant.api_key, body)
            .await;
    }
}

/// `count` nodes started at once (so they migrate the fresh database together) on one
/// PostgreSQL database and one Redis, with one tenant; `None`, after saying why, where
/// either is missing.
async fn cluster(count: usize) -> Option<Cluster> {
    if postgres_server().is_none() {
        // Nodes share a PostgreSQL database: these run in the suite's PostgreSQL pass.
        eprintln!("skipped: several nodes need PostgreSQL (HERALD_TEST_POSTGRES is not set)");
        return None;
    }
    let missing = if Command::new("redis-server")
        .arg("--version")
        .output()
        .is_err()
    {
        Some("redis-server is not installed")
    } else {
        None
    };
    if let Some(reason) = missing {
        skip_unless_ci("multi-node tests", reason);
        return None;
    }
    let redis = Redis::start();
    let scratch = TempDir::new().unwrap();
    let database = fresh_database_url(scratch.path()).await;
    let redis_url = redis.url();
    let env = [
        ("HERALD__REDIS__URL", redis_url.as_str()),
        ("HERALD__REDIS__CATCH_UP_SECS", "1"),
    ];
    let nodes = join_all(
        (0..count).map(|_| ServerProcess::start_on(&database, TempDir::new().unwrap(), &env)),
    )
    .await;
    for node in &nodes {
        wait_until_ready(node, true).await;
    }
    let tenant = nodes[0].create_tenant("acme").await;
    let token = tenant.token("u1", &[]);
    Some(Cluster {
        nodes,
        redis,
        tenant,
        token,
    })
}

/// Waits until `/readyz` answers 200 (`ready`) or 503 (`!ready`).
async fn wait_until_ready(node: &ServerProcess, ready: bool) -> Value {
    let began = Instant::now();
    loop {
        let response = node.client.get(node.url("/readyz")).send().await.unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        if (status == 200) == ready {
            return body;
        }
        assert!(
            began.elapsed() < Duration::from_secs(15),
            "readyz still {status}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

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
                let body = wait_until_ready(node, false).await;
                assert_eq!(body["redis"], "unreachable");
                assert_eq!(body["database"], "ok");
            }
        }
        if n == 40 {
            cluster.redis.restart();
            for node in &cluster.nodes {
                wait_until_ready(node, true).await;
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
    let missing = if !std::path::Path::new(PG_BIN).join("initdb").exists() {
        Some("no PostgreSQL 15 binaries in /usr/lib/postgresql/15/bin")
    } else if Command::new("id")
        .arg("postgres")
        .output()
        .map_or(true, |o| !o.status.success())
    {
        Some("no postgres user to run a private server as")
    } else {
        None
    };
    if let Some(reason) = missing {
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
    let body = wait_until_ready(&node, false).await;
    assert_eq!(body["database"], "unreachable");
    // Publishing while it is down is refused as unavailable, not as Herald's bug.
    let refused = node.publish(&tenant.api_key, &broadcast("never")).await;
    assert_error(
        refused,
        StatusCode::SERVICE_UNAVAILABLE,
        "database_unavailable",
    )
    .await;
    postgres.up();
    wait_until_ready(&node, true).await;

    node.publish_ok(&tenant.api_key, &broadcast("after")).await;
    let events = stream.take(2, Duration::from_secs(10)).await;
    assert_eq!(data_of(&events), ["before", "after"]);
    assert_in_order(&events);
}
