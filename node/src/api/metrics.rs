//! `GET /metrics`: the node's registry (event counters and histograms kept by the Status actor, libp2p's own
//! metrics) and the gauges read at scrape time (chain head, peers, bytes, build), in the OpenMetrics text format
//! when the scraper asks for it (Prometheus does) and in Prometheus text format 0.0.4 otherwise (curl, promtool).

use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::{Registry, Unit};

/// The content type of the OpenMetrics text format.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The content type of the Prometheus text format.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The features this binary was built with (`features` label of `firmchain_build_info`).
pub fn features() -> String {
    [
        ("publisher", cfg!(feature = "publisher")),
        ("quic", cfg!(feature = "quic")),
        ("mdns", cfg!(feature = "mdns")),
        ("fault-injection", cfg!(feature = "fault-injection")),
    ]
    .iter()
    .filter(|(_, on)| *on)
    .map(|(name, _)| *name)
    .collect::<Vec<_>>()
    .join(",")
}

/// What a scrape reads from the node at that moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scrape {
    /// Sequence of the installed release (devices).
    pub installed_sequence: Option<u64>,
    /// The verified head: its block and its age in seconds; `None` until a head verified.
    pub chain: Option<(u64, u64)>,
    /// `chain.max_staleness_secs`: older heads count as stale.
    pub max_staleness: u64,
    /// Connected peers.
    pub peers: u64,
    /// Block bytes served to peers.
    pub uploaded_bytes: u64,
    /// Block bytes received from peers.
    pub downloaded_bytes: u64,
    /// Chain data refused (Status actor).
    pub rejected_chain: u64,
    /// Peers, blocks, messages and DHT records refused (libp2p node).
    pub rejected_peer: u64,
    /// When the node started (unix seconds).
    pub started: u64,
}

/// The scrape-time gauges, as a registry of their own (encoded after the node's).
fn scrape_registry(s: &Scrape) -> Registry {
    let mut r = Registry::with_prefix("firmchain");
    let build = Family::<Vec<(&'static str, String)>, Gauge>::default();
    let mut labels = vec![("version", env!("CARGO_PKG_VERSION").to_owned())];
    if let Some(commit) = option_env!("FIRMCHAIN_COMMIT") {
        labels.push(("commit", commit.to_owned()));
    }
    labels.push(("features", features()));
    build.get_or_create(&labels).set(1);
    r.register(
        "build_info",
        "The running build: version, commit (when the build set FIRMCHAIN_COMMIT) and features; always 1",
        build,
    );
    r.register_with_unit(
        "start_time",
        "When the node started (unix time)",
        Unit::Seconds,
        ConstGauge::new(s.started),
    );
    if let Some(seq) = s.installed_sequence {
        r.register(
            "installed_sequence",
            "Sequence of the installed release (0: the initial image)",
            ConstGauge::new(seq),
        );
    }
    r.register(
        "chain_verified",
        "1 once a chain head has been verified, 0 before",
        ConstGauge::new(u64::from(s.chain.is_some())),
    );
    // No block and no age before a head verified: a made-up 0 would read as perfectly fresh.
    if let Some((block, age)) = s.chain {
        r.register(
            "chain_block",
            "Verified block the index was last read at",
            ConstGauge::new(block),
        );
        r.register_with_unit(
            "chain_age",
            "Age of the verified head (now minus its block time)",
            Unit::Seconds,
            ConstGauge::new(age),
        );
    }
    r.register_with_unit(
        "chain_max_staleness",
        "chain.max_staleness_secs: a head older than this is stale (/status says so)",
        Unit::Seconds,
        ConstGauge::new(s.max_staleness),
    );
    r.register("peers", "Connected peers", ConstGauge::new(s.peers));
    r.register_with_unit(
        "uploaded",
        "Block bytes served to peers",
        Unit::Bytes,
        ConstCounter::new(s.uploaded_bytes),
    );
    r.register_with_unit(
        "downloaded",
        "Block bytes received from peers that a fetch wanted",
        Unit::Bytes,
        ConstCounter::new(s.downloaded_bytes),
    );
    let rejected = Family::<[(&'static str, &'static str); 1], Counter>::default();
    rejected
        .get_or_create(&[("source", "chain")])
        .inc_by(s.rejected_chain);
    rejected
        .get_or_create(&[("source", "peer")])
        .inc_by(s.rejected_peer);
    r.register(
        "rejected",
        "Data refused, by source: chain (headers, proofs, records that did not verify) or peer (blocks, \
         messages, DHT records, peers dropped from a fetch)",
        rejected,
    );
    r
}

/// The OpenMetrics text of `node` (the node's registry) and `scrape`.
pub fn openmetrics(node: &Registry, scrape: &Scrape) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail; an encoder error would be a bug in a metric's encoding.
    let encoded = encode_registry(&mut out, node)
        .and_then(|()| encode_registry(&mut out, &scrape_registry(scrape)))
        .and_then(|()| encode_eof(&mut out));
    if let Err(e) = encoded {
        tracing::warn!(error = %e, "encoding the metrics");
    }
    out
}

/// Whether an `Accept` header asks for OpenMetrics (Prometheus' does, with `text/plain` as a fallback).
pub fn wants_openmetrics(accept: &str) -> bool {
    accept.split(',').any(|part| {
        let mut params = part.split(';');
        let kind = params.next().unwrap_or("").trim();
        let refused = params.any(
            |p| matches!(p.trim().split_once('='), Some(("q", q)) if q.trim().parse::<f64>() == Ok(0.0)),
        );
        kind.eq_ignore_ascii_case("application/openmetrics-text") && !refused
    })
}

/// The Prometheus text format 0.0.4 of an OpenMetrics text: counter families take their samples' `_total`
/// name, `info` becomes a gauge named `…_info`, `unknown` becomes `untyped`; `# UNIT`, `# EOF`, `_created`
/// samples and exemplars are dropped.
pub fn prometheus_text(openmetrics: &str) -> String {
    use std::collections::HashMap;
    let mut kinds: HashMap<&str, &str> = HashMap::new();
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ")
            && let Some((name, kind)) = rest.split_once(' ')
        {
            kinds.insert(name, kind);
        }
    }
    let renamed = |name: &str| -> (String, &'static str) {
        match kinds.get(name).copied() {
            Some("counter") => (format!("{name}_total"), "counter"),
            Some("info") => (format!("{name}_info"), "gauge"),
            Some("gauge") => (name.to_owned(), "gauge"),
            Some("histogram") => (name.to_owned(), "histogram"),
            Some("summary") => (name.to_owned(), "summary"),
            Some("stateset") => (name.to_owned(), "gauge"),
            _ => (name.to_owned(), "untyped"),
        }
    };
    let mut out = String::with_capacity(openmetrics.len());
    let mut counters_created = Vec::new();
    for (name, kind) in &kinds {
        if *kind == "counter" {
            counters_created.push(format!("{name}_created"));
        }
    }
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            let help = help.replace("\\\"", "\"");
            out.push_str(&format!("# HELP {} {help}\n", renamed(name).0));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split_once(' ').map_or(rest, |(n, _)| n);
            let (name, kind) = renamed(name);
            out.push_str(&format!("# TYPE {name} {kind}\n"));
        } else if line.starts_with('#') || line.is_empty() {
            // # UNIT, # EOF: not in 0.0.4.
        } else {
            let sample = line.split(" # ").next().unwrap_or(line);
            let name = sample.split(['{', ' ']).next().unwrap_or("");
            if counters_created.iter().any(|c| c == name) {
                continue;
            }
            out.push_str(sample);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrape() -> Scrape {
        Scrape {
            installed_sequence: Some(3),
            max_staleness: 3600,
            peers: 2,
            uploaded_bytes: 10,
            downloaded_bytes: 20,
            rejected_chain: 1,
            rejected_peer: 4,
            started: 1_700_000_000,
            ..Scrape::default()
        }
    }

    #[test]
    fn no_chain_block_or_age_until_a_head_verified() {
        let never = openmetrics(&Registry::default(), &scrape());
        assert!(never.contains("firmchain_chain_verified 0\n"), "{never}");
        assert!(!never.contains("firmchain_chain_age_seconds"), "{never}");
        assert!(!never.contains("firmchain_chain_block"), "{never}");
        let fresh = openmetrics(
            &Registry::default(),
            &Scrape {
                chain: Some((42, 7)),
                ..scrape()
            },
        );
        assert!(fresh.contains("firmchain_chain_verified 1\n"), "{fresh}");
        assert!(fresh.contains("firmchain_chain_age_seconds 7\n"), "{fresh}");
        assert!(fresh.contains("firmchain_chain_block 42\n"), "{fresh}");
        assert!(fresh.ends_with("# EOF\n"), "{fresh}");
    }

    #[test]
    fn build_info_and_labelled_rejections() {
        let t = prometheus_text(&openmetrics(&Registry::default(), &scrape()));
        let build = format!(
            "firmchain_build_info{{version=\"{}\",features=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION"),
            features()
        );
        if option_env!("FIRMCHAIN_COMMIT").is_none() {
            assert!(t.contains(&build), "{t}");
        }
        assert!(
            t.contains("firmchain_rejected_total{source=\"chain\"} 1\n"),
            "{t}"
        );
        assert!(t.contains("firmchain_rejected_total{source=\"peer\"} 4\n"), "{t}");
        assert!(
            t.contains("# TYPE firmchain_uploaded_bytes_total counter\n"),
            "{t}"
        );
        assert!(t.contains("firmchain_uploaded_bytes_total 10\n"), "{t}");
        assert!(t.contains("firmchain_installed_sequence 3\n"), "{t}");
    }

    #[test]
    fn the_text_format_names_counters_by_their_samples() {
        let om = "# HELP x_requests Requests \\\"here\\\".\n# TYPE x_requests counter\n\
                  x_requests_total{a=\"b\"} 1 # {trace=\"1\"} 1.0\nx_requests_created{a=\"b\"} 17.0\n\
                  # HELP x_size Size.\n# TYPE x_size histogram\n# UNIT x_size bytes\nx_size_sum 1.0\n\
                  x_size_count 1\nx_size_bucket{le=\"+Inf\"} 1\n# HELP x_build Build.\n# TYPE x_build info\n\
                  x_build_info{v=\"1\"} 1\n# EOF\n";
        assert_eq!(
            prometheus_text(om),
            "# HELP x_requests_total Requests \"here\".\n# TYPE x_requests_total counter\n\
             x_requests_total{a=\"b\"} 1\n# HELP x_size Size.\n# TYPE x_size histogram\nx_size_sum 1.0\n\
             x_size_count 1\nx_size_bucket{le=\"+Inf\"} 1\n# HELP x_build_info Build.\n\
             # TYPE x_build_info gauge\nx_build_info{v=\"1\"} 1\n"
        );
    }

    #[test]
    fn prometheus_gets_openmetrics_and_curl_gets_text() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                          version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert!(wants_openmetrics(prometheus));
        assert!(!wants_openmetrics("*/*"));
        assert!(!wants_openmetrics("text/plain"));
        assert!(!wants_openmetrics("application/openmetrics-text;q=0"));
    }
}
