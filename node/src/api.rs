//! The node's HTTP API: `GET /status` (JSON), `GET /metrics` (Prometheus text), `POST /publish` (repository
//! role; the body is the new image, the query names the product; a bearer token when `api.token` is set).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use actix::Addr;
use bytes::Bytes;
use firmchain_actors::coordinator::Coordinator;
use firmchain_actors::messages::GetStatus;
use firmchain_actors::publisher::{Publish, Publisher};
use firmchain_actors::status::{GetSnapshot, Status, StatusSnapshot};
use firmchain_actors::unix_now;
use firmchain_p2p::P2p;
use firmchain_update::ProductId;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

/// The largest image `POST /publish` accepts.
pub const MAX_IMAGE_BYTES: usize = 1 << 30;

/// What the handlers reach.
#[derive(Debug)]
pub struct ApiState {
    pub repository: bool,
    pub product: ProductId,
    pub p2p: P2p,
    pub status: Addr<Status>,
    pub coordinator: Option<Addr<Coordinator>>,
    pub publisher: Option<Addr<Publisher>>,
    pub token: Option<String>,
    pub max_staleness: u64,
    pub recovered: Option<String>,
    pub started: u64,
}

type Reply = Response<Full<Bytes>>;

fn reply(code: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = code;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

fn json_reply(code: StatusCode, v: &Value) -> Reply {
    reply(code, "application/json", format!("{v}\n"))
}

fn error(code: StatusCode, message: impl std::fmt::Display) -> Reply {
    json_reply(code, &json!({ "error": message.to_string() }))
}

/// The `/status` document.
pub async fn status(s: &ApiState) -> Value {
    let snapshot = s.status.send(GetSnapshot).await.unwrap_or_default();
    status_of(s, snapshot).await
}

/// The `/status` document from a snapshot of the Status actor.
async fn status_of(s: &ApiState, snapshot: StatusSnapshot) -> Value {
    let device = match &s.coordinator {
        Some(c) => c.send(GetStatus).await.ok(),
        None => None,
    };
    let peers = s.p2p.connected_peers().await.map_or(0, |p| p.len());
    let now = unix_now();
    let chain = snapshot.chain.as_ref().map(|c| {
        let age = now.saturating_sub(c.timestamp);
        json!({ "mode": c.mode, "block": c.block, "hash": c.hash, "timestamp": c.timestamp,
            "age_seconds": age, "stale": age > s.max_staleness, "verified_at": c.verified_at })
    });
    let counters = s.p2p.counters();
    json!({
        "role": if s.repository { "repository" } else { "device" },
        "product": s.product.to_string(),
        "peer_id": s.p2p.peer_id().to_string(),
        "uptime_seconds": now.saturating_sub(s.started),
        "installed": device.as_ref().map(|d| json!({ "sequence": d.installed.0, "hash": d.hash.to_string() })),
        "working_on": device.as_ref().and_then(|d| d.working_on.map(|(seq, payload, failures)| json!({
            "sequence": seq.0, "payload": firmchain_actors::fetcher::entry_name(payload), "failures": failures }))),
        "rolled_back_releases": device.as_ref().map(|d| d.rolled_back.iter().map(|s| s.0).collect::<Vec<_>>()),
        "waiting": device.as_ref().map(|d| &d.waiting),
        "chain": chain,
        "chain_error": snapshot.chain_error,
        "peers": peers,
        "fetch": snapshot.fetch,
        "last_fetch": snapshot.last_fetch,
        "last_fetch_error": snapshot.last_fetch_error,
        "last_install": snapshot.last_install,
        "rollbacks": snapshot.rollbacks,
        "rejected": snapshot.rejected,
        "published": snapshot.published,
        "recovered": s.recovered,
        "uploaded_bytes": counters.uploaded_bytes.load(Ordering::Relaxed),
        "downloaded_bytes": counters.downloaded_bytes.load(Ordering::Relaxed),
    })
}

/// The `/metrics` text (Prometheus exposition format 0.0.4).
pub async fn metrics(s: &ApiState) -> String {
    let snapshot = s.status.send(GetSnapshot).await.unwrap_or_default();
    let c = snapshot.counters;
    let v = status_of(s, snapshot).await;
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
        out.push_str(&format!(
            "# HELP firmchain_{name} {help}\n# TYPE firmchain_{name} {kind}\nfirmchain_{name} {value}\n"
        ));
    };
    let num = |p: &str| v.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    metric(
        "installed_sequence",
        "gauge",
        "Sequence of the installed release.",
        num("/installed/sequence"),
    );
    metric(
        "chain_block",
        "gauge",
        "Verified block the index was last read at.",
        num("/chain/block"),
    );
    metric(
        "chain_age_seconds",
        "gauge",
        "Age of the verified head.",
        num("/chain/age_seconds"),
    );
    metric("peers", "gauge", "Connected peers.", num("/peers"));
    metric(
        "uploaded_bytes_total",
        "counter",
        "Block bytes served to peers.",
        num("/uploaded_bytes"),
    );
    metric(
        "downloaded_bytes_total",
        "counter",
        "Block bytes received from peers.",
        num("/downloaded_bytes"),
    );
    metric(
        "index_polls_total",
        "counter",
        "Successful verified reads of the index.",
        c.polls_ok,
    );
    metric(
        "index_poll_failures_total",
        "counter",
        "Failed reads of the index.",
        c.polls_failed,
    );
    metric(
        "rejected_total",
        "counter",
        "Chain data or peers refused.",
        c.rejected,
    );
    metric(
        "fetches_total",
        "counter",
        "Payloads fetched and verified.",
        c.fetches_ok,
    );
    metric(
        "fetch_failures_total",
        "counter",
        "Failed fetches.",
        c.fetches_failed,
    );
    metric("installs_total", "counter", "Releases installed.", c.installs);
    metric("rollbacks_total", "counter", "Installs rolled back.", c.rollbacks);
    metric(
        "published_total",
        "counter",
        "Releases published by this node.",
        c.published,
    );
    out
}

/// One release-terms query parameter of `POST /publish` (`hardware=a,b`, `expires=UNIX`, the rollout in basis
/// points and seconds, `notes=CID`).
fn set_term(t: &mut firmchain_update::record::ReleaseTerms, k: &str, v: &str) -> Result<(), String> {
    let num = |v: &str| v.parse::<u64>().map_err(|_| "not a number".to_owned());
    let bps = |v: &str| {
        v.parse::<u16>()
            .map_err(|_| "not a share in basis points".to_owned())
    };
    match k {
        "hardware" => {
            for c in v.split(',').filter(|c| !c.is_empty()) {
                t.hardware.push(c.parse().map_err(|e| format!("{e}"))?);
            }
            t.hardware.sort();
            t.hardware.dedup();
        }
        "expires" => t.not_after = num(v)?,
        "rollout_start_bps" => t.rollout.start_bps = bps(v)?,
        "rollout_step_bps" => t.rollout.step_bps = bps(v)?,
        "rollout_interval_secs" => t.rollout.interval_secs = num(v)?,
        _ => {
            let cid: cid::Cid = v.parse().map_err(|e| format!("not a CID: {e}"))?;
            t.notes_cid = cid.to_bytes();
        }
    }
    Ok(())
}

fn query(req: &Request<Incoming>) -> Vec<(String, String)> {
    req.uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (kv.to_owned(), String::new()),
        })
        .collect()
}

fn authorised(s: &ApiState, req: &Request<Incoming>) -> bool {
    let Some(token) = s.token.as_deref().filter(|t| !t.is_empty()) else {
        // No token configured: validation only allows this when the API listens on loopback.
        return true;
    };
    let given = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Compare in constant time.
    given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

async fn publish(s: &ApiState, req: Request<Incoming>) -> Reply {
    let Some(publisher) = &s.publisher else {
        return error(
            StatusCode::NOT_FOUND,
            "this node is not a repository (start it with --repository to publish)",
        );
    };
    if !authorised(s, &req) {
        return error(
            StatusCode::UNAUTHORIZED,
            "POST /publish needs 'Authorization: Bearer <api.token>'",
        );
    }
    let mut product = s.product;
    let mut min_sequence = 0;
    let mut level = 19;
    let mut base_len: Option<usize> = None;
    let mut terms = firmchain_update::record::ReleaseTerms::default();
    for (k, v) in query(&req) {
        let bad = |what: &str| {
            error(
                StatusCode::BAD_REQUEST,
                format!("query parameter {k}={v:?}: {what}"),
            )
        };
        match k.as_str() {
            "product" => match v.parse() {
                Ok(p) => product = p,
                Err(e) => return bad(&format!("{e}")),
            },
            "min_sequence" => match v.parse() {
                Ok(n) => min_sequence = n,
                Err(_) => return bad("not a number"),
            },
            "base_len" => match v.parse() {
                Ok(n) => base_len = Some(n),
                Err(_) => return bad("not a number"),
            },
            "level" => match v.parse::<i32>() {
                Ok(n) if (1..=22).contains(&n) => level = n,
                _ => return bad("a zstd level is 1 to 22"),
            },
            "hardware"
            | "expires"
            | "rollout_start_bps"
            | "rollout_step_bps"
            | "rollout_interval_secs"
            | "notes" => {
                if let Err(e) = set_term(&mut terms, &k, &v) {
                    return bad(&e);
                }
            }
            _ => {
                return bad(
                    "unknown parameter (product, min_sequence, level, base_len, hardware, expires, \
                     rollout_start_bps, rollout_step_bps, rollout_interval_secs, notes)",
                );
            }
        }
    }
    let mut image = match Limited::new(req.into_body(), 2 * MAX_IMAGE_BYTES).collect().await {
        Ok(b) => b.to_bytes().to_vec(),
        Err(e) => return error(StatusCode::PAYLOAD_TOO_LARGE, format!("reading the image: {e}")),
    };
    // With base_len, the body is the base image followed by the new one.
    let base = match base_len {
        Some(n) if n < image.len() => {
            let new = image.split_off(n);
            Some(std::mem::replace(&mut image, new))
        }
        Some(n) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "base_len={n} leaves no new image in a body of {} bytes",
                    image.len()
                ),
            );
        }
        None => None,
    };
    if let Err(e) = terms.validate() {
        return error(StatusCode::BAD_REQUEST, format!("release terms: {e}"));
    }
    if image.len() > MAX_IMAGE_BYTES {
        return error(StatusCode::PAYLOAD_TOO_LARGE, "the image is larger than 1 GiB");
    }
    if image.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "the request body (the new image) is empty",
        );
    }
    match publisher
        .send(Publish {
            product,
            image,
            base,
            min_sequence,
            level,
            terms,
        })
        .await
    {
        Ok(Ok(r)) => json_reply(StatusCode::OK, &serde_json::to_value(r).unwrap_or_default()),
        Ok(Err(e)) => error(StatusCode::UNPROCESSABLE_ENTITY, e),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

async fn handle(s: Arc<ApiState>, req: Request<Incoming>) -> Result<Reply, Infallible> {
    Ok(match (req.method(), req.uri().path()) {
        (&Method::GET, "/status") => json_reply(StatusCode::OK, &status(&s).await),
        (&Method::GET, "/metrics") => reply(StatusCode::OK, "text/plain; version=0.0.4", metrics(&s).await),
        (&Method::POST, "/publish") => publish(&s, req).await,
        (_, "/status" | "/metrics" | "/publish") => {
            error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        _ => error(
            StatusCode::NOT_FOUND,
            "no such endpoint (/status, /metrics, POST /publish)",
        ),
    })
}

/// Serve the API on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, state: Arc<ApiState>) {
    loop {
        let (stream, peer): (_, SocketAddr) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "API: accept failed");
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(state.clone(), req));
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "API connection ended");
            }
        });
    }
}
