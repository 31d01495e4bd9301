//! The browser flow in real headless Chromium: a tenant's page on one origin, Herald on
//! another, the session cookie and an EventSource with credentials. Chromium is driven by
//! playwright-core (`tests/browser/driver.mjs`); `.ci/run` installs both. Without them the
//! tests say so and skip — except under CI, where that is a failure.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use reqwest::Method;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::helpers::{
    TestApp, TestTenant, fresh_database_url, now_secs, spawn_with_settings, test_settings,
};

const BROWSER_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser");
const PAGE: &str = include_str!("../browser/page.html");
const TYPES: &str = "message,mail,stock,score,reset,session-expired";

struct Browser {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Browser {
    /// Starts Chromium, or says why it cannot and returns `None` (a failure under CI).
    async fn launch() -> Option<Browser> {
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
            crate::helpers::skip_unless_ci("browser tests", &reason);
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

    async fn call(&mut self, command: Value) -> Value {
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

    async fn open(&mut self, context: &str, page: &str, url: &str) {
        let answer = self
            .call(json!({"op": "open", "context": context, "page": page, "url": url}))
            .await;
        assert_eq!(answer["ok"], true, "{answer}");
    }

    async fn eval(&mut self, page: &str, js: &str) -> Value {
        let answer = self
            .call(json!({"op": "eval", "page": page, "js": js}))
            .await;
        assert_eq!(answer["ok"], true, "{answer}");
        answer["value"].clone()
    }

    /// Opens a test page and waits until its EventSource is open.
    async fn open_streaming(&mut self, context: &str, page: &str, url: &str) {
        self.open(context, page, url).await;
        self.wait(page, "window.herald.opens >= 1", Duration::from_secs(10))
            .await;
    }

    /// Waits until `js` is truthy in the page; on timeout, fails with the page's state.
    async fn wait(&mut self, page: &str, js: &str, timeout: Duration) {
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
    async fn events(&mut self, page: &str) -> Vec<(String, String)> {
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

    async fn quit(mut self) {
        let _ = self.call(json!({"op": "quit"})).await;
        let _ = self.child.wait().await;
    }
}

/// Serves the test page on 127.0.0.1:port: an origin other than Herald's `localhost`.
fn serve_page() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(|| {
        App::new()
            .route(
                "/page.html",
                web::get().to(|| async { HttpResponse::Ok().content_type("text/html").body(PAGE) }),
            )
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
fn browser_settings(database_url: &str, port: u16) -> herald::config::Settings {
    let mut settings = test_settings(database_url);
    settings.server.port = port;
    settings.cookie.secure = true;
    settings.cookie.same_site = herald::config::SameSite::None;
    settings.cookie.partitioned = true;
    settings.stream.retry_ms = 300;
    settings
}

/// Herald on a free port with a database of its own; returns the database's URL too.
async fn start_herald(dir: &TempDir) -> (TestApp, String) {
    let url = fresh_database_url(dir.path()).await;
    let app = spawn_with_settings(browser_settings(&url, 0), dir.path().to_path_buf(), None).await;
    (app, url)
}

async fn tenant_for(app: &TestApp, slug: &str, origins: &[&str]) -> TestTenant {
    let tenant = app.create_tenant(slug).await;
    let response = app
        .admin(
            Method::PATCH,
            &format!("/admin/tenants/{slug}"),
            Some(json!({"allowed_origins": origins})),
        )
        .await;
    assert_eq!(response.status(), 200);
    tenant
}

/// What every browser test starts from: Chromium, Herald with a database of its own, and
/// the test page served on another origin.
struct Scene {
    browser: Browser,
    app: TestApp,
    origin: String,
    database_url: String,
    dir: TempDir,
}

async fn scene() -> Option<Scene> {
    let browser = Browser::launch().await?;
    let dir = TempDir::new().unwrap();
    let (app, database_url) = start_herald(&dir).await;
    Some(Scene {
        browser,
        app,
        origin: serve_page(),
        database_url,
        dir,
    })
}

fn page_url(origin: &str, app: &TestApp, tenant: &TestTenant, token: &str, topics: &str) -> String {
    let herald = app.address.replace("127.0.0.1", "localhost");
    format!(
        "{origin}/page.html?herald={herald}&tenant={}&token={token}&topics={topics}&types={TYPES}",
        tenant.slug
    )
}

fn stock(i: usize) -> Value {
    json!({"to": {"topic": "stock:AAPL"}, "type": "stock", "data": {"px": i}})
}

#[actix_web::test]
async fn a_cross_origin_page_streams_custom_types_in_order() {
    let Some(Scene {
        mut browser,
        app,
        origin,
        database_url: _,
        dir: _dir,
    }) = scene().await
    else {
        return;
    };
    let t = tenant_for(&app, "shop", &[&origin]).await;
    let url = page_url(
        &origin,
        &app,
        &t,
        &t.token("alice", &["stock:*"]),
        "stock:AAPL",
    );
    browser.open_streaming("c1", "page", &url).await;
    assert_eq!(
        browser.eval("page", "window.herald.session").await,
        204,
        "the session was posted"
    );
    // The stream is authenticated by the cookie alone: the page never sends the token to it.
    app.publish_ok(
        &t.api_key,
        &json!({"events": [
            {"to": {"user": "alice"}, "type": "mail", "data": {"subject": "Hi"}},
            stock(1),
            {"to": {"broadcast": true}, "type": "score", "data": "2 – 1"},
            {"to": {"user": "bob"}, "type": "mail", "data": "not for alice"},
            {"to": {"user": "alice"}, "data": "multi\nline"}
        ]}),
    )
    .await;
    browser
        .wait(
            "page",
            "window.herald.events.length >= 4",
            Duration::from_secs(10),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        browser.events("page").await,
        [
            ("mail".into(), r#"{"subject":"Hi"}"#.into()),
            ("stock".into(), r#"{"px":1}"#.into()),
            ("score".into(), "2 – 1".into()),
            ("message".into(), "multi\nline".into()),
        ]
    );
    browser.quit().await;
}

#[actix_web::test]
async fn the_browser_reconnects_after_a_restart_and_gets_every_event_once() {
    let Some(Scene {
        mut browser,
        app,
        origin,
        database_url,
        dir,
    }) = scene().await
    else {
        return;
    };
    let port: u16 = app.address.rsplit(':').next().unwrap().parse().unwrap();
    let t = tenant_for(&app, "restart", &[&origin]).await;
    let url = page_url(
        &origin,
        &app,
        &t,
        &t.token("alice", &["stock:*"]),
        "stock:AAPL",
    );
    browser.open_streaming("c1", "page", &url).await;

    for i in 0..10 {
        app.publish_ok(&t.api_key, &stock(i)).await;
    }
    browser
        .wait(
            "page",
            "window.herald.events.length >= 10",
            Duration::from_secs(10),
        )
        .await;
    // Herald goes away (its streams end) and comes back on the same port and database;
    // events are published before the browser has reconnected.
    app.stopper.stop().await;
    drop(app);
    let app = spawn_with_settings(
        browser_settings(&database_url, port),
        dir.path().to_path_buf(),
        None,
    )
    .await;
    for i in 10..20 {
        app.publish_ok(&t.api_key, &stock(i)).await;
    }
    browser
        .wait("page", "window.herald.opens >= 2", Duration::from_secs(10))
        .await;
    for i in 20..30 {
        app.publish_ok(&t.api_key, &stock(i)).await;
    }
    browser
        .wait(
            "page",
            "window.herald.events.length >= 30",
            Duration::from_secs(10),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got: Vec<String> = browser
        .events("page")
        .await
        .into_iter()
        .map(|(_, data)| data)
        .collect();
    let expected: Vec<String> = (0..30).map(|i| format!(r#"{{"px":{i}}}"#)).collect();
    assert_eq!(
        got, expected,
        "every event exactly once, in order, across the restart"
    );
    assert!(
        browser
            .eval("page", "window.herald.errors")
            .await
            .as_u64()
            .unwrap()
            >= 1
    );
    browser.quit().await;
}

#[actix_web::test]
async fn a_page_on_an_origin_not_allowed_can_open_neither_session_nor_stream() {
    let Some(mut browser) = Browser::launch().await else {
        return;
    };
    let dir = TempDir::new().unwrap();
    let (app, _) = start_herald(&dir).await;
    let allowed = serve_page();
    let stranger = serve_page();
    let t = tenant_for(&app, "guarded", &[&allowed]).await;
    let token = t.token("alice", &[]);
    browser
        .open("c1", "page", &page_url(&stranger, &app, &t, &token, ""))
        .await;
    // CORS refusals: the session fetch fails as a network error, and the EventSource
    // fails for good (readyState CLOSED) instead of reconnecting.
    browser
        .wait(
            "page",
            "window.herald.sessionError !== null",
            Duration::from_secs(10),
        )
        .await;
    browser
        .wait(
            "page",
            "window.herald.readyState === 2",
            Duration::from_secs(10),
        )
        .await;
    assert!(
        browser
            .eval("page", "window.herald.sessionError")
            .await
            .as_str()
            .unwrap()
            .contains("TypeError")
    );
    app.publish_ok(
        &t.api_key,
        &json!({"to": {"user": "alice"}, "data": "secret"}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(browser.events("page").await, []);
    assert_eq!(browser.eval("page", "window.herald.opens").await, 0);
    browser.quit().await;
}

#[actix_web::test]
async fn two_tenants_in_one_browser_each_get_only_their_own_events() {
    let Some(Scene {
        mut browser,
        app,
        origin,
        database_url: _,
        dir: _dir,
    }) = scene().await
    else {
        return;
    };
    let a = tenant_for(&app, "tenant-a", &[&origin]).await;
    let b = tenant_for(&app, "tenant-b", &[&origin]).await;
    // One browser (one cookie jar), the same user id in both tenants.
    for (page, tenant) in [("a", &a), ("b", &b)] {
        let token = tenant.token("alice", &["news"]);
        let url = page_url(&origin, &app, tenant, &token, "news");
        browser.open_streaming("c1", page, &url).await;
    }
    app.publish_ok(
        &a.api_key,
        &json!({"events": [
            {"to": {"user": "alice"}, "data": "A user"},
            {"to": {"topic": "news"}, "data": "A news"},
            {"to": {"broadcast": true}, "data": "A all"}
        ]}),
    )
    .await;
    app.publish_ok(
        &b.api_key,
        &json!({"to": {"user": "alice"}, "data": "B user"}),
    )
    .await;
    browser
        .wait(
            "a",
            "window.herald.events.length >= 3",
            Duration::from_secs(10),
        )
        .await;
    browser
        .wait(
            "b",
            "window.herald.events.length >= 1",
            Duration::from_secs(10),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let data =
        |events: Vec<(String, String)>| events.into_iter().map(|(_, d)| d).collect::<Vec<_>>();
    assert_eq!(
        data(browser.events("a").await),
        ["A user", "A news", "A all"]
    );
    assert_eq!(data(browser.events("b").await), ["B user"]);
    browser.quit().await;
}

#[actix_web::test]
async fn an_expired_token_ends_the_stream_with_session_expired() {
    let Some(Scene {
        mut browser,
        app,
        origin,
        database_url: _,
        dir: _dir,
    }) = scene().await
    else {
        return;
    };
    let t = tenant_for(&app, "expiring", &[&origin]).await;
    let token = t.token_with(json!({"sub": "alice", "aud": "herald", "exp": now_secs() + 3}));
    browser
        .open_streaming("c1", "page", &page_url(&origin, &app, &t, &token, ""))
        .await;
    browser
        .wait(
            "page",
            "window.herald.events.some(e => e.type === 'session-expired')",
            Duration::from_secs(10),
        )
        .await;
    browser.quit().await;
}

/// The demo page of the README: `local` settings (the relaxed same-site cookie), the demo
/// tenant seeded for the page's origin, a notification published with curl showing up.
#[actix_web::test]
async fn the_demo_page_shows_a_published_notification() {
    let Some(mut browser) = Browser::launch().await else {
        return;
    };
    let dir = TempDir::new().unwrap();
    let url = fresh_database_url(dir.path()).await;
    let mut settings = test_settings(&url);
    settings.seed.demo_tenant = true;
    settings.demo.enabled = true;
    settings.demo.port = 0;
    let app = spawn_with_settings(settings, dir.path().to_path_buf(), None).await;
    let demo_port = app.demo_page.expect("the demo page is served");
    let key: Value = app
        .admin(Method::POST, "/admin/tenants/demo/api-keys", None)
        .await
        .json()
        .await
        .unwrap();
    browser
        .open("c1", "demo", &format!("http://localhost:{demo_port}/"))
        .await;
    browser
        .wait(
            "demo",
            "document.getElementById('state').textContent === 'open'",
            Duration::from_secs(10),
        )
        .await;
    app.publish_ok(
        key["key"].as_str().unwrap(),
        &json!({"events": [
            {"to": {"user": "alice"}, "type": "mail", "data": {"subject": "Invoice ready"}},
            {"to": {"topic": "stock:AAPL"}, "type": "stock", "data": {"sym": "AAPL", "px": 187.3}}
        ]}),
    )
    .await;
    browser
        .wait(
            "demo",
            "document.getElementById('mail').textContent.includes('Invoice ready') \
             && document.getElementById('stocks').textContent.includes('AAPL 187.3')",
            Duration::from_secs(10),
        )
        .await;
    browser.quit().await;
}
