//! Herald Console (`/console`) in real Chromium, against a real Herald: the operator's way
//! from a new tenant to its first notification in the live tail; a tenant's API key seeing
//! its own tenant only; the user inspector following a page that streams and acknowledges;
//! a failing webhook's attempts and its retry once fixed; usage charts with and without
//! figures; every view checked by axe-core and photographed at desktop and phone sizes
//! (`target/console-screenshots/`, not committed); the files' security headers.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::support::app::ADMIN_TOKEN;
use crate::support::browser::{Browser, library_url, serve_library_page, start_herald};
use crate::support::receiver::{Answer, Receiver};
use crate::support::{TestApp, TestTenant, spawn_app};

const VIEWS: [&str; 6] = [
    "Tenants",
    "Live tail",
    "Send",
    "User inspector",
    "Webhooks",
    "Usage",
];
const SIZES: [(&str, u32, u32); 2] = [("desktop", 1280, 800), ("phone", 390, 844)];
const SCREENSHOTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/target/console-screenshots");

struct ConsoleScene {
    browser: Browser,
    app: TestApp,
    _dir: TempDir,
}

async fn console_scene() -> Option<ConsoleScene> {
    let browser = Browser::launch().await?;
    let dir = TempDir::new().unwrap();
    let (app, _) = start_herald(&dir).await;
    Some(ConsoleScene {
        browser,
        app,
        _dir: dir,
    })
}

/// A string as a JavaScript literal.
fn js(text: &str) -> String {
    Value::from(text).to_string()
}

impl ConsoleScene {
    /// Opens the console in a browser of its own (`context`).
    async fn open(&mut self, context: &str, page: &str) {
        let url = format!("{}/console", self.app.address);
        self.browser.open(context, page, &url).await;
    }

    /// Runs Playwright code with `page`; its value.
    async fn run(&mut self, page: &str, code: &str) -> Value {
        let answer = self
            .browser
            .call(json!({"op": "run", "page": page, "js": code}))
            .await;
        if answer["ok"] != true {
            let shown = self
                .browser
                .call(json!({"op": "run", "page": page, "js": "return await page.locator('body').innerText();"}))
                .await;
            panic!(
                "{page}: {code}\n{answer}\nthe page shows:\n{}",
                shown["value"]
            );
        }
        answer["value"].clone()
    }

    async fn sign_in(&mut self, page: &str, credential: &str) {
        self.run(
            page,
            &format!(
                "await page.getByLabel('Admin token or API key').fill({});
                 await page.keyboard.press('Enter');",
                js(credential)
            ),
        )
        .await;
    }

    /// Goes to a view by its link and waits for its heading.
    async fn go(&mut self, page: &str, view: &str) {
        self.run(
            page,
            &format!(
                "await page.getByRole('navigation', {{name: 'Views'}}).getByRole('link', {{name: {view}, exact: true}}).click();
                 await page.locator('main h1').first().waitFor();",
                view = js(view)
            ),
        )
        .await;
    }

    /// Waits until `selector` shows (within `ms`).
    async fn see(&mut self, page: &str, selector: &str, ms: u64) {
        self.run(
            page,
            &format!(
                "await page.locator({}).first().waitFor({{timeout: {ms}}});",
                js(selector)
            ),
        )
        .await;
    }

    async fn text(&mut self, page: &str, selector: &str) -> String {
        let value = self
            .run(
                page,
                &format!(
                    "return await page.locator({}).first().innerText();",
                    js(selector)
                ),
            )
            .await;
        value.as_str().unwrap().to_owned()
    }

    /// axe-core's serious and critical findings on the page now: none allowed.
    async fn assert_accessible(&mut self, page: &str, view: &str) {
        let answer = self.browser.call(json!({"op": "axe", "page": page})).await;
        assert_eq!(answer["ok"], true, "{answer}");
        assert_eq!(
            answer["value"],
            json!([]),
            "{view}: accessibility violations"
        );
    }

    /// Saves what the page shows now as `target/console-screenshots/<name>.png`.
    async fn photograph(&mut self, page: &str, name: &str) {
        std::fs::create_dir_all(SCREENSHOTS).unwrap();
        let file = format!("{SCREENSHOTS}/{name}.png");
        self.run(
            page,
            &format!(
                "await page.screenshot({{path: {}, fullPage: true}});",
                js(&file)
            ),
        )
        .await;
    }

    /// Every view, at each size: checked by axe, and photographed.
    async fn check_every_view(&mut self, page: &str, views: &[&str], name: &str) {
        for (size, width, height) in SIZES {
            self.run(
                page,
                &format!("await page.setViewportSize({{width: {width}, height: {height}}});"),
            )
            .await;
            for view in views {
                self.go(page, view).await;
                // Let the view's reads settle before it is judged (the tail never idles the
                // network, so no network-idle wait).
                self.run(page, "await page.waitForTimeout(500);").await;
                self.assert_accessible(page, &format!("{view} at {size}"))
                    .await;
                // Readable at this width: nothing makes the page scroll sideways.
                let overflow = self
                    .run(
                        page,
                        "return await page.evaluate(() => document.documentElement.scrollWidth - innerWidth);",
                    )
                    .await;
                assert!(
                    overflow.as_i64().unwrap() <= 0,
                    "{view} at {size} is {overflow} px too wide"
                );
                let view = view.to_lowercase().replace(' ', "-");
                self.photograph(page, &format!("{name}-{view}-{size}"))
                    .await;
            }
        }
        self.run(
            page,
            "await page.setViewportSize({width: 1280, height: 800});",
        )
        .await;
    }
}

#[actix_web::test]
async fn the_operator_makes_a_tenant_and_keys_and_sees_a_test_notification_in_the_tail() {
    let Some(mut s) = console_scene().await else {
        return;
    };
    s.open("c1", "op").await;
    s.assert_accessible("op", "sign-in").await;
    // A wrong credential says so, with Herald's code.
    s.sign_in("op", "not-the-token").await;
    s.see("op", "[role=alert]", 5000).await;
    let alert = s.text("op", "[role=alert]").await;
    assert!(alert.contains("invalid_admin_token"), "{alert}");
    // The field does not echo what is typed.
    let kind = s
        .run(
            "op",
            "return await page.getByLabel('Admin token or API key').getAttribute('type');",
        )
        .await;
    assert_eq!(kind, "password");
    s.sign_in("op", ADMIN_TOKEN).await;
    s.see("op", "main h1:has-text('Tenants')", 5000).await;
    s.see("op", "text=No tenant yet", 5000).await;

    s.run(
        "op",
        "await page.getByLabel('Slug').fill('acme');
         await page.getByRole('button', {name: 'Create tenant'}).click();
         await page.getByRole('heading', {name: 'Tenant acme'}).waitFor();
         await page.getByLabel('Key name').fill('backend');
         await page.getByRole('button', {name: 'Create API key'}).click();
         await page.locator('.once input').first().waitFor();",
    )
    .await;
    let api_key = s
        .run(
            "op",
            "return await page.locator('.once input').first().inputValue();",
        )
        .await;
    let api_key = api_key.as_str().unwrap().to_owned();
    assert!(api_key.starts_with("hk_"), "{api_key}");
    s.run(
        "op",
        "await page.getByRole('button', {name: 'Create HS256 secret'}).click();
         await page.getByText(/HS256 secret of key/).waitFor();",
    )
    .await;
    let label = s.text("op", ".once:has-text('HS256 secret') label").await;
    let kid = label
        .trim_start_matches("HS256 secret of key ")
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let secret = s
        .run(
            "op",
            "return await page.locator('.once:has-text(\"HS256 secret\") input').inputValue();",
        )
        .await;
    let tenant = TestTenant {
        slug: "acme".into(),
        api_key: api_key.clone(),
        api_key_id: String::new(),
        kid,
        secret: secret.as_str().unwrap().to_owned(),
    };
    // What the console made works: the key publishes, the secret signs tokens Herald takes.
    s.app
        .publish_ok(&api_key, &json!({"to": {"user": "bob"}, "data": "first"}))
        .await;
    let token = tenant.token("bob", &[]);
    let stream = s.app.stream_request("acme", &token, "", None).await;
    assert_eq!(stream.status(), StatusCode::OK);
    drop(stream);
    // Shown once: once the tenant is opened again, the key is a prefix in a list.
    s.run(
        "op",
        "await page.getByRole('button', {name: 'Close tenant acme'}).click();
         await page.getByRole('button', {name: 'Edit acme'}).click();
         await page.getByRole('heading', {name: 'API keys'}).waitFor();
         await page.getByRole('cell', {name: /^hk_/}).first().waitFor();",
    )
    .await;
    let content = s.run("op", "return await page.content();").await;
    assert!(
        !content.as_str().unwrap().contains(&api_key),
        "the key shown again"
    );
    s.photograph("op", "tenant-detail").await;

    s.run(
        "op",
        "await page.getByRole('button', {name: 'Work with acme'}).click();",
    )
    .await;
    s.go("op", "Live tail").await;
    s.see("op", ".status strong:has-text('live')", 5000).await;
    s.go("op", "Send").await;
    s.run(
        "op",
        "await page.getByLabel('User id').fill('alice');
         await page.getByLabel('Type').fill('mail');
         await page.getByLabel('Data (JSON)').fill('{\"subject\": \"Hello\"}');
         await page.getByRole('button', {name: 'Send', exact: true}).click();
         await page.getByRole('heading', {name: \"Herald's answer\"}).waitFor();",
    )
    .await;
    let answer: Value = serde_json::from_str(&s.text("op", ".answer pre").await).unwrap();
    let id = answer["events"][0]["id"].as_str().unwrap().to_owned();
    s.run(
        "op",
        "await page.getByRole('link', {name: 'See it in the live tail'}).click();",
    )
    .await;
    // In the tail within a second of Herald's answer.
    s.see("op", &format!(".tail li:has-text('{id}')"), 1000)
        .await;
    let row = s.text("op", &format!(".tail li:has-text('{id}')")).await;
    assert!(row.contains("mail") && row.contains("user alice"), "{row}");
    let history = s.app.full_history(&api_key, "user=alice").await;
    assert_eq!(history[0]["id"], id.as_str());

    s.check_every_view("op", &VIEWS, "operator").await;
    // Signing out forgets the credential.
    s.run("op", "await page.getByRole('button', {name: 'Sign out'}).click(); await page.getByLabel('Admin token or API key').waitFor();")
        .await;
    let kept = s
        .run(
            "op",
            "return await page.evaluate(() => sessionStorage.length);",
        )
        .await;
    assert_eq!(kept, 0);
    s.browser.quit().await;
}

#[actix_web::test]
async fn a_tenant_s_api_key_sees_its_own_tenant_and_no_operator_view() {
    let Some(mut s) = console_scene().await else {
        return;
    };
    let tenant = s.app.create_tenant("acme").await;
    s.app.create_tenant("globex").await;
    s.open("c1", "eng").await;
    s.sign_in("eng", &tenant.api_key).await;
    s.see("eng", "main h1:has-text('Live tail of acme')", 5000)
        .await;
    let links = s
        .run(
            "eng",
            "return await page.getByRole('navigation', {name: 'Views'}).getByRole('link').allInnerTexts();",
        )
        .await;
    assert_eq!(
        links,
        json!(["Live tail", "Send", "User inspector", "Webhooks", "Usage"])
    );
    let header = s.text("eng", "header").await;
    assert!(
        header.contains("acme") && !header.contains("globex"),
        "{header}"
    );
    // The operator's API refuses the key, whatever the page tried.
    let status = s
        .run(
            "eng",
            "return await page.evaluate(async () => {
               const { credential } = JSON.parse(sessionStorage.getItem('herald.console'));
               const answer = await fetch('/admin/tenants', {headers: {Authorization: `Bearer ${credential}`}});
               return answer.status;
             });",
        )
        .await;
    assert_eq!(status, 401);
    // The credential is in the tab alone: not in a cookie, not in the URL.
    let (cookie, url) = (
        s.run("eng", "return await page.evaluate(() => document.cookie);")
            .await,
        s.run("eng", "return page.url();").await,
    );
    assert_eq!(cookie, "");
    assert!(!url.as_str().unwrap().contains(&tenant.api_key));
    // Its views act as its tenant: a test notification lands in acme's log.
    s.go("eng", "Send").await;
    s.run(
        "eng",
        "await page.getByLabel('User id').fill('carol');
         await page.getByRole('button', {name: 'Send', exact: true}).click();
         await page.getByRole('heading', {name: \"Herald's answer\"}).waitFor();",
    )
    .await;
    assert_eq!(
        s.app
            .full_history(&tenant.api_key, "user=carol")
            .await
            .len(),
        1
    );
    s.check_every_view(
        "eng",
        &["Live tail", "Send", "User inspector", "Webhooks", "Usage"],
        "tenant",
    )
    .await;
    s.browser.quit().await;
}

#[actix_web::test]
async fn the_user_inspector_shows_a_streaming_page_online_with_its_inbox_and_receipts() {
    let Some(mut s) = console_scene().await else {
        return;
    };
    let tenant = s.app.create_tenant("acme").await;
    let page = serve_library_page(&tenant, 3600, None);
    s.app
        .patch_tenant("acme", json!({"allowed_origins": [page.origin]}))
        .await;
    let url = library_url(&page, &s.app, &tenant, "alice", "", "mail", "");
    s.browser.open("c2", "app", &url).await;
    s.browser
        .wait(
            "app",
            "window.page?.states.includes('open')",
            Duration::from_secs(15),
        )
        .await;
    let published = s
        .app
        .publish_ok(
            &tenant.api_key,
            &json!({"to": {"user": "alice"}, "type": "mail", "data": {"subject": "Hi"}, "inbox": true}),
        )
        .await;
    let id = published[0]["id"].as_str().unwrap().to_owned();
    s.browser
        .wait(
            "app",
            "window.page.events.length >= 1",
            Duration::from_secs(10),
        )
        .await;
    // The page tells Herald it got and showed the event (herald.js, at most once a second).
    let receipts = format!("/v1/receipts?user=alice&ids={id}");
    for _ in 0..100 {
        let answer = s.app.get_json(&receipts, &tenant.api_key).await;
        if answer["receipts"][0]["seen_at"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    s.open("c1", "eng").await;
    s.sign_in("eng", &tenant.api_key).await;
    s.go("eng", "User inspector").await;
    s.run(
        "eng",
        "await page.getByLabel('User id').fill('alice');
         await page.getByRole('button', {name: 'Inspect'}).click();
         await page.locator('dl.facts').waitFor();",
    )
    .await;
    let presence = s.text("eng", "dl.facts").await;
    assert!(
        presence.contains("Online\tyes") || presence.contains("Online\nyes"),
        "{presence}"
    );
    assert!(
        presence.contains("Streams open\t1") || presence.contains("Streams open\n1"),
        "{presence}"
    );
    s.see("eng", "h2:has-text('1 unread')", 5000).await;
    s.see("eng", &format!("tr:has-text('{id}')"), 5000).await;
    let cells = s
        .run(
            "eng",
            &format!("return await page.locator('tr:has-text(\"{id}\") td').allInnerTexts();"),
        )
        .await;
    let cells: Vec<String> = serde_json::from_value(cells).unwrap();
    // type, to, created, delivered, seen, read, fallback
    assert_eq!(cells[0], "mail");
    assert_ne!(cells[3], "—", "delivered: {cells:?}");
    assert_ne!(cells[4], "—", "seen: {cells:?}");
    assert_eq!(cells[5], "—", "read: {cells:?}");
    s.assert_accessible("eng", "user inspector with a user")
        .await;
    s.photograph("eng", "user-inspector-alice").await;
    s.browser.quit().await;
}

#[actix_web::test]
async fn a_failing_webhook_shows_its_attempts_and_a_retry_after_the_fix_delivers() {
    let Some(mut s) = console_scene().await else {
        return;
    };
    let tenant = s.app.create_tenant("acme").await;
    let receiver = Receiver::start().await;
    receiver.answer_all(Answer::Status(500));
    s.open("c1", "eng").await;
    s.sign_in("eng", &tenant.api_key).await;
    s.go("eng", "Webhooks").await;
    s.see("eng", "text=No webhook yet", 5000).await;
    s.run(
        "eng",
        &format!(
            "await page.getByLabel('URL').fill({});
             await page.getByRole('button', {{name: 'Add endpoint'}}).click();
             await page.getByText(/Signing secret of/).waitFor();
             await page.getByRole('button', {{name: 'Send test'}}).click();
             await page.getByText(/is on its way/).waitFor();",
            js(&receiver.url)
        ),
    )
    .await;
    let secret = s
        .run(
            "eng",
            "return await page.locator('.once input').inputValue();",
        )
        .await;
    assert!(secret.as_str().unwrap().starts_with("whsec_"), "{secret}");
    receiver.wait_for(1, Duration::from_secs(10)).await;
    // The failed attempt is listed with its status.
    s.run(
        "eng",
        "for (let i = 0; i < 50; i++) {
           await page.getByRole('button', {name: 'Refresh deliveries'}).click();
           if (await page.getByRole('cell', {name: '500', exact: true}).count()) return;
           await page.waitForTimeout(200);
         }
         throw new Error('no failed attempt shown');",
    )
    .await;
    let state = s.text("eng", ".deliveries .state").await;
    assert_eq!(
        state, "pending",
        "a failed message waits for its next attempt"
    );
    receiver.answer_all(Answer::Status(204));
    s.run(
        "eng",
        "await page.locator('.deliveries').getByRole('button', {name: /^Retry/}).first().click();
         for (let i = 0; i < 50; i++) {
           await page.waitForTimeout(200);
           await page.getByRole('button', {name: 'Refresh deliveries'}).click();
           await page.waitForTimeout(100);
           if ((await page.locator('.deliveries .state').first().innerText()) === 'delivered') return;
         }
         throw new Error('the retry did not deliver');",
    )
    .await;
    let attempts = s
        .run(
            "eng",
            "return await page.locator('.deliveries tbody tr').count();",
        )
        .await;
    assert!(attempts.as_u64().unwrap() >= 2, "{attempts}");
    s.assert_accessible("eng", "webhooks with deliveries").await;
    s.photograph("eng", "webhook-deliveries").await;
    s.browser.quit().await;
}

#[actix_web::test]
async fn usage_charts_render_with_no_figures_and_with_some() {
    let Some(mut s) = console_scene().await else {
        return;
    };
    let tenant = s.app.create_tenant("acme").await;
    s.open("c1", "eng").await;
    s.sign_in("eng", &tenant.api_key).await;
    s.go("eng", "Usage").await;
    s.see("eng", "text=No figures yet", 5000).await;
    s.see("eng", ".chart canvas", 5000).await;
    let charts = s
        .run("eng", "return await page.locator('.chart canvas').count();")
        .await;
    assert_eq!(charts, 4);
    let label = s
        .run(
            "eng",
            "return await page.locator('.chart [role=img]').first().getAttribute('aria-label');",
        )
        .await;
    assert!(label.as_str().unwrap().contains("Published 0"), "{label}");
    s.app
        .publish_ok(
            &tenant.api_key,
            &json!({"events": [{"to": {"user": "a"}, "data": 1}, {"to": {"user": "b"}, "data": 2}]}),
        )
        .await;
    s.run(
        "eng",
        "await page.getByRole('button', {name: 'Refresh usage'}).click();",
    )
    .await;
    s.run(
        "eng",
        "await page.waitForFunction(() => document.querySelector('.chart [role=img]').getAttribute('aria-label').includes('Published 2'));",
    )
    .await;
    let empty = s
        .run(
            "eng",
            "return await page.getByText('No figures yet').count();",
        )
        .await;
    assert_eq!(empty, 0);
    s.photograph("eng", "usage-with-figures").await;
    s.browser.quit().await;
}

#[actix_web::test]
async fn the_console_s_files_carry_the_security_headers() {
    let app = spawn_app().await;
    for (path, kind) in [
        ("/console", "text/html"),
        ("/console/console.js", "text/javascript"),
        ("/console/console.css", "text/css"),
    ] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default()
        };
        assert!(header("content-type").starts_with(kind), "{path}");
        let policy = header("content-security-policy");
        for rule in [
            "default-src 'none'",
            "script-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(policy.contains(rule), "{path}: {policy}");
        }
        assert!(!policy.contains("unsafe"), "{path}: {policy}");
        assert_eq!(header("x-content-type-options"), "nosniff");
        assert_eq!(header("referrer-policy"), "no-referrer");
        assert!(header("access-control-allow-origin").is_empty(), "{path}");
        let etag = header("etag");
        let cached = app
            .client
            .get(app.url(path))
            .header("If-None-Match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(cached.status(), StatusCode::NOT_MODIFIED, "{path}");
    }
    // The page loads nothing from elsewhere and runs no inline script.
    let page = app
        .client
        .get(app.url("/console"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(r#"<script type="module" src="/console/console.js">"#));
    assert!(!page.contains("http"), "{page}");
}
