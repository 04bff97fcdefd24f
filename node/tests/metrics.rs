//! `/metrics` of real `firmchain run` processes, checked by `promtool` (Debian's prometheus package, which
//! `scripts/setup` unpacks into `.tools/prometheus`), and the operator files in `dist/`: the Prometheus alert
//! rules (`promtool check rules`, `promtool test rules`) and the Grafana dashboard (valid JSON whose every metric
//! a running node serves).

mod common;
use common::Fleet;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use firmchain_tests::fleet::{NodeProc, NodeSpec};
use serde_json::Value;

const T: Duration = Duration::from_secs(60);

fn dist(path: &str) -> PathBuf {
    firmchain_tests::workspace().join("dist").join(path)
}

/// promtool: `PROMTOOL`, else `.tools/prometheus/promtool`, else the PATH. `None` (the test is skipped, and
/// says so) only outside CI: CI runs `scripts/setup`, which puts it in `.tools`.
fn promtool() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("PROMTOOL").map(PathBuf::from),
        Some(firmchain_tests::workspace().join(".tools/prometheus/promtool")),
        Some(PathBuf::from("promtool")),
    ];
    for c in candidates.into_iter().flatten() {
        if Command::new(&c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return Some(c);
        }
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "promtool is missing in CI: scripts/setup unpacks it into .tools/prometheus"
    );
    eprintln!("SKIPPED: promtool is missing (run scripts/setup, or set PROMTOOL)");
    None
}

/// Run promtool with `args`, feeding it `stdin`; the combined output when it fails.
fn run_promtool(promtool: &PathBuf, args: &[&str], stdin: &str) -> Result<String, String> {
    let mut child = Command::new(promtool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!("promtool {args:?}: {}\n{text}", out.status))
    }
}

/// `GET /metrics` with `accept`: the content type and the body.
fn scrape(node: &NodeProc, accept: Option<&str>) -> (String, String) {
    let mut s = std::net::TcpStream::connect(&node.api).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    let accept = accept.map_or(String::new(), |a| format!("Accept: {a}\r\n"));
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{accept}\r\n",
        node.api
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type: ")
                .map(str::to_owned)
        })
        .unwrap_or_default();
    (content_type, body.to_owned())
}

/// The value of the sample `series` (name and labels exactly as served) in a text scrape.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Scrape until `series` has `want` (the Status actor hears of an outcome just after the Coordinator).
fn wait_value(node: &NodeProc, series: &str, want: f64) -> String {
    let deadline = Instant::now() + T;
    loop {
        let (_, text) = scrape(node, None);
        if value(&text, series) == Some(want) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{series} is not {want} within {T:?}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sample names in a text scrape.
fn sample_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

/// The `firmchain_…` and `libp2p_…` metric names in PromQL or YAML text.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    for prefix in ["firmchain_", "libp2p_"] {
        let mut from = 0;
        while let Some(i) = text[from..].find(prefix) {
            let start = from + i;
            let before = start.checked_sub(1).map(|b| bytes[b]);
            let end = text[start..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .map_or(text.len(), |e| start + e);
            if !before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_') {
                out.insert(text[start..end].to_owned());
            }
            from = end;
        }
    }
    out
}

/// Every `expr` of the dashboard's panels (and their targets).
fn dashboard_exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr", Value::String(e)) => out.push(e.clone()),
                    _ => dashboard_exprs(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| dashboard_exprs(v, out)),
        _ => {}
    }
}

fn dashboard() -> Value {
    let text = std::fs::read_to_string(dist("grafana/firmchain.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The rules load, and their own unit tests (dist/prometheus/alerts.test.yml: each alert fires after its
/// `for:`, and not before) pass.
#[test]
fn promtool_checks_the_alert_rules_and_their_tests() {
    let Some(promtool) = promtool() else { return };
    let rules = dist("prometheus/alerts.yml");
    let out = run_promtool(&promtool, &["check", "rules", rules.to_str().unwrap()], "").unwrap();
    assert!(out.contains("SUCCESS"), "{out}");
    let tests = dist("prometheus/alerts.test.yml");
    let out = run_promtool(&promtool, &["test", "rules", tests.to_str().unwrap()], "").unwrap();
    assert!(out.contains("SUCCESS"), "{out}");
}

/// The dashboard is a Grafana dashboard: panels with unique ids, a grid position and Prometheus queries on the
/// dashboard's data source variable.
#[test]
fn the_dashboard_is_a_valid_grafana_dashboard() {
    let d = dashboard();
    assert_eq!(d["uid"], "firmchain");
    assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(d["schemaVersion"].as_u64().is_some_and(|v| v >= 36));
    let vars: Vec<&str> = d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert!(
        vars.contains(&"datasource") && vars.contains(&"instance"),
        "{vars:?}"
    );
    let panels = d["panels"].as_array().unwrap();
    assert!(panels.len() >= 10, "{} panels", panels.len());
    let mut ids = BTreeSet::new();
    for p in panels {
        let title = p["title"].as_str().unwrap();
        assert!(ids.insert(p["id"].as_u64().unwrap()), "duplicate id in {title}");
        for k in ["x", "y", "w", "h"] {
            assert!(p["gridPos"][k].is_u64(), "{title}: gridPos.{k}");
        }
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{title}");
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title} has no query");
        for t in targets {
            let expr = t["expr"].as_str().unwrap();
            assert!(!metric_names(expr).is_empty(), "{title}: {expr}");
            assert!(
                expr.contains("$instance"),
                "{title} ignores the instance filter: {expr}"
            );
        }
    }
}

/// A device's scrape before and after it fetched and installed a release: the labelled series of that outcome
/// move (and only they), promtool accepts the scrape, Prometheus gets OpenMetrics, and every metric the
/// dashboard and the alert rules name is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_node_serves_labelled_metrics_promtool_accepts_and_the_dashboard_uses() {
    let f = Fleet::new(300_000, 1).await;
    let repo = f.repository();
    let d = f.device("d", &[&repo], NodeSpec::default());
    d.wait_for("a verified head", T, |v| !v["chain"].is_null())
        .unwrap();

    let (content_type, before) = scrape(&d, None);
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    for series in [
        "firmchain_fetches_total{outcome=\"ok\",payload=\"full\"}",
        "firmchain_fetch_duration_seconds_count{outcome=\"ok\",payload=\"full\"}",
        "firmchain_installs_total{outcome=\"installed\"}",
        "firmchain_install_duration_seconds_count{outcome=\"installed\"}",
        "firmchain_installed_sequence",
    ] {
        assert_eq!(value(&before, series), Some(0.0), "{series} in\n{before}");
    }
    assert_eq!(value(&before, "firmchain_chain_verified"), Some(1.0));
    assert!(
        value(&before, "firmchain_chain_age_seconds").is_some(),
        "{before}"
    );

    repo.publish(&f.images[1]).unwrap();
    d.wait_installed(1, T).unwrap();
    let after = wait_value(&d, "firmchain_installs_total{outcome=\"installed\"}", 1.0);
    for (series, want) in [
        ("firmchain_fetches_total{outcome=\"ok\",payload=\"full\"}", 1.0),
        (
            "firmchain_fetch_duration_seconds_count{outcome=\"ok\",payload=\"full\"}",
            1.0,
        ),
        (
            "firmchain_fetches_total{outcome=\"failed\",payload=\"full\"}",
            0.0,
        ),
        ("firmchain_fetches_total{outcome=\"ok\",payload=\"patch\"}", 0.0),
        (
            "firmchain_install_duration_seconds_count{outcome=\"installed\"}",
            1.0,
        ),
        ("firmchain_installs_total{outcome=\"rolled_back\"}", 0.0),
        ("firmchain_rollbacks_total{cause=\"health_check\"}", 0.0),
        ("firmchain_installed_sequence", 1.0),
    ] {
        assert_eq!(value(&after, series), Some(want), "{series} in\n{after}");
    }
    assert!(value(&after, "firmchain_downloaded_bytes_total").is_some_and(|b| b >= 300_000.0));
    assert!(value(&after, "firmchain_peers").is_some_and(|p| p >= 1.0));
    assert!(
        after.contains(&format!(
            "firmchain_build_info{{version=\"{}\"",
            env!("CARGO_PKG_VERSION")
        )),
        "{after}"
    );
    // A duration was observed: the sum of the installs' histogram moved off 0.
    assert!(
        value(
            &after,
            "firmchain_install_duration_seconds_sum{outcome=\"installed\"}"
        )
        .is_some_and(|s| s > 0.0),
        "{after}"
    );

    // Prometheus asks for OpenMetrics and gets it.
    let (content_type, om) = scrape(
        &d,
        Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"),
    );
    assert_eq!(
        content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert!(om.contains("# TYPE firmchain_fetches counter\n"), "{om}");

    // Every metric the dashboard and the alert rules name is on the device's scrape.
    let served = sample_names(&after);
    let mut exprs = Vec::new();
    dashboard_exprs(&dashboard(), &mut exprs);
    let mut named = metric_names(&exprs.join("\n"));
    let from_dashboard = named.len();
    named.extend(metric_names(
        &std::fs::read_to_string(dist("prometheus/alerts.yml")).unwrap(),
    ));
    assert!(from_dashboard >= 10, "{named:?}");
    let missing: Vec<_> = named.iter().filter(|n| !served.contains(*n)).collect();
    assert!(missing.is_empty(), "not served: {missing:?}\nserved: {served:?}");

    let Some(promtool) = promtool() else { return };
    for (who, text) in [("device", after), ("repository", scrape(&repo, None).1)] {
        if let Err(e) = run_promtool(&promtool, &["check", "metrics"], &text) {
            panic!("{who}: {e}\n{text}");
        }
    }
}
