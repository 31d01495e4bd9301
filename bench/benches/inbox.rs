//! The inbox's costs on a real database: `cargo bench -p herald-bench --bench inbox` (SQLite
//! in a temporary directory; with `HERALD_BENCH_POSTGRES=postgres://…`, that database too).
//!
//! - the unread count of a user with 100,000 inbox items — 99,000 their own, 1,000
//!   broadcasts, interleaved; the older half read with "read all", then 500 newer items
//!   marked read one by one and 200 older ones marked unread — timed 2,000 times: p50, p99;
//! - "read all" for a user with 1,000 items and for the one with 100,000: the same work
//!   whatever the number of items;
//! - publishing one event to 1,000 users (`to.users`), with and without `inbox`: 40 of each,
//!   alternating, median.
//!
//! Figures and what they say are in BENCHMARKS.md.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use herald::config::{Environment, Settings};
use herald::domain::event::{EventType, NewEvent, Target};
use herald::domain::log::LoggedEvent;
use herald::domain::names::UserId;
use herald::domain::tenant::NewTenant;
use herald::store::Store;
use herald::store::inbox::Marking;
use herald::store::log::{AppendOutcome, CommitListener, EventLog};

struct NoListener;

impl CommitListener for NoListener {
    fn committed(&self, _: &[&LoggedEvent]) {}
}

fn user(name: &str) -> UserId {
    UserId::parse(name).expect("a valid user id")
}

fn event(target: Target, inbox: bool, n: usize) -> NewEvent {
    NewEvent {
        target,
        event_type: EventType::parse("mail").expect("a valid type"),
        data: format!(r#"{{"subject":"message {n}"}}"#),
        inbox,
        fallback: None,
        item: n,
    }
}

fn percentile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort();
    samples[((samples.len() - 1) as f64 * q).round() as usize]
}

async fn append(log: &EventLog, tenant_id: i64, events: Vec<NewEvent>) -> Vec<i64> {
    match log
        .append(tenant_id, events, None, &tracing::Span::none())
        .await
        .expect("the append commits")
    {
        AppendOutcome::Committed(events) => events.iter().map(|e| e.id.seq).collect(),
        other => panic!("not committed: {other:?}"),
    }
}

async fn run(database_url: &str, label: &str) {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
    let mut settings =
        Settings::load(Environment::Local, &config, None).expect("the configuration loads");
    settings.database.url = database_url.to_owned();
    let store = Store::open(&settings.database).await.expect("the store");
    store.migrate().await.expect("migrations");
    let slug = format!("inbox-bench-{}", std::process::id());
    let tenant = store
        .create_tenant(
            &NewTenant {
                slug,
                name: None,
                allowed_origins: Vec::new(),
                retention: Default::default(),
                limits: None,
            },
            &Default::default(),
        )
        .await
        .expect("the tenant")
        .expect("a new slug");
    let log = EventLog::start(store.clone(), Arc::new(NoListener)).expect("the log");
    let (big, small) = (user("big"), user("small"));

    // 100,000 items for `big`, in requests of 1,000: every 100th a broadcast.
    let mut seqs = Vec::new();
    for chunk in 0..100 {
        let events = (0..1000)
            .map(|i| {
                let n = chunk * 1000 + i;
                let target = match n % 100 {
                    99 => Target::Broadcast,
                    _ => Target::User(big.clone()),
                };
                event(target, true, n)
            })
            .collect();
        seqs.extend(append(&log, tenant.id, events).await);
        if chunk == 49 {
            store
                .inbox_mark(tenant.id, &big, Marking::AllRead)
                .await
                .expect("read all");
        }
    }
    let newer = seqs[60_000..60_500].to_vec();
    let older = seqs[10_000..10_200].to_vec();
    store
        .inbox_mark(tenant.id, &big, Marking::Read(newer))
        .await
        .expect("marked read");
    store
        .inbox_mark(tenant.id, &big, Marking::Unread(older))
        .await
        .expect("marked unread");
    append(
        &log,
        tenant.id,
        (0..1000)
            .map(|n| event(Target::User(small.clone()), true, n))
            .collect(),
    )
    .await;

    let unread = store.inbox_unread(tenant.id, &big).await.expect("a count");
    // 50,000 after the cursor (500 of them broadcasts) less 500 read, plus 200 unread.
    assert_eq!(unread.count, 50_000 - 500 + 200, "the count is exact");
    let mut samples = Vec::new();
    for _ in 0..2000 {
        let began = Instant::now();
        store.inbox_unread(tenant.id, &big).await.expect("a count");
        samples.push(began.elapsed());
    }
    println!(
        "{label}: unread count, 100,000 items: p50 {:?}, p99 {:?}",
        percentile(&mut samples, 0.5),
        percentile(&mut samples, 0.99)
    );

    for (who, items) in [(&small, "1,000"), (&big, "100,000")] {
        let mut samples = Vec::new();
        for _ in 0..20 {
            let began = Instant::now();
            store
                .inbox_mark(tenant.id, who, Marking::AllRead)
                .await
                .expect("read all");
            samples.push(began.elapsed());
        }
        println!(
            "{label}: read all, {items} items: median {:?}",
            percentile(&mut samples, 0.5)
        );
    }

    let users: Vec<Target> = (0..1000)
        .map(|n| Target::User(user(&format!("u{n}"))))
        .collect();
    let (mut plain, mut inbox) = (Vec::new(), Vec::new());
    for round in 0..80 {
        let with_inbox = round % 2 == 1;
        let events = users
            .iter()
            .enumerate()
            .map(|(n, target)| event(target.clone(), with_inbox, n))
            .collect();
        let began = Instant::now();
        append(&log, tenant.id, events).await;
        match with_inbox {
            true => inbox.push(began.elapsed()),
            false => plain.push(began.elapsed()),
        }
    }
    let (plain, inbox) = (percentile(&mut plain, 0.5), percentile(&mut inbox, 0.5));
    println!(
        "{label}: one event to 1,000 users: {plain:?} plain, {inbox:?} with inbox ({:.2}×)",
        inbox.as_secs_f64() / plain.as_secs_f64()
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let sqlite = format!("sqlite://{}/inbox.db", dir.path().display());
    runtime.block_on(run(&sqlite, "SQLite"));
    if let Ok(url) = std::env::var("HERALD_BENCH_POSTGRES") {
        runtime.block_on(run(&url, "PostgreSQL"));
    }
}
