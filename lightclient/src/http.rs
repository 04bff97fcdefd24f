//! The HTTP client behind every RPC of the node (beacon and execution): HTTPS with rustls on the ring
//! provider, trusting the bundled web PKI roots (Mozilla's, from `webpki-roots`), the certificates OpenSSL would
//! read from `SSL_CERT_FILE` and `SSL_CERT_DIR`, and the operator's CA file (`chain.ca_file`); host names
//! resolved by hickory from `/etc/resolv.conf` and `/etc/hosts`, which works in a static binary (glibc's
//! resolver needs NSS modules a scratch image does not have).

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// Why the HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{what} {path}: {message}")]
    Certificates {
        what: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error("{what} {path} holds no certificate")]
    NoCertificates { what: &'static str, path: PathBuf },
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error("DNS resolver (/etc/resolv.conf): {0}")]
    Resolver(String),
    #[error("HTTP client: {0}")]
    Client(String),
}

/// How the node talks HTTP.
#[derive(Clone, Debug, Default)]
pub struct HttpOptions {
    /// Each request's time limit.
    pub timeout: Option<Duration>,
    /// Extra CA certificates (PEM), e.g. a private RPC's CA (`chain.ca_file`).
    pub ca_file: Option<PathBuf>,
}

fn read_pem(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, HttpError> {
    let fail = |message: String| HttpError::Certificates {
        what,
        path: path.to_owned(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(format!("not PEM certificates: {e:?}")))
}

fn add_all(
    store: &mut RootCertStore,
    what: &'static str,
    path: &Path,
    certs: Vec<CertificateDer<'static>>,
) -> Result<(), HttpError> {
    for cert in certs {
        store.add(cert).map_err(|e| HttpError::Certificates {
            what,
            path: path.to_owned(),
            message: format!("not a usable CA certificate: {e}"),
        })?;
    }
    Ok(())
}

/// The roots to trust: the bundled web PKI roots, `SSL_CERT_FILE` (a PEM bundle), every PEM file in the
/// `SSL_CERT_DIR` directories (`:`-separated, as OpenSSL reads them), and `ca_file`. A variable that is set
/// but cannot be read is an error (a silent fallback would hide why a private RPC is refused). `env` reads the
/// environment (a parameter, for tests).
pub fn root_store(
    ca_file: Option<&Path>,
    env: impl Fn(&str) -> Option<OsString>,
) -> Result<RootCertStore, HttpError> {
    let mut store = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(file) = env("SSL_CERT_FILE").filter(|v| !v.is_empty()) {
        let path = PathBuf::from(file);
        let certs = read_pem("SSL_CERT_FILE", &path)?;
        if certs.is_empty() {
            return Err(HttpError::NoCertificates {
                what: "SSL_CERT_FILE",
                path,
            });
        }
        add_all(&mut store, "SSL_CERT_FILE", &path, certs)?;
    }
    if let Some(dirs) = env("SSL_CERT_DIR").filter(|v| !v.is_empty()) {
        for dir in std::env::split_paths(&dirs) {
            let entries = std::fs::read_dir(&dir).map_err(|e| HttpError::Certificates {
                what: "SSL_CERT_DIR",
                path: dir.clone(),
                message: e.to_string(),
            })?;
            for entry in entries.flatten() {
                let path = entry.path();
                if !path.is_file() {
                    continue;
                }
                // A certificate directory may hold other files (CRLs, READMEs): take what parses.
                if let Ok(certs) = read_pem("SSL_CERT_DIR", &path) {
                    for cert in certs {
                        let _ = store.add(cert);
                    }
                }
            }
        }
    }
    if let Some(path) = ca_file {
        let certs = read_pem("chain.ca_file", path)?;
        if certs.is_empty() {
            return Err(HttpError::NoCertificates {
                what: "chain.ca_file",
                path: path.to_owned(),
            });
        }
        add_all(&mut store, "chain.ca_file", path, certs)?;
    }
    Ok(store)
}

/// An error with its causes (`a: b: c`), so "error sending request" says why (an unknown issuer, a name
/// mismatch, a refused connection).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out = format!("{out}: {text}");
        }
        source = s.source();
    }
    out
}

/// The TLS configuration over `roots`: TLS 1.2 and 1.3 with ring, HTTP/1.1.
pub fn tls_config(roots: RootCertStore) -> Result<rustls::ClientConfig, HttpError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| HttpError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Host names resolved by hickory (reads `/etc/resolv.conf` and `/etc/hosts` itself). Without a usable
/// `/etc/resolv.conf` only host names fail (with that reason); IP addresses never reach a resolver.
#[derive(Clone, Debug)]
pub struct HickoryResolver(Result<Arc<TokioResolver>, String>);

impl HickoryResolver {
    /// A resolver configured from the system files.
    pub fn from_system() -> Self {
        HickoryResolver(
            TokioResolver::builder_tokio()
                .map(|b| Arc::new(b.build()))
                .map_err(|e| HttpError::Resolver(e.to_string()).to_string()),
        )
    }
}

impl Resolve for HickoryResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let resolver = self.0.clone();
        Box::pin(async move {
            let resolver = resolver.map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { e.into() })?;
            let lookup = resolver.lookup_ip(name.as_str()).await?;
            let addrs: Addrs = Box::new(
                lookup
                    .into_iter()
                    .map(|ip| SocketAddr::new(ip, 0))
                    .collect::<Vec<_>>()
                    .into_iter(),
            );
            Ok(addrs)
        })
    }
}

/// Make ring the process-wide rustls provider (idempotent). Every `reqwest` client needs one: the node's own
/// HTTP clients (API calls between nodes) call this at start-up, [`client_with`] calls it too.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The HTTP client of the RPCs, trusting [`root_store`] of the process environment.
pub fn client(options: &HttpOptions) -> Result<reqwest::Client, HttpError> {
    let roots = root_store(options.ca_file.as_deref(), |k| std::env::var_os(k))?;
    client_with(options, roots)
}

/// [`client`] with the given roots.
pub fn client_with(options: &HttpOptions, roots: RootCertStore) -> Result<reqwest::Client, HttpError> {
    builder(options, roots)?
        .build()
        .map_err(|e| HttpError::Client(e.to_string()))
}

/// The client of a node's own HTTP API (`firmchain node …`, the demos): the same TLS and resolver as the RPC
/// clients, and never through a proxy. It needs no system certificate store, so it also works in a scratch
/// container (reqwest's own default looks for the platform's roots and fails to build without them).
pub fn api_client(timeout: std::time::Duration) -> Result<reqwest::Client, HttpError> {
    let roots = root_store(None, |k| std::env::var_os(k))?;
    let options = HttpOptions {
        timeout: Some(timeout),
        ..HttpOptions::default()
    };
    builder(&options, roots)?
        .no_proxy()
        .build()
        .map_err(|e| HttpError::Client(e.to_string()))
}

fn builder(options: &HttpOptions, roots: RootCertStore) -> Result<reqwest::ClientBuilder, HttpError> {
    install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .tls_backend_preconfigured(tls_config(roots)?)
        .dns_resolver(Arc::new(HickoryResolver::from_system()));
    if let Some(t) = options.timeout {
        builder = builder.timeout(t);
    }
    Ok(builder)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_roots_are_there_and_unreadable_extras_are_errors() {
        let none = |_: &str| None;
        let store = root_store(None, none).unwrap();
        assert!(store.roots.len() > 100, "{} roots", store.roots.len());
        let dir = std::env::temp_dir().join(format!("firmchain-roots-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pem");
        let env = |k: &str| (k == "SSL_CERT_FILE").then(|| missing.clone().into_os_string());
        let err = root_store(None, env).unwrap_err();
        assert!(err.to_string().contains("SSL_CERT_FILE"), "{err}");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = root_store(Some(&empty), none).unwrap_err();
        assert!(err.to_string().contains("chain.ca_file"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
