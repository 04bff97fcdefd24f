//! The node's HTTP API: `GET /status` (JSON), `GET /metrics` (OpenMetrics or Prometheus text, see [`metrics`]),
//! `POST /publish` (repository role; the body is the new image, the query names the product; a bearer token when
//! `api.token` is set).
//! Every route is served within [`ApiLimits`] (see [`limits`]).
// A device build (no `publisher` feature) has no POST /publish: the body limits and helpers serve only it.
#![cfg_attr(not(feature = "publisher"), allow(dead_code, unused_imports))]

pub mod limits;
pub mod metrics;

use std::convert::Infallible;
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use actix::Addr;
use bytes::Bytes;
use firmchain_actors::coordinator::Coordinator;
use firmchain_actors::messages::{CoordinatorStatus, GetStatus};
#[cfg(feature = "publisher")]
use firmchain_actors::publisher::{Publish, Publisher};
use firmchain_actors::status::{GetSnapshot, Status, StatusSnapshot};
use firmchain_actors::unix_now;
use firmchain_p2p::P2p;
use firmchain_update::ProductId;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

pub use limits::{ApiLimits, PublishGate};

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
    #[cfg(feature = "publisher")]
    pub publisher: Option<Addr<Publisher>>,
    pub token: Option<String>,
    pub max_staleness: u64,
    pub recovered: Option<String>,
    pub started: u64,
    /// What one client may cost.
    pub limits: ApiLimits,
    /// One publish at a time.
    pub publishing: PublishGate,
    /// The node's metrics registry (`/metrics`).
    pub metrics: Arc<prometheus_client::registry::Registry>,
}

pub(crate) type Reply = Response<Full<Bytes>>;

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
///
/// The coordinator is asked first: the installer tells the Status actor of an outcome before it tells the
/// coordinator, and mailboxes keep their order, so a snapshot taken after the coordinator's answer already
/// holds every install the coordinator knows of (`installed` never runs ahead of `last_install`).
pub async fn status(s: &ApiState) -> Value {
    let device = match &s.coordinator {
        Some(c) => c.send(GetStatus).await.ok(),
        None => None,
    };
    let snapshot = s.status.send(GetSnapshot).await.unwrap_or_default();
    status_of(s, device, snapshot).await
}

/// The `/status` document from the coordinator's status and a snapshot of the Status actor.
async fn status_of(s: &ApiState, device: Option<CoordinatorStatus>, snapshot: StatusSnapshot) -> Value {
    let peers = s.p2p.connected_peers().await.map_or(0, |p| p.len());
    let now = unix_now();
    let chain = snapshot.chain.as_ref().map(|c| {
        let age = now.saturating_sub(c.timestamp);
        json!({ "mode": c.mode, "block": c.block, "hash": c.hash, "timestamp": c.timestamp,
            "age_seconds": age, "stale": age > s.max_staleness, "verified_at": c.verified_at, "light": c.light })
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
        // Plain words for monitoring: a node that never verified a head is not "fresh".
        "chain_state": match &chain {
            _ if snapshot.chain_blocked.is_some() => "checkpoint too old",
            None => "never verified",
            Some(c) if c["stale"] == true => "stale",
            Some(_) => "verified",
        },
        "chain": chain,
        "chain_error": snapshot.chain_error,
        // What the operator must do when the light client cannot start (its checkpoint is too old).
        "chain_action": snapshot.chain_blocked,
        "warnings": snapshot.warnings,
        "peers": peers,
        "fetch": snapshot.fetch,
        "last_fetch": snapshot.last_fetch,
        "last_fetch_error": snapshot.last_fetch_error,
        "last_install": snapshot.last_install,
        "rollbacks": snapshot.rollbacks,
        "commit": snapshot.commit,
        "rejected": snapshot.rejected,
        "published": snapshot.published,
        "recovered": s.recovered,
        "uploaded_bytes": counters.uploaded_bytes.load(Ordering::Relaxed),
        "downloaded_bytes": counters.downloaded_bytes.load(Ordering::Relaxed),
    })
}

/// What `/metrics` reads at this moment, besides the registry.
pub async fn scrape(s: &ApiState) -> metrics::Scrape {
    let snapshot = s.status.send(GetSnapshot).await.unwrap_or_default();
    let installed = match &s.coordinator {
        Some(c) => c.send(GetStatus).await.ok().map(|d| d.installed.0),
        None => None,
    };
    let peers = s.p2p.connected_peers().await.map_or(0, |p| p.len() as u64);
    let counters = s.p2p.counters();
    metrics::Scrape {
        installed_sequence: installed,
        chain: snapshot
            .chain
            .as_ref()
            .map(|c| (c.block, unix_now().saturating_sub(c.timestamp))),
        max_staleness: s.max_staleness,
        peers,
        uploaded_bytes: counters.uploaded_bytes.load(Ordering::Relaxed),
        downloaded_bytes: counters.downloaded_bytes.load(Ordering::Relaxed),
        rejected_chain: snapshot.counters.rejected,
        rejected_peer: counters.rejected.load(Ordering::Relaxed),
        started: s.started,
    }
}

/// `GET /metrics`: OpenMetrics when the `Accept` header asks for it, else the Prometheus text format.
async fn metrics_reply(s: &ApiState, req: &Request<Incoming>) -> Reply {
    let text = metrics::openmetrics(&s.metrics, &scrape(s).await);
    let accept = req
        .headers()
        .get(hyper::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if metrics::wants_openmetrics(accept) {
        reply(StatusCode::OK, metrics::OPENMETRICS, text)
    } else {
        reply(
            StatusCode::OK,
            metrics::PROMETHEUS_TEXT,
            metrics::prometheus_text(&text),
        )
    }
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

#[cfg(feature = "publisher")]
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
    let max = s.limits.max_body_bytes;
    if let Some(n) = limits::declared_over(req.headers(), max) {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body of {n} bytes is over the limit of {max} bytes"),
        );
    }
    let Some(_publishing) = s.publishing.try_enter() else {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "another publish is in flight; try again when it is done",
        );
    };
    let (file, len) = match limits::spool(req.into_body(), &s.limits).await {
        Ok(x) => x,
        Err(e) => return error(e.status(), e),
    };
    // With base_len, the body is the base image followed by the new one.
    if let Some(n) = base_len
        && n as u64 >= len
    {
        return error(
            StatusCode::BAD_REQUEST,
            format!("base_len={n} leaves no new image in a body of {len} bytes"),
        );
    }
    if len - base_len.unwrap_or(0) as u64 > MAX_IMAGE_BYTES as u64 {
        return error(StatusCode::PAYLOAD_TOO_LARGE, "the image is larger than 1 GiB");
    }
    let parts = tokio::task::spawn_blocking(move || -> std::io::Result<_> {
        let mut f = file.reopen()?;
        let base = match base_len {
            Some(n) => {
                let mut b = vec![0u8; n];
                f.read_exact(&mut b)?;
                Some(b)
            }
            None => None,
        };
        let mut image = Vec::with_capacity((len as usize).saturating_sub(base_len.unwrap_or(0)));
        f.read_to_end(&mut image)?;
        Ok((base, image))
    })
    .await;
    let (base, image) = match parts {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("reading the spooled body: {e}"),
            );
        }
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
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
        (&Method::GET, "/metrics") => metrics_reply(&s, &req).await,
        #[cfg(feature = "publisher")]
        (&Method::POST, "/publish") => publish(&s, req).await,
        #[cfg(not(feature = "publisher"))]
        (&Method::POST, "/publish") => error(
            StatusCode::NOT_FOUND,
            "this build has no repository role (a device build): it cannot publish",
        ),
        (_, "/status" | "/metrics" | "/publish") => {
            error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        _ => error(
            StatusCode::NOT_FOUND,
            "no such endpoint (/status, /metrics, POST /publish)",
        ),
    })
}

/// Serve the API on `listener` until the task is dropped, within `state.limits`.
pub async fn serve(listener: tokio::net::TcpListener, state: Arc<ApiState>) {
    let limits = state.limits.clone();
    limits::serve(listener, limits, move |req| handle(state.clone(), req)).await
}
