//! The browser flow in real headless Chromium: a tenant's page on one origin, Herald on
//! another, the session cookie and an EventSource with credentials. Chromium is driven by
//! playwright-core (`tests/browser/driver.mjs`); `.ci/run` installs both. Without them the
//! tests say so and skip — except under CI, where that is a failure.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::support::browser::{
    Browser, Scene, browser_settings, page_url, scene, serve_page, start_herald, tenant_for,
};
use crate::support::{fresh_database_url, now_secs, spawn_with_settings, test_settings};

fn stock(i: usize) -> Value {
    json!({"to": {"topic": "stock:AAPL"}, "type": "stock", "data": {"px": i}})
}

#[actix_web::test]
async fn a_cross_origin_page_streams_custom_types_in_order() {
    let Some(Scene {
        mut browser,
        app,
        origin,
        ..
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
    // The session answer closed its connection, so the EventSource came on a fresh one:
    // Herald's own stream path served it (when it is on).
    let opened = &app.state.hub.stats().opened;
    let by_path = (
        opened.herald.load(Ordering::SeqCst),
        opened.actix.load(Ordering::SeqCst),
    );
    let expected = match app.state.settings.stream.herald_path {
        true => (1, 0),
        false => (0, 1),
    };
    assert_eq!(
        by_path, expected,
        "streams opened on (Herald's, actix-web's) path"
    );
    browser.quit().await;
}

/// Herald in `local` settings (the relaxed same-site cookie) with the demo tenant seeded
/// and its page served.
async fn demo_app(dir: &TempDir) -> crate::support::TestApp {
    let url = fresh_database_url(dir.path()).await;
    let mut settings = test_settings(&url);
    settings.seed.demo_tenant = true;
    settings.demo.enabled = true;
    settings.demo.port = 0;
    spawn_with_settings(settings, dir.path().to_path_buf(), None).await
}

/// The demo page's bell: its badge follows inbox items published to the user and reads made
/// in either of two tabs, which share one stream.
#[actix_web::test]
async fn the_demo_page_s_unread_badge_follows_publishes_and_reads_in_two_tabs() {
    let Some(mut browser) = Browser::launch().await else {
        return;
    };
    let dir = TempDir::new().unwrap();
    let app = demo_app(&dir).await;
    let demo = format!(
        "http://localhost:{}/",
        app.demo_page.expect("the demo page")
    );
    let key = app.create_api_key("demo").await;
    let key = key["key"].as_str().unwrap();
    let tabs = ["tab1", "tab2"];
    for tab in tabs {
        browser.open("c1", tab, &demo).await;
        browser
            .wait(
                tab,
                "document.getElementById('state').textContent === 'open' \
                 && document.getElementById('unread').textContent === '0'",
                Duration::from_secs(10),
            )
            .await;
    }
    // The page is built on herald.js: its two tabs share one stream.
    app.wait_for_open_streams(1).await;
    let mail = |subject: &str| json!({"to": {"user": "alice"}, "type": "mail", "data": {"subject": subject}, "inbox": true});
    app.publish_ok(key, &mail("Invoice ready")).await;
    app.publish_ok(key, &mail("Meeting moved")).await;
    let badge = |count: usize| {
        format!(
            "document.getElementById('unread').textContent === '{count}' \
             && document.querySelectorAll('#inbox li.unread').length === {count}"
        )
    };
    for tab in tabs {
        browser.wait(tab, &badge(2), Duration::from_secs(10)).await;
    }
    // A click on an item in the first tab reads it; both badges follow.
    browser
        .eval("tab1", "document.querySelector('#inbox li.unread').click()")
        .await;
    for tab in tabs {
        browser.wait(tab, &badge(1), Duration::from_secs(10)).await;
    }
    // "Mark all read" in the second.
    browser
        .eval("tab2", "document.getElementById('read-all').click()")
        .await;
    for tab in tabs {
        browser.wait(tab, &badge(0), Duration::from_secs(10)).await;
    }
    browser.quit().await;
}

#[actix_web::test]
async fn the_browser_reconnects_after_a_restart_and_gets_every_event_once() {
    let Some(Scene {
        mut browser,
        mut app,
        origin,
        database_url,
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
    let dir = app.take_tempdir().unwrap();
    drop(app);
    let app = spawn_with_settings(
        browser_settings(&database_url, port),
        dir.path().to_path_buf(),
        Some(dir),
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
        ..
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
        ..
    }) = scene().await
    else {
        return;
    };
    let t = tenant_for(&app, "expiring", &[&origin]).await;
    // Long enough to open the stream on a loaded machine (verification allows another
    // `jwt.leeway_secs`), short enough to watch it run out.
    let token = t.token_with(json!({"sub": "alice", "aud": "herald", "exp": now_secs() + 8}));
    browser
        .open_streaming("c1", "page", &page_url(&origin, &app, &t, &token, ""))
        .await;
    browser
        .wait(
            "page",
            "window.herald.events.some(e => e.type === 'session-expired')",
            Duration::from_secs(15),
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
    let app = demo_app(&dir).await;
    let demo_port = app.demo_page.expect("the demo page is served");
    let key = app.create_api_key("demo").await;
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
