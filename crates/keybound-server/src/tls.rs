//! HTTPS settings: `KEYBOUND_TLS_CERT` (the certificate chain, PEM) and
//! `KEYBOUND_TLS_KEY` (its private key, PEM: PKCS#8, PKCS#1 or SEC1), both or neither,
//! turned into a rustls server configuration. Browsers only run DBSC over HTTPS.
//!
//! ```no_run
//! use keybound_server::tls::TlsFiles;
//!
//! // `None`: neither variable is set, serve plain HTTP.
//! let config = TlsFiles::from_env()?
//!     .map(|files| files.server_config())
//!     .transpose()?;
//! # Ok::<(), keybound_server::tls::TlsError>(())
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The variable naming the certificate chain.
const CERT_VAR: &str = "KEYBOUND_TLS_CERT";
/// The variable naming the private key.
const KEY_VAR: &str = "KEYBOUND_TLS_KEY";

/// Why HTTPS cannot be set up. Every message names the variable and, where there is
/// one, the file.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Only one of the two variables is set.
    #[error("{set} is set but {missing} is not: HTTPS needs both")]
    Incomplete {
        /// The variable that is set.
        set: &'static str,
        /// The one that is not.
        missing: &'static str,
    },
    /// A file cannot be read.
    #[error("{name}: cannot read {}: {source}", .path.display())]
    Unreadable {
        /// The variable naming the file.
        name: &'static str,
        /// The file.
        path: PathBuf,
        /// Why it cannot be read.
        source: std::io::Error,
    },
    /// The certificate file is not valid PEM.
    #[error("KEYBOUND_TLS_CERT: {} is not valid PEM: {source}", .path.display())]
    InvalidCertificatePem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: pem::Error,
    },
    /// The certificate file holds no certificate.
    #[error(
        "KEYBOUND_TLS_CERT: {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
        .path.display()
    )]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The key file holds no private key keybound can use.
    #[error(
        "KEYBOUND_TLS_KEY: {} holds no usable PEM private key (PKCS#8, PKCS#1 or SEC1): {source}",
        .path.display()
    )]
    NoPrivateKey {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: pem::Error,
    },
    /// rustls refused the protocol versions.
    #[error("TLS setup failed: {0}")]
    Setup(#[source] rustls::Error),
    /// The private key does not belong to the certificate.
    #[error(
        "KEYBOUND_TLS_KEY: {} does not fit the certificate in {}: {source}",
        .key.display(),
        .cert.display()
    )]
    KeyMismatch {
        /// The key file.
        key: PathBuf,
        /// The certificate file.
        cert: PathBuf,
        /// rustls's reason.
        source: rustls::Error,
    },
}

/// The two PEM files named by `KEYBOUND_TLS_CERT` and `KEYBOUND_TLS_KEY`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    cert: PathBuf,
    key: PathBuf,
}

impl TlsFiles {
    /// Reads `KEYBOUND_TLS_CERT` and `KEYBOUND_TLS_KEY` from the process environment.
    pub fn from_env() -> Result<Option<Self>, TlsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads `KEYBOUND_TLS_CERT` and `KEYBOUND_TLS_KEY` through `lookup`: `None` when
    /// neither is set (a blank value counts as unset), an error naming the missing one
    /// when only one is.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, TlsError> {
        let get = |name: &str| {
            lookup(name)
                .filter(|v| !v.trim().is_empty())
                .map(PathBuf::from)
        };
        match (get(CERT_VAR), get(KEY_VAR)) {
            (None, None) => Ok(None),
            (Some(cert), Some(key)) => Ok(Some(Self { cert, key })),
            (Some(_), None) => Err(TlsError::Incomplete {
                set: CERT_VAR,
                missing: KEY_VAR,
            }),
            (None, Some(_)) => Err(TlsError::Incomplete {
                set: KEY_VAR,
                missing: CERT_VAR,
            }),
        }
    }

    /// The certificate chain's file.
    pub fn cert(&self) -> &Path {
        &self.cert
    }

    /// The private key's file.
    pub fn key(&self) -> &Path {
        &self.key
    }

    /// The rustls server configuration (*ring*, HTTP/2 and HTTP/1.1 by ALPN), with an
    /// error naming the variable and file for a file that is missing, unreadable, holds
    /// no PEM certificate or key, or whose key does not belong to the certificate.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let read = |name: &'static str, path: &Path| {
            std::fs::read(path).map_err(|source| TlsError::Unreadable {
                name,
                path: path.to_owned(),
                source,
            })
        };
        let cert_pem = read(CERT_VAR, &self.cert)?;
        let certs = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| TlsError::InvalidCertificatePem {
                path: self.cert.clone(),
                source,
            })?;
        if certs.is_empty() {
            return Err(TlsError::NoCertificate {
                path: self.cert.clone(),
            });
        }
        let key_pem = read(KEY_VAR, &self.key)?;
        let key =
            PrivateKeyDer::from_pem_slice(&key_pem).map_err(|source| TlsError::NoPrivateKey {
                path: self.key.clone(),
                source,
            })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Setup)?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|source| TlsError::KeyMismatch {
                key: self.key.clone(),
                cert: self.cert.clone(),
                source,
            })?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(vars: &[(&str, &str)]) -> Result<Option<TlsFiles>, TlsError> {
        TlsFiles::from_lookup(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn neither_variable_is_plain_http() {
        assert_eq!(files(&[]).unwrap(), None);
        assert_eq!(
            files(&[(CERT_VAR, " "), (KEY_VAR, "")]).unwrap(),
            None,
            "blank values count as unset"
        );
    }

    #[test]
    fn both_variables_name_the_files() {
        let tls = files(&[(CERT_VAR, "c.pem"), (KEY_VAR, "k.pem")])
            .unwrap()
            .unwrap();
        assert_eq!(tls.cert(), Path::new("c.pem"));
        assert_eq!(tls.key(), Path::new("k.pem"));
    }

    #[test]
    fn one_variable_alone_names_the_missing_one() {
        let err = files(&[(CERT_VAR, "c.pem")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "KEYBOUND_TLS_CERT is set but KEYBOUND_TLS_KEY is not: HTTPS needs both"
        );
        let err = files(&[(KEY_VAR, "k.pem")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "KEYBOUND_TLS_KEY is set but KEYBOUND_TLS_CERT is not: HTTPS needs both"
        );
    }

    #[test]
    fn an_unreadable_file_is_named() {
        let tls = files(&[(CERT_VAR, "/nonexistent/c.pem"), (KEY_VAR, "k.pem")])
            .unwrap()
            .unwrap();
        let err = tls.server_config().unwrap_err();
        assert!(
            err.to_string()
                .starts_with("KEYBOUND_TLS_CERT: cannot read /nonexistent/c.pem: "),
            "{err}"
        );
    }
}
