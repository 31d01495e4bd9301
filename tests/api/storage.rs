//! Storage faults, each made real: a file system that fills up, writes and syncs that fail
//! (libfiu, injected into the running process), a write lock another process holds, a
//! PostgreSQL restarted, killed, cut off or out of space — and Herald itself killed with
//! SIGKILL after each. Through every one, seen from outside: each `201` is in the history
//! once, no id is handed out twice and sequence numbers are gap-free; a stream gets exactly
//! the committed events, in order; a publish during the fault answers within 10 s with a
//! `201` or a `503` storage code with `Retry-After`; `/readyz` names the fault and is 200
//! again once it is gone, without a restart.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::support::cluster::{Postgres, as_postgres, wait_for_readiness};
use crate::support::process::ServerProcess;
use crate::support::sse_client::SseStream;
use crate::support::{
    Api, TestTenant, assert_error, fresh_database_url, postgres_server, seq_of, skip_unless_ci,
    sqlite_only,
};

/// The longest a publish may take to answer while the storage fails.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);
const USER: &str = "alice";

/// What the publishes through a fault were answered.
#[derive(Default)]
struct Ledger {
    /// Every acknowledged id, in the order the answers came.
    acknowledged: Vec<String>,
    /// How many publishes were refused, by error code.
    refused: BTreeMap<String, usize>,
    /// The data of every event whose publish was refused: a refusal by a storage that broke
    /// off mid-commit (a connection lost in `COMMIT`) cannot know whether it was stored.
    refused_data: HashSet<String>,
    /// Publishes sent, which makes every event's data unique.
    sent: usize,
    /// Whether a refused publish may still have been stored: a connection to PostgreSQL lost
    /// during `COMMIT`, or a crash after a SQLite commit whose sync failed, leaves it unknown.
    unknown_outcomes: bool,
}

impl Ledger {
    /// Publishes `events` events of `bytes` bytes each to `USER` and files the answer;
    /// the refusal's code if it was refused.
    async fn publish(
        &mut self,
        api: &Api,
        tenant: &TestTenant,
        events: usize,
        bytes: usize,
    ) -> Option<String> {
        self.sent += 1;
        let data: Vec<String> = (0..events)
            .map(|i| format!("{}.{i}:{}", self.sent, "x".repeat(bytes)))
            .collect();
        let body = json!({"events": data
            .iter()
            .map(|data| json!({"to": {"user": USER}, "type": "mail", "data": data}))
            .collect::<Vec<_>>()});
        let request = api
            .client
            .post(api.url("/v1/events"))
            .bearer_auth(&tenant.api_key)
            .json(&body)
            .send();
        let response = tokio::time::timeout(ANSWER_WITHIN, request)
            .await
            .expect("a publish answers within 10 s")
            .expect("Herald answers");
        let status = response.status().as_u16();
        let retry_after = response.headers().get("retry-after").cloned();
        let answer: Value = response.json().await.expect("a JSON answer");
        match status {
            201 => {
                let ids = answer["events"].as_array().expect("receipts");
                self.acknowledged
                    .extend(ids.iter().map(|r| r["id"].as_str().unwrap().to_owned()));
                None
            }
            503 => {
                let code = answer["error"]["code"].as_str().unwrap_or_default();
                assert!(
                    ["storage_full", "storage_unavailable"].contains(&code),
                    "a storage fault is answered as one: {answer}"
                );
                let wait: u64 = retry_after
                    .and_then(|v| v.to_str().ok()?.parse().ok())
                    .expect("a 503 for the storage carries Retry-After");
                assert!(wait >= 1);
                *self.refused.entry(code.to_owned()).or_default() += 1;
                self.refused_data.extend(data);
                Some(code.to_owned())
            }
            _ => panic!("a publish during a storage fault answered {status}: {answer}"),
        }
    }

    fn refusals(&self) -> usize {
        self.refused.values().sum()
    }

    /// Every acknowledged id is in the tenant's log exactly once, no id was handed out
    /// twice, the sequence numbers run 1, 2, 3… without a gap, and nothing else is there
    /// but (where `unknown_outcomes`) events whose publish was refused. Returns the log's ids.
    async fn assert_stored(&self, api: &Api, tenant: &TestTenant) -> Vec<String> {
        let distinct: HashSet<&String> = self.acknowledged.iter().collect();
        assert_eq!(
            distinct.len(),
            self.acknowledged.len(),
            "{} acknowledged ids were handed out more than once",
            self.acknowledged.len() - distinct.len()
        );
        let history = api
            .full_history(&tenant.api_key, &format!("user={USER}"))
            .await;
        let ids: Vec<String> = history
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect();
        let stored: HashSet<&String> = ids.iter().collect();
        let lost = self
            .acknowledged
            .iter()
            .filter(|id| !stored.contains(id))
            .count();
        assert_eq!(
            lost,
            0,
            "{lost} of {} acknowledged events are gone",
            self.acknowledged.len()
        );
        assert_eq!(stored.len(), ids.len(), "an id is in the log twice");
        let extra: Vec<&Value> = history
            .iter()
            .filter(|e| !distinct.contains(&e["id"].as_str().unwrap().to_owned()))
            .collect();
        for event in &extra {
            let data = event["data"].as_str().unwrap_or_default();
            assert!(
                self.unknown_outcomes && self.refused_data.contains(data),
                "the log holds an event nobody was told of: {}",
                event["id"]
            );
        }
        let acknowledged_in_log: Vec<&String> =
            ids.iter().filter(|id| distinct.contains(id)).collect();
        assert!(
            acknowledged_in_log.into_iter().eq(self.acknowledged.iter()),
            "the log holds the acknowledged events in the order they were acknowledged"
        );
        let seqs: Vec<i64> = ids.iter().map(|id| seq_of(&json!(id))).collect();
        assert!(
            seqs.iter().zip(1..).all(|(seq, n)| *seq == n),
            "sequence numbers are gap-free"
        );
        if !extra.is_empty() {
            eprintln!("{} refused publishes turned out stored", extra.len());
        }
        ids
    }

    /// Publishes were refused, all with `code`, and `/readyz` (503) says `database` is
    /// `state`.
    async fn assert_refused_as(&self, node: &ServerProcess, code: &str, state: &str) {
        assert!(self.refusals() > 0, "the fault refused publishes");
        assert_eq!(self.refused.keys().collect::<Vec<_>>(), [code]);
        assert_eq!(
            wait_for_database(node, state).await["status"],
            "unavailable"
        );
    }

    /// Once the fault is gone: `/readyz` is 200 again by itself, `publishes` more publishes
    /// of `events` events are stored, the log and the stream hold what was acknowledged —
    /// and still do after Herald is killed with SIGKILL and started again.
    async fn after_the_fault(
        &mut self,
        node: ServerProcess,
        tenant: &TestTenant,
        stream: SseStream,
        (publishes, events, bytes): (usize, usize, usize),
    ) {
        wait_for_database(&node, "ok").await;
        for _ in 0..publishes {
            assert_eq!(self.publish(&node, tenant, events, bytes).await, None);
        }
        self.assert_streamed(&node, tenant, stream).await;
        let node = node.restart("KILL").await;
        self.assert_stored(&node, tenant).await;
    }

    /// `stream` (and, where it was cut, its resumption on `api`) brings exactly the events
    /// of the log, each once, in order.
    async fn assert_streamed(&self, api: &Api, tenant: &TestTenant, mut stream: SseStream) {
        let log = self.assert_stored(api, tenant).await;
        let token = tenant.token(USER, &[]);
        let mut got: Vec<String> = Vec::new();
        let began = Instant::now();
        while got.len() < log.len() {
            assert!(
                began.elapsed() < Duration::from_secs(30),
                "the stream brought {} of {} events",
                got.len(),
                log.len()
            );
            match stream.next_event(Duration::from_secs(2)).await {
                Some(event) => {
                    assert_ne!(event.event, "reset", "no gap: {}", event.data);
                    got.push(event.id);
                }
                None if stream.ended => {
                    let from = stream.last_event_id.clone();
                    stream = api.open_stream(tenant, &token, "", Some(&from)).await;
                }
                None => {}
            }
        }
        let first_difference = got.iter().zip(&log).position(|(a, b)| a != b);
        assert_eq!(
            first_difference, None,
            "the stream's events are the log's, in order"
        );
    }
}

/// The tenant `acme` and its user's stream, open before anything is published.
async fn tenant_and_stream(node: &ServerProcess) -> (TestTenant, SseStream) {
    let tenant = node.create_tenant("acme").await;
    let stream = node
        .open_stream(&tenant, &tenant.token(USER, &[]), "", None)
        .await;
    (tenant, stream)
}

/// Waits until `/readyz` says `database` is `state`; returns its status code.
async fn wait_for_database(node: &ServerProcess, state: &str) -> Value {
    wait_for_readiness(node, |body| body["database"] == state).await
}

/// A tmpfs of `mib` MiB the test mounts, unmounted when dropped; `None` (after saying why)
/// where this process may not mount.
struct Tmpfs {
    dir: TempDir,
}

impl Tmpfs {
    fn mount(mib: u32) -> Option<Tmpfs> {
        let dir = TempDir::new().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir.path())
            .output();
        match mounted {
            Ok(output) if output.status.success() => Some(Tmpfs { dir }),
            Ok(output) => {
                skip_unless_ci(
                    "a full-disk test",
                    &format!(
                        "cannot mount a tmpfs: {}",
                        String::from_utf8_lossy(&output.stderr)
                    ),
                );
                None
            }
            Err(error) => {
                skip_unless_ci("a full-disk test", &format!("no mount: {error}"));
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills all but `leave` bytes with a file of its own; returns its path.
    fn fill(&self, leave: u64) -> PathBuf {
        let stats = rustix::fs::statvfs(self.path()).unwrap();
        let free = stats.f_bavail * stats.f_frsize;
        let filler = self.path().join("filler");
        let file = std::fs::File::create(&filler).unwrap();
        use std::io::Write;
        let mut writer = std::io::BufWriter::new(file);
        let block = vec![1u8; 1 << 16];
        let mut left = free.saturating_sub(leave);
        while left > 0 {
            let n = left.min(block.len() as u64) as usize;
            writer.write_all(&block[..n]).unwrap();
            left -= n as u64;
        }
        writer.flush().unwrap();
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .output();
    }
}

/// Herald on a SQLite database on a 24 MiB tmpfs with 20 MiB taken: 10-event batches of
/// 4 KB events until 20 publishes have been refused; then the space comes back; then the
/// disk fills again and Herald is killed with SIGKILL and started again while it is full.
#[actix_web::test]
async fn a_full_disk_refuses_publishes_and_loses_no_acknowledged_event() {
    if !sqlite_only("the full-disk test") {
        return;
    }
    let Some(tmpfs) = Tmpfs::mount(24) else {
        return;
    };
    let url = format!("sqlite://{}/herald.db", tmpfs.path().display());
    let node = ServerProcess::start_on(&url, TempDir::new().unwrap(), &[]).await;
    let (tenant, stream) = tenant_and_stream(&node).await;
    let filler = tmpfs.fill(4 << 20);

    let mut ledger = Ledger::default();
    let mut sent = 0;
    while ledger.refusals() < 20 {
        assert!(sent < 2_000, "the disk never filled up");
        if ledger.publish(&node, &tenant, 10, 4_000).await.is_some() {
            assert_eq!(ledger.refused.keys().collect::<Vec<_>>(), ["storage_full"]);
            let ready = wait_for_database(&node, "full").await;
            assert_eq!(ready["status"], "unavailable");
        }
        sent += 1;
    }
    assert!(
        ledger.acknowledged.len() >= 100,
        "some publishes were stored first"
    );
    eprintln!(
        "full disk: {} requests, {} events acknowledged, {} refused",
        sent,
        ledger.acknowledged.len(),
        ledger.refusals()
    );
    ledger.assert_stored(&node, &tenant).await;

    // Space comes back: Herald is ready and takes publishes again, by itself.
    std::fs::remove_file(filler).unwrap();
    wait_for_database(&node, "ok").await;
    for _ in 0..5 {
        assert_eq!(ledger.publish(&node, &tenant, 10, 4_000).await, None);
    }
    ledger.assert_stored(&node, &tenant).await;

    // Full again, and Herald killed while it is: it starts on the full disk with the same
    // log, and takes publishes once there is space.
    let filler = tmpfs.fill(1 << 20);
    let refused = ledger.refusals();
    while ledger.refusals() < refused + 5 {
        ledger.publish(&node, &tenant, 10, 4_000).await;
    }
    let node = node.restart("KILL").await;
    ledger.assert_stored(&node, &tenant).await;
    std::fs::remove_file(filler).unwrap();
    wait_for_database(&node, "ok").await;
    assert_eq!(ledger.publish(&node, &tenant, 1, 10).await, None);
    ledger.assert_streamed(&node, &tenant, stream).await;
}

/// libfiu's failure points, switched on and off in the running process.
struct Fiu;

impl Fiu {
    fn available() -> bool {
        let found = Command::new("fiu-run").arg("-h").output().is_ok()
            && Path::new("/usr/lib/fiu/fiu_posix_preload.so").exists();
        if !found {
            skip_unless_ci(
                "the I/O error test",
                "libfiu (Debian's fiu-utils) is not installed",
            );
        }
        found
    }

    fn control(pid: u32, commands: &[&str]) {
        let mut command = Command::new("fiu-ctrl");
        for c in commands {
            command.args(["-c", c]);
        }
        let output = command.arg(pid.to_string()).output().unwrap();
        assert!(
            output.status.success(),
            "fiu-ctrl: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Herald under libfiu, one publisher sending single events; for 2 s every sync of a file
/// fails and half its positioned writes do; then Herald is stopped and started again, and
/// at last killed with SIGKILL while its writes fail.
#[actix_web::test]
async fn failing_writes_and_syncs_refuse_publishes_and_lose_no_acknowledged_event() {
    if !sqlite_only("the I/O error test") || !Fiu::available() {
        return;
    }
    let dir = TempDir::new().unwrap();
    let url = fresh_database_url(dir.path()).await;
    let node = ServerProcess::start_under(&["fiu-run", "-x"], &url, dir, &[]).await;
    let (tenant, stream) = tenant_and_stream(&node).await;
    let mut ledger = Ledger::default();
    for _ in 0..50 {
        assert_eq!(ledger.publish(&node, &tenant, 1, 100).await, None);
    }
    let inbox: Vec<Value> = (0..3)
        .map(|_| json!({"to": {"user": USER}, "type": "note", "data": "n", "inbox": true}))
        .collect();
    let items = node
        .publish_ok(&tenant.api_key, &json!({ "events": inbox }))
        .await;
    ledger
        .acknowledged
        .extend(items.iter().map(|r| r["id"].as_str().unwrap().to_owned()));
    const POINTS: [&str; 2] = ["posix/io/rw/pwrite*", "posix/io/sync/*"];
    let fail = |pid| {
        Fiu::control(
            pid,
            &[
                // failinfo: the errno the failed call sets (EIO).
                &format!(
                    "enable_random name={},probability=0.5,failinfo=5",
                    POINTS[0]
                ),
                &format!("enable name={},failinfo=5", POINTS[1]),
            ],
        )
    };
    fail(node.pid());
    let began = Instant::now();
    let mut during = 0;
    while began.elapsed() < Duration::from_secs(2) {
        ledger.publish(&node, &tenant, 1, 100).await;
        during += 1;
    }
    let refused_during = ledger.refusals();
    ledger
        .assert_refused_as(&node, "storage_unavailable", "unavailable")
        .await;
    // The other writers fail the same way, and change nothing: a tenant, an API key, an
    // inbox read, an idempotency record.
    let unavailable = StatusCode::SERVICE_UNAVAILABLE;
    let tenant_body = json!({"slug": "during", "allowed_origins": []});
    assert_error(
        node.post_tenant(tenant_body).await,
        unavailable,
        "storage_unavailable",
    )
    .await;
    assert_error(
        node.post_api_key("acme", None).await,
        unavailable,
        "storage_unavailable",
    )
    .await;
    let read_all = || {
        node.client
            .post(node.url(&format!("/v1/inbox/read?user={USER}")))
            .bearer_auth(&tenant.api_key)
            .json(&json!({"all": true}))
            .send()
    };
    assert_error(
        read_all().await.unwrap(),
        unavailable,
        "storage_unavailable",
    )
    .await;
    let keyed = || {
        node.client
            .post(node.url("/v1/events"))
            .bearer_auth(&tenant.api_key)
            .header("Idempotency-Key", "during-the-fault")
            .json(&json!({"to": {"user": USER}, "data": "keyed"}))
            .send()
    };
    assert_error(keyed().await.unwrap(), unavailable, "storage_unavailable").await;
    Fiu::control(
        node.pid(),
        &POINTS
            .map(|p| format!("disable name={p}"))
            .each_ref()
            .map(String::as_str),
    );

    wait_for_database(&node, "ok").await;
    assert_eq!(
        node.get_tenant("during").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(node.list_api_keys("acme").await.len(), 1);
    let listed = node
        .get_json(&format!("/v1/inbox?user={USER}"), &tenant.api_key)
        .await;
    assert_eq!(listed["unread"], 3, "the failed read-all changed nothing");
    // The key's first request was never stored: its retry is new, not a replay or a 409.
    let retried = keyed().await.unwrap();
    assert_eq!(retried.status(), StatusCode::CREATED);
    assert!(retried.headers().get("idempotent-replayed").is_none());
    let receipt: Value = retried.json().await.unwrap();
    ledger
        .acknowledged
        .push(receipt["events"][0]["id"].as_str().unwrap().to_owned());
    for _ in 0..50 {
        assert_eq!(ledger.publish(&node, &tenant, 1, 100).await, None);
    }
    eprintln!(
        "I/O errors: {during} publishes during the fault, {refused_during} refused; {} acknowledged in all",
        ledger.acknowledged.len()
    );
    ledger.assert_stored(&node, &tenant).await;
    ledger.assert_streamed(&node, &tenant, stream).await;

    // A clean restart keeps every acknowledged event (every commit after the fault was
    // durable), and so does a kill after it.
    let node = node.restart("TERM").await;
    ledger.assert_stored(&node, &tenant).await;
    assert_eq!(ledger.publish(&node, &tenant, 1, 10).await, None);
    let node = node.restart("KILL").await;
    ledger.assert_stored(&node, &tenant).await;

    // Killed while its writes fail: the new process (without the faults) has the same log.
    // A commit whose writes all landed but whose sync failed was refused, yet SQLite's
    // recovery after a crash finds it whole in the WAL: its outcome is unknown, as a
    // commit cut off on PostgreSQL is.
    ledger.unknown_outcomes = true;
    fail(node.pid());
    for _ in 0..20 {
        ledger.publish(&node, &tenant, 1, 10).await;
    }
    let node = node.restart("KILL").await;
    ledger.assert_stored(&node, &tenant).await;
    assert_eq!(ledger.publish(&node, &tenant, 1, 10).await, None);
    ledger.assert_stored(&node, &tenant).await;
}

/// Another process holds SQLite's write lock for longer than Herald's busy timeout.
#[actix_web::test]
async fn a_write_lock_held_elsewhere_refuses_publishes_until_it_is_released() {
    if !sqlite_only("the write-lock test") {
        return;
    }
    use sea_orm::{SqliteTransactionMode, TransactionOptions, TransactionTrait};
    let dir = TempDir::new().unwrap();
    let url = fresh_database_url(dir.path()).await;
    let env = [("HERALD__DATABASE__BUSY_TIMEOUT_MS", "500")];
    let node = ServerProcess::start_on(&url, dir, &env).await;
    let (tenant, stream) = tenant_and_stream(&node).await;
    let mut ledger = Ledger::default();
    for _ in 0..20 {
        assert_eq!(ledger.publish(&node, &tenant, 2, 100).await, None);
    }

    // This test process is the other one: it takes the write lock and keeps it 3 s.
    let other = sea_orm::Database::connect(url.as_str()).await.unwrap();
    let immediate = TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..Default::default()
    };
    let lock = other.begin_with_options(immediate).await.unwrap();
    let held = Instant::now();
    while held.elapsed() < Duration::from_secs(3) {
        ledger.publish(&node, &tenant, 2, 100).await;
    }
    ledger
        .assert_refused_as(&node, "storage_unavailable", "unavailable")
        .await;
    // Herald is killed while the lock is held, and started again once it is released.
    let release = async {
        lock.rollback().await.unwrap();
        other.close().await.unwrap();
    };
    let node = node.restart_after("KILL", release).await;
    ledger.assert_stored(&node, &tenant).await;

    ledger
        .after_the_fault(node, &tenant, stream, (20, 2, 100))
        .await;
}

/// Herald (as a process) on a PostgreSQL server of the test's own, its data directory
/// under `parent` if given; `None`, after saying why, where there is no PostgreSQL.
async fn on_own_postgres(parent: Option<&Path>) -> Option<(Postgres, ServerProcess, TestTenant)> {
    if postgres_server().is_none() {
        eprintln!("skipped: a PostgreSQL fault test (the suite runs on SQLite)");
        return None;
    }
    if let Some(reason) = Postgres::cannot_run() {
        skip_unless_ci("a PostgreSQL fault test", reason);
        return None;
    }
    if let Some(parent) = parent {
        as_postgres(&format!("chmod 777 {}", parent.display()), true);
    }
    let postgres = Postgres::start_in(parent.unwrap_or(&std::env::temp_dir()));
    let node = ServerProcess::start_on(&postgres.url(), TempDir::new().unwrap(), &[]).await;
    let tenant = node.create_tenant("acme").await;
    Some((postgres, node, tenant))
}

/// Publishes single events one after another until `fault` is over; returns its output.
async fn publishing_during<T>(
    ledger: &mut Ledger,
    api: &Api,
    tenant: &TestTenant,
    fault: impl Future<Output = T>,
) -> T {
    let over = AtomicBool::new(false);
    let publishing = async {
        while !over.load(Ordering::Relaxed) {
            ledger.publish(api, tenant, 1, 100).await;
        }
    };
    let faulting = async {
        let output = fault.await;
        over.store(true, Ordering::Relaxed);
        output
    };
    tokio::join!(publishing, faulting).1
}

/// Runs a blocking step (a `pg_ctl`, a `kill`) off the test's runtime, so the publisher
/// goes on meanwhile.
async fn blocking(step: impl FnOnce() + Send + 'static) {
    tokio::time::sleep(Duration::from_millis(300)).await;
    tokio::task::spawn_blocking(step).await.unwrap();
}

/// PostgreSQL restarted, Herald's connections terminated, then PostgreSQL killed with
/// SIGKILL (postmaster and backends) and crash-recovered — each while a publisher sends —
/// and at last Herald itself killed.
#[actix_web::test]
async fn postgresql_restarted_cut_off_and_killed_loses_no_acknowledged_event() {
    let Some((postgres, node, tenant)) = on_own_postgres(None).await else {
        return;
    };
    let postgres = std::sync::Arc::new(postgres);
    let stream = node
        .open_stream(&tenant, &tenant.token(USER, &[]), "", None)
        .await;
    let mut ledger = Ledger {
        unknown_outcomes: true,
        ..Ledger::default()
    };
    for _ in 0..20 {
        assert_eq!(ledger.publish(&node, &tenant, 1, 100).await, None);
    }

    let server = postgres.clone();
    publishing_during(
        &mut ledger,
        &node,
        &tenant,
        blocking(move || server.restart()),
    )
    .await;
    wait_for_database(&node, "ok").await;
    let restarted = ledger.acknowledged.len();

    let url = postgres.url();
    let terminate = async move {
        use sea_orm::ConnectionTrait;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let admin = sea_orm::Database::connect(url.as_str()).await.unwrap();
        admin
            .execute_unprepared(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
            )
            .await
            .unwrap();
        admin.close().await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    publishing_during(&mut ledger, &node, &tenant, terminate).await;
    let terminated = ledger.acknowledged.len();

    let server = postgres.clone();
    let kill = async {
        blocking(move || server.kill()).await;
        // While it is down, /readyz says so.
        let ready = wait_for_database(&node, "unavailable").await;
        assert_eq!(ready["status"], "unavailable");
    };
    publishing_during(&mut ledger, &node, &tenant, kill).await;
    // Herald is killed while PostgreSQL is down, and started again once it is back.
    let server = postgres.clone();
    let recovered = async move {
        tokio::task::spawn_blocking(move || server.up())
            .await
            .unwrap();
    };
    let node = node.restart_after("KILL", recovered).await;
    ledger.assert_stored(&node, &tenant).await;
    eprintln!(
        "PostgreSQL faults: {} acknowledged ({restarted} by the restart, {terminated} by the \
         terminations), refused {:?}",
        ledger.acknowledged.len(),
        ledger.refused
    );
    assert_eq!(
        ledger
            .refused
            .keys()
            .filter(|c| *c != "storage_unavailable")
            .count(),
        0,
        "a server that is down or cut off is unavailable, not full"
    );
    ledger
        .after_the_fault(node, &tenant, stream, (20, 1, 100))
        .await;
}

/// PostgreSQL's data directory on a tmpfs that fills up, then has space again.
#[actix_web::test]
async fn postgresql_out_of_space_refuses_publishes_and_loses_no_acknowledged_event() {
    let Some(tmpfs) = Tmpfs::mount(160) else {
        return;
    };
    let Some((postgres, node, tenant)) = on_own_postgres(Some(tmpfs.path())).await else {
        return;
    };
    let stream = node
        .open_stream(&tenant, &tenant.token(USER, &[]), "", None)
        .await;
    let filler = tmpfs.fill(4 << 20);
    let mut ledger = Ledger {
        unknown_outcomes: true,
        ..Ledger::default()
    };
    let mut sent = 0;
    while ledger.refusals() < 10 {
        assert!(sent < 3_000, "the disk never filled up");
        ledger.publish(&node, &tenant, 10, 4_000).await;
        sent += 1;
    }
    let ready = wait_for_readiness(&node, |body| body["status"] == "unavailable").await;
    assert!(
        ["full", "unavailable"].contains(&ready["database"].as_str().unwrap()),
        "{ready}"
    );
    eprintln!(
        "PostgreSQL disk full: {sent} requests, {} events acknowledged, refused {:?}",
        ledger.acknowledged.len(),
        ledger.refused
    );

    // Herald is killed while the disk is full; space comes back (and PostgreSQL, if it
    // stopped at a full WAL, is started again) before the new one starts.
    let space_back = async {
        std::fs::remove_file(filler).unwrap();
        if !postgres.is_running() {
            postgres.up();
        }
    };
    let node = node.restart_after("KILL", space_back).await;
    ledger.assert_stored(&node, &tenant).await;
    ledger
        .after_the_fault(node, &tenant, stream, (5, 10, 4_000))
        .await;
}

/// The log commits on a connection of its own beside the pool the rest of Herald writes
/// through: sixteen publishers at once — inbox items, fallbacks, idempotency keys — while
/// receipts are written, then SIGKILL mid-commit. After a restart every acknowledged event
/// is in its user's history once with its data, the tenant's seqs are gap-free, and each
/// acknowledged key answers its retry with the same ids.
#[actix_web::test]
async fn sixteen_publishers_killed_mid_commit_lose_no_acknowledged_event() {
    let node = ServerProcess::start(&[]).await;
    let tenant = node.create_tenant("acme").await;
    let acknowledged = std::sync::Mutex::new(Vec::<(String, Value, Value)>::new());
    let stop = AtomicBool::new(false);
    let publishers = (0..16).map(|p| {
        let (node, key, acknowledged, stop) = (&node, &tenant.api_key, &acknowledged, &stop);
        async move {
            for n in 0.. {
                let mut body = json!({"to": {"user": format!("u{}", n % 5)}, "type": "t",
                    "data": {"p": p, "n": n}, "inbox": n % 2 == 0});
                if n % 3 == 0 {
                    body["fallback"] = json!({"after_secs": 3600});
                }
                let idempotency = format!("p{p}-{n}");
                let Ok(response) = node.publish_keyed(key, &idempotency, &body).await else {
                    return;
                };
                if response.status() != StatusCode::CREATED {
                    return;
                }
                let Ok(answer) = response.json::<Value>().await else {
                    return;
                };
                let id = answer["events"][0]["id"].clone();
                acknowledged.lock().unwrap().push((idempotency, body, id));
                if stop.load(Ordering::Relaxed) {
                    return;
                }
            }
        }
    });
    let receipts = async {
        // Another writer of the process, beside the log's: the receipts of u0's events.
        while !stop.load(Ordering::Relaxed) {
            let last = acknowledged
                .lock()
                .unwrap()
                .last()
                .map(|(_, _, id)| id.clone());
            if let Some(id) = last {
                let token = tenant.token("u0", &[]);
                let _ = node
                    .client
                    .post(node.url("/t/acme/receipts"))
                    .bearer_auth(token)
                    .json(&json!({"delivered": id, "seen": [id]}))
                    .send()
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let killer = async {
        let began = Instant::now();
        while acknowledged.lock().unwrap().len() < 400 {
            if began.elapsed() > Duration::from_secs(60) {
                node.signal("KILL");
                stop.store(true, Ordering::Relaxed);
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        node.signal("KILL");
        stop.store(true, Ordering::Relaxed);
    };
    tokio::join!(futures_util::future::join_all(publishers), receipts, killer);
    let acknowledged = acknowledged.into_inner().unwrap();
    assert!(
        acknowledged.len() >= 400,
        "only {} acknowledged",
        acknowledged.len()
    );
    let node = node.restart("KILL").await;

    let mut history = Vec::new();
    for user in 0..5 {
        history.extend(
            node.full_history(&tenant.api_key, &format!("user=u{user}"))
                .await,
        );
    }
    let mut seqs: Vec<i64> = history.iter().map(|e| seq_of(&e["id"])).collect();
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (1..=seqs.len() as i64).collect::<Vec<_>>(),
        "seqs gap-free, each once"
    );
    for (_, body, id) in &acknowledged {
        let stored: Vec<&Value> = history.iter().filter(|e| &e["id"] == id).collect();
        assert_eq!(stored.len(), 1, "{id} stored once");
        assert_eq!(stored[0]["data"], body["data"]);
    }
    for (idempotency, body, id) in acknowledged.iter().step_by(37) {
        let retry = node
            .publish_keyed(&tenant.api_key, idempotency, body)
            .await
            .unwrap();
        assert_eq!(retry.status(), StatusCode::CREATED);
        let answer: Value = retry.json().await.unwrap();
        assert_eq!(&answer["events"][0]["id"], id);
    }
}
