//! Opening one event stream as a browser would: Herald's `/t/{tenant}/stream` with a user
//! token of its own, or an nchan subscriber location. Listeners and the churner share it.

use anyhow::bail;
use serde_json::json;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::http::{connect, read_head};
use crate::{Endpoint, Spread, Target, now_nanos};

/// Herald: the tenant, and the HS256 signing key each connection's user token is made with.
#[derive(clap::Args, Clone)]
pub struct Credentials {
    #[arg(long, default_value = "bench")]
    pub tenant: String,
    #[arg(long, default_value = "")]
    pub kid: String,
    #[arg(long, default_value = "")]
    pub secret: String,
}

/// Where a stream starts.
#[derive(Clone, Copy, Default)]
pub struct Resume<'a> {
    /// Herald: sent as `Last-Event-ID`.
    pub last_event_id: Option<&'a str>,
    /// nchan: subscribe where the channel's buffer is replayed from its oldest message.
    pub from_oldest: bool,
}

/// Opens user `user`'s stream and reads the response head (which must be 200); true when
/// the body is chunked.
pub async fn open(
    endpoint: &Endpoint,
    credentials: &Credentials,
    spread: &Spread,
    user: u64,
    resume: Resume<'_>,
) -> anyhow::Result<(BufReader<TcpStream>, bool)> {
    let mut stream = connect(endpoint.server, endpoint.source).await?;
    let last_event_id = resume
        .last_event_id
        .map(|id| format!("Last-Event-ID: {id}\r\n"))
        .unwrap_or_default();
    let request = match endpoint.target {
        Target::Herald => format!(
            "GET /t/{}/stream HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\nAuthorization: Bearer {}\r\n{last_event_id}\r\n",
            credentials.tenant,
            endpoint.server,
            token(credentials, user)?,
        ),
        Target::Nchan => {
            let location = if resume.from_oldest {
                "sub_oldest"
            } else {
                "sub"
            };
            format!(
                "GET /{location}/{} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n{last_event_id}\r\n",
                spread.nchan_channel(user),
                endpoint.server,
            )
        }
    };
    stream.write_all(request.as_bytes()).await?;
    let mut reader = BufReader::with_capacity(4096, stream);
    let head = read_head(&mut reader).await?;
    if head.code != 200 {
        bail!("status {}", head.code);
    }
    Ok((reader, head.chunked))
}

/// A day-long user token for `u<user>`.
pub fn token(credentials: &Credentials, user: u64) -> anyhow::Result<String> {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(credentials.kid.clone());
    let exp = now_nanos() / 1_000_000_000 + 24 * 3600;
    let claims = json!({"sub": format!("u{user}"), "aud": "herald", "exp": exp});
    Ok(jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(credentials.secret.as_bytes()),
    )?)
}
