//! `herald-load churn`: streams that come and go at a steady rate — each opens, holds for a
//! while, and hangs up — to show that a server under churn neither leaks nor fails the
//! connections that stay. Run beside `listen` and `publish` (the churn scenario).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::json;
use tokio::io::AsyncReadExt;

use crate::report::summary_of;
use crate::stream::{self, Credentials, Resume};
use crate::{Endpoint, Mode, Spread};

#[derive(clap::Args)]
pub struct Args {
    /// --source is the first of --sources consecutive source addresses the connections
    /// take in turn: a minute at 1,000/s leaves 60,000 closed ports in TIME_WAIT, more than
    /// one address has.
    #[command(flatten)]
    endpoint: Endpoint,
    #[arg(long, default_value_t = 8)]
    sources: u8,
    #[command(flatten)]
    credentials: Credentials,
    /// Connections opened per second.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// For how long, in seconds.
    #[arg(long, default_value_t = 60.0)]
    seconds: f64,
    /// How long each connection stays open, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    hold_ms: u64,
    /// Connection i streams as user u<first-user + i> (Herald), apart from the listeners.
    #[arg(long, default_value_t = 1_000_000)]
    first_user: u64,
}

/// What became of the connections.
#[derive(Default)]
struct Tally {
    opened: u64,
    /// Error → how many connections it ended.
    errors: BTreeMap<String, u64>,
    /// Opened, then ended by the server before the client hung up.
    closed_early: u64,
    open_latencies_us: Vec<u64>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let IpAddr::V4(first_source) = args.endpoint.source else {
        bail!("--source must be an IPv4 address");
    };
    let total = (args.rate * args.seconds).round() as u64;
    let tally = Arc::new(Mutex::new(Tally::default()));
    let began = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        tokio::time::sleep_until((began + Duration::from_secs_f64(i as f64 / args.rate)).into())
            .await;
        let mut endpoint = args.endpoint.clone();
        endpoint.source = IpAddr::V4(Ipv4Addr::from(
            u32::from(first_source) + (i % u64::from(args.sources.max(1))) as u32,
        ));
        let (credentials, tally) = (args.credentials.clone(), tally.clone());
        let (user, hold) = (args.first_user + i, Duration::from_millis(args.hold_ms));
        tasks.push(tokio::spawn(async move {
            let outcome = visit(&endpoint, &credentials, user, hold).await;
            let mut tally = tally
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            match outcome {
                Ok((open_us, ended_early)) => {
                    tally.opened += 1;
                    tally.open_latencies_us.push(open_us);
                    tally.closed_early += u64::from(ended_early);
                }
                Err(error) => *tally.errors.entry(format!("{error:#}")).or_default() += 1,
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let tally = tally
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    println!(
        "{}",
        json!({
            "attempted": total,
            "opened": tally.opened,
            "failed": total - tally.opened,
            "errors": tally.errors,
            "closed_early": tally.closed_early,
            "seconds": (began.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
            "open_latency": summary_of(&tally.open_latencies_us),
        })
    );
    Ok(())
}

/// Opens one stream (failing after 10 s), reads it for `hold`, hangs up. Returns how long
/// the open took (µs) and whether the server ended the stream first.
async fn visit(
    endpoint: &Endpoint,
    credentials: &Credentials,
    user: u64,
    hold: Duration,
) -> anyhow::Result<(u64, bool)> {
    let everyone = Spread {
        mode: Mode::Broadcast,
        users: 1,
    };
    let started = Instant::now();
    let open = stream::open(endpoint, credentials, &everyone, user, Resume::default());
    let (mut reader, _chunked) = match tokio::time::timeout(Duration::from_secs(10), open).await {
        Ok(opened) => opened?,
        Err(_) => bail!("no response head within 10 s"),
    };
    let open_us = started.elapsed().as_micros() as u64;
    let deadline = tokio::time::sleep(hold);
    tokio::pin!(deadline);
    let mut buffer = [0u8; 4096];
    loop {
        tokio::select! {
            _ = &mut deadline => return Ok((open_us, false)),
            read = reader.read(&mut buffer) => match read {
                Ok(0) | Err(_) => return Ok((open_us, true)),
                Ok(_) => {}
            },
        }
    }
}
