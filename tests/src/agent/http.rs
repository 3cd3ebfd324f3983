//! A free loopback port, and the minimal HTTP/1.1 client of the agent's admin port.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// How long one admin HTTP request may take.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// A loopback address with a port nobody listened on a moment ago.
pub fn free_port() -> std::io::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.local_addr()
}

/// A minimal HTTP/1.1 GET of `path` on `addr` (`Connection: close`, at most [`HTTP_TIMEOUT`]):
/// the status code and the body. Enough for the agent's admin port (`/readyz`, `/metrics`);
/// fails on a chunked response rather than return it undecoded.
pub async fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        anyhow::Ok(response)
    };
    let response = tokio::time::timeout(HTTP_TIMEOUT, exchange)
        .await
        .with_context(|| format!("GET http://{addr}{path} took over {HTTP_TIMEOUT:?}"))?
        .with_context(|| format!("GET http://{addr}{path}"))?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .with_context(|| format!("GET http://{addr}{path}: no end of headers in {text:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("GET http://{addr}{path}: no status in {head:?}"))?;
    anyhow::ensure!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "GET http://{addr}{path}: chunked responses are not supported"
    );
    Ok((status, body.to_owned()))
}
