//! A rolling upgrade on one PostgreSQL + Redis: a node of the version before the latest
//! schema change (built by `.ci/run` from that commit, `HERALD_TEST_PREVIOUS`) and a node
//! of this tree serve side by side — the new one migrates ahead, the old one keeps serving
//! (and may start again) — and when the old one stops, its stream resumes on the new one.
//! Every event arrives once, in order, whichever node published it.

use std::time::Duration;

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::cli::{Build, herald_command_of};
use crate::support::cluster::{Redis, wait_until_ready};
use crate::support::process::ServerProcess;
use crate::support::sse_client::SseEvent;
use crate::support::{fresh_database_url, postgres_server, skip_unless_ci};

const WAIT: Duration = Duration::from_secs(15);

/// The version before the latest schema change: its binary and its configuration files.
fn previous_build() -> Option<Build> {
    match std::env::var("HERALD_TEST_PREVIOUS") {
        Ok(dir) if !dir.is_empty() => Some(Build {
            binary: format!("{dir}/herald"),
            config_dir: format!("{dir}/config"),
        }),
        _ => {
            skip_unless_ci(
                "the rolling-upgrade test",
                "HERALD_TEST_PREVIOUS is not set (.ci/run builds the version before the latest \
                 schema change)",
            );
            None
        }
    }
}

/// The `n` each event carries, in the order they came.
fn numbers(events: &[SseEvent]) -> Vec<u64> {
    events
        .iter()
        .map(|event| {
            let data: Value = serde_json::from_str(&event.data).unwrap();
            data["n"].as_u64().unwrap()
        })
        .collect()
}

async fn publish_numbered(node: &ServerProcess, api_key: &str, n: u64) {
    node.publish_ok(
        api_key,
        &json!({"to": {"user": "u1"}, "type": "numbered", "data": {"n": n}}),
    )
    .await;
}

#[actix_web::test]
async fn a_node_of_the_version_before_and_one_of_this_tree_serve_side_by_side_until_the_old_one_stops()
 {
    if postgres_server().is_none() {
        eprintln!("skipped: a rolling upgrade needs PostgreSQL (HERALD_TEST_POSTGRES is not set)");
        return;
    }
    let Some(previous) = previous_build() else {
        return;
    };
    if !Redis::can_run("the rolling-upgrade test") {
        return;
    }
    let redis = Redis::start();
    let scratch = TempDir::new().unwrap();
    let database = fresh_database_url(scratch.path()).await;
    let redis_url = redis.url();
    let env = [
        ("HERALD__REDIS__URL", redis_url.as_str()),
        ("HERALD__REDIS__CATCH_UP_SECS", "1"),
    ];

    // The deployment before the upgrade: a node of the old version on its own schema.
    let mut old =
        ServerProcess::start_build(&previous, &[], &database, TempDir::new().unwrap(), &env).await;
    wait_until_ready(&old, "ready").await;
    let tenant = old.create_tenant("acme").await;
    let token = tenant.token("u1", &[]);

    // The first node of this tree migrates ahead of it.
    let new = ServerProcess::start_on(&database, TempDir::new().unwrap(), &env).await;
    wait_until_ready(&new, "ready").await;
    // The old version sees a schema it does not wholly know, which its floor allows: it
    // runs on it, and would start again on it.
    let again = herald_command_of(&previous, &[], &database)
        .arg("migrate")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{said}");
    assert!(said.contains("runs on it unchanged"), "{said}");

    let mut on_old = old.open_stream(&tenant, &token, "", None).await;
    let mut on_new = new.open_stream(&tenant, &token, "", None).await;
    const SIDE_BY_SIDE: u64 = 100;
    for n in 0..SIDE_BY_SIDE {
        let node = if n % 2 == 0 { &old } else { &new };
        publish_numbered(node, &tenant.api_key, n).await;
    }
    let expected: Vec<u64> = (0..SIDE_BY_SIDE).collect();
    let seen_on_new = on_new.take(SIDE_BY_SIDE as usize, WAIT).await;
    assert_eq!(numbers(&seen_on_new), expected, "the new node's stream");
    let seen_on_old = on_old.take(SIDE_BY_SIDE as usize, WAIT).await;
    assert_eq!(numbers(&seen_on_old), expected, "the old node's stream");
    assert_eq!(
        seen_on_old.iter().map(|e| &e.id).collect::<Vec<_>>(),
        seen_on_new.iter().map(|e| &e.id).collect::<Vec<_>>(),
        "one log: the same ids on both nodes"
    );

    // The old node is replaced: stopped, its stream resumes on the new node.
    old.signal("TERM");
    assert!(old.wait_for_exit(WAIT).is_some(), "the old node stops");
    assert!(on_old.wait_for_end(WAIT).await, "its stream ends");
    const AFTER: u64 = 50;
    for n in SIDE_BY_SIDE..SIDE_BY_SIDE + AFTER {
        publish_numbered(&new, &tenant.api_key, n).await;
    }
    let last_seen = seen_on_old.last().unwrap().id.clone();
    let mut resumed = new.open_stream(&tenant, &token, "", Some(&last_seen)).await;
    let rest: Vec<u64> = (SIDE_BY_SIDE..SIDE_BY_SIDE + AFTER).collect();
    assert_eq!(
        numbers(&resumed.take(AFTER as usize, WAIT).await),
        rest,
        "the resumed stream: each event once, in order"
    );
    assert_eq!(numbers(&on_new.take(AFTER as usize, WAIT).await), rest);
    assert!(
        resumed.take(1, Duration::from_millis(500)).await.is_empty(),
        "nothing twice"
    );
}
