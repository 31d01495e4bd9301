//! A webhook receiver for the tests: a real HTTP/1.1 server on 127.0.0.1 that records every
//! request it is sent and answers as it is told — a status with headers, nothing for a
//! while, a redirect, an answer broken off, or one far too large — and the independent
//! verifier of the Standard Webhooks specification (its reference library, run by node).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    /// Lower-case names.
    pub headers: HashMap<String, String>,
    pub body: String,
    /// The body as it came (`body` is it read as text).
    pub bytes: Vec<u8>,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// How the receiver answers a request.
#[derive(Debug, Clone)]
pub enum Answer {
    Status(u16),
    /// A status with these headers (e.g. `Retry-After`).
    StatusWith(u16, Vec<(&'static str, String)>),
    /// Nothing, for this long, then 200.
    After(Duration),
    /// A `302` to elsewhere.
    Redirect,
    /// A head promising more body than is sent, then the connection closed.
    BrokenOff,
    /// A 200 with this many bytes of body.
    Huge(usize),
}

#[derive(Default)]
struct Script {
    next: VecDeque<Answer>,
    otherwise: Option<Answer>,
}

pub struct Receiver {
    pub url: String,
    received: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<Script>>,
    arrived: Arc<Notify>,
}

impl Receiver {
    /// A receiver on a port of its own, answering 204 until told otherwise.
    pub async fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        let receiver = Receiver {
            url,
            received: Arc::default(),
            script: Arc::default(),
            arrived: Arc::default(),
        };
        let (received, script, arrived) = (
            receiver.received.clone(),
            receiver.script.clone(),
            receiver.arrived.clone(),
        );
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (received, script, arrived) =
                    (received.clone(), script.clone(), arrived.clone());
                tokio::spawn(serve(socket, received, script, arrived));
            }
        });
        receiver
    }

    /// The next requests are answered so, in order; after them, as `answer_all` said.
    pub fn answer_next(&self, answers: impl IntoIterator<Item = Answer>) {
        self.script.lock().unwrap().next.extend(answers);
    }

    /// Every request from now on (after those `answer_next` named) is answered so.
    pub fn answer_all(&self, answer: Answer) {
        self.script.lock().unwrap().otherwise = Some(answer);
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until `count` requests have arrived (failing after `within`).
    pub async fn wait_for(&self, count: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let arrived = self.arrived.notified();
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "the receiver got {} requests, not {count}, within {within:?}",
                received.len()
            );
            let _ = tokio::time::timeout(left, arrived).await;
        }
    }
}

async fn serve(
    mut socket: TcpStream,
    received: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<Script>>,
    arrived: Arc<Notify>,
) {
    let mut buffer = Vec::new();
    loop {
        let Some((headers, bytes)) = read_request(&mut socket, &mut buffer).await else {
            return;
        };
        received.lock().unwrap().push(Received {
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
            bytes,
            at: Instant::now(),
        });
        arrived.notify_waiters();
        let answer = {
            let mut script = script.lock().unwrap();
            script
                .next
                .pop_front()
                .or_else(|| script.otherwise.clone())
                .unwrap_or(Answer::Status(204))
        };
        let reply = match answer {
            Answer::Status(status) => head(status, &[], 0),
            Answer::StatusWith(status, headers) => head(status, &headers, 0),
            Answer::After(wait) => {
                tokio::time::sleep(wait).await;
                head(200, &[], 0)
            }
            Answer::Redirect => head(
                302,
                &[("Location", "http://127.0.0.1:9/elsewhere".into())],
                0,
            ),
            Answer::BrokenOff => {
                let _ = socket.write_all(&head(200, &[], 1000)).await;
                let _ = socket.write_all(b"{\"partial\":").await;
                return;
            }
            Answer::Huge(bytes) => {
                let _ = socket.write_all(&head(200, &[], bytes)).await;
                let chunk = vec![b'x'; 64 * 1024];
                let mut left = bytes;
                while left > 0 {
                    let n = left.min(chunk.len());
                    if socket.write_all(&chunk[..n]).await.is_err() {
                        return;
                    }
                    left -= n;
                }
                continue;
            }
        };
        if socket.write_all(&reply).await.is_err() {
            return;
        }
    }
}

fn head(status: u16, headers: &[(&str, String)], length: usize) -> Vec<u8> {
    let mut text = format!("HTTP/1.1 {status} Test\r\ncontent-length: {length}\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    text.into_bytes()
}

/// One request's headers and body, or `None` once the peer has gone.
async fn read_request(
    socket: &mut TcpStream,
    buffer: &mut Vec<u8>,
) -> Option<(HashMap<String, String>, Vec<u8>)> {
    loop {
        let mut slots = [httparse::EMPTY_HEADER; 64];
        let mut request = httparse::Request::new(&mut slots);
        if let Ok(httparse::Status::Complete(head_len)) = request.parse(buffer) {
            let headers: HashMap<String, String> = request
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_ascii_lowercase(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
            let length: usize = headers
                .get("content-length")
                .and_then(|l| l.parse().ok())
                .unwrap_or(0);
            while buffer.len() < head_len + length {
                read_more(socket, buffer).await?;
            }
            let body = buffer[head_len..head_len + length].to_vec();
            buffer.drain(..head_len + length);
            return Some((headers, body));
        }
        read_more(socket, buffer).await?;
    }
}

async fn read_more(socket: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 16 * 1024];
    match socket.read(&mut chunk).await {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            buffer.extend_from_slice(&chunk[..n]);
            Some(())
        }
    }
}

/// What the Standard Webhooks reference library (npm `standardwebhooks`, run by node) says
/// of each request, verified with `secret`: `"ok"` or its error. `None`, after saying why,
/// where the verifier is not installed (CI installs it).
pub fn verify_independently(checks: &[(&str, &Received)]) -> Option<Vec<String>> {
    let dir = std::path::Path::new("tests/webhooks");
    if !dir.join("node_modules/standardwebhooks").exists() {
        super::skip_unless_ci(
            "the webhook signature test",
            "the Standard Webhooks verifier is not installed (cd tests/webhooks && npm ci)",
        );
        return None;
    }
    let input: Vec<Value> = checks
        .iter()
        .map(|(secret, request)| {
            serde_json::json!({"secret": secret, "headers": request.headers, "body": request.body})
        })
        .collect();
    let mut child = std::process::Command::new("node")
        .arg("verify.mjs")
        .current_dir(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("node runs");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(serde_json::to_string(&input).unwrap().as_bytes())
            .unwrap();
    }
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "the verifier failed to run");
    Some(serde_json::from_slice(&output.stdout).unwrap())
}
