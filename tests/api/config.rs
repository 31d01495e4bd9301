//! Start-up configuration: layering, overrides, and refusals that name the key at fault.

use std::path::Path;

use herald::config::{Environment, Settings};

use crate::cli::{herald, herald_command};

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_later_configuration_layer_wins_over_an_earlier_one() {
    let dir = tempfile::TempDir::new().unwrap();
    write(
        dir.path(),
        "local.toml",
        "[server]\nport = 9000\nhost = \"0.0.0.0\"\n",
    );
    let extra = write(dir.path(), "extra.toml", "[server]\nport = 9100\n");
    let settings = Settings::load(Environment::Local, dir.path(), Some(&extra)).unwrap();
    assert_eq!(settings.server.port, 9100, "--config wins over <env>.toml");
    assert_eq!(
        settings.server.host, "0.0.0.0",
        "<env>.toml wins over the defaults"
    );
    assert_eq!(
        settings.database.url, "sqlite://data/herald.db",
        "defaults fill the rest"
    );
    assert_eq!(settings.limits.max_event_data_bytes, 64 * 1024);
    assert_eq!(settings.limits.max_batch_events, 1000);
}

#[test]
fn unknown_and_malformed_keys_are_named() {
    let dir = tempfile::TempDir::new().unwrap();
    let typo = write(dir.path(), "typo.toml", "[server]\nprot = 9000\n");
    let error = Settings::load(Environment::Local, dir.path(), Some(&typo))
        .unwrap_err()
        .to_string();
    assert!(error.contains("prot"), "{error}");
    let malformed = write(dir.path(), "bad.toml", "[server]\nport = \"eighty\"\n");
    let error = Settings::load(Environment::Local, dir.path(), Some(&malformed))
        .unwrap_err()
        .to_string();
    assert!(error.contains("port"), "{error}");
    let missing = Settings::load(
        Environment::Local,
        dir.path(),
        Some(&dir.path().join("absent.toml")),
    );
    assert!(
        missing.is_err(),
        "a --config file that does not exist is an error"
    );
}

#[test]
fn production_refuses_to_start_without_an_admin_token() {
    let dir = tempfile::TempDir::new().unwrap();
    let error = Settings::load(Environment::Production, dir.path(), None)
        .unwrap_err()
        .to_string();
    assert!(error.contains("admin.token"), "{error}");
    let with_token = write(
        dir.path(),
        "token.toml",
        "[admin]\ntoken = \"a-long-enough-admin-token\"\n",
    );
    assert!(Settings::load(Environment::Production, dir.path(), Some(&with_token)).is_ok());
}

#[test]
fn the_binary_reads_environment_overrides_and_names_bad_ones() {
    let dir = tempfile::TempDir::new().unwrap();
    let url = format!("sqlite://{}/herald.db", dir.path().display());
    let output = herald_command(&url)
        .arg("migrate")
        .env("HERALD__SERVER__PROT", "1")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("prot"), "{stderr}");

    let output = herald_command(&url)
        .arg("migrate")
        .env("HERALD_ENV", "production")
        .env_remove("HERALD__ADMIN__TOKEN")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("admin.token"), "{stderr}");

    // The database URL from the environment was used: the file exists now.
    let ok = herald(&url, &["migrate"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(dir.path().join("herald.db").is_file());
}

/// Unset, the per-tenant stream cap is what this process may open less a tenth, so one
/// tenant cannot take every socket.
#[actix_web::test]
async fn the_per_tenant_stream_cap_follows_the_open_file_limit() {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let limit: usize = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .and_then(|line| line["Max open files".len()..].split_whitespace().next())
        .and_then(|soft| soft.parse().ok())
        .expect("a finite open-file limit on this machine");
    let app = crate::support::spawn_app().await;
    assert_eq!(
        app.state.settings.stream.max_connections_per_tenant,
        limit - (limit / 10).max(100)
    );
}
