//! The `herald` command line: `serve` (the default) and the operator's one-shot commands.
//!
//! Every command reads the same configuration as `serve` and works on the same database,
//! so a key made here is live for a running server at once. One-shot commands print JSON
//! on stdout (their logs go to stderr) so scripts can read the result.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use serde_json::json;

use crate::auth::jwt::mint_user_token;
use crate::config::Settings;
use crate::domain::keys::SigningKeySpec;
use crate::domain::limits::{LimitsPatch, TenantLimits};
use crate::domain::names::UserId;
use crate::domain::tenant::{NewTenant, Retention, Tenant, TenantPatch};
use crate::domain::webhook::{Subscription, WebhookUrl};
use crate::routes::admin::{CreatedApiKey, CreatedSigningKey, TenantList, TenantView};
use crate::routes::webhooks::{CreatedWebhook, WebhookList, WebhookView};
use crate::startup::{Application, StartupReport};
use crate::store::{Store, backup};

#[derive(Debug, Parser)]
#[command(
    name = "herald",
    version,
    about = "Multi-tenant real-time notifications over SSE"
)]
pub struct Cli {
    /// One more TOML file, read after config/<HERALD_ENV>.toml and before the environment.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Bring the database schema up to date, then exit.
    Migrate,
    /// Ask the server this configuration describes for `/healthz`; exit 0 if it answers 200
    /// (a container's HEALTHCHECK: the image needs no curl).
    Healthcheck,
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage tenant API keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Manage tenant signing keys for user tokens.
    #[command(subcommand)]
    SigningKey(SigningKeyCommand),
    /// Manage a tenant's webhook endpoints.
    #[command(subcommand)]
    Webhook(WebhookCommand),
    /// Copy the SQLite database, consistently, while Herald runs; prints each tenant's
    /// log head.
    Backup {
        /// The copy (it must not exist yet).
        file: PathBuf,
    },
    /// Replace the SQLite database with a backup, Herald stopped; every tenant gets a new
    /// epoch, so browsers holding ids from the lost stretch are told `reset`.
    Restore {
        /// A file `herald backup` made.
        file: PathBuf,
    },
    /// Mint a user JWT with the tenant's newest HS256 key (development and tests).
    Token {
        slug: String,
        #[arg(long)]
        user: String,
        /// Comma-separated topic names or `prefix:*` patterns the token allows.
        #[arg(long, value_delimiter = ',')]
        topics: Vec<String>,
        /// Lifetime, e.g. 30m, 1h, 7d.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: Duration,
    },
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant.
    Create {
        slug: String,
        #[arg(long)]
        name: Option<String>,
        /// A browser origin allowed to stream (repeatable).
        #[arg(long = "origin")]
        origins: Vec<String>,
    },
    /// List tenants.
    List,
    /// Change a tenant's limits: each option a whole number, or `default` for the
    /// server's default; options left out stay as they are. Prints the tenant.
    Limits {
        slug: String,
        #[arg(long, value_name = "N|default")]
        publish_per_sec: Option<LimitArg>,
        #[arg(long, value_name = "N|default")]
        publish_burst: Option<LimitArg>,
        #[arg(long, value_name = "N|default")]
        max_streams: Option<LimitArg>,
        #[arg(long, value_name = "N|default")]
        max_streams_per_user: Option<LimitArg>,
        #[arg(long, value_name = "N|default")]
        max_event_data_bytes: Option<LimitArg>,
        #[arg(long, value_name = "N|default")]
        max_stored_events: Option<LimitArg>,
        #[arg(long, value_name = "N|default")]
        max_webhooks: Option<LimitArg>,
    },
}

/// A limit on the command line: a whole number, or `default`.
#[derive(Debug, Clone)]
pub struct LimitArg(serde_json::Value);

impl std::str::FromStr for LimitArg {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "default" => Ok(LimitArg(serde_json::Value::Null)),
            number => number
                .parse::<u64>()
                .map(|n| LimitArg(n.into()))
                .map_err(|_| format!("`{number}` is neither a whole number nor `default`")),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Issue an API key (printed once).
    Create {
        slug: String,
        #[arg(long, default_value = "default")]
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SigningKeyCommand {
    /// Create a signing key: HS256 (generated secret, printed once) or a public key.
    Create {
        slug: String,
        #[arg(long, default_value = "HS256")]
        alg: String,
        /// PEM file of the public key, for ES256, EdDSA and RS256.
        #[arg(long, value_name = "FILE")]
        public_key: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// List a tenant's endpoints (without their secrets).
    List { slug: String },
    /// Create an endpoint; its secret is printed once.
    Create {
        slug: String,
        #[arg(long)]
        url: String,
        /// Message types it gets, comma-separated, or `*` for all.
        #[arg(long, value_delimiter = ',', default_value = "*")]
        events: Vec<String>,
        #[arg(long, default_value = "")]
        description: String,
    },
}

/// Runs a one-shot command against the configured database and returns its JSON answer.
pub async fn run_command(
    settings: &Settings,
    command: Command,
) -> anyhow::Result<serde_json::Value> {
    // Neither opens the database as Herald does: a backup only reads it, and a restore
    // replaces the file.
    match &command {
        Command::Backup { file } => {
            let database = backup::database_file(&settings.database)?;
            return Ok(serde_json::to_value(backup::backup(&database, file)?)?);
        }
        Command::Restore { file } => {
            let database = backup::database_file(&settings.database)?;
            return Ok(serde_json::to_value(backup::restore(file, &database)?)?);
        }
        _ => {}
    }
    let store = Store::open(&settings.database).await?;
    store.migrate().await?;
    let defaults = &settings.tenant_defaults;
    match command {
        Command::Serve | Command::Healthcheck => bail!("not a database command"),
        Command::Backup { .. } | Command::Restore { .. } => bail!("answered without the store"),
        Command::Migrate => Ok(json!({ "migrated": true })),
        Command::Tenant(TenantCommand::Create {
            slug,
            name,
            origins,
        }) => {
            let mut new = NewTenant {
                slug,
                name,
                allowed_origins: origins,
                retention: Retention::default(),
                limits: None,
            };
            new.validate()?;
            let tenant = store
                .create_tenant(&new, &TenantLimits::default())
                .await?
                .with_context(|| format!("a tenant `{}` exists already", new.slug))?;
            Ok(serde_json::to_value(TenantView::new(tenant, defaults))?)
        }
        Command::Tenant(TenantCommand::List) => Ok(serde_json::to_value(TenantList::new(
            store.list_tenants().await?,
            defaults,
        ))?),
        Command::Tenant(TenantCommand::Limits {
            slug,
            publish_per_sec,
            publish_burst,
            max_streams,
            max_streams_per_user,
            max_event_data_bytes,
            max_stored_events,
            max_webhooks,
        }) => {
            let value = |arg: Option<LimitArg>| arg.map(|LimitArg(value)| value);
            let change = LimitsPatch {
                publish_per_sec: value(publish_per_sec),
                publish_burst: value(publish_burst),
                max_streams: value(max_streams),
                max_streams_per_user: value(max_streams_per_user),
                max_event_data_bytes: value(max_event_data_bytes),
                max_stored_events: value(max_stored_events),
                max_webhooks: value(max_webhooks),
            };
            let current = tenant(&store, &slug).await?;
            let server_max = settings.limits.max_event_data_bytes as u64;
            let limits = current.limits.patched(&change, server_max)?;
            let patch = TenantPatch::default();
            let tenant = store
                .update_tenant(&slug, &patch, Some(&limits))
                .await?
                .with_context(|| format!("no tenant `{slug}`"))?;
            Ok(serde_json::to_value(TenantView::new(tenant, defaults))?)
        }
        Command::Key(KeyCommand::Create { slug, name }) => {
            let tenant = tenant(&store, &slug).await?;
            let (record, key) = store.create_api_key(tenant.id, &name).await?;
            Ok(serde_json::to_value(CreatedApiKey::new(record, key))?)
        }
        Command::SigningKey(SigningKeyCommand::Create {
            slug,
            alg,
            public_key,
        }) => {
            let tenant = tenant(&store, &slug).await?;
            let pem = match public_key {
                Some(path) => Some(
                    std::fs::read_to_string(&path)
                        .with_context(|| format!("cannot read {}", path.display()))?,
                ),
                None => None,
            };
            let spec = SigningKeySpec::parse(Some(&alg), pem)?;
            let key = store.create_signing_key(tenant.id, spec).await?;
            Ok(serde_json::to_value(CreatedSigningKey::from(key))?)
        }
        Command::Webhook(WebhookCommand::List { slug }) => {
            let tenant = tenant(&store, &slug).await?;
            let webhooks = store.webhooks(tenant.id).await?;
            Ok(serde_json::to_value(WebhookList {
                webhooks: webhooks.into_iter().map(WebhookView::from).collect(),
            })?)
        }
        Command::Webhook(WebhookCommand::Create {
            slug,
            url,
            events,
            description,
        }) => {
            let tenant = tenant(&store, &slug).await?;
            let url = WebhookUrl::parse(&url, settings.webhooks.targets())?;
            let subscription = Subscription::parse(&events)?;
            let max = tenant.limits.effective(defaults).max_webhooks;
            let endpoint = store
                .create_webhook(tenant.id, &url, &subscription, &description, max)
                .await?;
            let secret = endpoint.secret.as_str().to_owned();
            Ok(serde_json::to_value(CreatedWebhook {
                webhook: WebhookView::from(endpoint),
                secret,
            })?)
        }
        Command::Token {
            slug,
            user,
            topics,
            ttl,
        } => {
            let tenant = tenant(&store, &slug).await?;
            let user = UserId::parse(user)?;
            let ttl_secs = i64::try_from(ttl.as_secs()).context("ttl too long")?;
            if ttl_secs < 1 {
                bail!("--ttl must be at least one second");
            }
            let audience = &settings.jwt.audience;
            let minted = mint_user_token(&store, tenant.id, &user, topics, ttl_secs, audience)
                .await
                .with_context(|| format!("cannot mint a token for `{slug}`"))?;
            Ok(json!({ "token": minted.token, "kid": minted.kid, "expires_at": minted.expires_at }))
        }
    }
}

async fn tenant(store: &Store, slug: &str) -> anyhow::Result<Tenant> {
    store
        .tenant(slug)
        .await?
        .with_context(|| format!("no tenant `{slug}`"))
}

/// Tells the operator, once, about credentials made at start-up.
pub fn print_startup_report(report: &StartupReport, port: u16) {
    if let Some(token) = &report.generated_admin_token {
        println!(
            "\nNo admin token configured (local): generated one for this run.\n  \
             admin token: {token}\n  (set HERALD__ADMIN__TOKEN to keep one)\n"
        );
    }
    if let Some(demo) = &report.demo {
        println!(
            "Created the demo tenant `{}` (origin {}).\n  API key:        {}\n  \
             signing key id: {}\n  HS256 secret:   {}\n\nTry:\n  curl -X POST \
             http://localhost:{port}/v1/events -H 'Authorization: Bearer {}' -H \
             'Content-Type: application/json' -d '{{\"to\":{{\"user\":\"alice\"}},\"type\":\"mail\",\"data\":{{\"subject\":\"Hi\"}}}}'\n",
            demo.tenant,
            demo.origin,
            demo.api_key,
            demo.signing_kid,
            demo.signing_secret,
            demo.api_key,
        );
    }
    if let Some(demo_port) = report.demo_page {
        println!("Demo page (the `demo` tenant's web app): http://localhost:{demo_port}/\n");
    }
}

/// `herald serve`.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let application = Application::build(settings).await?;
    print_startup_report(&application.report, application.port());
    tracing::info!(port = application.port(), "Herald is listening");
    application.run_until_stopped().await?;
    Ok(())
}

/// `herald healthcheck`: one `GET /healthz` to the configured port on this host.
pub fn healthcheck(settings: &Settings) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    let host = match settings.server.host.as_str() {
        "0.0.0.0" | "::" => "127.0.0.1",
        host => host,
    };
    let timeout = std::time::Duration::from_secs(3);
    let address = std::net::ToSocketAddrs::to_socket_addrs(&(host, settings.server.port))?
        .next()
        .with_context(|| format!("{host} does not resolve"))?;
    let mut tcp = std::net::TcpStream::connect_timeout(&address, timeout)
        .with_context(|| format!("nothing answers on {address}"))?;
    tcp.set_read_timeout(Some(timeout))?;
    tcp.set_write_timeout(Some(timeout))?;
    let request = b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n";
    let mut head = [0u8; 12];
    if settings.server.tls.is_some() {
        let client = crate::tls::loopback_client_config()?;
        let name = rustls::pki_types::ServerName::try_from("localhost")?;
        let connection = rustls::ClientConnection::new(std::sync::Arc::new(client), name)?;
        let mut stream = rustls::StreamOwned::new(connection, tcp);
        stream.write_all(request)?;
        stream.read_exact(&mut head)?;
    } else {
        tcp.write_all(request)?;
        tcp.read_exact(&mut head)?;
    }
    match &head[9..12] {
        b"200" => Ok(()),
        status => bail!("/healthz answered {}", String::from_utf8_lossy(status)),
    }
}
