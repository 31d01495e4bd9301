//! Optional TLS. With `server.tls.cert_file` and `server.tls.key_file` set, Herald serves
//! HTTPS itself and offers HTTP/2 by ALPN: a browser then multiplexes every event stream
//! to Herald over one connection, instead of being held to six per host as on HTTP/1.1.
//! rustls, with the ring provider (no C toolchain beyond the one SQLite needs).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsSettings;

/// The server's TLS configuration from the PEM files: the certificate chain (leaf first)
/// and its private key. A missing or unreadable file stops start-up, naming it.
pub fn server_config(settings: &TlsSettings) -> anyhow::Result<rustls::ServerConfig> {
    let chain = read_chain(&settings.cert_file)?;
    let key = PrivateKeyDer::from_pem_file(&settings.key_file).with_context(|| {
        format!(
            "server.tls.key_file: no private key in {}",
            settings.key_file.display()
        )
    })?;
    rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("server.tls: the certificate and the key do not go together")
}

fn read_chain(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let named = || format!("server.tls.cert_file: cannot read {}", path.display());
    let chain = CertificateDer::pem_file_iter(path)
        .with_context(named)?
        .collect::<Result<Vec<_>, _>>()
        .with_context(named)?;
    anyhow::ensure!(
        !chain.is_empty(),
        "server.tls.cert_file: no certificate in {}",
        path.display()
    );
    Ok(chain)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// For `herald healthcheck` only: a client that completes the handshake with this host's
/// own Herald without checking its certificate (it may be issued for the public name, not
/// for 127.0.0.1). Nothing secret crosses that connection.
pub fn loopback_client_config() -> anyhow::Result<rustls::ClientConfig> {
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate))
        .with_no_client_auth())
}

#[derive(Debug)]
struct AnyCertificate;

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signature: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            signature,
            &provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signature: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            signature,
            &provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}
