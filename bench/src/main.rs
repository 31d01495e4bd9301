//! `herald-load`: the load tool of Herald's benchmarks (see BENCHMARKS.md and bench/run.sh).
//!
//! `listen` holds many SSE connections as real clients — each authenticated as its own user
//! against Herald, or subscribed to a channel of nchan — and measures, for every event, the
//! time from the publisher's timestamp in its data to its receipt, and which events each
//! connection got (so lost and duplicated events are counted, not guessed). `publish` sends
//! events with those timestamps, at a paced rate, and measures its own request latency.
//! Both print one JSON report line at the end; one process holds at most ~19,900 sockets
//! here, so run several, each from its own source address (127.0.0.2, 127.0.0.3, …).

mod churn;
mod http;
mod listen;
mod publish;
mod receipts;
mod receive;
mod report;
mod stream;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(name = "herald-load", about = "Load tool for Herald's benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Target {
    Herald,
    Nchan,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Every event goes to every connection.
    Broadcast,
    /// Event n goes to user n mod --users (one connection per user).
    Users,
}

/// Which server, where, and from which local address: what listeners and publishers share.
#[derive(clap::Args, Clone)]
pub struct Endpoint {
    #[arg(long, value_enum)]
    pub target: Target,
    /// Herald or nginx, e.g. 127.0.0.1:8080.
    #[arg(long)]
    pub server: std::net::SocketAddr,
    /// The address connections come from (each process its own: 127.0.0.2, 127.0.0.3, …).
    #[arg(long, default_value = "127.0.0.1")]
    pub source: std::net::IpAddr,
}

/// How the events are spread, which listeners and publishers must agree on: in `users`
/// mode event n goes to user u<n mod users> and is number n / users among that user's.
#[derive(clap::Args, Clone)]
pub struct Spread {
    #[arg(long, value_enum)]
    pub mode: Mode,
    /// With --mode users: how many users the events are spread over.
    #[arg(long, default_value_t = 1)]
    pub users: usize,
}

impl Spread {
    fn users(&self) -> u64 {
        self.users.max(1) as u64
    }

    /// The user event `n` goes to (users mode).
    pub fn user_of(&self, n: u64) -> u64 {
        n % self.users()
    }

    /// Event `n`'s index among the events its connection gets.
    pub fn index_of(&self, n: u64) -> u64 {
        match self.mode {
            Mode::Broadcast => n,
            Mode::Users => n / self.users(),
        }
    }

    /// How many of `events` (numbered from 0) reach `user`'s connection.
    pub fn expected_for(&self, user: u64, events: u64) -> u64 {
        match self.mode {
            Mode::Broadcast => events,
            Mode::Users => {
                let (users, user) = (self.users(), user % self.users());
                events / users + u64::from(user < events % users)
            }
        }
    }

    /// nchan's channel for a user's connection: one for everyone, or the user's own.
    pub fn nchan_channel(&self, user: u64) -> String {
        match self.mode {
            Mode::Broadcast => "all".to_owned(),
            Mode::Users => format!("u{user}"),
        }
    }
}

#[derive(Subcommand)]
enum Command {
    Listen(listen::Args),
    Publish(publish::Args),
    Churn(churn::Args),
    Receive(receive::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match cli.command {
            Command::Listen(args) => listen::run(args).await,
            Command::Publish(args) => publish::run(args).await,
            Command::Churn(args) => churn::run(args).await,
            Command::Receive(args) => receive::run(args).await,
        }
    })
}

/// Nanoseconds since the Unix epoch: the timestamp publishers put in every event.
pub fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}
