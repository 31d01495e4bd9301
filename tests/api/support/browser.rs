//! Chromium driven through playwright-core (`tests/browser/driver.mjs`), Herald set up as
//! the browser tests need it, and the test page served on another origin.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::{TestApp, TestTenant, fresh_database_url, spawn_with_settings, test_settings};

pub const BROWSER_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser");
pub const PAGE: &str = include_str!("../../browser/page.html");
pub const LIBRARY_PAGE: &str = include_str!("../../browser/library.html");
pub const TYPES: &str = "message,mail,stock,score,reset,session-expired";

pub struct Browser {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Browser {
    /// Starts Chromium, or says why it cannot and returns `None` (a failure under CI).
    pub async fn launch() -> Option<Browser> {
        let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let missing = if !Path::new(&chromium).exists() {
            Some(format!(
                "no Chromium at {chromium} (apt-get install chromium)"
            ))
        } else if !Path::new(BROWSER_DIR)
            .join("node_modules/playwright-core")
            .exists()
        {
            Some("no playwright-core (npm ci in tests/browser)".to_owned())
        } else {
            None
        };
        if let Some(reason) = missing {
            super::skip_unless_ci("browser tests", &reason);
            return None;
        }
        let mut child = Command::new("node")
            .arg("driver.mjs")
            .current_dir(BROWSER_DIR)
            .env("CHROMIUM", chromium)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        Some(Browser {
            child,
            stdin,
            stdout,
        })
    }

    pub async fn call(&mut self, command: Value) -> Value {
        self.stdin
            .write_all(format!("{command}\n").as_bytes())
            .await
            .unwrap();
        let line = tokio::time::timeout(Duration::from_secs(60), self.stdout.next_line())
            .await
            .expect("the driver answers")
            .unwrap()
            .expect("the driver is alive");
        serde_json::from_str(&line).unwrap()
    }

    pub async fn open(&mut self, context: &str, page: &str, url: &str) {
        let answer = self
            .call(json!({"op": "open", "context": context, "page": page, "url": url}))
            .await;
        assert_eq!(answer["ok"], true, "{answer}");
    }

    pub async fn eval(&mut self, page: &str, js: &str) -> Value {
        let answer = self
            .call(json!({"op": "eval", "page": page, "js": js}))
            .await;
        assert_eq!(answer["ok"], true, "{answer}");
        answer["value"].clone()
    }

    /// Opens a test page and waits until its EventSource is open.
    pub async fn open_streaming(&mut self, context: &str, page: &str, url: &str) {
        self.open(context, page, url).await;
        self.wait(page, "window.herald.opens >= 1", Duration::from_secs(10))
            .await;
    }

    /// Waits until `js` is truthy in the page; on timeout, fails with the page's state.
    pub async fn wait(&mut self, page: &str, js: &str, timeout: Duration) {
        let answer = self
            .call(json!({"op": "wait", "page": page, "js": js, "timeout": timeout.as_millis() as u64}))
            .await;
        if answer["ok"] != true {
            let state = self.eval(page, "window.herald").await;
            panic!(
                "{page}: `{js}` never held: {}; page state: {state}",
                answer["error"]
            );
        }
    }

    /// The events a page received, as (type, data).
    pub async fn events(&mut self, page: &str) -> Vec<(String, String)> {
        let events = self.eval(page, "window.herald.events").await;
        events
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["type"].as_str().unwrap().to_owned(),
                    e["data"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    /// Closes a page, as a user closes its tab.
    pub async fn close(&mut self, page: &str) {
        let answer = self.call(json!({"op": "close", "page": page})).await;
        assert_eq!(answer["ok"], true, "{answer}");
    }

    pub async fn quit(mut self) {
        let _ = self.call(json!({"op": "quit"})).await;
        let _ = self.child.wait().await;
    }
}

/// Serves the test page on 127.0.0.1:port: an origin other than Herald's `localhost`.
pub fn serve_page() -> String {
    serve_origin(|config| {
        config.route(
            "/page.html",
            web::get().to(|| async { HttpResponse::Ok().content_type("text/html").body(PAGE) }),
        );
    })
}

/// A tenant's origin on 127.0.0.1:port, its routes set by `configure` (and a favicon).
fn serve_origin(configure: impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(move || {
        App::new()
            .configure(configure.clone())
            .route("/favicon.ico", web::get().to(HttpResponse::NoContent))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    actix_web::rt::spawn(server);
    format!("http://127.0.0.1:{port}")
}

/// Herald with the production cookie (Secure; SameSite=None; Partitioned) and a short
/// `retry:` so that reconnects happen quickly.
pub fn browser_settings(database_url: &str, port: u16) -> herald::config::Settings {
    let mut settings = test_settings(database_url);
    settings.server.port = port;
    settings.cookie.secure = true;
    settings.cookie.same_site = herald::config::SameSite::None;
    settings.cookie.partitioned = true;
    settings.stream.retry_ms = 300;
    settings
}

/// Herald on a free port with a database of its own; returns the database's URL too.
pub async fn start_herald(dir: &TempDir) -> (TestApp, String) {
    let url = fresh_database_url(dir.path()).await;
    let app = spawn_with_settings(browser_settings(&url, 0), dir.path().to_path_buf(), None).await;
    (app, url)
}

pub async fn tenant_for(app: &TestApp, slug: &str, origins: &[&str]) -> TestTenant {
    let tenant = app.create_tenant(slug).await;
    allow_origins(app, slug, origins).await;
    tenant
}

/// Sets the tenant's allowed origins.
pub async fn allow_origins(app: &TestApp, slug: &str, origins: &[&str]) {
    let response = app
        .patch_tenant(slug, json!({"allowed_origins": origins}))
        .await;
    assert_eq!(response.status(), 200);
}

/// What every browser test starts from: Chromium, Herald with a database of its own, and
/// the test page served on another origin.
pub struct Scene {
    pub browser: Browser,
    /// Holds the database's folder (`TestApp::take_tempdir` to keep it past the app).
    pub app: TestApp,
    pub origin: String,
    pub database_url: String,
}

pub async fn scene() -> Option<Scene> {
    let browser = Browser::launch().await?;
    let dir = TempDir::new().unwrap();
    let database_url = fresh_database_url(dir.path()).await;
    let settings = browser_settings(&database_url, 0);
    let app = spawn_with_settings(settings, dir.path().to_path_buf(), Some(dir)).await;
    Some(Scene {
        browser,
        app,
        origin: serve_page(),
        database_url,
    })
}

pub fn page_url(
    origin: &str,
    app: &TestApp,
    tenant: &TestTenant,
    token: &str,
    topics: &str,
) -> String {
    let herald = app.address.replace("127.0.0.1", "localhost");
    format!(
        "{origin}/page.html?herald={herald}&tenant={}&token={token}&topics={topics}&types={TYPES}",
        tenant.slug
    )
}

/// The library test page's origin: `/library.html`, and `/token?user=U&topics=a,b`, which
/// mints a user token living `token_secs` as a tenant's backend would (counted in `mints`);
/// with `issued_secs_ago` it also claims (`iat`) to have been issued that long ago.
pub struct LibraryOrigin {
    pub origin: String,
    pub mints: Arc<AtomicUsize>,
}

pub fn serve_library_page(
    tenant: &TestTenant,
    token_secs: i64,
    issued_secs_ago: Option<i64>,
) -> LibraryOrigin {
    #[derive(serde::Deserialize)]
    struct TokenQuery {
        user: String,
        topics: String,
    }
    let mints = Arc::new(AtomicUsize::new(0));
    let (tenant, counter) = (tenant.clone(), mints.clone());
    let origin = serve_origin(move |config| {
        let (tenant, counter) = (tenant.clone(), counter.clone());
        config
            .route(
                "/library.html",
                web::get().to(|| async {
                    HttpResponse::Ok()
                        .content_type("text/html")
                        .body(LIBRARY_PAGE)
                }),
            )
            .route(
                "/token",
                web::get().to(move |query: web::Query<TokenQuery>| {
                    let topics: Vec<&str> =
                        query.topics.split(',').filter(|t| !t.is_empty()).collect();
                    let now = super::now_secs();
                    let mut claims = json!({
                        "sub": query.user, "aud": "herald", "exp": now + token_secs,
                        "topics": topics,
                    });
                    if let Some(ago) = issued_secs_ago {
                        claims["iat"] = json!(now - ago);
                    }
                    let token = tenant.token_with(claims);
                    counter.fetch_add(1, Ordering::SeqCst);
                    async move { HttpResponse::Ok().content_type("text/plain").body(token) }
                }),
            );
    });
    LibraryOrigin { origin, mints }
}

/// The library test page for `user` of `tenant`; `extra` is more of its query (`&share=false`…).
pub fn library_url(
    page: &LibraryOrigin,
    app: &TestApp,
    tenant: &TestTenant,
    user: &str,
    topics: &str,
    types: &str,
    extra: &str,
) -> String {
    let herald = app.address.replace("127.0.0.1", "localhost");
    format!(
        "{}/library.html?herald={herald}&tenant={}&user={user}&topics={topics}&types={types}{extra}",
        page.origin, tenant.slug
    )
}
