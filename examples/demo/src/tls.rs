//! HTTPS for the demo: `KEYBOUND_TLS_CERT` (the certificate chain, PEM) and
//! `KEYBOUND_TLS_KEY` (its private key, PEM: PKCS#8, PKCS#1 or SEC1), both or neither.
//! Browsers only run DBSC over HTTPS, so the demo's DBSC mode needs both.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The two PEM files.
pub(crate) struct TlsFiles {
    cert: PathBuf,
    key: PathBuf,
}

impl TlsFiles {
    /// Reads `KEYBOUND_TLS_CERT` and `KEYBOUND_TLS_KEY` through `lookup`: `None` when
    /// neither is set, an error naming the missing one when only one is.
    pub(crate) fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, String> {
        let get = |name: &str| {
            lookup(name)
                .filter(|v| !v.trim().is_empty())
                .map(PathBuf::from)
        };
        match (get("KEYBOUND_TLS_CERT"), get("KEYBOUND_TLS_KEY")) {
            (None, None) => Ok(None),
            (Some(cert), Some(key)) => Ok(Some(Self { cert, key })),
            (Some(_), None) => {
                Err("KEYBOUND_TLS_CERT is set but KEYBOUND_TLS_KEY is not: HTTPS needs both".into())
            }
            (None, Some(_)) => {
                Err("KEYBOUND_TLS_KEY is set but KEYBOUND_TLS_CERT is not: HTTPS needs both".into())
            }
        }
    }

    /// The rustls server configuration (HTTP/2 and HTTP/1.1), with an error naming the
    /// variable and file for a file that is missing, unreadable, holds no PEM
    /// certificate or key, or whose key does not belong to the certificate.
    pub(crate) fn server_config(&self) -> Result<Arc<ServerConfig>, String> {
        let read = |name: &str, path: &Path| {
            std::fs::read(path).map_err(|e| format!("{name}: cannot read {}: {e}", path.display()))
        };
        let cert_pem = read("KEYBOUND_TLS_CERT", &self.cert)?;
        let certs = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                format!(
                    "KEYBOUND_TLS_CERT: {} is not valid PEM: {e}",
                    self.cert.display()
                )
            })?;
        if certs.is_empty() {
            return Err(format!(
                "KEYBOUND_TLS_CERT: {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                self.cert.display()
            ));
        }
        let key_pem = read("KEYBOUND_TLS_KEY", &self.key)?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
            format!(
                "KEYBOUND_TLS_KEY: {} holds no usable PEM private key (PKCS#8, PKCS#1 or SEC1): {e}",
                self.key.display()
            )
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup failed: {e}"))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| {
                format!(
                    "KEYBOUND_TLS_KEY: {} does not fit the certificate in {}: {e}",
                    self.key.display(),
                    self.cert.display()
                )
            })?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}
