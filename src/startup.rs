//! Wiring: from `Settings` to a listening server.
//!
//! `Application::build` opens and migrates the store, seeds the demo tenant where asked,
//! starts the event-log writer and the retention pruner, binds the listener (port 0 picks a
//! free port, which the tests use) and assembles the actix-web app. `main` and the tests
//! both start Herald through here, so the tests exercise exactly what ships.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::HttpMessage;
use actix_web::dev::Server;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{App, HttpServer, web};
use tracing_actix_web::{RequestId, TracingLogger};

use crate::broker::{BrokerSettings, RedisBroker};
use crate::config::{Environment, Settings};
use crate::domain::keys::AdminToken;
use crate::error::{json_error, path_error, query_error};
use crate::hub::Hub;
use crate::routes;
use crate::seed::{self, DemoCredentials};
use crate::state::AppState;
use crate::store::Store;
use crate::store::log::{CommitListener, EventLog};
use std::sync::Arc;
use tokio::sync::watch;

/// Credentials made at start-up that the operator must be shown once.
#[derive(Debug, Default)]
pub struct StartupReport {
    pub generated_admin_token: Option<String>,
    pub demo: Option<DemoCredentials>,
    /// The port of the demo page, when it is served.
    pub demo_page: Option<u16>,
}

/// Answers with the request id that every log line of this request carries, so a caller's
/// report can be matched to Herald's logs.
fn echo_request_id<S>(
    request: ServiceRequest,
    service: &S,
) -> impl Future<Output = Result<ServiceResponse, actix_web::Error>> + use<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse, Error = actix_web::Error>,
{
    let id = request.extensions().get::<RequestId>().copied();
    let response = service.call(request);
    async move {
        let mut response = response.await?;
        if let Some(id) = id
            && let Ok(value) = HeaderValue::from_str(&id.to_string())
        {
            response
                .headers_mut()
                .insert(HeaderName::from_static("x-request-id"), value);
        }
        Ok(response)
    }
}

pub struct Application {
    port: u16,
    server: Server,
    /// The demo tenant's page, in development.
    demo: Option<Server>,
    state: web::Data<AppState>,
    stopping: Arc<watch::Sender<bool>>,
    pub report: StartupReport,
}

const PRUNE_EVERY: Duration = Duration::from_secs(60);

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let mut report = StartupReport::default();
        let admin_token = match (&settings.admin.token, settings.environment) {
            (Some(token), _) => token.clone(),
            (None, Environment::Local) => {
                let token = crate::domain::keys::random_token(24);
                report.generated_admin_token = Some(token.clone());
                token
            }
            (None, Environment::Production) => {
                anyhow::bail!("admin.token is missing: production needs HERALD__ADMIN__TOKEN")
            }
        };

        // Listen first: the demo tenant's allowed origin is the demo page's actual port.
        let listener = TcpListener::bind((settings.server.host.as_str(), settings.server.port))?;
        let port = listener.local_addr()?.port();
        let demo_listener = match settings.demo.enabled {
            true => Some(TcpListener::bind((
                settings.server.host.as_str(),
                settings.demo.port,
            ))?),
            false => None,
        };
        let demo_port = match &demo_listener {
            Some(listener) => listener.local_addr()?.port(),
            None => settings.demo.port,
        };

        let store = open_store(&settings.database).await?;
        store.migrate().await?;
        if settings.seed.demo_tenant {
            report.demo = seed::demo_tenant(&store, demo_port).await?;
        }
        store.spawn_pruner(PRUNE_EVERY);
        let hub = Hub::start(&settings.stream);
        // Several nodes: commits go through the Redis broker, which also brings the others'.
        // An empty url (HERALD__REDIS__URL=) means unset, as an absent one does.
        let broker = match settings.redis.url.as_deref().filter(|url| !url.is_empty()) {
            Some(url) => Some(
                RedisBroker::start(
                    BrokerSettings {
                        url: url.to_owned(),
                        channel: settings.redis.channel.clone(),
                        catch_up_every: Duration::from_secs_f64(settings.redis.catch_up_secs),
                    },
                    store.clone(),
                    hub.clone(),
                )
                .await?,
            ),
            None => None,
        };
        let committed_to: Arc<dyn CommitListener> = match &broker {
            Some(broker) => Arc::new(broker.clone()),
            None => Arc::new(hub.clone()),
        };
        let log = EventLog::start(store.clone(), committed_to);
        let (stopping, shutdown) = watch::channel(false);
        let stopping = Arc::new(stopping);

        let demo = match demo_listener {
            Some(demo_listener) => {
                report.demo_page = Some(demo_port);
                Some(crate::demo::server(
                    demo_listener,
                    &settings,
                    store.clone(),
                    port,
                )?)
            }
            None => None,
        };
        let shutdown_timeout = settings.server.shutdown_timeout_secs;
        let max_body = settings.server.max_body_bytes;
        let state = web::Data::new(AppState {
            settings,
            store,
            log,
            hub,
            broker,
            admin_token: AdminToken::new(&admin_token),
            shutdown,
        });
        let tcp_user_timeout = Duration::from_secs(state.settings.stream.tcp_user_timeout_secs);
        let tls = match &state.settings.server.tls {
            Some(tls) => Some(crate::tls::server_config(tls)?),
            None => None,
        };

        let app_state = state.clone();
        let server = HttpServer::new(move || {
            App::new()
                .wrap_fn(echo_request_id)
                .wrap(TracingLogger::default())
                .app_data(state.clone())
                .app_data(
                    web::JsonConfig::default()
                        .limit(max_body)
                        .error_handler(|e, _| json_error(e).into()),
                )
                .app_data(web::PayloadConfig::new(max_body))
                .app_data(web::QueryConfig::default().error_handler(|e, _| query_error(e).into()))
                .app_data(web::PathConfig::default().error_handler(|e, _| path_error(e).into()))
                .configure(routes::configure)
                .default_service(web::to(routes::not_found))
        })
        .on_connect(move |connection, _| limit_unacknowledged_time(connection, tcp_user_timeout))
        // A client that closes its side is gone: end its stream at once instead of waiting
        // for the next write to fail (an SSE client never half-closes on purpose).
        .h1_allow_half_closed(false);
        let server = match tls {
            Some(tls) => server.listen_rustls_0_23(listener, tls)?,
            None => server.listen(listener)?,
        };
        let server = server
            .shutdown_timeout(shutdown_timeout)
            // Herald handles the signals itself, to end open streams before the graceful stop.
            .disable_signals()
            .run();
        Ok(Application {
            port,
            server,
            demo,
            state: app_state,
            stopping,
            report,
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
        actix_web::rt::spawn(async move {
            wait_for_signal().await;
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
    stopping: Arc<watch::Sender<bool>>,
    server: actix_web::dev::ServerHandle,
    demo: Option<actix_web::dev::ServerHandle>,
}

impl Stopper {
    pub async fn stop(&self) {
        self.stopping.send_replace(true);
        if let Some(demo) = &self.demo {
            demo.stop(true).await;
        }
        self.server.stop(true).await;
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => std::future::pending::<()>().await,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Opens the store; a PostgreSQL server that does not answer yet is waited for, up to
/// `database.startup_wait_secs`. (A SQLite file is there or not: no waiting.)
async fn open_store(settings: &crate::config::DatabaseSettings) -> anyhow::Result<Store> {
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

/// A peer that stops acknowledging what Herald sends (gone, or not reading) is dropped by
/// the kernel after `timeout` instead of pinning the socket and its buffers for good.
fn limit_unacknowledged_time(connection: &dyn std::any::Any, timeout: Duration) {
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "fuchsia"))]
    {
        use actix_tls::accept::rustls_0_23::TlsStream;
        use actix_web::rt::net::TcpStream;
        // Plain HTTP hands over the socket itself; HTTPS, the TLS stream wrapping it.
        let stream = connection.downcast_ref::<TcpStream>().or_else(|| {
            connection
                .downcast_ref::<TlsStream<TcpStream>>()
                .map(|tls| tls.get_ref().0)
        });
        if let Some(stream) = stream {
            let socket = socket2::SockRef::from(stream);
            if let Err(error) = socket.set_tcp_user_timeout(Some(timeout)) {
                tracing::debug!(%error, "cannot set TCP_USER_TIMEOUT");
            }
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "fuchsia")))]
    let _ = (connection, timeout);
}

impl Application {}
