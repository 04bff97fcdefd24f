//! What one HTTP client may cost the node: connections, time to send headers and body, body size, and one
//! publish at a time. Bodies are spooled to a temporary file as they arrive, never collected in memory.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The limits of the HTTP API.
#[derive(Clone, Debug)]
pub struct ApiLimits {
    /// The largest request body (`POST /publish`: the image, with the base image before it when `base_len` is
    /// given). Past it the request gets 413, before the body is read when `Content-Length` says so.
    pub max_body_bytes: u64,
    /// Time a client has to send a request's headers.
    pub header_timeout: Duration,
    /// Time a body may go without a byte arriving.
    pub body_idle_timeout: Duration,
    /// Time a whole body may take.
    pub body_timeout: Duration,
    /// Connections served at once; more are closed at once.
    pub max_connections: usize,
    /// Where bodies are spooled (the system's temporary folder when `None`).
    pub spool_dir: Option<PathBuf>,
}

impl Default for ApiLimits {
    fn default() -> Self {
        ApiLimits {
            max_body_bytes: 2 * super::MAX_IMAGE_BYTES as u64,
            header_timeout: Duration::from_secs(10),
            body_idle_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(30 * 60),
            max_connections: 32,
            spool_dir: None,
        }
    }
}

/// Why a request body was not taken.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the body is over the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("the body stalled: no byte for {0:?}")]
    Stalled(Duration),
    #[error("the body took longer than {0:?}")]
    TooSlow(Duration),
    #[error("reading the body: {0}")]
    Read(String),
    #[error("spooling the body to {path}: {reason}")]
    Spool { path: String, reason: String },
}

impl BodyError {
    /// The HTTP status for this error.
    pub fn status(&self) -> hyper::StatusCode {
        match self {
            BodyError::TooLarge { .. } => hyper::StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::Stalled(_) | BodyError::TooSlow(_) => hyper::StatusCode::REQUEST_TIMEOUT,
            BodyError::Read(_) => hyper::StatusCode::BAD_REQUEST,
            BodyError::Spool { .. } => hyper::StatusCode::INSUFFICIENT_STORAGE,
        }
    }
}

/// The `Content-Length` a request declares, when it declares one over `limit`.
pub fn declared_over(headers: &hyper::HeaderMap, limit: u64) -> Option<u64> {
    headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|n| *n > limit)
}

/// Write `body` to a new temporary file (deleted when dropped) within the limits; returns the file and its
/// length.
pub async fn spool(body: Incoming, limits: &ApiLimits) -> Result<(tempfile::NamedTempFile, u64), BodyError> {
    let dir = limits.spool_dir.clone().unwrap_or_else(std::env::temp_dir);
    let spool_err = |e: std::io::Error| BodyError::Spool {
        path: dir.display().to_string(),
        reason: e.to_string(),
    };
    std::fs::create_dir_all(&dir).map_err(spool_err)?;
    let mut file = tempfile::Builder::new()
        .prefix("firmchain-body-")
        .tempfile_in(&dir)
        .map_err(spool_err)?;
    let mut body = body;
    let mut len = 0u64;
    let read = async {
        loop {
            let frame = match tokio::time::timeout(limits.body_idle_timeout, body.frame()).await {
                Err(_) => return Err(BodyError::Stalled(limits.body_idle_timeout)),
                Ok(None) => return Ok(()),
                Ok(Some(Err(e))) => return Err(BodyError::Read(e.to_string())),
                Ok(Some(Ok(f))) => f,
            };
            let Ok(data) = frame.into_data() else { continue };
            len += data.len() as u64;
            if len > limits.max_body_bytes {
                return Err(BodyError::TooLarge {
                    limit: limits.max_body_bytes,
                });
            }
            // Small synchronous writes: the page cache takes them; the body arrives far slower than a disk.
            file.write_all(&data).map_err(spool_err)?;
        }
    };
    tokio::time::timeout(limits.body_timeout, read)
        .await
        .map_err(|_| BodyError::TooSlow(limits.body_timeout))??;
    file.flush().map_err(spool_err)?;
    Ok((file, len))
}

/// One publish at a time: others are told to come back (429) rather than queued with their bodies.
#[derive(Debug, Clone)]
pub struct PublishGate(Arc<Semaphore>);

impl Default for PublishGate {
    fn default() -> Self {
        PublishGate(Arc::new(Semaphore::new(1)))
    }
}

impl PublishGate {
    /// The gate, if no publish holds it.
    pub fn try_enter(&self) -> Option<OwnedSemaphorePermit> {
        self.0.clone().try_acquire_owned().ok()
    }
}

/// Serve HTTP/1 on `listener` with `handler`, within `limits` (connections, header timeout).
pub async fn serve<F, Fut>(listener: tokio::net::TcpListener, limits: ApiLimits, handler: F)
where
    F: Fn(hyper::Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<super::Reply, std::convert::Infallible>> + Send + 'static,
{
    let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "API: accept failed");
                continue;
            }
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tracing::warn!(%peer, limit = limits.max_connections, "API: too many connections; closing one");
            drop(stream);
            continue;
        };
        let handler = handler.clone();
        let header_timeout = limits.header_timeout;
        tokio::spawn(async move {
            let service = hyper::service::service_fn(handler);
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "API connection ended");
            }
            drop(permit);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use std::time::Instant;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server whose one route spools the body within `limits` and answers its length, holding the publish gate.
    async fn server(limits: ApiLimits) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let gate = PublishGate::default();
        let l = limits.clone();
        tokio::spawn(serve(listener, limits, move |req: hyper::Request<Incoming>| {
            let (gate, l) = (gate.clone(), l.clone());
            async move {
                if let Some(n) = declared_over(req.headers(), l.max_body_bytes) {
                    return Ok::<_, Infallible>(super::super::reply(
                        hyper::StatusCode::PAYLOAD_TOO_LARGE,
                        "text/plain",
                        format!("{n}"),
                    ));
                }
                let Some(_permit) = gate.try_enter() else {
                    return Ok(super::super::reply(
                        hyper::StatusCode::TOO_MANY_REQUESTS,
                        "text/plain",
                        "busy",
                    ));
                };
                Ok(match spool(req.into_body(), &l).await {
                    Ok((_, n)) => super::super::reply(hyper::StatusCode::OK, "text/plain", format!("{n}")),
                    Err(e) => super::super::reply(e.status(), "text/plain", e.to_string()),
                })
            }
        }));
        addr
    }

    async fn status_line(s: &mut tokio::net::TcpStream) -> String {
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("no answer")
            .unwrap();
        String::from_utf8_lossy(&buf[..n])
            .lines()
            .next()
            .unwrap_or("")
            .to_string()
    }

    fn post(len: u64) -> String {
        format!("POST /publish HTTP/1.1\r\nhost: x\r\ncontent-length: {len}\r\n\r\n")
    }

    #[tokio::test]
    async fn an_over_cap_body_is_refused_before_it_is_read() {
        let addr = server(ApiLimits {
            max_body_bytes: 1000,
            ..ApiLimits::default()
        })
        .await;
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(post(1 << 40).as_bytes()).await.unwrap();
        assert!(status_line(&mut s).await.contains("413"));
        // A chunked body that grows past the cap is cut off at the cap.
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"POST /publish HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n")
            .await
            .unwrap();
        for _ in 0..3 {
            s.write_all(format!("{:x}\r\n{}\r\n", 600, "a".repeat(600)).as_bytes())
                .await
                .unwrap();
        }
        assert!(status_line(&mut s).await.contains("413"));
    }

    #[tokio::test]
    async fn a_slow_client_is_cut_off() {
        let addr = server(ApiLimits {
            header_timeout: Duration::from_millis(300),
            body_idle_timeout: Duration::from_millis(300),
            ..ApiLimits::default()
        })
        .await;
        // Headers that never end: the connection is closed.
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"POST /publish HTTP/1.1\r\nhost: x\r\n")
            .await
            .unwrap();
        let started = Instant::now();
        let mut buf = [0u8; 256];
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("the server kept a slow client")
            .unwrap_or(0);
        let answer = String::from_utf8_lossy(&buf[..n]);
        assert!(n == 0 || answer.contains("408"), "{answer}");
        assert!(started.elapsed() < Duration::from_secs(5));
        // A body that stops arriving: 408.
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(post(1000).as_bytes()).await.unwrap();
        s.write_all(&[0u8; 10]).await.unwrap();
        assert!(status_line(&mut s).await.contains("408"));
    }

    #[tokio::test]
    async fn one_publish_at_a_time() {
        let addr = server(ApiLimits::default()).await;
        let mut first = tokio::net::TcpStream::connect(addr).await.unwrap();
        first.write_all(post(100).as_bytes()).await.unwrap();
        first.write_all(&[1u8; 10]).await.unwrap();
        // The first is still sending its body; a second one is turned away.
        let mut second = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut busy = false;
        for _ in 0..50 {
            second.write_all(post(4).as_bytes()).await.unwrap();
            second.write_all(b"abcd").await.unwrap();
            let line = status_line(&mut second).await;
            if line.contains("429") {
                busy = true;
                break;
            }
            // The first had not reached the gate yet: try again on the same connection.
            assert!(line.contains("200"), "{line}");
        }
        assert!(busy, "a second publish was accepted while one was in flight");
        first.write_all(&[1u8; 90]).await.unwrap();
        assert!(status_line(&mut first).await.contains("200"));
    }

    #[tokio::test]
    async fn connections_past_the_cap_are_closed() {
        let addr = server(ApiLimits {
            max_connections: 2,
            ..ApiLimits::default()
        })
        .await;
        let _a = tokio::net::TcpStream::connect(addr).await.unwrap();
        let _b = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(10), c.read(&mut buf))
            .await
            .expect("a third connection was kept")
            .unwrap_or(0);
        assert_eq!(n, 0);
    }
}
