//! The admin API's TLS: the certificate chain and key of `admin.tls_cert_file` and
//! `admin.tls_key_file` (PEM), read at start and again on SIGHUP, so that a renewed
//! certificate at the same paths is served without a restart. HTTP/1.1 only (ALPN),
//! TLS 1.2 and 1.3 with rustls' safe defaults.

use std::path::Path;
use std::sync::{Arc, RwLock};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::aws_lc_rs;

use failover_config::{AdminTls, ConfigError};

/// The server side of the admin API's TLS: the files, and what was last read from
/// them.
pub struct ServerTls {
    files: AdminTls,
    current: RwLock<Arc<ServerConfig>>,
}

impl ServerTls {
    /// Reads and checks both files: a certificate chain, a private key that matches
    /// its first certificate. Errors name the key and the file (exit 2).
    pub fn load(files: &AdminTls) -> Result<Self, ConfigError> {
        Ok(Self {
            current: RwLock::new(Arc::new(server_config(files)?)),
            files: files.clone(),
        })
    }

    /// Reads the files again; on an error the certificate in use stays.
    pub fn reload(&self) -> Result<(), ConfigError> {
        let fresh = Arc::new(server_config(&self.files)?);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }

    /// An acceptor with the certificate now in use.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

fn invalid(key: &str, path: &Path, allowed: String) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        value: format!("{:?}", path.display().to_string()),
        allowed,
    }
}

/// What a PEM error means to the operator.
fn pem_problem(e: rustls_pki_types::pem::Error, what: &str) -> String {
    match e {
        rustls_pki_types::pem::Error::Io(e) => format!("cannot be read: {e}"),
        rustls_pki_types::pem::Error::NoItemsFound => format!("holds no {what} in PEM form"),
        other => format!("is not valid PEM: {other}"),
    }
}

fn server_config(files: &AdminTls) -> Result<ServerConfig, ConfigError> {
    let (cert_key, key_key) = ("admin.tls_cert_file", "admin.tls_key_file");
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert_file)
        .and_then(|certs| certs.collect())
        .map_err(|e| {
            invalid(
                cert_key,
                &files.cert_file,
                pem_problem(e, "certificate (-----BEGIN CERTIFICATE-----)"),
            )
        })?;
    if certs.is_empty() {
        return Err(invalid(
            cert_key,
            &files.cert_file,
            pem_problem(
                rustls_pki_types::pem::Error::NoItemsFound,
                "certificate (-----BEGIN CERTIFICATE-----)",
            ),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key_file).map_err(|e| {
        invalid(
            key_key,
            &files.key_file,
            pem_problem(e, "private key (-----BEGIN PRIVATE KEY----- or RSA / EC)"),
        )
    })?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(cert_key, &files.cert_file, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            invalid(
                key_key,
                &files.key_file,
                format!(
                    "does not go with the certificate in {}: {e}",
                    files.cert_file.display()
                ),
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
