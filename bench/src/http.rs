//! Just enough HTTP/1.1 for a load tool: one request at a time on a keep-alive connection,
//! bodies framed by Content-Length (what Herald and nginx answer publishes with).

use std::net::{IpAddr, SocketAddr};

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};

/// Connects to `server` from `source` (any free port of that address).
pub async fn connect(server: SocketAddr, source: IpAddr) -> anyhow::Result<TcpStream> {
    let socket = match source {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(source, 0))?;
    let stream = socket.connect(server).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

pub struct Client {
    stream: BufReader<TcpStream>,
    host: String,
}

impl Client {
    pub async fn open(server: SocketAddr, source: IpAddr) -> anyhow::Result<Client> {
        Ok(Client {
            stream: BufReader::new(connect(server, source).await?),
            host: server.to_string(),
        })
    }

    /// Sends a POST and returns the status (the body is read and dropped).
    pub async fn post(
        &mut self,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> anyhow::Result<u16> {
        let mut request = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n",
            self.host,
            body.len()
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        let stream = self.stream.get_mut();
        stream.write_all(request.as_bytes()).await?;
        stream.write_all(body).await?;
        let status = read_head(&mut self.stream).await?;
        let mut body = vec![0u8; status.content_length];
        self.stream.read_exact(&mut body).await?;
        Ok(status.code)
    }
}

pub struct Head {
    pub code: u16,
    pub content_length: usize,
    /// `Transfer-Encoding: chunked` (Herald); otherwise the body runs until the connection
    /// closes (nchan's event streams).
    pub chunked: bool,
}

/// Reads a response head.
pub async fn read_head(stream: &mut BufReader<TcpStream>) -> anyhow::Result<Head> {
    let mut line = String::new();
    stream.read_line(&mut line).await?;
    let code: u16 = line
        .split_whitespace()
        .nth(1)
        .context("no status line")?
        .parse()
        .context("bad status")?;
    let mut content_length = 0;
    let mut chunked = false;
    loop {
        line.clear();
        if stream.read_line(&mut line).await? == 0 {
            bail!("connection closed in the head");
        }
        let header = line.trim_end();
        if header.is_empty() {
            return Ok(Head {
                code,
                content_length,
                chunked,
            });
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                content_length = value.trim().parse().unwrap_or(0);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.to_ascii_lowercase().contains("chunked");
            }
        }
    }
}
