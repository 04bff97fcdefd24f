//! The node's event metrics (`firmchain_*` counters and histograms), kept by the Status actor as the events
//! arrive and encoded by the API at each scrape. Gauges read at scrape time (chain head, peers, bytes) are the
//! API's (`node/src/api/metrics.rs`).
//!
//! Every label set is created at start-up with 0, so `increase()` sees the first failure and dashboards show
//! every outcome before it happened.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::messages::{ReleaseInstalled, RollbackCause};

/// The payloads a device fetches (`payload` label).
pub const PAYLOADS: [&str; 2] = ["full", "patch"];
/// How a fetch or a poll ended (`outcome` label).
pub const OUTCOMES: [&str; 2] = ["ok", "failed"];
/// How an install ended (`outcome` label of the install series).
pub const INSTALL_OUTCOMES: [&str; 3] = ["installed", "rolled_back", "interrupted"];

/// `outcome` only.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

/// `outcome` and `payload`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FetchLabels {
    pub outcome: &'static str,
    pub payload: &'static str,
}

/// `cause`: the class of a rollback's reason.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CauseLabels {
    pub cause: &'static str,
}

type Histograms<S> = Family<S, Histogram, fn() -> Histogram>;

/// Fetch and verify times: 0.1 s to about 16 min.
fn fetch_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.1, 2.5, 11))
}

/// Install times (apply, write, switch, health check): 50 ms to about 8 min.
fn install_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.05, 2.5, 11))
}

/// The event metrics. Clones share their values.
#[derive(Clone, Debug)]
pub struct Metrics {
    /// Verified reads of the index, by outcome.
    pub polls: Family<OutcomeLabels, Counter>,
    /// Payload fetches (fetched and verified), by outcome and payload.
    pub fetches: Family<FetchLabels, Counter>,
    /// How long they took.
    pub fetch_seconds: Histograms<FetchLabels>,
    /// Installs, by outcome.
    pub installs: Family<OutcomeLabels, Counter>,
    /// How long they took (from the Installer's start to its verdict).
    pub install_seconds: Histograms<OutcomeLabels>,
    /// Rollbacks, by cause.
    pub rollbacks: Family<CauseLabels, Counter>,
    /// Releases this node published.
    pub published: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let m = Metrics {
            polls: Family::default(),
            fetches: Family::default(),
            fetch_seconds: Family::new_with_constructor(fetch_histogram),
            installs: Family::default(),
            install_seconds: Family::new_with_constructor(install_histogram),
            rollbacks: Family::default(),
            published: Counter::default(),
        };
        for outcome in OUTCOMES {
            drop(m.polls.get_or_create(&OutcomeLabels { outcome }));
            for payload in PAYLOADS {
                let l = FetchLabels { outcome, payload };
                drop(m.fetches.get_or_create(&l));
                drop(m.fetch_seconds.get_or_create(&l));
            }
        }
        for outcome in INSTALL_OUTCOMES {
            drop(m.installs.get_or_create(&OutcomeLabels { outcome }));
            drop(m.install_seconds.get_or_create(&OutcomeLabels { outcome }));
        }
        for cause in RollbackCause::ALL {
            drop(m.rollbacks.get_or_create(&CauseLabels {
                cause: cause.as_str(),
            }));
        }
        m
    }
}

impl Metrics {
    /// New metrics, registered in `registry` under `firmchain_`.
    pub fn register(registry: &mut Registry) -> Metrics {
        let m = Metrics::default();
        let r = registry.sub_registry_with_prefix("firmchain");
        r.register(
            "index_polls",
            "Verified reads of the release index, by outcome (ok, failed)",
            m.polls.clone(),
        );
        r.register(
            "fetches",
            "Payload fetches (fetched and verified), by outcome (ok, failed) and payload (full, patch)",
            m.fetches.clone(),
        );
        r.register_with_unit(
            "fetch_duration",
            "Time to fetch and verify a payload, by outcome and payload",
            Unit::Seconds,
            m.fetch_seconds.clone(),
        );
        r.register(
            "installs",
            "Installs, by outcome (installed, rolled_back, interrupted: a transient fault, tried again)",
            m.installs.clone(),
        );
        r.register_with_unit(
            "install_duration",
            "Time from the start of an install to its outcome (apply, write, switch, health check)",
            Unit::Seconds,
            m.install_seconds.clone(),
        );
        r.register(
            "rollbacks",
            "Installs rolled back, by cause (health_check, installer, image, boot_fallback, other)",
            m.rollbacks.clone(),
        );
        r.register(
            "published",
            "Releases published by this node",
            m.published.clone(),
        );
        m
    }

    /// Count a verified read of the index (`ok`) or a failed one.
    pub fn poll(&self, ok: bool) {
        let outcome = OUTCOMES[usize::from(!ok)];
        self.polls.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// Count a fetch of `payload` that took `seconds`.
    pub fn fetch(&self, payload: &'static str, ok: bool, seconds: f64) {
        let l = FetchLabels {
            outcome: OUTCOMES[usize::from(!ok)],
            payload,
        };
        self.fetches.get_or_create(&l).inc();
        self.fetch_seconds.get_or_create(&l).observe(seconds);
    }

    /// Count an install's outcome, and its time when the install started in this process.
    pub fn install(&self, outcome: &ReleaseInstalled, seconds: Option<f64>) {
        let l = OutcomeLabels {
            outcome: install_outcome(outcome),
        };
        self.installs.get_or_create(&l).inc();
        if let Some(s) = seconds {
            self.install_seconds.get_or_create(&l).observe(s);
        }
        if let ReleaseInstalled::RolledBack { cause, .. } = outcome {
            self.rollbacks
                .get_or_create(&CauseLabels {
                    cause: cause.as_str(),
                })
                .inc();
        }
    }
}

/// The `outcome` label of an install.
pub fn install_outcome(outcome: &ReleaseInstalled) -> &'static str {
    match outcome {
        ReleaseInstalled::Installed { .. } => "installed",
        ReleaseInstalled::RolledBack { .. } => "rolled_back",
        ReleaseInstalled::Interrupted { .. } => "interrupted",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use firmchain_update::Sequence;

    fn text(r: &Registry) -> String {
        let mut s = String::new();
        prometheus_client::encoding::text::encode(&mut s, r).unwrap();
        s
    }

    #[test]
    fn every_label_set_is_there_from_the_start() {
        let mut r = Registry::default();
        Metrics::register(&mut r);
        let t = text(&r);
        for line in [
            "firmchain_index_polls_total{outcome=\"failed\"} 0\n",
            "firmchain_fetches_total{outcome=\"failed\",payload=\"patch\"} 0\n",
            "firmchain_fetch_duration_seconds_count{outcome=\"ok\",payload=\"full\"} 0\n",
            "firmchain_installs_total{outcome=\"rolled_back\"} 0\n",
            "firmchain_install_duration_seconds_count{outcome=\"installed\"} 0\n",
            "firmchain_rollbacks_total{cause=\"health_check\"} 0\n",
            "firmchain_rollbacks_total{cause=\"boot_fallback\"} 0\n",
            "firmchain_published_total 0\n",
        ] {
            assert!(t.contains(line), "{line} missing in\n{t}");
        }
    }

    #[test]
    fn events_move_their_own_label_set_only() {
        let mut r = Registry::default();
        let m = Metrics::register(&mut r);
        m.fetch("patch", false, 3.0);
        m.install(
            &ReleaseInstalled::RolledBack {
                sequence: Sequence(2),
                reason: "the health check exited with code 3".into(),
                cause: RollbackCause::HealthCheck,
            },
            Some(0.5),
        );
        let t = text(&r);
        assert!(
            t.contains("firmchain_fetches_total{outcome=\"failed\",payload=\"patch\"} 1\n"),
            "{t}"
        );
        assert!(
            t.contains("firmchain_fetches_total{outcome=\"ok\",payload=\"patch\"} 0\n"),
            "{t}"
        );
        assert!(
            t.contains("firmchain_fetch_duration_seconds_sum{outcome=\"failed\",payload=\"patch\"} 3.0\n"),
            "{t}"
        );
        assert!(
            t.contains("firmchain_installs_total{outcome=\"rolled_back\"} 1\n"),
            "{t}"
        );
        assert!(
            t.contains("firmchain_installs_total{outcome=\"installed\"} 0\n"),
            "{t}"
        );
        assert!(
            t.contains("firmchain_rollbacks_total{cause=\"health_check\"} 1\n"),
            "{t}"
        );
        assert!(
            t.contains("firmchain_rollbacks_total{cause=\"installer\"} 0\n"),
            "{t}"
        );
        assert!(
            t.contains("firmchain_install_duration_seconds_count{outcome=\"rolled_back\"} 1\n"),
            "{t}"
        );
    }

    /// The Status actor counts what the actors report, and times an install only from its own start.
    #[actix::test]
    async fn the_status_actor_counts_fetches_and_times_installs_it_saw_start() {
        use crate::messages::StatusEvent;
        use crate::status::{GetSnapshot, Status};
        use actix::Actor;
        use firmchain_update::Blake3Hash;
        use firmchain_update::machine::Payload;
        use std::sync::Arc;

        let mut r = Registry::default();
        let status = Status::new(None).with_metrics(Metrics::register(&mut r)).start();
        status.do_send(StatusEvent::Fetched {
            payload: Payload::Patch,
            seconds: 2.0,
            outcome: Err(Arc::new(crate::error::FetchError::BadCid("x".into()))),
        });
        status.do_send(StatusEvent::Installing {
            sequence: Sequence(1),
        });
        status.do_send(StatusEvent::Installed(ReleaseInstalled::Installed {
            sequence: Sequence(1),
            hash: Blake3Hash([1; 32]),
        }));
        // A verdict found at start-up (after a restart): counted, not timed.
        status.do_send(StatusEvent::Installed(ReleaseInstalled::RolledBack {
            sequence: Sequence(2),
            reason: "the health check exited with code 1 (checked after a restart)".into(),
            cause: RollbackCause::HealthCheck,
        }));
        status.send(GetSnapshot).await.unwrap();
        let t = text(&r);
        for line in [
            "firmchain_fetches_total{outcome=\"failed\",payload=\"patch\"} 1\n",
            "firmchain_fetch_duration_seconds_sum{outcome=\"failed\",payload=\"patch\"} 2.0\n",
            "firmchain_installs_total{outcome=\"installed\"} 1\n",
            "firmchain_install_duration_seconds_count{outcome=\"installed\"} 1\n",
            "firmchain_installs_total{outcome=\"rolled_back\"} 1\n",
            "firmchain_install_duration_seconds_count{outcome=\"rolled_back\"} 0\n",
            "firmchain_rollbacks_total{cause=\"health_check\"} 1\n",
        ] {
            assert!(t.contains(line), "{line} missing in\n{t}");
        }
    }
}
