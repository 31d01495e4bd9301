//! `herald-load receive`: a webhook receiver for the fallback scenarios. It answers every
//! POST 204 at once and records, for each `notification.unseen` message, how long after
//! its fallback fell due it arrived (the event's `created_at` + `after_secs`), and whether
//! its `webhook-id` or its (event, user) came before: each fallback must fire once.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::now_nanos;
use crate::report::summary_of;

#[derive(clap::Args)]
pub struct Args {
    /// Where to listen, e.g. 127.0.0.1:18099.
    #[arg(long)]
    listen: std::net::SocketAddr,
    /// Stop once this many distinct messages came.
    #[arg(long)]
    expect: usize,
    /// Stop after this many seconds in any case.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
}

#[derive(Default)]
struct Tally {
    ids: HashSet<String>,
    fallbacks: HashSet<(String, String)>,
    duplicate_ids: u64,
    duplicate_fallbacks: u64,
    /// Arrival minus due time, µs.
    late_us: Vec<u64>,
    /// Messages that came before their due time (or without one): a bug if any.
    early: u64,
    first_ns: Option<u64>,
    last_ns: u64,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let listener = TcpListener::bind(args.listen).await?;
    let tally = Arc::new(Mutex::new(Tally::default()));
    let done = Arc::new(tokio::sync::Notify::new());
    println!("{}", json!({"listening": args.listen.to_string()}));
    let accept = {
        let (tally, done) = (tally.clone(), done.clone());
        let expect = args.expect;
        async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let (tally, done) = (tally.clone(), done.clone());
                tokio::spawn(async move {
                    let _ = serve(socket, &tally, &done, expect).await;
                });
            }
        }
    };
    tokio::select! {
        _ = accept => {}
        _ = done.notified() => {}
        _ = tokio::time::sleep(Duration::from_secs(args.timeout)) => {}
    }
    let tally = tally.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    println!(
        "{}",
        json!({
            "messages": tally.ids.len(),
            "fallbacks": tally.fallbacks.len(),
            "duplicate_ids": tally.duplicate_ids,
            "duplicate_fallbacks": tally.duplicate_fallbacks,
            "early": tally.early,
            "first_ns": tally.first_ns,
            "last_ns": tally.last_ns,
            "after_due": summary_of(&tally.late_us),
        })
    );
    Ok(())
}

/// Answers one keep-alive connection's requests.
async fn serve(
    socket: TcpStream,
    tally: &Mutex<Tally>,
    done: &tokio::sync::Notify,
    expect: usize,
) -> anyhow::Result<()> {
    let mut reader = BufReader::new(socket);
    let mut line = String::new();
    loop {
        let mut length = 0usize;
        let mut webhook_id = String::new();
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        loop {
            line.clear();
            if reader.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                } else if name.eq_ignore_ascii_case("webhook-id") {
                    webhook_id = value.trim().to_owned();
                }
            }
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body).await?;
        let arrived = now_nanos();
        reader
            .get_mut()
            .write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
            .await?;
        let message: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if message["type"] != "notification.unseen" {
            continue;
        }
        let data = &message["data"];
        let fallback = (
            data["event"]["id"].as_str().unwrap_or("").to_owned(),
            data["user"].as_str().unwrap_or("").to_owned(),
        );
        let due_ns = data["event"]["created_at"]
            .as_str()
            .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
            .and_then(|at| at.timestamp_nanos_opt())
            .map(|at| at as u64 + data["after_secs"].as_u64().unwrap_or(0) * 1_000_000_000);
        let Ok(mut tally) = tally.lock() else {
            return Ok(());
        };
        tally.first_ns.get_or_insert(arrived);
        tally.last_ns = arrived;
        if !tally.ids.insert(webhook_id) {
            tally.duplicate_ids += 1;
        }
        if !tally.fallbacks.insert(fallback) {
            tally.duplicate_fallbacks += 1;
            continue;
        }
        match due_ns {
            Some(due) if arrived >= due => tally.late_us.push((arrived - due) / 1000),
            _ => tally.early += 1,
        }
        if tally.fallbacks.len() >= expect {
            done.notify_one();
        }
    }
}
