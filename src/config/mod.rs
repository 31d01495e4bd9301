//! Configuration: layered TOML files plus `HERALD__SECTION__KEY` environment overrides.
//!
//! The layers, later ones winning: the defaults compiled into the binary (the text of
//! `config/default.toml`, so the binary runs from any directory), `config/<HERALD_ENV>.toml`
//! (`local` unless `HERALD_ENV` says `production`), the file given with `--config`, then the
//! environment. Every struct denies unknown fields, so a misspelt key stops start-up with a
//! message naming it instead of being silently ignored.

use std::path::{Path, PathBuf};

use serde::Deserialize;

mod webhooks;

pub use webhooks::{PresenceSettings, WebhookSettings};

const DEFAULTS: &str = include_str!("../../config/default.toml");

/// Where Herald runs: decides which file layer applies and how strict start-up is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Local,
    Production,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Local => "local",
            Environment::Production => "production",
        }
    }

    /// Reads `HERALD_ENV`; unset means `local`.
    pub fn from_env() -> Result<Self, ConfigError> {
        match std::env::var("HERALD_ENV") {
            Err(_) => Ok(Environment::Local),
            Ok(value) => match value.to_ascii_lowercase().as_str() {
                "local" => Ok(Environment::Local),
                "production" => Ok(Environment::Production),
                other => Err(ConfigError::Invalid(format!(
                    "HERALD_ENV is `{other}`; use `local` or `production`"
                ))),
            },
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    #[serde(default)]
    pub admin: AdminSettings,
    #[serde(default)]
    pub redis: RedisSettings,
    pub limits: LimitSettings,
    /// The limits of a tenant that sets none of its own.
    pub tenant_defaults: crate::domain::limits::EffectiveLimits,
    pub jwt: JwtSettings,
    pub stream: StreamSettings,
    pub cookie: CookieSettings,
    pub demo: DemoSettings,
    pub log: LogSettings,
    pub telemetry: TelemetrySettings,
    pub metrics: MetricsSettings,
    pub seed: SeedSettings,
    pub webhooks: WebhookSettings,
    pub presence: PresenceSettings,
    /// Not a file setting: filled in from `HERALD_ENV` after loading.
    #[serde(skip, default = "local")]
    pub environment: Environment,
}

fn local() -> Environment {
    Environment::Local
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    pub max_body_bytes: usize,
    /// The longest a request body may take to arrive, whole.
    pub body_timeout_secs: u64,
    pub shutdown_timeout_secs: u64,
    /// Set: serve HTTPS (and HTTP/2) with this certificate.
    #[serde(default)]
    pub tls: Option<TlsSettings>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM: the certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM: its private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: String,
    /// PostgreSQL: how long start-up waits for a server that does not answer yet.
    pub startup_wait_secs: u64,
    pub max_connections: u32,
    pub busy_timeout_ms: u64,
    pub sqlite_synchronous: SqliteSynchronous,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSynchronous {
    Full,
    Normal,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    pub token: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    pub url: Option<String>,
    /// The pub/sub channel the nodes of one deployment share.
    pub channel: String,
    /// Seconds between checks of every tenant's head against what this node delivered.
    pub catch_up_secs: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    pub max_event_data_bytes: usize,
    pub max_batch_events: usize,
    pub max_recipients_per_request: usize,
    pub max_users_per_event: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// Tenants with their own `tenant` label in `/metrics`; the rest are summed as `other`.
    pub max_tenant_labels: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtSettings {
    pub audience: String,
    pub leeway_secs: u64,
    /// The longest a session lasts, whatever `exp` a token carries: the session cookie's
    /// `Max-Age` and a stream's expiry are capped at this many seconds from now.
    pub max_session_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamSettings {
    pub retry_ms: u64,
    /// Seconds; fractions allowed (the tests use short ones).
    pub keepalive_secs: f64,
    pub queue_capacity: usize,
    pub replay_page: u64,
    /// This node's cap on one tenant's open streams, whatever the tenant's limits: what the
    /// process may open, less a tenth (`0`: derived at start-up).
    pub max_connections_per_tenant: usize,
    pub tcp_user_timeout_secs: u64,
    /// Fresh plain-HTTP stream connections go to Herald's own handler (`false`: to
    /// actix-web, like every other request).
    pub herald_path: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CookieSettings {
    pub secure: bool,
    pub same_site: SameSite,
    pub partitioned: bool,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SameSite {
    None,
    Lax,
    Strict,
}

impl SameSite {
    pub fn as_str(self) -> &'static str {
        match self {
            SameSite::None => "None",
            SameSite::Lax => "Lax",
            SameSite::Strict => "Strict",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoSettings {
    pub enabled: bool,
    pub port: u16,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

/// Traces (`crate::traces`): off while `otlp_endpoint` is empty.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySettings {
    /// An OTLP/HTTP collector's base URL (`http://collector:4318`); spans go to
    /// `<otlp_endpoint>/v1/traces` as protobuf.
    pub otlp_endpoint: String,
    /// The share of traces begun here that are recorded, 0 to 1; a request whose
    /// `traceparent` says sampled (or not) is followed as it says.
    pub sample_ratio: f64,
    /// `service.name` on every span.
    pub service_name: String,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedSettings {
    pub demo_tenant: bool,
}

impl Settings {
    /// Loads the layers for `environment`; `config_dir` holds `<env>.toml` (it may be
    /// absent), `extra_file` is `--config FILE` (it must exist).
    pub fn load(
        environment: Environment,
        config_dir: &Path,
        extra_file: Option<&Path>,
    ) -> Result<Settings, ConfigError> {
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml))
            .add_source(
                config::File::from(config_dir.join(format!("{}.toml", environment.as_str())))
                    .required(false),
            );
        if let Some(file) = extra_file {
            builder = builder.add_source(config::File::from(file.to_path_buf()).required(true));
        }
        let builder = builder.add_source(
            config::Environment::with_prefix("HERALD")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true),
        );
        let mut settings: Settings = builder.build()?.try_deserialize()?;
        settings.environment = environment;
        settings.validate()?;
        Ok(settings)
    }

    /// Loads from the process environment the way `herald` does: `HERALD_ENV`, and the
    /// directory `HERALD_CONFIG_DIR` (default `config`).
    pub fn from_process_env(extra_file: Option<&Path>) -> Result<Settings, ConfigError> {
        let dir = std::env::var_os("HERALD_CONFIG_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("config"));
        Settings::load(Environment::from_env()?, &dir, extra_file)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(token) = &self.admin.token
            && token.len() < 16
        {
            return Err(ConfigError::Invalid(
                "admin.token must be at least 16 characters".into(),
            ));
        }
        if self.environment == Environment::Production && self.admin.token.is_none() {
            return Err(ConfigError::Invalid(
                "admin.token is missing: production needs an operator token \
                 (set HERALD__ADMIN__TOKEN)"
                    .into(),
            ));
        }
        if !(0.0..=1.0).contains(&self.telemetry.sample_ratio) {
            return Err(ConfigError::Invalid(
                "telemetry.sample_ratio must be between 0 and 1".into(),
            ));
        }
        let limits = &self.limits;
        for (key, value) in [
            ("limits.max_event_data_bytes", limits.max_event_data_bytes),
            ("limits.max_batch_events", limits.max_batch_events),
            (
                "limits.max_recipients_per_request",
                limits.max_recipients_per_request,
            ),
            ("limits.max_users_per_event", limits.max_users_per_event),
            ("server.max_body_bytes", self.server.max_body_bytes),
            (
                "server.body_timeout_secs",
                self.server.body_timeout_secs as usize,
            ),
            ("stream.queue_capacity", self.stream.queue_capacity),
            ("stream.replay_page", self.stream.replay_page as usize),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid(format!("{key} must be above 0")));
            }
        }
        let defaults = &self.tenant_defaults;
        let within = |value: u64, max: u64| (1..=max).contains(&value);
        if !within(defaults.publish_per_sec, u64::from(u32::MAX))
            || !within(defaults.publish_burst, u64::from(u32::MAX))
            || !within(defaults.max_streams, u64::MAX)
            || !within(defaults.max_streams_per_user, u64::MAX)
            || !within(
                defaults.max_event_data_bytes,
                limits.max_event_data_bytes as u64,
            )
            || defaults.max_stored_events == Some(0)
        {
            return Err(ConfigError::Invalid(
                "tenant_defaults: every limit is above 0, and max_event_data_bytes at most \
                 limits.max_event_data_bytes"
                    .into(),
            ));
        }
        if self.cookie.same_site == SameSite::None && !self.cookie.secure {
            return Err(ConfigError::Invalid(
                "cookie.same_site = \"none\" needs cookie.secure = true (browsers drop the cookie otherwise)".into(),
            ));
        }
        if self.cookie.partitioned && !self.cookie.secure {
            return Err(ConfigError::Invalid(
                "cookie.partitioned needs cookie.secure = true".into(),
            ));
        }
        if self.environment == Environment::Production && self.demo.enabled {
            return Err(ConfigError::Invalid(
                "demo.enabled is for development; production refuses it (it mints tokens)".into(),
            ));
        }
        if !(self.stream.keepalive_secs > 0.0 && self.stream.keepalive_secs.is_finite()) {
            return Err(ConfigError::Invalid(
                "stream.keepalive_secs must be above 0".into(),
            ));
        }
        self.webhooks.validate()?;
        self.presence.validate()?;
        if self.database.max_connections == 0 {
            return Err(ConfigError::Invalid(
                "database.max_connections must be above 0".into(),
            ));
        }
        if !(self.database.url.starts_with("sqlite:") || self.database.url.starts_with("postgres"))
        {
            return Err(ConfigError::Invalid(format!(
                "database.url must start with sqlite: or postgres://, got `{}`",
                self.database.url
            )));
        }
        Ok(())
    }
}
