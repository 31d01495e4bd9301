//! Wiring: from `Settings` to a listening server.
//!
//! `Application::build` goes through the start-up steps in order — the admin token, the
//! listeners, the store (opened, migrated, seeded), event delivery (hub, broker, log
//! writer) — each a function below — and the HTTP server (`server`). `main` and the tests both start Herald
//! through here, so the tests exercise exactly what ships.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::web;

use crate::background;
use crate::broker::{Broker, BrokerSettings, LocalBroker, RedisBroker};
use crate::config::{DatabaseSettings, Settings};
use crate::demo::{self, DemoCredentials};
use crate::domain::keys::{AdminToken, random_token};
use crate::fallbacks::FallbackTask;
use crate::hub::ledger::StreamLedger;
use crate::hub::{Hub, PendingTransitions};
use crate::limits::PublishBudget;
use crate::limits::local::LocalBuckets;
use crate::limits::mirror::StreamMirror;
use crate::limits::rates::SharedBuckets;
use crate::limits::redis::RedisLink;
use crate::limits::streams::SharedStreams;
use crate::limits::usage::UsageMeter;
use crate::presence::PresenceTask;
use crate::server::http_server;
use crate::shutdown::{self, ShutdownTrigger};
use crate::state::AppState;
use crate::store::Store;
use crate::store::backup::ServingLock;
use crate::store::credentials::Credentials;
use crate::store::log::{CommitListener, EventLog};
use crate::store::receipts::ReceiptWriter;
use crate::tail::Tail;
use crate::webhooks::Outbox;

/// Credentials made at start-up that the operator must be shown once.
#[derive(Debug, Default)]
pub struct StartupReport {
    pub generated_admin_token: Option<String>,
    pub demo: Option<DemoCredentials>,
    /// The port of the demo page, when it is served.
    pub demo_page: Option<u16>,
}

pub struct Application {
    port: u16,
    server: Server,
    /// The demo tenant's page, in development.
    demo: Option<Server>,
    state: web::Data<AppState>,
    stopping: Arc<ShutdownTrigger>,
    pub report: StartupReport,
    /// On SQLite, held while Herald serves: a restore refuses to replace the file meanwhile.
    _serving: Option<ServingLock>,
}

impl Application {
    pub async fn build(mut settings: Settings) -> anyhow::Result<Application> {
        let mut report = StartupReport::default();
        cap_streams_per_tenant(&mut settings);
        let admin_token = admin_token(&settings, &mut report);
        // Listen first: the demo tenant's allowed origin is the demo page's actual port.
        let listeners = Listeners::bind(&settings)?;
        let store = open_store(&settings.database).await?;
        let serving = store.sqlite_file().map(ServingLock::take).transpose()?;
        store.migrate().await?;
        if settings.seed.demo_tenant {
            report.demo = demo::seed_tenant(&store, listeners.demo_port).await?;
        }
        let (stopping, shutdown) = shutdown::channel();
        let credentials = Credentials::new(store.clone());
        let link = redis_link(&settings)?;
        let (budget, ledger) = limits(link.as_ref());
        let several_nodes = link.is_some();
        let transitions = Arc::new(PendingTransitions::default());
        let tail = Arc::new(Tail::default());
        let (hub, broker, log) = start_delivery(
            &settings,
            &store,
            &credentials,
            shutdown.clone(),
            (ledger, link),
            (transitions.clone(), tail.clone()),
        )
        .await?;
        let demo = match listeners.demo {
            Some(listener) => {
                report.demo_page = Some(listeners.demo_port);
                let page = demo::page_server(listener, &settings, store.clone(), listeners.port)?;
                Some(page)
            }
            None => None,
        };
        let usage = Arc::new(UsageMeter::new(settings.metrics.max_tenant_labels));
        background::spawn_usage_flusher(
            usage.clone(),
            hub.clone(),
            store.clone(),
            shutdown.clone(),
        );
        let outbox =
            Outbox::configured(&settings.webhooks, &store, tail.clone(), shutdown.clone()).await?;
        let presence = PresenceTask {
            store: store.clone(),
            hub: hub.clone(),
            outbox: outbox.clone(),
            grace: Duration::from_secs_f64(settings.presence.offline_grace_secs),
            several_nodes,
        };
        tokio::spawn(presence.run(transitions, shutdown.clone()));
        let fallbacks = FallbackTask {
            store: store.clone(),
            outbox: outbox.clone(),
            usage: usage.clone(),
        };
        tokio::spawn(fallbacks.run(shutdown.clone()));
        let receipts = ReceiptWriter::start(store.clone());
        let state = web::Data::new(AppState {
            settings,
            store,
            receipts,
            outbox,
            log,
            hub,
            broker,
            credentials,
            budget,
            usage,
            admin_token,
            shutdown,
            metrics: Default::default(),
        });
        background::spawn_pruner(state.clone());
        let server = http_server(state.clone(), listeners.api)?;
        Ok(Application {
            port: listeners.port,
            server,
            demo,
            state,
            stopping: Arc::new(stopping),
            report,
            _serving: serving,
        })
    }

    /// Ends every open stream, then stops the server gracefully: requests in flight
    /// (publishes among them) get `server.shutdown_timeout_secs` to finish.
    pub fn stopper(&self) -> Stopper {
        Stopper {
            stopping: self.stopping.clone(),
            server: self.server.handle(),
            demo: self.demo.as_ref().map(Server::handle),
        }
    }

    /// The running server's state: its store and event log (the tests look inside).
    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGTERM or SIGINT (or a `Stopper`), then shuts down gracefully.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let stopper = self.stopper();
        let signalled = shutdown::signals()?;
        actix_web::rt::spawn(async move {
            signalled.await;
            tracing::info!("shutting down: ending streams, finishing requests in flight");
            stopper.stop().await;
        });
        if let Some(demo) = self.demo {
            actix_web::rt::spawn(demo);
        }
        self.server.await
    }
}

#[derive(Clone)]
pub struct Stopper {
    stopping: Arc<ShutdownTrigger>,
    server: ServerHandle,
    demo: Option<ServerHandle>,
}

impl Stopper {
    pub async fn stop(&self) {
        self.stopping.fire();
        if let Some(demo) = &self.demo {
            demo.stop(true).await;
        }
        self.server.stop(true).await;
    }
}

/// The configured admin token, or one made up for this run (and reported): the
/// configuration has no token only in `local`, since loading it refuses `production`
/// without one.
fn admin_token(settings: &Settings, report: &mut StartupReport) -> AdminToken {
    let token = match &settings.admin.token {
        Some(token) => token.clone(),
        None => {
            let token = random_token(24);
            report.generated_admin_token = Some(token.clone());
            token
        }
    };
    AdminToken::new(&token)
}

/// The API's listener and, in development, the demo page's.
struct Listeners {
    api: TcpListener,
    port: u16,
    demo: Option<TcpListener>,
    demo_port: u16,
}

impl Listeners {
    fn bind(settings: &Settings) -> std::io::Result<Listeners> {
        let host = settings.server.host.as_str();
        let api = TcpListener::bind((host, settings.server.port))?;
        let port = api.local_addr()?.port();
        let demo = match settings.demo.enabled {
            true => Some(TcpListener::bind((host, settings.demo.port))?),
            false => None,
        };
        let demo_port = match &demo {
            Some(listener) => listener.local_addr()?.port(),
            None => settings.demo.port,
        };
        Ok(Listeners {
            api,
            port,
            demo,
            demo_port,
        })
    }
}

/// Opens the store; a PostgreSQL server that does not answer yet is waited for, up to
/// `database.startup_wait_secs`. (A SQLite file is there or not: no waiting.)
async fn open_store(settings: &DatabaseSettings) -> anyhow::Result<Store> {
    let deadline = std::time::Instant::now() + Duration::from_secs(settings.startup_wait_secs);
    let mut delay = Duration::from_millis(200);
    loop {
        match Store::open(settings).await {
            Ok(store) => return Ok(store),
            Err(error)
                if !settings.url.starts_with("sqlite:")
                    && std::time::Instant::now() + delay < deadline =>
            {
                tracing::warn!(%error, "the database does not answer yet; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// `stream.max_connections_per_tenant = 0` (the default): what this process may open, less
/// room for the API's connections and the database's files, so one tenant cannot take every
/// socket of the node.
fn cap_streams_per_tenant(settings: &mut Settings) {
    if settings.stream.max_connections_per_tenant != 0 {
        return;
    }
    let (cap, limit) = match open_file_limit() {
        Some(limit) => (streams_within(limit), limit.to_string()),
        None => (UNKNOWN_LIMIT_CAP, "unknown".to_owned()),
    };
    settings.stream.max_connections_per_tenant = cap;
    tracing::info!(
        cap,
        open_file_limit = %limit,
        "open streams per tenant capped (set stream.max_connections_per_tenant to change)"
    );
}

/// The cap where the open-file limit cannot be read.
const UNKNOWN_LIMIT_CAP: usize = 10_000;

/// Streams one tenant may hold in a process that may open `limit` files: a tenth (at least
/// 100) stays for everything else.
fn streams_within(limit: usize) -> usize {
    limit.saturating_sub((limit / 10).max(100)).max(1)
}

/// This process's soft limit on open files (Linux: `/proc/self/limits`).
fn open_file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    soft_open_file_limit(&limits)
}

fn soft_open_file_limit(limits: &str) -> Option<usize> {
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// With several nodes, this process's one link to their Redis, under one node id (a new
/// one each start): the limits' buckets and counts and the broker's notices go through it.
fn redis_link(settings: &Settings) -> anyhow::Result<Option<RedisLink>> {
    let Some(url) = redis_url(settings) else {
        return Ok(None);
    };
    let node = uuid::Uuid::now_v7().simple().to_string();
    let mirror = Arc::new(StreamMirror::default());
    Ok(Some(RedisLink::start(url, LIMIT_KEYS, node, mirror)?))
}

/// Each tenant's publish budget and, with several nodes, the count of its streams across
/// them: this node's own, or the deployment's in Redis.
fn limits(link: Option<&RedisLink>) -> (PublishBudget, Option<Arc<dyn StreamLedger>>) {
    match link {
        Some(link) => {
            let streams: Arc<dyn StreamLedger> =
                Arc::new(SharedStreams::new(link.clone(), link.mirror()));
            (
                PublishBudget::Shared(SharedBuckets::new(link.clone())),
                Some(streams),
            )
        }
        None => (PublishBudget::Local(LocalBuckets::default()), None),
    }
}

/// The prefix of the limits' keys in Redis.
const LIMIT_KEYS: &str = "herald";

/// An empty url (HERALD__REDIS__URL=) means unset, as an absent one does.
fn redis_url(settings: &Settings) -> Option<&str> {
    settings.redis.url.as_deref().filter(|url| !url.is_empty())
}

/// The hub, the broker (with several nodes) and the event-log writer that feeds them: one
/// node hands commits straight to its hub; several go through Redis, which also brings the
/// other nodes' commits.
async fn start_delivery(
    settings: &Settings,
    store: &Store,
    credentials: &Credentials,
    shutdown: shutdown::Shutdown,
    (ledger, link): (Option<Arc<dyn StreamLedger>>, Option<RedisLink>),
    (transitions, tail): (Arc<PendingTransitions>, Arc<Tail>),
) -> anyhow::Result<(Hub, Arc<dyn Broker>, EventLog)> {
    let hub = Hub::start(
        &settings.stream,
        store.clone(),
        shutdown,
        ledger,
        Some(transitions),
        tail,
    )?;
    let broker = match (redis_url(settings), link) {
        (Some(url), Some(link)) => {
            let broker_settings = BrokerSettings {
                url: url.to_owned(),
                link,
                channel: settings.redis.channel.clone(),
                catch_up_every: Duration::from_secs_f64(settings.redis.catch_up_secs),
            };
            let broker = RedisBroker::start(
                broker_settings,
                store.clone(),
                hub.clone(),
                credentials.clone(),
            );
            Some(broker.await?)
        }
        _ => None,
    };
    let (broker, committed_to): (Arc<dyn Broker>, Arc<dyn CommitListener>) = match broker {
        Some(broker) => (Arc::new(broker.clone()), Arc::new(broker)),
        None => (Arc::new(LocalBroker), Arc::new(hub.clone())),
    };
    let log = EventLog::start(store.clone(), committed_to)?;
    Ok((hub, broker, log))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_open_file_limit_is_read_from_proc_self_limits() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max processes             95452                95452                processes \n\
                      Max open files            20000                20000                files     \n";
        assert_eq!(soft_open_file_limit(limits), Some(20_000));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(soft_open_file_limit(unlimited), None);
        assert_eq!(soft_open_file_limit(""), None);
    }

    #[test]
    fn a_tenth_of_the_files_stays_for_everything_else() {
        assert_eq!(streams_within(20_000), 18_000);
        assert_eq!(streams_within(1_024), 922);
        assert_eq!(streams_within(50), 1);
    }
}
