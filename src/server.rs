//! The HTTP server: Herald's actix-web application, and the listener it is served on.
//!
//! With a certificate, actix-web's `HttpServer` serves HTTPS (and HTTP/2) for every request.
//! Without one, the listener is actix-server with one service per connection that routes it
//! when it is accepted (`crate::stream_path::router`): a stream request to Herald's own stream
//! handler, everything else to actix-http's `HttpService` running the same application.

use std::net::{SocketAddr, TcpListener};
use std::rc::Rc;
use std::time::Duration;

use actix_http::error::DispatchError;
use actix_http::{HttpService, KeepAlive};
use actix_server::GracefulShutdownSignal;
use actix_service::{IntoServiceFactory, ServiceFactoryExt, fn_factory, fn_service, map_config};
use actix_web::body::MessageBody;
use actix_web::dev::{AppConfig, Server, Service, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::rt::net::TcpStream;
use actix_web::{App, HttpMessage, HttpServer, web};
use tracing_actix_web::{RequestId, TracingLogger};

use crate::error::path_error;
use crate::routes;
use crate::state::AppState;
use crate::stream_path::{self, router::Route};

/// The HTTP server on `listener`. With a certificate: HTTPS (and HTTP/2) on actix-web for
/// every request. Without: plain HTTP, each connection routed when it is accepted — stream
/// requests to Herald's own handler (unless `stream.herald_path` is off), everything else to
/// actix-web (see `crate::stream_path`).
pub fn http_server(state: web::Data<AppState>, listener: TcpListener) -> anyhow::Result<Server> {
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
    let server = builder
        .shutdown_timeout(shutdown_timeout)
        .disable_signals()
        .listen("herald", listener, move || {
            let http = actix_http_service(state.clone(), local_addr, stopping.clone());
            let state = state.clone();
            fn_factory(move || {
                let http = http.new_service(());
                let state = state.clone();
                async move {
                    let http = Rc::new(http.await?);
                    Ok::<_, ()>(fn_service(move |socket: TcpStream| {
                        serve_connection(state.clone(), http.clone(), socket)
                    }))
                }
            })
        })?
        .run();
    Ok(server)
}

/// actix-http serving Herald's application on plain-HTTP connections, configured as
/// actix-web's `HttpServer` would be.
fn actix_http_service(
    state: web::Data<AppState>,
    local_addr: SocketAddr,
    stopping: GracefulShutdownSignal,
) -> impl ServiceFactory<TcpStream, Config = (), Response = (), Error = DispatchError, InitError = ()>
{
    HttpService::build()
        .graceful_shutdown_signal(move || {
            let stopping = stopping.clone();
            async move { stopping.notified().await }
        })
        .keep_alive(KeepAlive::default())
        .client_request_timeout(Duration::from_secs(5))
        .client_disconnect_timeout(Duration::from_secs(1))
        // A client that closes its side is gone: end its stream at once instead of waiting
        // for the next write to fail (an SSE client never half-closes).
        .h1_allow_half_closed(false)
        .local_addr(local_addr)
        .finish(map_config(
            app(state)
                .into_factory()
                .map_err(|error| error.error_response()),
            |_| AppConfig::default(),
        ))
        .tcp()
}

/// One accepted plain-HTTP connection: routed at once to Herald's stream handler or to
/// actix-http. Each path's future is boxed at its own size: inline, every connection would
/// be as large as the larger of the two.
async fn serve_connection<S>(
    state: web::Data<AppState>,
    http: Rc<S>,
    socket: TcpStream,
) -> Result<(), ()>
where
    S: Service<TcpStream, Response = (), Error = DispatchError>,
{
    let tcp_user_timeout = Duration::from_secs(state.settings.stream.tcp_user_timeout_secs);
    limit_unacknowledged_time(&socket, tcp_user_timeout);
    let route = match state.settings.stream.herald_path {
        true => stream_path::router::route(&socket).await,
        false => Route::Actix,
    };
    match route {
        Route::Stream(head) => {
            Box::pin(stream_path::handler::serve(&state, socket, head)).await;
            Ok(())
        }
        Route::Actix => Box::pin(http.call(socket)).await.map_err(|error| {
            if matches!(
                error,
                DispatchError::Parse(_) | DispatchError::SlowRequestTimeout
            ) {
                crate::error::count_malformed_request();
            }
            tracing::debug!(%error, "connection ended with an error");
        }),
    }
}

/// Herald's actix-web application: every route, the request id, the request log, and the
/// JSON error answers of actix's own extractors (bodies are read by `routes::json`).
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
    App::new()
        .wrap_fn(echo_request_id)
        .wrap(TracingLogger::default())
        .app_data(state)
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
