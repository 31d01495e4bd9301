//! The `herald` binary's commands, run as an operator would, against a server's database.

use std::process::{Command, Output};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::support::{spawn_with_settings, test_settings};

/// The `herald` binary, configured as the tests run it: the repository's `config/`, the
/// `local` environment, and the given database.
pub fn herald_command(database_url: &str) -> Command {
    herald_command_under(&[], database_url)
}

/// `herald`, run by `wrapper` (a program and its arguments, such as `fiu-run -x`) if given.
pub fn herald_command_under(wrapper: &[&str], database_url: &str) -> Command {
    herald_command_of(&Build::tree(), wrapper, database_url)
}

/// A `herald` binary with the configuration files of its own version.
#[derive(Debug, Clone)]
pub struct Build {
    pub binary: String,
    pub config_dir: String,
}

impl Build {
    /// The one built from this tree.
    pub fn tree() -> Build {
        Build {
            binary: env!("CARGO_BIN_EXE_herald").to_owned(),
            config_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/config").to_owned(),
        }
    }
}

/// `build`'s `herald`, run by `wrapper` if given.
pub fn herald_command_of(build: &Build, wrapper: &[&str], database_url: &str) -> Command {
    let herald = build.binary.as_str();
    let mut command = match wrapper.split_first() {
        None => Command::new(herald),
        Some((program, args)) => {
            let mut command = Command::new(program);
            command.args(args).arg(herald);
            command
        }
    };
    command
        .env_remove("HERALD_ENV")
        .env("HERALD_CONFIG_DIR", &build.config_dir)
        .env("HERALD__DATABASE__URL", database_url);
    command
}

pub fn herald(database_url: &str, args: &[&str]) -> Output {
    herald_command(database_url)
        .args(args)
        .output()
        .expect("herald runs")
}

fn herald_json(database_url: &str, args: &[&str]) -> Value {
    let output = herald(database_url, args);
    assert!(
        output.status.success(),
        "herald {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "herald {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

#[actix_web::test]
async fn cli_made_tenant_key_and_token_work_against_the_api() {
    let dir = TempDir::new().unwrap();
    let url = crate::support::fresh_database_url(dir.path()).await;

    let migrated = herald_json(&url, &["migrate"]);
    assert_eq!(migrated["migrated"], true);
    let tenant = herald_json(
        &url,
        &[
            "tenant",
            "create",
            "acme",
            "--origin",
            "https://app.acme.test",
        ],
    );
    assert_eq!(tenant["slug"], "acme");
    assert_eq!(tenant["allowed_origins"], json!(["https://app.acme.test"]));
    let listed = herald_json(&url, &["tenant", "list"]);
    assert_eq!(listed["tenants"][0]["slug"], "acme");
    let refused = herald(&url, &["tenant", "create", "acme"]);
    assert!(!refused.status.success(), "a taken slug is refused");
    let bad = herald(&url, &["tenant", "create", "Not A Slug"]);
    assert!(!bad.status.success());

    let key = herald_json(&url, &["key", "create", "acme", "--name", "backend"]);
    let api_key = key["key"].as_str().unwrap().to_owned();
    assert!(api_key.starts_with("hk_"));
    let signing = herald_json(&url, &["signing-key", "create", "acme"]);
    assert_eq!(signing["alg"], "HS256");
    let secret = signing["secret"].as_str().unwrap().to_owned();
    let token = herald_json(
        &url,
        &[
            "token",
            "acme",
            "--user",
            "alice",
            "--topics",
            "stock:*,news",
            "--ttl",
            "10m",
        ],
    );
    let jwt = token["token"].as_str().unwrap();

    // The token is signed with that key, names it, and carries the documented claims.
    let header = jsonwebtoken::decode_header(jwt).unwrap();
    assert_eq!(header.alg, Algorithm::HS256);
    assert_eq!(header.kid.as_deref(), signing["kid"].as_str());
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_audience(&["herald"]);
    let claims = jsonwebtoken::decode::<Value>(
        jwt,
        &DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )
    .unwrap()
    .claims;
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["topics"], json!(["stock:*", "news"]));
    let ttl = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert_eq!(ttl, 600);

    // A server on the same database accepts the CLI's key at once.
    let app = spawn_with_settings(test_settings(&url), dir.path().to_path_buf(), None).await;
    let published = app
        .publish_ok(
            &api_key,
            &json!({"to": {"user": "alice"}, "type": "mail", "data": "hi"}),
        )
        .await;
    assert_eq!(published.len(), 1);

    // And a key made while the server runs works too.
    let later = herald_json(&url, &["key", "create", "acme"]);
    app.publish_ok(
        later["key"].as_str().unwrap(),
        &json!({"to": {"user": "bob"}}),
    )
    .await;
    drop(dir);
}

/// Two processes writing one SQLite file: the server publishing flat out while the CLI
/// creates keys. Neither may fail with "database is locked".
#[actix_web::test]
async fn cli_writes_while_the_server_publishes_never_hit_a_locked_database() {
    let dir = TempDir::new().unwrap();
    let url = crate::support::fresh_database_url(dir.path()).await;
    herald_json(&url, &["tenant", "create", "busy"]);
    let api_key = herald_json(&url, &["key", "create", "busy"])["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let app = spawn_with_settings(test_settings(&url), dir.path().to_path_buf(), None).await;

    let publishing = {
        let publishers = (0..6).map(|p| {
            let (app, api_key) = (&app, &api_key);
            async move {
                for r in 0..40 {
                    let body = json!({"to": {"users": ["a", "b", "c"]}, "data": [p, r]});
                    let response = app.publish(api_key, &body).await;
                    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
                }
            }
        });
        futures_util::future::join_all(publishers)
    };
    let cli = {
        let url = url.clone();
        actix_web::rt::task::spawn_blocking(move || {
            (0..6)
                .map(|i| herald(&url, &["key", "create", "busy", "--name", &format!("k{i}")]))
                .collect::<Vec<_>>()
        })
    };
    publishing.await;
    for output in cli.await.unwrap() {
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    assert_eq!(app.full_history(&api_key, "user=a").await.len(), 240);
}

#[actix_web::test]
async fn healthcheck_exits_zero_only_while_the_server_answers() {
    let server = crate::support::process::ServerProcess::start(&[]).await;
    let port = server.api.address.rsplit(':').next().unwrap().to_owned();
    let probe = || {
        herald_command("sqlite://unused/never-opened.db")
            .env("HERALD__SERVER__PORT", &port)
            .arg("healthcheck")
            .output()
            .unwrap()
    };
    let up = probe();
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    drop(server);
    let down = probe();
    assert!(!down.status.success());
    assert!(String::from_utf8_lossy(&down.stderr).contains("nothing answers"));
}

#[actix_web::test]
async fn cli_sets_and_resets_a_tenant_s_limits_and_a_running_server_applies_them() {
    let dir = TempDir::new().unwrap();
    let url = crate::support::fresh_database_url(dir.path()).await;
    herald_json(&url, &["tenant", "create", "acme"]);
    let key = herald_json(&url, &["key", "create", "acme"]);
    let api_key = key["key"].as_str().unwrap().to_owned();
    let app = spawn_with_settings(test_settings(&url), dir.path().to_path_buf(), None).await;

    let tenant = herald_json(
        &url,
        &[
            "tenant",
            "limits",
            "acme",
            "--publish-per-sec",
            "1",
            "--publish-burst",
            "1",
        ],
    );
    assert_eq!(tenant["limits"]["publish_per_sec"], 1);
    assert_eq!(tenant["limits"]["publish_burst"], 1);
    let one = json!({"to": {"user": "alice"}});
    app.publish_ok(&api_key, &one).await;
    let refused = app.publish(&api_key, &one).await;
    assert_eq!(refused.status(), reqwest::StatusCode::TOO_MANY_REQUESTS);

    let tenant = herald_json(
        &url,
        &["tenant", "limits", "acme", "--publish-burst", "default"],
    );
    assert_eq!(tenant["limits"]["publish_burst"], 2000);
    assert_eq!(
        tenant["limits"]["publish_per_sec"], 1,
        "left out: unchanged"
    );
    let bad = herald(&url, &["tenant", "limits", "acme", "--max-streams", "0"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("max_streams"));
    let bad = herald(&url, &["tenant", "limits", "acme", "--max-streams", "lots"]);
    assert!(!bad.status.success());
}
