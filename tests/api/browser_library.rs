//! herald.js, the browser library, as Herald serves it (`GET /herald.js`) and as a tenant's
//! page on another origin uses it in real Chromium: events by type, the inbox, one stream
//! shared by the tabs of an origin and handed over when its tab closes, tokens renewed before
//! they expire, `reset`. The page is `tests/browser/library.html`.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{
    ACCESS_CONTROL_ALLOW_ORIGIN, CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH,
};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::support::browser::{
    Browser, LibraryOrigin, allow_origins, library_url, serve_library_page, start_herald,
};
use crate::support::{TestApp, TestTenant, spawn_app};

const WAIT: Duration = Duration::from_secs(15);
const LIBRARY: &[u8] = include_bytes!("../../clients/js/dist/herald.js");

#[actix_web::test]
async fn herald_js_is_the_package_s_module_with_caching_headers_and_304() {
    let app = spawn_app().await;
    let url = format!("{}/herald.js", app.address);
    let response = app.api.client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let header = |name| {
        response
            .headers()
            .get(name)
            .map(|v: &reqwest::header::HeaderValue| v.to_str().unwrap().to_owned())
    };
    assert_eq!(
        header(CONTENT_TYPE).as_deref(),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(
        header(CACHE_CONTROL).as_deref(),
        Some("public, max-age=600")
    );
    // A module script from another origin is fetched in CORS mode, without credentials.
    assert_eq!(header(ACCESS_CONTROL_ALLOW_ORIGIN).as_deref(), Some("*"));
    let etag = header(ETAG).expect("an ETag");
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    assert_eq!(
        response.bytes().await.unwrap(),
        LIBRARY,
        "the bytes of clients/js/dist/herald.js"
    );

    for validator in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"other\", {etag}"),
    ] {
        let cached = app
            .api
            .client
            .get(&url)
            .header(IF_NONE_MATCH, &validator)
            .send()
            .await
            .unwrap();
        assert_eq!(cached.status(), StatusCode::NOT_MODIFIED, "{validator}");
        assert_eq!(cached.headers().get(ETAG).unwrap().to_str().unwrap(), etag);
        assert!(cached.headers().contains_key(CACHE_CONTROL));
        assert!(cached.bytes().await.unwrap().is_empty());
    }
    let stale = app
        .api
        .client
        .get(&url)
        .header(IF_NONE_MATCH, "\"an-older-version\"")
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 200);
    assert_eq!(stale.bytes().await.unwrap(), LIBRARY);
}

/// Herald, Chromium and the library page's origin, with a tenant that allows it.
struct LibraryScene {
    browser: Browser,
    app: TestApp,
    tenant: TestTenant,
    page: LibraryOrigin,
    _dir: TempDir,
}

async fn library_scene(slug: &str, token_secs: i64) -> Option<LibraryScene> {
    library_scene_with(slug, token_secs, None).await
}

async fn library_scene_with(
    slug: &str,
    token_secs: i64,
    issued_secs_ago: Option<i64>,
) -> Option<LibraryScene> {
    let browser = Browser::launch().await?;
    let dir = TempDir::new().unwrap();
    let (app, _) = start_herald(&dir).await;
    // The tenant's origin is known only once its server listens; it is allowed after.
    let tenant = app.create_tenant(slug).await;
    let page = serve_library_page(&tenant, token_secs, issued_secs_ago);
    allow_origins(&app, slug, &[&page.origin]).await;
    Some(LibraryScene {
        browser,
        app,
        tenant,
        page,
        _dir: dir,
    })
}

impl LibraryScene {
    fn url(&self, user: &str, topics: &str, types: &str, extra: &str) -> String {
        library_url(
            &self.page,
            &self.app,
            &self.tenant,
            user,
            topics,
            types,
            extra,
        )
    }

    /// Opens a tab and waits until its client says the stream is open.
    async fn open_tab(&mut self, tab: &str, url: &str) {
        self.browser.open("c1", tab, url).await;
        self.browser
            .wait(tab, "window.page?.states.includes('open')", WAIT)
            .await;
    }

    /// Opens three tabs of the page for alice (topic `news`); the first holds the one stream.
    async fn open_three_tabs(&mut self) {
        let url = self.url("alice", "news", "message", "");
        for tab in ["tab1", "tab2", "tab3"] {
            self.open_tab(tab, &url).await;
        }
        self.app.wait_for_open_streams(1).await;
    }

    /// Publishes numbered events, one every 20 ms, for `duration`; returns how many.
    async fn publish_for(&self, duration: Duration) -> usize {
        let began = std::time::Instant::now();
        let mut published = 0;
        while began.elapsed() < duration {
            self.publish(numbered_event(published)).await;
            published += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        published
    }

    async fn publish(&self, body: Value) {
        self.app.publish_ok(&self.tenant.api_key, &body).await;
    }

    /// The data of the events a tab's listeners were handed, in order.
    async fn data(&mut self, tab: &str) -> Vec<String> {
        let data = self
            .browser
            .eval(tab, "window.page.events.map((e) => e.data)")
            .await;
        serde_json::from_value(data).unwrap()
    }

    /// Waits until a tab has `count` events, then a little longer for any repeat.
    async fn wait_for_events(&mut self, tab: &str, count: usize) -> Vec<String> {
        self.browser
            .wait(
                tab,
                &format!("window.page.events.length >= {count}"),
                Duration::from_secs(30),
            )
            .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.data(tab).await
    }
}

fn numbered(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| i.to_string()).collect()
}

#[actix_web::test]
async fn a_page_on_another_origin_imports_herald_js_and_gets_its_events_and_inbox() {
    let Some(mut s) = library_scene("lib", 3600).await else {
        return;
    };
    let url = s.url("alice", "stock:AAPL", "mail,stock,score", "");
    s.open_tab("page", &url).await;
    s.publish(json!({"events": [
        {"to": {"user": "alice"}, "type": "mail", "data": {"subject": "Hi"}, "inbox": true},
        {"to": {"topic": "stock:AAPL"}, "type": "stock", "data": {"px": 1}},
        {"to": {"topic": "stock:MSFT"}, "type": "stock", "data": {"px": 2}},
        {"to": {"broadcast": true}, "type": "score", "data": "2 – 1"},
        {"to": {"user": "bob"}, "type": "mail", "data": "not for alice"},
    ]}))
    .await;
    assert_eq!(
        s.wait_for_events("page", 3).await,
        [r#"{"subject":"Hi"}"#, r#"{"px":1}"#, "2 – 1"]
    );
    // Listeners get the data parsed when it is JSON, and the event's type and id.
    let first = s.browser.eval("page", "window.page.events[0]").await;
    assert_eq!(first["parsed"]["subject"], "Hi");
    assert_eq!(first["type"], "mail");
    let mail_id = first["id"].as_str().unwrap().to_owned();
    assert_eq!(
        s.browser.eval("page", "window.client.lastEventId").await,
        s.browser.eval("page", "window.page.events[2].id").await
    );

    // The inbox: the live count, and the calls over the browser endpoints (Bearer tokens
    // from the page's `token()`).
    s.browser
        .wait("page", "window.page.inbox.at(-1) === 1", WAIT)
        .await;
    let listed = s
        .browser
        .eval(
            "page",
            "window.client.inbox.list({ unread: true }).then((p) => [p.unread, p.items.map((i) => i.id)])",
        )
        .await;
    assert_eq!(listed, json!([1, [mail_id]]));
    let read = format!("window.client.inbox.read(['{mail_id}'])");
    assert_eq!(s.browser.eval("page", &read).await, json!({"unread": 0}));
    s.browser
        .wait("page", "window.page.inbox.at(-1) === 0", WAIT)
        .await;
    let unread = format!("window.client.inbox.unread(['{mail_id}'])");
    assert_eq!(s.browser.eval("page", &unread).await, json!({"unread": 1}));
    assert_eq!(
        s.browser
            .eval("page", "window.client.inbox.readAll()")
            .await,
        json!({"unread": 0})
    );
    s.browser
        .wait("page", "window.page.inbox.at(-1) === 0", WAIT)
        .await;
    let refused = s
        .browser
        .eval(
            "page",
            "window.client.inbox.read(['not an id']).catch((e) => [e.name, e.status, e.code])",
        )
        .await;
    assert_eq!(refused, json!(["HeraldError", 422, "invalid_inbox"]));

    // close() ends the stream.
    s.browser.eval("page", "window.client.close()").await;
    s.app.wait_for_open_streams(0).await;
    assert_eq!(
        s.browser.eval("page", "window.client.state").await,
        "closed"
    );
    s.browser.quit().await;
}

/// Event `i` of a numbered run: to alice, her topic or everyone, in turns.
fn numbered_event(i: usize) -> Value {
    let to = match i % 3 {
        0 => json!({"user": "alice"}),
        1 => json!({"topic": "news"}),
        _ => json!({"broadcast": true}),
    };
    json!({"to": to, "data": i})
}

async fn publish_numbered(s: &LibraryScene, range: std::ops::Range<usize>) {
    for i in range {
        s.publish(numbered_event(i)).await;
    }
}

/// Publishes a numbered run in the background, one event every 20 ms.
fn publish_paced(s: &LibraryScene, range: std::ops::Range<usize>) -> tokio::task::JoinHandle<()> {
    let api = crate::support::Api {
        address: s.app.address.clone(),
        client: reqwest::Client::new(),
    };
    let key = s.tenant.api_key.clone();
    tokio::spawn(async move {
        for i in range {
            api.publish_ok(&key, &numbered_event(i)).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
}

#[actix_web::test]
async fn three_tabs_share_one_stream_and_each_gets_every_event_once_in_order() {
    let Some(mut s) = library_scene("tabs", 3600).await else {
        return;
    };
    s.open_three_tabs().await;
    // What the operator sees too.
    let usage: Value = s
        .app
        .admin(reqwest::Method::GET, "/admin/tenants/tabs/usage", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(usage["streams_open"], 1, "{usage}");
    publish_numbered(&s, 0..30).await;
    for tab in ["tab1", "tab2", "tab3"] {
        assert_eq!(s.wait_for_events(tab, 30).await, numbered(0..30), "{tab}");
    }
    s.app.wait_for_open_streams(1).await;

    // Without sharing (as where Web Locks or BroadcastChannel are missing) a tab holds its
    // own stream.
    let own = s.url("alice", "news", "message", "&share=false");
    s.open_tab("own", &own).await;
    s.app.wait_for_open_streams(2).await;
    s.browser.quit().await;
}

#[actix_web::test]
async fn when_the_leader_tab_closes_another_takes_over_with_nothing_lost_or_repeated() {
    let Some(mut s) = library_scene("takeover", 3600).await else {
        return;
    };
    // The first tab to ask for the stream's lock holds it.
    s.open_three_tabs().await;
    publish_numbered(&s, 0..10).await;
    s.wait_for_events("tab2", 10).await;

    // Events go on being published while the leader's tab closes.
    let publisher = publish_paced(&s, 10..60);
    tokio::time::sleep(Duration::from_millis(200)).await;
    s.browser.close("tab1").await;
    publisher.await.unwrap();
    for tab in ["tab2", "tab3"] {
        assert_eq!(s.wait_for_events(tab, 60).await, numbered(0..60), "{tab}");
    }
    s.app.wait_for_open_streams(1).await;
    s.browser.quit().await;
}

#[actix_web::test]
async fn an_eight_second_token_is_renewed_with_no_event_lost_or_repeated() {
    // Eight-second tokens are renewed about two seconds before they expire: time enough
    // for a new token and session on a loaded machine, where a renewal that comes too late
    // does show as a reconnect (the old stream has ended).
    let Some(mut s) = library_scene("renewal", 8).await else {
        return;
    };
    let url = s.url("alice", "news", "message", "");
    s.open_tab("page", &url).await;
    // Fifteen seconds of events, one every 20 ms: the session is renewed at least twice on
    // the way, and each time events arrive on the old stream while the new one opens.
    let published = s.publish_for(Duration::from_secs(15)).await;
    assert_eq!(
        s.wait_for_events("page", published).await,
        numbered(0..published)
    );
    let mints = s.page.mints.load(std::sync::atomic::Ordering::SeqCst);
    assert!(mints >= 3, "the page asked for {mints} tokens");
    // The streams opened with older tokens were closed as their successors opened.
    s.app.wait_for_open_streams(1).await;
    let states = s.browser.eval("page", "window.page.states").await;
    assert_eq!(
        states,
        json!(["open"]),
        "renewals do not show as reconnects"
    );
    s.browser.quit().await;
}

#[actix_web::test]
async fn session_expired_brings_a_new_token_with_no_event_lost_or_repeated() {
    // Tokens that claim to have been issued hours ago: by its claims each has hours left
    // before the library would renew it, but Herald ends the stream at `exp`, 4 s on.
    let Some(mut s) = library_scene_with("expiring", 4, Some(10_000)).await else {
        return;
    };
    let url = s.url("alice", "news", "message", "");
    s.open_tab("page", &url).await;
    let published = s.publish_for(Duration::from_secs(10)).await;
    assert_eq!(
        s.wait_for_events("page", published).await,
        numbered(0..published)
    );
    let mints = s.page.mints.load(std::sync::atomic::Ordering::SeqCst);
    assert!(mints >= 3, "the page asked for {mints} tokens");
    s.app.wait_for_open_streams(1).await;
    s.browser.quit().await;
}

#[actix_web::test]
async fn reset_reaches_the_page_when_its_resume_position_is_gone() {
    let Some(mut s) = library_scene("gone", 3600).await else {
        return;
    };
    let published = s
        .app
        .publish_ok(
            &s.tenant.api_key,
            &json!({"events": (0..6).map(|i| json!({"to": {"user": "alice"}, "data": i})).collect::<Vec<_>>()}),
        )
        .await;
    let kept_from_an_earlier_visit = published[0]["id"].as_str().unwrap().to_owned();
    s.app
        .patch_tenant("gone", json!({"retention": {"max_events": 2}}))
        .await;
    s.app.state.store.prune(None).await.unwrap();
    let url = s.url(
        "alice",
        "",
        "message",
        &format!("&lastEventId={kept_from_an_earlier_visit}"),
    );
    s.open_tab("page", &url).await;
    s.browser
        .wait("page", "window.page.resets.length === 1", WAIT)
        .await;
    assert_eq!(
        s.browser.eval("page", "window.page.resets").await,
        json!(["history_expired"])
    );
    // After the reset the stream goes on from the log's head.
    s.publish(json!({"to": {"user": "alice"}, "data": "after"}))
        .await;
    assert_eq!(s.wait_for_events("page", 1).await, ["after"]);
    s.browser.quit().await;
}

/// Streams opened since Herald started, on either path.
fn streams_opened(app: &TestApp) -> u64 {
    let opened = &app.state.hub.stats().opened;
    opened.herald.load(std::sync::atomic::Ordering::SeqCst)
        + opened.actix.load(std::sync::atomic::Ordering::SeqCst)
}

/// A browser freezes a background tab after firing `freeze` (headless Chromium never freezes
/// a page, so the test fires the event): the tab lets go of the stream, another takes over,
/// and on `resume` it follows.
#[actix_web::test]
async fn a_leader_tab_being_frozen_hands_the_stream_over_and_follows_on_resume() {
    let Some(mut s) = library_scene("frozen", 3600).await else {
        return;
    };
    s.open_three_tabs().await;
    assert_eq!(streams_opened(&s.app), 1);
    publish_numbered(&s, 0..10).await;
    s.wait_for_events("tab2", 10).await;

    let publisher = publish_paced(&s, 10..60);
    tokio::time::sleep(Duration::from_millis(200)).await;
    s.browser
        .eval("tab1", "document.dispatchEvent(new Event('freeze'))")
        .await;
    publisher.await.unwrap();
    for tab in ["tab2", "tab3"] {
        assert_eq!(s.wait_for_events(tab, 60).await, numbered(0..60), "{tab}");
    }
    s.app.wait_for_open_streams(1).await;
    assert_eq!(streams_opened(&s.app), 2, "another tab opened the stream");

    s.browser
        .eval("tab1", "document.dispatchEvent(new Event('resume'))")
        .await;
    publish_numbered(&s, 60..70).await;
    for tab in ["tab1", "tab2", "tab3"] {
        assert_eq!(s.wait_for_events(tab, 70).await, numbered(0..70), "{tab}");
    }
    assert_eq!(streams_opened(&s.app), 2, "the resumed tab follows");
    s.browser.quit().await;
}

impl LibraryScene {
    /// Publishes one event and answers its id.
    async fn publish_id(&self, body: Value) -> String {
        let events = self.app.publish_ok(&self.tenant.api_key, &body).await;
        events[0]["id"].as_str().unwrap().to_owned()
    }

    /// Waits until the backend's receipt of `id` for `user` has `field` set.
    async fn wait_for_fact(&self, user: &str, id: &str, field: &str) -> Value {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let receipt = self.app.receipts(&self.tenant, user, &[id]).await.remove(0);
            if receipt[field].is_string() {
                return receipt;
            }
            assert!(std::time::Instant::now() < deadline, "{receipt}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The receipts a tab's library sent: when (ms) and what.
    async fn receipts_sent(&mut self, tab: &str) -> Vec<Value> {
        let sent = self.browser.eval(tab, "window.page.receipts").await;
        serde_json::from_value(sent).unwrap()
    }
}

#[actix_web::test]
async fn a_visible_page_with_a_listener_tells_delivered_and_seen_and_no_fallback_fires() {
    let Some(mut s) = library_scene("seen", 3600).await else {
        return;
    };
    let receiver = crate::support::receiver::Receiver::start().await;
    s.app
        .create_webhook(&s.tenant, &receiver.url, json!(["notification.unseen"]))
        .await;
    let url = s.url("alice", "", "mail", "");
    s.open_tab("tab1", &url).await;
    let id = s
        .publish_id(
            json!({"to": {"user": "alice"}, "type": "mail", "data": "hi",
                           "fallback": {"after_secs": 3}}),
        )
        .await;
    let receipt = s.wait_for_fact("alice", &id, "seen_at").await;
    assert!(receipt["delivered_at"].is_string());
    // An event no listener was handed is delivered (covered by the next one's position),
    // not seen; nor is one handed to a listener while the page is hidden.
    let unheard = s
        .publish_id(json!({"to": {"user": "alice"}, "type": "other"}))
        .await;
    s.browser.eval("tab1", "window.hidden = true").await;
    let hidden = s
        .publish_id(json!({"to": {"user": "alice"}, "type": "mail"}))
        .await;
    s.wait_for_fact("alice", &hidden, "delivered_at").await;
    for id in [&unheard, &hidden] {
        let receipt = s.app.receipts(&s.tenant, "alice", &[id]).await.remove(0);
        assert!(receipt["delivered_at"].is_string(), "{receipt}");
        assert_eq!(receipt["seen_at"], Value::Null, "{receipt}");
    }
    // The fallback's time passes: it was seen, so nothing is sent.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(receiver.received().is_empty());
    let receipt = s.app.receipts(&s.tenant, "alice", &[&id]).await.remove(0);
    assert_eq!(receipt["fallback"]["status"], "skipped");
    s.browser.quit().await;
}

#[actix_web::test]
async fn with_auto_seen_off_only_what_the_app_names_is_seen() {
    let Some(mut s) = library_scene("quiet", 3600).await else {
        return;
    };
    let url = s.url("alice", "", "mail", "&autoSeen=false");
    s.open_tab("tab1", &url).await;
    let id = s
        .publish_id(json!({"to": {"user": "alice"}, "type": "mail", "data": "hi"}))
        .await;
    s.wait_for_events("tab1", 1).await;
    let receipt = s.wait_for_fact("alice", &id, "delivered_at").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let receipt_later = s.app.receipts(&s.tenant, "alice", &[&id]).await.remove(0);
    assert_eq!(receipt_later["seen_at"], Value::Null, "{receipt}");
    s.browser
        .eval("tab1", &format!("window.client.seen(['{id}'])"))
        .await;
    s.wait_for_fact("alice", &id, "seen_at").await;
    s.browser.quit().await;
}

#[actix_web::test]
async fn three_tabs_send_at_most_one_receipt_a_second_for_all_of_them() {
    let Some(mut s) = library_scene("receipts", 3600).await else {
        return;
    };
    // Each tab listens for a type of its own: what the others see reaches Herald through
    // the tab holding the stream.
    for (tab, kind) in [("tab1", "a"), ("tab2", "b"), ("tab3", "c")] {
        let url = s.url("alice", "", kind, "");
        s.open_tab(tab, &url).await;
    }
    s.app.wait_for_open_streams(1).await;
    let mut ids = Vec::new();
    for round in 0..5 {
        for kind in ["a", "b", "c"] {
            let body = json!({"to": {"user": "alice"}, "type": kind, "data": round});
            ids.push(s.publish_id(body).await);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for id in &ids {
        s.wait_for_fact("alice", id, "seen_at").await;
    }
    let mut sent = Vec::new();
    for tab in ["tab1", "tab2", "tab3"] {
        let receipts = s.receipts_sent(tab).await;
        if tab != "tab1" {
            assert!(receipts.is_empty(), "{tab} sent {receipts:?}");
        }
        sent.extend(receipts);
    }
    let times: Vec<i64> = sent.iter().map(|r| r["at"].as_i64().unwrap()).collect();
    assert!(times.len() >= 2, "{sent:?}");
    for pair in times.windows(2) {
        assert!(
            pair[1] - pair[0] >= 990,
            "receipts {} ms apart",
            pair[1] - pair[0]
        );
    }
    // Nothing new, nothing sent.
    let before = sent.len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(s.receipts_sent("tab1").await.len(), before);
    s.browser.quit().await;
}
