//! An HTTPS front for any HTTP server on loopback (anvil, the beacon harness), with a certificate from a
//! throwaway CA made by rcgen: the way public RPCs are reached, without leaving the machine.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A running HTTPS proxy; its threads live as long as the test process.
#[derive(Debug)]
pub struct HttpsFront {
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// The CA that signed the server's certificate (PEM).
    pub ca_pem: String,
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl HttpsFront {
    /// Serve `upstream` (`http://host:port`) over TLS with a certificate for `names` (host names or IP
    /// addresses), signed by a fresh CA.
    pub fn start(upstream: &str, names: &[&str]) -> Result<HttpsFront, String> {
        let ca_key = KeyPair::generate().map_err(err)?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "firmchain test CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = ca_params.self_signed(&ca_key).map_err(err)?;
        let key = KeyPair::generate().map_err(err)?;
        let params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).map_err(err)?;
        let cert = params.signed_by(&key, &ca, &ca_key).map_err(err)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(err)?
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(cert.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .map_err(err)?;
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").map_err(err)?;
        let url = format!("https://{}", listener.local_addr().map_err(err)?);
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        std::thread::spawn(move || {
            for conn in listener.incoming().map_while(Result::ok) {
                let (config, upstream) = (config.clone(), upstream.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, config, &upstream);
                });
            }
        });
        Ok(HttpsFront {
            url,
            ca_pem: ca.pem(),
        })
    }

    /// Write the CA to `path` (for `chain.ca_file` or `SSL_CERT_FILE`).
    pub fn write_ca(&self, path: &Path) -> Result<(), String> {
        std::fs::write(path, &self.ca_pem).map_err(err)
    }
}

/// The request head and body (by `content-length`).
fn read_request(s: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body)?;
    buf.extend_from_slice(&body);
    Ok(buf)
}

/// One request per connection: forwarded with `connection: close`, the whole answer sent back.
fn serve(conn: TcpStream, config: Arc<rustls::ServerConfig>, upstream: &str) -> std::io::Result<()> {
    let tls = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
    let mut stream = rustls::StreamOwned::new(tls, conn);
    let request = read_request(&mut stream)?;
    let text = String::from_utf8_lossy(&request);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let first = lines.next().unwrap_or_default();
    let mut forwarded = format!("{first}\r\nhost: {upstream}\r\nconnection: close\r\n");
    for l in lines {
        let lower = l.to_ascii_lowercase();
        if !(lower.starts_with("host:") || lower.starts_with("connection:")) {
            forwarded += &format!("{l}\r\n");
        }
    }
    forwarded += "\r\n";
    forwarded += body;
    let mut up = TcpStream::connect(upstream)?;
    up.write_all(forwarded.as_bytes())?;
    let mut answer = Vec::new();
    up.read_to_end(&mut answer)?;
    stream.write_all(&answer)?;
    stream.flush()?;
    stream.conn.send_close_notify();
    let _ = stream.flush();
    Ok(())
}
