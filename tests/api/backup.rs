//! Backups of a running SQLite Herald and restoring them (`herald backup`, `herald
//! restore`): a copy taken while eight publishers write is whole and gap-free and serves
//! once restored; a restore behind what browsers saw answers their ids with `reset` and never
//! gives one of them to another event; a restore refuses a database Herald is running on.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::cli::herald;
use crate::support::process::ServerProcess;
use crate::support::{TestTenant, fresh_database_url, sqlite_only};

/// `herald <command> <file>` against the database at `url`; its JSON answer.
async fn run(url: &str, command: &'static str, file: &Path) -> Value {
    let (url, file) = (url.to_owned(), file.to_string_lossy().into_owned());
    let output = tokio::task::spawn_blocking(move || herald(&url, &[command, &file]))
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "herald {command}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Which of the two tenants (`one`, `two`) a slug is: publisher n writes to tenant n % 2.
fn n_of(slug: &str) -> usize {
    usize::from(slug == "two")
}

/// The events a node holds for tenant `n`: its four publishers' users' streams.
async fn stored(node: &ServerProcess, tenant: &TestTenant, n: usize) -> i64 {
    let mut events = 0;
    for user in (n..8).step_by(2) {
        events += node
            .full_history(&tenant.api_key, &format!("user=u{user}"))
            .await
            .len() as i64;
    }
    events
}

#[actix_web::test]
async fn a_backup_taken_while_eight_publishers_write_is_whole_and_serves_once_restored() {
    if !sqlite_only("the backup test") {
        return;
    }
    let dir = TempDir::new().unwrap();
    let url = fresh_database_url(dir.path()).await;
    let node = Arc::new(ServerProcess::start_on(&url, dir, &[]).await);
    let tenants = [
        node.create_tenant("one").await,
        node.create_tenant("two").await,
    ];
    let stop = Arc::new(AtomicBool::new(false));
    let publishers: Vec<_> = (0..8)
        .map(|n| {
            let (node, tenant, stop) = (node.clone(), tenants[n % 2].clone(), stop.clone());
            actix_web::rt::spawn(async move {
                let mut batch = 0;
                while !stop.load(Ordering::SeqCst) {
                    let events: Vec<Value> = (0..10)
                        .map(|i| json!({"to": {"user": format!("u{n}")}, "data": {"batch": batch, "i": i}}))
                        .collect();
                    node.publish_ok(&tenant.api_key, &json!({ "events": events })).await;
                    batch += 1;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let backups = TempDir::new().unwrap();
    let file = backups.path().join("copy.db");
    let report = run(&url, "backup", &file).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    for publisher in publishers {
        publisher.await.unwrap();
    }
    assert_eq!(report["file"], file.to_string_lossy().as_ref());
    assert!(report["bytes"].as_u64().unwrap() > 0);

    // Whole: each tenant's log in the copy runs from 1 to the head it printed, every event
    // of a whole batch, behind the live log (publishing went on after it).
    let copy = rusqlite::Connection::open(&file).unwrap();
    for (tenant, head) in report["tenants"].as_array().unwrap().iter().zip(&tenants) {
        assert_eq!(tenant["slug"], head.slug.as_str());
        let seqs: Vec<(i64, String)> = copy
            .prepare(
                "SELECT seq, data FROM events WHERE tenant_id = (SELECT id FROM tenants WHERE slug = ?1) ORDER BY seq",
            )
            .unwrap()
            .query_map([&head.slug], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let last = tenant["head"].as_i64().unwrap();
        assert!(last > 0 && last % 10 == 0, "whole batches only: {last}");
        assert_eq!(
            seqs.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(),
            (1..=last).collect::<Vec<_>>()
        );
        assert!(
            seqs.iter()
                .all(|(_, data)| serde_json::from_str::<Value>(data).is_ok())
        );
        assert!(
            stored(&node, head, n_of(&head.slug)).await > last,
            "the copy was taken while {} was still publishing",
            head.slug
        );
    }

    // Restorable, and it serves: a Herald on the restored file answers with the copy's
    // events, under the same keys.
    let restored_dir = TempDir::new().unwrap();
    let restored_url = fresh_database_url(restored_dir.path()).await;
    let restored = run(&restored_url, "restore", &file).await;
    let restored_node = ServerProcess::start_on(&restored_url, restored_dir, &[]).await;
    for (tenant, before) in restored["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .zip(report["tenants"].as_array().unwrap())
    {
        assert_eq!(tenant["head"], before["head"]);
        assert_ne!(
            tenant["epoch"], before["epoch"],
            "a restored log has a new epoch"
        );
    }
    let mut served = 0;
    for (n, tenant) in tenants.iter().enumerate() {
        served += stored(&restored_node, tenant, n).await;
    }
    let heads: i64 = report["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["head"].as_i64().unwrap())
        .sum();
    assert_eq!(served, heads);
}

#[actix_web::test]
async fn a_restore_behind_what_browsers_saw_resets_them_and_reissues_none_of_their_ids() {
    if !sqlite_only("the restore test") {
        return;
    }
    let dir = TempDir::new().unwrap();
    let url = fresh_database_url(dir.path()).await;
    let node = ServerProcess::start_on(&url, dir, &[]).await;
    let tenant = node.create_tenant("acme").await;
    let token = tenant.token("alice", &[]);
    let mut stream = node.open_stream(&tenant, &token, "", None).await;
    let publish = |n: usize| json!({"events": (0..n).map(|i| json!({"to": {"user": "alice"}, "data": i})).collect::<Vec<_>>()});
    node.publish_ok(&tenant.api_key, &publish(3)).await;
    let backups = TempDir::new().unwrap();
    let file = backups.path().join("copy.db");
    run(&url, "backup", &file).await;
    node.publish_ok(&tenant.api_key, &publish(3)).await;
    let seen = stream.take(6, Duration::from_secs(5)).await;
    assert_eq!(seen.len(), 6);
    let newest = seen.last().unwrap().id.clone();
    drop(stream);

    // Not while Herald runs on the file.
    let refused = {
        let (url, file) = (url.clone(), file.to_string_lossy().into_owned());
        tokio::task::spawn_blocking(move || herald(&url, &["restore", &file]))
            .await
            .unwrap()
    };
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("stop it"));

    let restore = {
        let url = url.clone();
        let file = file.clone();
        async move {
            run(&url, "restore", &file).await;
        }
    };
    let node = node.restart_after("TERM", restore).await;
    let mut resumed = node.open_stream(&tenant, &token, "", Some(&newest)).await;
    let first = resumed
        .next_event(Duration::from_secs(5))
        .await
        .expect("an event");
    assert_eq!(first.event, "reset", "{first:?}");
    let after = node.publish_ok(&tenant.api_key, &publish(4)).await;
    let seen: HashSet<String> = seen.into_iter().map(|e| e.id).collect();
    let history = node.full_history(&tenant.api_key, "user=alice").await;
    assert_eq!(history.len(), 7, "the copy's three and the four since");
    for id in history
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .chain(after.iter().map(|e| e["id"].as_str().unwrap()))
    {
        assert!(
            !seen.contains(id),
            "{id} was another event before the restore"
        );
    }
}
