//! Which certificate the webhook serves, by a TLS handshake to the URL the API server calls
//! (configurations registered by URL; behind a Service the plugin cannot reach the pods).

use std::sync::Arc;
use std::time::Duration;

use jobflow::certs::CertInfo;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};

/// How long a handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// The serial the webhook at `url` serves, verified against `bundle` (PEM) as the API server
/// would verify it; `Err` says why not.
pub async fn served_serial(url: &str, bundle: &[u8]) -> Result<String, String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("parsing {url}: {e}"))?;
    let host = uri.host().ok_or(format!("{url} has no host"))?.to_owned();
    let port = uri.port_u16().unwrap_or(443);
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let name = ServerName::try_from(host.clone()).map_err(|e| format!("{host}: {e}"))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(bundle) {
        let cert = cert.map_err(|e| format!("reading the caBundle: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("reading the caBundle: {e}"))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let handshake = async {
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| format!("connecting to {host}:{port}: {e}"))?;
        connector
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake with {host}:{port}: {e}"))
    };
    let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
        .await
        .map_err(|_| format!("the TLS handshake with {host}:{port} timed out"))??;
    let leaf = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .ok_or("the webhook sent no certificate")?;
    CertInfo::from_der(leaf, "tls.crt")
        .map(|info| info.serial)
        .map_err(|e| e.to_string())
}
