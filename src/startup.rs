//! Wiring: from `Settings` to a listening server.
//!
//! `Application::build` goes through the start-up steps in order — the admin token, the
//! listeners, the store (opened, migrated, seeded), event delivery (hub, broker, log
//! writer), the HTTP server — each a function below. `main` and the tests both start Herald
//! through here, so the tests exercise exactly what ships.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use std::rc::Rc;

use actix_http::{HttpService, KeepAlive};
use actix_service::{IntoServiceFactory, ServiceFactoryExt, fn_factory, fn_service, map_config};
use actix_web::body::MessageBody;
use actix_web::dev::{
    AppConfig, Server, ServerHandle, Service, ServiceFactory, ServiceRequest, ServiceResponse,
};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::rt::net::TcpStream;
use actix_web::{App, HttpMessage, HttpServer, web};
use tracing_actix_web::{RequestId, TracingLogger};

use crate::broker::{BrokerSettings, RedisBroker};
use crate::config::{DatabaseSettings, Environment, Settings};
use crate::demo::{self, DemoCredentials};
use crate::domain::keys::{AdminToken, random_token};
use crate::error::{json_error, path_error, query_error};
use crate::hub::Hub;
use crate::routes;
use crate::shutdown::{self, ShutdownTrigger};
use crate::state::AppState;
use crate::store::Store;
use crate::store::log::{CommitListener, EventLog};
use crate::stream::{self, router::Route};

/// How often retention runs.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

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
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let mut report = StartupReport::default();
        let admin_token = admin_token(&settings, &mut report)?;
        // Listen first: the demo tenant's allowed origin is the demo page's actual port.
        let listeners = Listeners::bind(&settings)?;
        let store = open_store(&settings.database).await?;
        store.migrate().await?;
        if settings.seed.demo_tenant {
            report.demo = demo::seed_tenant(&store, listeners.demo_port).await?;
        }
        store.spawn_pruner(PRUNE_EVERY);
        let (stopping, shutdown) = shutdown::channel();
        let (hub, broker, log) = start_delivery(&settings, &store, shutdown.clone()).await?;
        let demo = match listeners.demo {
            Some(listener) => {
                report.demo_page = Some(listeners.demo_port);
                let page = demo::page_server(listener, &settings, store.clone(), listeners.port)?;
                Some(page)
            }
            None => None,
        };
        let state = web::Data::new(AppState {
            settings,
            store,
            log,
            hub,
            broker,
            admin_token,
            shutdown,
        });
        let server = http_server(state.clone(), listeners.api)?;
        Ok(Application {
            port: listeners.port,
            server,
            demo,
            state,
            stopping: Arc::new(stopping),
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
            shutdown::signal().await;
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

/// The configured admin token; `local` makes one up for this run (and reports it),
/// `production` refuses to start without one.
fn admin_token(settings: &Settings, report: &mut StartupReport) -> anyhow::Result<AdminToken> {
    let token = match (&settings.admin.token, settings.environment) {
        (Some(token), _) => token.clone(),
        (None, Environment::Local) => {
            let token = random_token(24);
            report.generated_admin_token = Some(token.clone());
            token
        }
        (None, Environment::Production) => {
            anyhow::bail!("admin.token is missing: production needs HERALD__ADMIN__TOKEN")
        }
    };
    Ok(AdminToken::new(&token))
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

/// The hub, the broker (with several nodes) and the event-log writer that feeds them: one
/// node hands commits straight to its hub; several go through Redis, which also brings the
/// other nodes' commits.
async fn start_delivery(
    settings: &Settings,
    store: &Store,
    shutdown: shutdown::Shutdown,
) -> anyhow::Result<(Hub, Option<RedisBroker>, EventLog)> {
    let hub = Hub::start(&settings.stream, store.clone(), shutdown);
    // An empty url (HERALD__REDIS__URL=) means unset, as an absent one does.
    let broker = match settings.redis.url.as_deref().filter(|url| !url.is_empty()) {
        Some(url) => {
            let broker_settings = BrokerSettings {
                url: url.to_owned(),
                channel: settings.redis.channel.clone(),
                catch_up_every: Duration::from_secs_f64(settings.redis.catch_up_secs),
            };
            Some(RedisBroker::start(broker_settings, store.clone(), hub.clone()).await?)
        }
        None => None,
    };
    let committed_to: Arc<dyn CommitListener> = match &broker {
        Some(broker) => Arc::new(broker.clone()),
        None => Arc::new(hub.clone()),
    };
    let log = EventLog::start(store.clone(), committed_to);
    Ok((hub, broker, log))
}

/// The HTTP server on `listener`. With a certificate: HTTPS (and HTTP/2) on actix-web for
/// every request. Without: plain HTTP, each connection routed when it is accepted — stream
/// requests to Herald's own handler (unless `stream.herald_path` is off), everything else to
/// actix-web (see `crate::stream`).
fn http_server(state: web::Data<AppState>, listener: TcpListener) -> anyhow::Result<Server> {
    let server_settings = &state.settings.server;
    let shutdown_timeout = server_settings.shutdown_timeout_secs;
    let tcp_user_timeout = Duration::from_secs(state.settings.stream.tcp_user_timeout_secs);
    if let Some(tls) = &server_settings.tls {
        let tls = crate::tls::server_config(tls)?;
        let server = HttpServer::new(move || app(state.clone()))
            .on_connect(move |connection, _| {
                limit_unacknowledged_time(connection, tcp_user_timeout)
            })
            .h1_allow_half_closed(false)
            .listen_rustls_0_23(listener, tls)?
            .shutdown_timeout(shutdown_timeout)
            // Herald handles the signals itself, to end open streams before the graceful stop.
            .disable_signals()
            .run();
        return Ok(server);
    }
    let local_addr = listener.local_addr()?;
    let builder = actix_server::Server::build();
    // Tells idle keep-alive connections to close when a graceful stop begins, so the stop
    // does not wait for them.
    let stopping = builder.graceful_shutdown_signal();
    let server =
        builder
            .shutdown_timeout(shutdown_timeout)
            .disable_signals()
            .listen("herald", listener, move || {
                let state = state.clone();
                let stopping = stopping.clone();
                let http = HttpService::build()
                    .graceful_shutdown_signal(move || {
                        let stopping = stopping.clone();
                        async move { stopping.notified().await }
                    })
                    .keep_alive(KeepAlive::default())
                    .client_request_timeout(Duration::from_secs(5))
                    .client_disconnect_timeout(Duration::from_secs(1))
                    // A client that closes its side is gone: end its stream at once instead of
                    // waiting for the next write to fail (an SSE client never half-closes).
                    .h1_allow_half_closed(false)
                    .local_addr(local_addr)
                    .finish(map_config(
                        app(state.clone())
                            .into_factory()
                            .map_err(|error| error.error_response()),
                        |_| AppConfig::default(),
                    ))
                    .tcp();
                fn_factory(move || {
                    let http = http.new_service(());
                    let state = state.clone();
                    async move {
                        let http = Rc::new(http.await?);
                        Ok::<_, ()>(fn_service(move |socket: TcpStream| {
                            let http = http.clone();
                            let state = state.clone();
                            async move {
                                limit_unacknowledged_time(&socket, tcp_user_timeout);
                                let route = match state.settings.stream.herald_path {
                                    true => stream::router::route(&socket).await,
                                    false => Route::Actix,
                                };
                                match route {
                                // Each path's connection future in a box of its own
                                // size: inline, every connection would be as large as
                                // the larger of the two.
                                Route::Stream(head) => {
                                    Box::pin(stream::handler::serve(&state, socket, head)).await;
                                    Ok(())
                                }
                                Route::Actix => Box::pin(http.call(socket)).await.map_err(|error| {
                                    tracing::debug!(%error, "connection ended with an error");
                                }),
                            }
                            }
                        }))
                    }
                })
            })?
            .run();
    Ok(server)
}

/// Herald's actix-web application: every route, the request id, the request log, and the
/// JSON error answers of actix's own extractors.
fn app(
    state: web::Data<AppState>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let max_body = state.settings.server.max_body_bytes;
    App::new()
        .wrap_fn(echo_request_id)
        .wrap(TracingLogger::default())
        .app_data(state)
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

/// A peer that stops acknowledging what Herald sends (gone, or not reading) is dropped by
/// the kernel after `timeout` instead of pinning the socket and its buffers for good.
fn limit_unacknowledged_time(connection: &dyn std::any::Any, timeout: Duration) {
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "fuchsia"))]
    {
        use actix_tls::accept::rustls_0_23::TlsStream;
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
