//! `herald-load listen`: hold SSE connections and account for every event.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::TcpStream;

use crate::receipts::{Acknowledger, Senders};
use crate::report::{histogram, summary};
use crate::stream::{self, Credentials, Resume};
use crate::{Endpoint, Mode, Spread, now_nanos};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    endpoint: Endpoint,
    #[arg(long)]
    connections: usize,
    /// Connection i streams as user u<first-user + i>.
    #[arg(long, default_value_t = 0)]
    first_user: usize,
    #[command(flatten)]
    spread: Spread,
    /// How many events the publisher sends in all.
    #[arg(long)]
    events: u64,
    #[command(flatten)]
    credentials: Credentials,
    /// Seconds to wait for the events once every connection is open.
    #[arg(long, default_value_t = 120)]
    duration: u64,
    /// Connections opened at once.
    #[arg(long, default_value_t = 256)]
    open_batch: usize,
    /// Resume from here (sent as `Last-Event-ID`): the replay scenario.
    #[arg(long)]
    last_event_id: Option<String>,
    /// nchan: subscribe where the channel's buffer is replayed from its oldest message.
    #[arg(long)]
    from_oldest: bool,
    /// Also write every latency (µs), one per line, here: percentiles over several
    /// listener processes are computed from all their samples.
    #[arg(long)]
    samples: Option<std::path::PathBuf>,
    /// Herald: acknowledge as `herald.js` does (`POST /t/{tenant}/receipts`, delivered and
    /// seen, at most once a second per connection), over this many shared keep-alive
    /// connections (0: no receipts).
    #[arg(long, default_value_t = 0)]
    receipt_connections: usize,
}

/// What one connection saw.
struct Seen {
    latencies_us: Vec<u32>,
    unique: u64,
    duplicates: u64,
    expected: u64,
    out_of_order: u64,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let args = Arc::new(args);
    let senders = match args.receipt_connections {
        0 => None,
        n => Some(Senders::start(&args.endpoint, &args.credentials.tenant, n).await?),
    };
    let opened = Arc::new(AtomicUsize::new(0));
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<bool>(args.connections.max(1));
    let mut tasks = Vec::with_capacity(args.connections);
    let expiry = Arc::new(tokio::sync::Notify::new());
    for batch in (0..args.connections)
        .collect::<Vec<_>>()
        .chunks(args.open_batch)
    {
        let mut waiting = Vec::new();
        for &i in batch {
            let (args, ready_tx, opened, expiry, senders) = (
                args.clone(),
                ready_tx.clone(),
                opened.clone(),
                expiry.clone(),
                senders.clone(),
            );
            let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
            waiting.push(started_rx);
            tasks.push(tokio::spawn(async move {
                let stream = open(&args, args.first_user + i).await;
                let _ = started_tx.send(());
                match stream {
                    Ok((stream, chunked)) => {
                        opened.fetch_add(1, Ordering::Relaxed);
                        let _ = ready_tx.send(true).await;
                        let user = args.first_user + i;
                        let acknowledger = match senders {
                            Some(senders) => {
                                let token = stream::token(&args.credentials, user as u64);
                                token.ok().map(|token| Acknowledger::start(senders, &token))
                            }
                            None => None,
                        };
                        Some(follow(stream, chunked, &args, user, &expiry, acknowledger).await)
                    }
                    Err(error) => {
                        eprintln!("connection {i}: {error:#}");
                        let _ = ready_tx.send(false).await;
                        None
                    }
                }
            }));
        }
        for started in waiting {
            let _ = started.await;
        }
    }
    drop(ready_tx);
    let mut failed = 0;
    for _ in 0..args.connections {
        if !ready_rx.recv().await.unwrap_or(false) {
            failed += 1;
        }
    }
    println!(
        "{}",
        json!({"ready": opened.load(Ordering::Relaxed), "failed": failed})
    );
    let all_open = std::time::Instant::now();
    let deadline = tokio::time::sleep(Duration::from_secs(args.duration));
    tokio::pin!(deadline);
    let all = futures_join(tasks);
    tokio::pin!(all);
    let results = tokio::select! {
        results = &mut all => results,
        _ = &mut deadline => {
            expiry.notify_waiters();
            all.await
        }
    };
    if let Some(path) = &args.samples {
        use std::io::Write;
        let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
        for seen in results.iter().flatten() {
            for latency in &seen.latencies_us {
                writeln!(file, "{latency}")?;
            }
        }
        file.flush()?;
    }
    let seconds_to_complete = all_open.elapsed().as_secs_f64();
    let mut latencies = histogram();
    let (mut received, mut duplicates, mut lost, mut out_of_order, mut closed) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    for seen in results.into_iter().flatten() {
        for latency in &seen.latencies_us {
            let _ = latencies.record(u64::from(*latency).max(1));
        }
        received += seen.unique;
        duplicates += seen.duplicates;
        out_of_order += seen.out_of_order;
        lost += seen.expected.saturating_sub(seen.unique);
        if seen.unique < seen.expected {
            closed += 1;
        }
    }
    let receipts = senders.map(|senders| senders.report());
    println!(
        "{}",
        json!({
            "receipts": receipts,
            "connections": opened.load(Ordering::Relaxed),
            "failed": failed,
            "received": received,
            "lost": lost,
            "duplicates": duplicates,
            "out_of_order": out_of_order,
            "incomplete_connections": closed,
            "seconds_to_complete": (seconds_to_complete * 1000.0).round() / 1000.0,
            "latency": summary(&latencies),
        })
    );
    Ok(())
}

async fn futures_join<T: Send + 'static>(
    tasks: Vec<tokio::task::JoinHandle<Option<T>>>,
) -> Vec<Option<T>> {
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        results.push(task.await.ok().flatten());
    }
    results
}

/// Opens connection `user`'s stream, from where the scenario says.
async fn open(args: &Args, user: usize) -> anyhow::Result<(BufReader<TcpStream>, bool)> {
    let resume = Resume {
        last_event_id: args.last_event_id.as_deref(),
        from_oldest: args.from_oldest,
    };
    stream::open(
        &args.endpoint,
        &args.credentials,
        &args.spread,
        user as u64,
        resume,
    )
    .await
}

/// Reads the stream (chunked or not) until every expected event came, the server ended
/// it, or the run's time is up.
async fn follow(
    mut reader: BufReader<TcpStream>,
    chunked: bool,
    args: &Args,
    user: usize,
    expiry: &tokio::sync::Notify,
    acknowledger: Option<Arc<Acknowledger>>,
) -> Seen {
    let expected = args.spread.expected_for(user as u64, args.events);
    let mut seen = Seen {
        latencies_us: Vec::with_capacity(expected.min(100_000) as usize),
        unique: 0,
        duplicates: 0,
        expected,
        out_of_order: 0,
    };
    let mut got = vec![false; expected as usize];
    let mut last_k: Option<u64> = None;
    let mut sse = Vec::new();
    let mut data: Option<Vec<u8>> = None;
    let mut id: Option<Vec<u8>> = None;
    let read_all = async {
        let mut line = Vec::new();
        loop {
            if chunked {
                // A size line, that many bytes, CRLF.
                line.clear();
                if reader.read_until(b'\n', &mut line).await.ok()? == 0 {
                    return None;
                }
                let size = std::str::from_utf8(&line).ok()?.trim().split(';').next()?;
                let size = usize::from_str_radix(size, 16).ok()?;
                if size == 0 {
                    return None;
                }
                let start = sse.len();
                sse.resize(start + size, 0);
                reader.read_exact(&mut sse[start..]).await.ok()?;
                let mut crlf = [0u8; 2];
                reader.read_exact(&mut crlf).await.ok()?;
            } else {
                let start = sse.len();
                sse.resize(start + 4096, 0);
                let read = reader.read(&mut sse[start..]).await.ok()?;
                sse.truncate(start + read);
                if read == 0 {
                    return None;
                }
            }
            // Whole lines only; a partial one waits for the next chunk.
            let mut consumed = 0;
            while let Some(end) = sse[consumed..].iter().position(|&b| b == b'\n') {
                let text = &sse[consumed..consumed + end];
                consumed += end + 1;
                if text.is_empty() {
                    // A frame ends: what it carried is acknowledged if it was an event
                    // (an id and data), not a position or the inbox count alone.
                    let frame_id = id.take();
                    if let Some(payload) = data.take() {
                        account(&payload, args, &mut seen, &mut got, &mut last_k);
                        if let (Some(id), Some(acknowledger)) = (frame_id, &acknowledger) {
                            acknowledger.got(&String::from_utf8_lossy(&id));
                        }
                    }
                } else if let Some(value) = text.strip_prefix(b"id:") {
                    let value = value.strip_prefix(b" ").unwrap_or(value);
                    id = Some(value.to_vec());
                } else if let Some(value) = text.strip_prefix(b"data:") {
                    let value = value.strip_prefix(b" ").unwrap_or(value);
                    data.get_or_insert_with(Vec::new).extend_from_slice(value);
                }
            }
            sse.drain(..consumed);
            if seen.unique >= seen.expected {
                return Some(());
            }
        }
    };
    tokio::select! {
        _ = read_all => {}
        _ = expiry.notified() => {}
    }
    seen
}

/// One event's data: `{"ts": <ns>, "n": <number>, "k": <index for its user>}`.
fn account(
    payload: &[u8],
    args: &Args,
    seen: &mut Seen,
    got: &mut [bool],
    last_k: &mut Option<u64>,
) {
    let now = now_nanos();
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(payload) else {
        return;
    };
    let (Some(ts), Some(n)) = (value["ts"].as_u64(), value["n"].as_u64()) else {
        return;
    };
    let k = match args.spread.mode {
        Mode::Broadcast => n,
        Mode::Users => value["k"].as_u64().unwrap_or(n),
    };
    seen.latencies_us
        .push(((now.saturating_sub(ts)) / 1000).min(u64::from(u32::MAX)) as u32);
    if last_k.is_some_and(|last| k <= last) {
        seen.out_of_order += 1;
    }
    *last_k = Some(k);
    match got.get_mut(k as usize) {
        Some(slot) if *slot => seen.duplicates += 1,
        Some(slot) => {
            *slot = true;
            seen.unique += 1;
        }
        None => {}
    }
}
