//! TLS: rustls with ALPN (`h2`, and `http/1.1` beside it) on both sides (the TCP socket
//! under it: `socket`).

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::sync::Arc;

use crate::error::Error;

/// Client TLS settings: trust a given CA (PEM) or the system roots.
#[derive(Clone, Debug, Default)]
pub struct ClientTls {
    /// PEM certificates to trust; `None` trusts the system roots.
    pub ca_pem: Option<Vec<u8>>,
    /// The name checked against the server certificate, when it differs from the host.
    pub server_name: Option<String>,
    /// A client certificate chain and key (PEM), for mutual TLS.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

/// Server TLS settings: a certificate chain and its private key, both PEM.
#[derive(Clone, Debug)]
pub struct ServerTls {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    /// Mutual TLS: PEM certificates of the CAs a client's certificate must chain to. With
    /// them, a client that presents no certificate, or one no CA here signed, fails the
    /// handshake (grpc-go's `RequireAndVerifyClientCert`).
    pub client_ca_pem: Option<Vec<u8>>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut &pem[..]).collect();
    let certs = certs.map_err(|e| Error::tls(format!("cannot read PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(Error::tls("no certificate found in the PEM data"));
    }
    Ok(certs)
}

fn key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, Error> {
    rustls_pemfile::private_key(&mut &pem[..])
        .map_err(|e| Error::tls(format!("cannot read the PEM private key: {e}")))?
        .ok_or_else(|| Error::tls("no private key found in the PEM data"))
}

/// ALPN's names for HTTP/2 and HTTP/1.1 (RFC 7301's registry).
pub(crate) const H2: &[u8] = b"h2";
pub(crate) const HTTP1: &[u8] = b"http/1.1";

/// A client's TLS config offering `alpn`, most preferred first.
pub(crate) fn client_config(
    tls: &ClientTls,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ClientConfig>, Error> {
    let mut roots = rustls::RootCertStore::empty();
    match &tls.ca_pem {
        Some(pem) => {
            for c in certs(pem)? {
                roots
                    .add(c)
                    .map_err(|e| Error::tls(format!("bad CA certificate: {e}")))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for c in found.certs {
                let _ = roots.add(c);
            }
            if roots.is_empty() {
                return Err(Error::tls("no system root certificates found; give a CA"));
            }
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::tls(e.to_string()))?
        .with_root_certificates(roots);
    let mut cfg = match &tls.identity {
        Some((cert, k)) => builder
            .with_client_auth_cert(certs(cert)?, key(k)?)
            .map_err(|e| Error::tls(e.to_string()))?,
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(cfg))
}

pub(crate) fn server_config(tls: &ServerTls) -> Result<Arc<rustls::ServerConfig>, Error> {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::tls(e.to_string()))?;
    let builder = match &tls.client_ca_pem {
        None => builder.with_no_client_auth(),
        Some(pem) => builder.with_client_cert_verifier(client_verifier(pem)?),
    };
    let mut cfg = builder
        .with_single_cert(certs(&tls.cert_pem)?, key(&tls.key_pem)?)
        .map_err(|e| {
            Error::tls(format!(
                "certificate and key do not form a usable identity: {e}"
            ))
        })?;
    // HTTP/2 first: a client offering both gets the protocol every call shape works over.
    cfg.alpn_protocols = vec![H2.to_vec(), HTTP1.to_vec()];
    Ok(Arc::new(cfg))
}

/// Accepts a client whose certificate chains to one of the CAs in `pem`.
fn client_verifier(
    pem: &[u8],
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, Error> {
    let mut roots = rustls::RootCertStore::empty();
    for c in certs(pem)? {
        roots
            .add(c)
            .map_err(|e| Error::tls(format!("bad client CA certificate: {e}")))?;
    }
    rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| Error::tls(format!("cannot verify clients with these CAs: {e}")))
}

pub(crate) fn server_name(name: &str) -> Result<ServerName<'static>, Error> {
    ServerName::try_from(name.to_owned())
        .map_err(|e| Error::tls(format!("invalid TLS server name {name:?}: {e}")))
}
