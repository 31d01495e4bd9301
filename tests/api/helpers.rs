//! Spawning Herald for a test, and the HTTP calls tests make against it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use herald::config::{Environment, LogFormat, LogSettings, Settings};
use herald::startup::Application;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::sse_client::SseStream;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// Everything Herald logged during this test run (all tests share one subscriber).
pub fn captured_logs() -> String {
    String::from_utf8_lossy(&log_buffer().lock().unwrap()).into_owned()
}

fn log_buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static BUFFER: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUFFER.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = buffer.clone();
        // Debug level: more than production logs, so a secret in any log line shows up.
        let settings = LogSettings {
            format: LogFormat::Json,
            level: "debug".into(),
        };
        herald::telemetry::init(herald::telemetry::subscriber(&settings, move || {
            LogWriter(sink.clone())
        }));
        buffer
    })
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        if std::env::var_os("TEST_LOG").is_some() {
            std::io::stderr().write_all(bytes)?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Herald's HTTP API as the tests call it, wherever the server runs.
pub struct Api {
    pub address: String,
    pub client: reqwest::Client,
}

/// A Herald server running inside the test process.
pub struct TestApp {
    pub api: Api,
    /// The server's own state, for looking inside (the event log's counters, the store).
    pub state: actix_web::web::Data<herald::state::AppState>,
    /// Stops the server as SIGTERM would.
    pub stopper: herald::startup::Stopper,
    /// The demo page's port, when the settings serve it.
    pub demo_page: Option<u16>,
    pub dir: PathBuf,
    _tempdir: Option<TempDir>,
}

/// The settings a test server runs with: `local` defaults, its own database, port 0.
pub fn test_settings(database_url: &str) -> Settings {
    let mut settings =
        Settings::load(Environment::Local, Path::new("config"), None).expect("configuration loads");
    settings.database.url = database_url.to_owned();
    settings.server.port = 0;
    settings.admin.token = Some(ADMIN_TOKEN.into());
    settings.seed.demo_tenant = false;
    settings.demo.enabled = false;
    settings
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// `HERALD_TEST_POSTGRES` (a server URL such as `postgres://postgres@127.0.0.1:5433`) runs
/// the suite on PostgreSQL: every test gets a database of its own there. Unset: SQLite.
pub fn postgres_server() -> Option<String> {
    std::env::var("HERALD_TEST_POSTGRES")
        .ok()
        .filter(|url| !url.is_empty())
}

/// A new, empty database for one test: a SQLite file in `dir`, or a fresh PostgreSQL
/// database when the suite runs on PostgreSQL.
pub async fn fresh_database_url(dir: &Path) -> String {
    match postgres_server() {
        None => format!("sqlite://{}/herald.db", dir.display()),
        Some(server) => {
            use sea_orm::ConnectionTrait;
            let name = format!("herald_test_{}", uuid::Uuid::now_v7().simple());
            let admin = sea_orm::Database::connect(format!("{server}/postgres"))
                .await
                .unwrap();
            admin
                .execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await
                .unwrap();
            admin.close().await.unwrap();
            format!("{server}/{name}")
        }
    }
}

pub async fn spawn_app_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let tempdir = TempDir::new().unwrap();
    let url = fresh_database_url(tempdir.path()).await;
    let mut settings = test_settings(&url);
    adjust(&mut settings);
    let dir = tempdir.path().to_path_buf();
    spawn_with_settings(settings, dir, Some(tempdir)).await
}

pub async fn spawn_with_settings(
    settings: Settings,
    dir: PathBuf,
    tempdir: Option<TempDir>,
) -> TestApp {
    log_buffer();
    let application = Application::build(settings).await.expect("Herald starts");
    let address = format!("http://127.0.0.1:{}", application.port());
    let state = application.state();
    let stopper = application.stopper();
    let demo_page = application.report.demo_page;
    actix_web::rt::spawn(application.run_until_stopped());
    TestApp {
        api: Api {
            address,
            client: reqwest::Client::new(),
        },
        state,
        stopper,
        demo_page,
        dir,
        _tempdir: tempdir,
    }
}

/// A tenant made through the operator API, with one API key and one HS256 signing key.
pub struct TestTenant {
    pub slug: String,
    pub api_key: String,
    pub api_key_id: String,
    pub kid: String,
    pub secret: String,
}

impl TestTenant {
    /// A user token as a tenant backend mints it: HS256 with the tenant's key.
    pub fn token(&self, user: &str, topics: &[&str]) -> String {
        self.token_with(
            json!({"sub": user, "aud": "herald", "exp": now_secs() + 3600, "topics": topics}),
        )
    }

    /// A token with exactly these claims, signed with the tenant's HS256 key.
    pub fn token_with(&self, claims: Value) -> String {
        sign_hs256(&self.kid, self.secret.as_bytes(), &claims)
    }
}

pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub fn sign_hs256(kid: &str, secret: &[u8], claims: &Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(
        &header,
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .unwrap()
}

impl std::ops::Deref for TestApp {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

impl TestApp {
    /// Waits until the hub counts `open` streams (they register and leave asynchronously).
    pub async fn wait_for_open_streams(&self, open: u64) {
        let stats = self.state.hub.stats();
        for _ in 0..200 {
            if stats.connections.load(std::sync::atomic::Ordering::SeqCst) == open {
                return;
            }
            actix_web::rt::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!(
            "the hub counts {} open streams, expected {open}",
            stats.connections.load(std::sync::atomic::Ordering::SeqCst)
        );
    }
}

impl Api {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Response {
        let mut request = self
            .client
            .request(method, self.url(path))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap()
    }

    /// An operator request with a raw JSON body, well-formed or not.
    pub async fn admin_raw(&self, method: reqwest::Method, path: &str, body: &str) -> Response {
        self.client
            .request(method, self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .header("Content-Type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap()
    }

    pub async fn create_tenant(&self, slug: &str) -> TestTenant {
        let response = self
            .admin(
                reqwest::Method::POST,
                "/admin/tenants",
                Some(json!({"slug": slug, "allowed_origins": ["https://app.example.com"]})),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let key: Value = self
            .admin(
                reqwest::Method::POST,
                &format!("/admin/tenants/{slug}/api-keys"),
                Some(json!({"name": "test"})),
            )
            .await
            .json()
            .await
            .unwrap();
        let signing: Value = self
            .admin(
                reqwest::Method::POST,
                &format!("/admin/tenants/{slug}/signing-keys"),
                Some(json!({"alg": "HS256"})),
            )
            .await
            .json()
            .await
            .unwrap();
        TestTenant {
            slug: slug.to_owned(),
            api_key: key["key"].as_str().unwrap().to_owned(),
            api_key_id: key["id"].as_str().unwrap().to_owned(),
            kid: signing["kid"].as_str().unwrap().to_owned(),
            secret: signing["secret"].as_str().unwrap().to_owned(),
        }
    }

    /// `GET /t/{slug}/stream` with a bearer token, a query and optionally `Last-Event-ID`.
    pub async fn stream_request(
        &self,
        slug: &str,
        token: &str,
        query: &str,
        last_event_id: Option<&str>,
    ) -> Response {
        let mut request = self
            .client
            .get(self.url(&format!("/t/{slug}/stream?{query}")))
            .bearer_auth(token);
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        request.send().await.unwrap()
    }

    /// Opens a stream, asserting a 200 event stream.
    pub async fn open_stream(
        &self,
        tenant: &TestTenant,
        token: &str,
        query: &str,
        last_event_id: Option<&str>,
    ) -> SseStream {
        let response = self
            .stream_request(&tenant.slug, token, query, last_event_id)
            .await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{}",
            response.text().await.unwrap_or_default()
        );
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        SseStream::new(response)
    }

    pub async fn publish(&self, api_key: &str, body: &Value) -> Response {
        self.client
            .post(self.url("/v1/events"))
            .bearer_auth(api_key)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Publishes and returns the receipts, asserting a 201.
    pub async fn publish_ok(&self, api_key: &str, body: &Value) -> Vec<Value> {
        let response = self.publish(api_key, body).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let answer: Value = response.json().await.unwrap();
        answer["events"].as_array().unwrap().clone()
    }

    pub async fn history(&self, api_key: &str, query: &str) -> Response {
        self.client
            .get(self.url(&format!("/v1/events?{query}")))
            .bearer_auth(api_key)
            .send()
            .await
            .unwrap()
    }

    /// Every event a user's stream would replay, following `next` through all pages.
    pub async fn full_history(&self, api_key: &str, query: &str) -> Vec<Value> {
        let mut events = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut q = format!("{query}&limit=1000");
            if let Some(after) = &after {
                q.push_str(&format!("&after={after}"));
            }
            let response = self.history(api_key, &q).await;
            assert_eq!(response.status(), StatusCode::OK);
            let page: Value = response.json().await.unwrap();
            events.extend(page["events"].as_array().unwrap().iter().cloned());
            match page["next"].as_str() {
                Some(next) => after = Some(next.to_owned()),
                None => return events,
            }
        }
    }
}

/// The sequence number of an event id (`<epoch>-<seq>`).
pub fn seq_of(id: &Value) -> i64 {
    id.as_str()
        .unwrap()
        .rsplit_once('-')
        .unwrap()
        .1
        .parse()
        .unwrap()
}

/// Asserts an error answer: its status and its stable code.
pub async fn assert_error(response: Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(response.status(), status, "expected {status} {code}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], code, "body: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    body
}

/// A test that needs something this machine lacks says so and skips — unless it runs under
/// CI, which provides everything, where that is a failure.
pub fn skip_unless_ci(what: &str, reason: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "{what} cannot run under CI: {reason}"
    );
    eprintln!("skipped: {reason}");
}
