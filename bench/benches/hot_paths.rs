//! Micro-benchmarks of Herald's hot paths, with criterion: `cargo bench -p herald-bench`.
//!
//! - `sse_encode`: one stored event into its SSE frame (done once per event, shared by
//!   every connection it goes to);
//! - `hub`: a committed group handed to the hub until every targeted connection's queue
//!   has it — one user's event among 10,000 connections, and a broadcast to all 10,000;
//! - `jwt_verify`: a stream's user token checked as the stream route does it, signing-key
//!   lookup in SQLite included (HS256 and ES256);
//! - `log_append`: events appended to the SQLite log and committed (fsync included), one at
//!   a time, 100 in one request, and 16 requests at once (one group commit).
//!
//! The figures and what they say are in BENCHMARKS.md.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use herald::auth::jwt::{self, UserClaims};
use herald::config::{Environment, Settings};
use herald::domain::event::{EventId, EventType, NewEvent, Target};
use herald::domain::keys::SigningKeySpec;
use herald::domain::log::LoggedEvent;
use herald::domain::names::{TopicList, UserId};
use herald::domain::tenant::NewTenant;
use herald::hub::{Hub, StreamCaps};
use herald::store::Store;
use herald::store::log::{CommitListener, EventLog};

const CONNECTIONS: usize = 10_000;

fn settings(dir: &Path) -> Settings {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
    let mut settings =
        Settings::load(Environment::Local, &config, None).expect("the configuration loads");
    settings.database.url = format!("sqlite://{}/bench.db", dir.display());
    settings
}

fn spec(alg: &str, public_key_pem: Option<String>) -> SigningKeySpec {
    SigningKeySpec::parse(Some(alg), public_key_pem).expect("a valid signing key")
}

fn user_id(name: &str) -> UserId {
    UserId::parse(name).expect("a valid user id")
}

fn event(target: Target, data: &str) -> LoggedEvent {
    LoggedEvent {
        tenant_id: 1,
        id: EventId {
            epoch: "01936b2e4f7a7c3d9a5e2b1c0d4f6a8b".into(),
            seq: 1_234_567,
        },
        target,
        event_type: "mail".into(),
        data: data.into(),
        created_at: 1_763_700_000_000,
        inbox: false,
        trace: None,
    }
}

fn sse_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("sse_encode");
    let json = event(
        Target::User(user_id("u42")),
        r#"{"subject":"Quarterly report","from":"alice@example.com","unread":3}"#,
    );
    group.bench_function("json object", |b| b.iter(|| herald::sse::encode(&json)));
    let text = event(
        Target::User(user_id("u42")),
        &serde_json::to_string(&"line one\nline two\r\nline three").expect("a string"),
    );
    group.bench_function("three-line string", |b| {
        b.iter(|| herald::sse::encode(&text))
    });
    group.finish();
}

fn hub(c: &mut Criterion) {
    let system = actix::System::new();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let settings = settings(dir.path());
    let (_stopping, shutdown) = herald::shutdown::channel();
    let (hub, mut subscriptions) = system.block_on(async {
        let store = Store::open(&settings.database).await.expect("the store");
        let hub = Hub::start(
            &settings.stream,
            store,
            shutdown,
            None,
            None,
            Default::default(),
        )
        .expect("the hub starts");
        let mut subscriptions = Vec::with_capacity(CONNECTIONS);
        let no_topics = TopicList::default();
        let caps = StreamCaps::of(&settings.tenant_defaults);
        for user in 0..CONNECTIONS {
            let subscription = hub
                .subscribe(1, &user_id(&format!("u{user}")), &no_topics, "k", caps)
                .await
                .expect("a subscription");
            subscriptions.push(subscription);
        }
        (hub, subscriptions)
    });
    let mut group = c.benchmark_group("hub");
    let one_user = event(Target::User(user_id("u4321")), r#"{"n":1}"#);
    group.bench_function("one user's event among 10,000 connections", |b| {
        b.iter_custom(|iterations| {
            system.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    let started = Instant::now();
                    hub.committed(&[&one_user]);
                    subscriptions[4321].frames.recv().await.expect("the frame");
                    total += started.elapsed();
                }
                total
            })
        })
    });
    let everyone = event(Target::Broadcast, r#"{"n":1}"#);
    group.throughput(Throughput::Elements(CONNECTIONS as u64));
    group.sample_size(30);
    group.bench_function("broadcast to 10,000 connections", |b| {
        b.iter_custom(|iterations| {
            system.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    let started = Instant::now();
                    hub.committed(&[&everyone]);
                    for subscription in subscriptions.iter_mut() {
                        subscription.frames.recv().await.expect("the frame");
                    }
                    total += started.elapsed();
                }
                total
            })
        })
    });
    group.finish();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// A migrated SQLite store with one tenant.
fn store_with_tenant(runtime: &tokio::runtime::Runtime, settings: &Settings) -> (Store, i64) {
    runtime.block_on(async {
        let store = Store::open(&settings.database).await.expect("the store");
        store.migrate().await.expect("migrations");
        let tenant = store
            .create_tenant(
                &NewTenant {
                    slug: "bench".into(),
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
        (store, tenant.id)
    })
}

fn jwt_verify(c: &mut Criterion) {
    let runtime = runtime();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let settings = settings(dir.path());
    let (store, tenant_id) = store_with_tenant(&runtime, &settings);
    let keys = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/api/keys");
    let read = |name: &str| std::fs::read_to_string(keys.join(name)).expect("a test key");
    let (tenant, hs256, es256) = runtime.block_on(async {
        let tenant = store
            .tenant("bench")
            .await
            .expect("read")
            .expect("the tenant");
        let hs256 = store
            .create_signing_key(tenant_id, spec("HS256", None))
            .await
            .expect("an HS256 key");
        let es256 = store
            .create_signing_key(tenant_id, spec("ES256", Some(read("ec_public.pem"))))
            .await
            .expect("an ES256 key");
        (tenant, hs256, es256)
    });
    let claims = UserClaims {
        sub: "u42".into(),
        exp: chrono_now() + 3600,
        aud: herald::auth::jwt::Audience::One(settings.jwt.audience.clone()),
        nbf: None,
        iat: None,
        topics: vec!["scores:*".into()],
    };
    let hs256_token = jwt::mint_hs256(&hs256, &claims).expect("an HS256 token");
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some(es256.kid.clone());
    let es256_token = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_ec_pem(read("ec_private.pem").as_bytes())
            .expect("the EC private key"),
    )
    .expect("an ES256 token");
    // As streams open: the signing key is read once, then kept (`store::credentials`).
    let credentials = herald::store::credentials::Credentials::new(store.clone());
    let mut group = c.benchmark_group("jwt_verify");
    for (name, token) in [("HS256", &hs256_token), ("ES256", &es256_token)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                runtime
                    .block_on(jwt::verify(&credentials, &tenant, token, &settings.jwt))
                    .expect("the token verifies")
            })
        });
    }
    group.finish();
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The hub's place for these benchmarks: commits go nowhere.
struct NoListener;

impl CommitListener for NoListener {
    fn committed(&self, _: &[&LoggedEvent]) {}
}

fn new_events(count: usize) -> Vec<NewEvent> {
    (0..count)
        .map(|n| NewEvent {
            target: Target::User(user_id(&format!("u{n}"))),
            event_type: EventType::parse("mail").expect("a valid type"),
            data: format!(r#"{{"subject":"message {n}","unread":3}}"#),
            inbox: false,
            fallback: None,
            item: n,
        })
        .collect()
}

fn log_append(c: &mut Criterion) {
    let runtime = runtime();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let settings = settings(dir.path());
    let (store, tenant_id) = store_with_tenant(&runtime, &settings);
    let log =
        runtime.block_on(async { EventLog::start(store, Arc::new(NoListener)).expect("the log") });
    let mut group = c.benchmark_group("log_append");
    group.sample_size(30);
    for (name, requests, per_request) in [
        ("1 event", 1, 1),
        ("100 events in one request", 1, 100),
        ("16 concurrent requests of 1 event", 16, 1),
    ] {
        group.throughput(Throughput::Elements((requests * per_request) as u64));
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    (0..requests)
                        .map(|_| new_events(per_request))
                        .collect::<Vec<_>>()
                },
                |batches| {
                    let untraced = tracing::Span::none();
                    runtime.block_on(async {
                        let appends = batches
                            .into_iter()
                            .map(|events| log.append(tenant_id, events, None, &untraced));
                        for outcome in futures_util::future::join_all(appends).await {
                            outcome.expect("the append commits");
                        }
                    })
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, sse_encode, hub, jwt_verify, log_append);
criterion_main!(benches);
