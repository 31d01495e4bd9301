//! Receipts as `herald.js` sends them: each connection tells Herald what reached it and
//! what was seen — at most one request a second per connection, none when nothing is new —
//! through a few keep-alive connections the listener process shares (as a browser pools
//! its requests), so the sockets of the streams are the server's only large count.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::{Mutex, Notify, mpsc};

use crate::Endpoint;
use crate::http::Client;
use crate::report::summary_of;

/// How often one connection may send.
const EVERY: Duration = Duration::from_secs(1);

/// One request to send: the connection's token and its body.
struct Job {
    authorization: Arc<str>,
    body: String,
}

/// The listener process's senders and what they counted.
pub struct Senders {
    jobs: mpsc::Sender<Job>,
    tenant: String,
    pub sent: AtomicU64,
    pub failed: AtomicU64,
    latencies_us: std::sync::Mutex<Vec<u64>>,
}

impl Senders {
    /// Starts `connections` senders to `endpoint`.
    pub async fn start(
        endpoint: &Endpoint,
        tenant: &str,
        connections: usize,
    ) -> anyhow::Result<Arc<Senders>> {
        let (jobs, queue) = mpsc::channel::<Job>(65_536);
        let senders = Arc::new(Senders {
            jobs,
            tenant: tenant.to_owned(),
            sent: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            latencies_us: std::sync::Mutex::new(Vec::new()),
        });
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..connections.max(1) {
            let client = Client::open(endpoint.server, endpoint.source).await?;
            tokio::spawn(send_all(
                client,
                endpoint.clone(),
                queue.clone(),
                senders.clone(),
            ));
        }
        Ok(senders)
    }

    /// The requests' count, failures and latency.
    pub fn report(&self) -> serde_json::Value {
        let latencies = match self.latencies_us.lock() {
            Ok(latencies) => summary_of(&latencies),
            Err(_) => summary_of(&[]),
        };
        json!({
            "sent": self.sent.load(Ordering::Relaxed),
            "failed": self.failed.load(Ordering::Relaxed),
            "latency": latencies,
        })
    }
}

async fn send_all(
    mut client: Client,
    endpoint: Endpoint,
    queue: Arc<Mutex<mpsc::Receiver<Job>>>,
    senders: Arc<Senders>,
) {
    let path = format!("/t/{}/receipts", senders.tenant);
    loop {
        let Some(job) = queue.lock().await.recv().await else {
            return;
        };
        let headers = [
            ("Authorization", &*job.authorization),
            ("Content-Type", "application/json"),
        ];
        let started = Instant::now();
        let mut status = client.post(&path, &headers, job.body.as_bytes()).await;
        if status.is_err() {
            // A server may close a keep-alive connection at will.
            if let Ok(again) = Client::open(endpoint.server, endpoint.source).await {
                client = again;
                status = client.post(&path, &headers, job.body.as_bytes()).await;
            }
        }
        match status {
            Ok(204) => {
                senders.sent.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut latencies) = senders.latencies_us.lock() {
                    latencies.push(started.elapsed().as_micros() as u64);
                }
            }
            _ => {
                senders.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// What one connection has not told yet.
#[derive(Default)]
struct Untold {
    delivered: Option<String>,
    seen: Vec<String>,
}

/// One connection's receipts: `got` records each event id as it arrives; a task of its
/// own sends them coalesced.
pub struct Acknowledger {
    untold: std::sync::Mutex<Untold>,
    news: Notify,
}

impl Acknowledger {
    /// Starts the connection's sending task (it lasts as long as the process).
    pub fn start(senders: Arc<Senders>, token: &str) -> Arc<Acknowledger> {
        let acknowledger = Arc::new(Acknowledger {
            untold: std::sync::Mutex::new(Untold::default()),
            news: Notify::new(),
        });
        let authorization: Arc<str> = format!("Bearer {token}").into();
        tokio::spawn(tell(acknowledger.clone(), senders, authorization));
        acknowledger
    }

    /// An event reached the page and was handed to a listener of a visible one.
    pub fn got(&self, id: &str) {
        if let Ok(mut untold) = self.untold.lock() {
            untold.delivered = Some(id.to_owned());
            untold.seen.push(id.to_owned());
        }
        self.news.notify_one();
    }
}

async fn tell(acknowledger: Arc<Acknowledger>, senders: Arc<Senders>, authorization: Arc<str>) {
    loop {
        acknowledger.news.notified().await;
        let untold = match acknowledger.untold.lock() {
            Ok(mut untold) => std::mem::take(&mut *untold),
            Err(_) => return,
        };
        if untold.delivered.is_some() {
            let body = json!({"delivered": untold.delivered, "seen": untold.seen}).to_string();
            let job = Job {
                authorization: authorization.clone(),
                body,
            };
            if senders.jobs.send(job).await.is_err() {
                return;
            }
        }
        tokio::time::sleep(EVERY).await;
    }
}
