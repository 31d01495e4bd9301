//! Spawning Herald inside the test process: settings, a fresh database per test, the
//! captured logs.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use herald::config::{Environment, LogFormat, LogSettings, Settings};
use herald::startup::Application;
use tempfile::TempDir;

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
        herald::telemetry::init(herald::telemetry::subscriber(&settings, None, move || {
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
    tempdir: Option<TempDir>,
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
    // The suite's tenants publish as fast as its tests need; the rate-limit tests set limits
    // of their own.
    settings.tenant_defaults.publish_per_sec = UNLIMITED_RATE;
    settings.tenant_defaults.publish_burst = UNLIMITED_RATE;
    settings
}

/// A publish rate no test reaches.
pub const UNLIMITED_RATE: u64 = 1_000_000;

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

/// Whether the suite runs on SQLite; says so and answers false for a SQLite-only test
/// (`what`) when it runs on PostgreSQL.
pub fn sqlite_only(what: &str) -> bool {
    if postgres_server().is_some() {
        eprintln!("skipped: {what} is a SQLite test (the suite runs on PostgreSQL)");
        return false;
    }
    true
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
        tempdir,
    }
}

impl std::ops::Deref for TestApp {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

impl TestApp {
    /// The temporary folder the app's database is in, to keep it after the app is dropped.
    pub fn take_tempdir(&mut self) -> Option<TempDir> {
        self.tempdir.take()
    }

    /// Waits until the hub counts `open` streams (they register and leave asynchronously).
    pub async fn wait_for_open_streams(&self, open: u64) {
        let stats = self.state.hub.stats();
        for _ in 0..200 {
            if stats.streams_open.load(std::sync::atomic::Ordering::SeqCst) == open {
                return;
            }
            actix_web::rt::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!(
            "the hub counts {} open streams, expected {open}",
            stats.streams_open.load(std::sync::atomic::Ordering::SeqCst)
        );
    }
}
