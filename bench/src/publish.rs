//! `herald-load publish`: events with send timestamps, at a paced rate.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::http::Client;
use crate::report::{histogram, summary};
use crate::{Endpoint, Mode, Spread, Target, now_nanos};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    endpoint: Endpoint,
    #[command(flatten)]
    spread: Spread,
    /// Events to send in all.
    #[arg(long)]
    events: u64,
    /// The number of the first event (a second phase continues where the first stopped).
    #[arg(long, default_value_t = 0)]
    start: u64,
    /// Events per second (0: as fast as the server answers).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Open loop, with `rate`: each event's latencies — its request's and its delivery's
    /// (its `ts`) — count from when the clock said to send it, so a send held up behind a
    /// slow answer counts its wait. Needs enough `concurrency` that a request is free when
    /// the clock says to send.
    #[arg(long)]
    from_due: bool,
    /// Events per request (Herald batches; nchan takes one message per request).
    #[arg(long, default_value_t = 1)]
    batch: u64,
    /// Requests in flight (one keep-alive connection each).
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Herald: the tenant's API key.
    #[arg(long, default_value = "")]
    api_key: String,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let args = Arc::new(args);
    let next = Arc::new(AtomicU64::new(args.start));
    let began = (Instant::now(), now_nanos());
    let mut workers = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let (args, next) = (args.clone(), next.clone());
        workers.push(tokio::spawn(
            async move { worker(&args, &next, began).await },
        ));
    }
    let mut latencies = histogram();
    let (mut requests, mut errors) = (0u64, 0u64);
    for worker in workers {
        let (samples, failed) = worker.await??;
        requests += samples.len() as u64;
        errors += failed;
        for micros in samples {
            let _ = latencies.record(micros.max(1));
        }
    }
    let elapsed = began.0.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({
            "events": args.events,
            "requests": requests,
            "errors": errors,
            "seconds": (elapsed * 1000.0).round() / 1000.0,
            "events_per_second": (args.events as f64 / elapsed).round(),
            "request_latency": summary(&latencies),
        })
    );
    Ok(())
}

async fn worker(
    args: &Args,
    next: &AtomicU64,
    (began, began_ns): (Instant, u64),
) -> anyhow::Result<(Vec<u64>, u64)> {
    let mut client = Client::open(args.endpoint.server, args.endpoint.source).await?;
    let batch = if args.endpoint.target == Target::Nchan {
        1
    } else {
        args.batch.max(1)
    };
    let end = args.start + args.events;
    let mut samples = Vec::new();
    let mut errors = 0;
    loop {
        let first = next.fetch_add(batch, Ordering::Relaxed);
        if first >= end {
            return Ok((samples, errors));
        }
        let last = (first + batch).min(end);
        let mut sent = Instant::now();
        let mut ts = None;
        if args.rate > 0.0 {
            let after = Duration::from_secs_f64((first - args.start) as f64 / args.rate);
            tokio::time::sleep_until((began + after).into()).await;
            if args.from_due {
                sent = began + after;
                ts = Some(began_ns + after.as_nanos() as u64);
            }
        }
        let status = match send(&mut client, args, first, last, ts).await {
            Ok(status) => status,
            // A server may close a keep-alive connection at will: reconnect and send again.
            Err(_) => {
                client = Client::open(args.endpoint.server, args.endpoint.source).await?;
                send(&mut client, args, first, last, ts).await?
            }
        };
        samples.push(sent.elapsed().as_micros() as u64);
        if !(200..300).contains(&status) {
            errors += 1;
        }
    }
}

/// Sends events `first..last` in one request, stamped `ts` (else now); returns the status.
async fn send(
    client: &mut Client,
    args: &Args,
    first: u64,
    last: u64,
    ts: Option<u64>,
) -> anyhow::Result<u16> {
    match args.endpoint.target {
        Target::Herald => {
            let events: Vec<Value> = (first..last).map(|n| herald_event(args, n, ts)).collect();
            let body = json!({ "events": events }).to_string();
            let auth = format!("Bearer {}", args.api_key);
            let headers = [
                ("Authorization", auth.as_str()),
                ("Content-Type", "application/json"),
            ];
            client.post("/v1/events", &headers, body.as_bytes()).await
        }
        Target::Nchan => {
            let body = data(args, first, ts).to_string();
            let channel = args.spread.nchan_channel(args.spread.user_of(first));
            let headers = [("Content-Type", "application/json")];
            client
                .post(&format!("/pub/{channel}"), &headers, body.as_bytes())
                .await
        }
    }
}

fn data(args: &Args, n: u64, ts: Option<u64>) -> Value {
    let ts = ts.unwrap_or_else(now_nanos);
    json!({ "ts": ts, "n": n, "k": args.spread.index_of(n) })
}

fn herald_event(args: &Args, n: u64, ts: Option<u64>) -> Value {
    let to = match args.spread.mode {
        Mode::Broadcast => json!({ "broadcast": true }),
        Mode::Users => json!({ "user": format!("u{}", args.spread.user_of(n)) }),
    };
    json!({ "to": to, "type": "tick", "data": data(args, n, ts) })
}
