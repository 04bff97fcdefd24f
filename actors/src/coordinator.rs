//! The Coordinator: a thin shell over the pure [`UpdateMachine`]. It turns messages into machine inputs, sends
//! the machine's actions to the fetcher and the installer, and ticks the machine for retries.

use std::collections::HashMap;
use std::time::Duration;

use actix::{Actor, AsyncContext, Context, Handler, Recipient};
use cid::Cid;
use firmchain_update::Sequence;
use firmchain_update::machine::{Action, Input, Payload, UpdateMachine};

use crate::messages::{
    CancelFetch, CoordinatorStatus, FetchRelease, GetStatus, InstallRelease, ReleaseFetched,
    ReleaseInstalled, ReleaseRevoked, ReleaseSeen,
};
use crate::unix_now;

/// Where the Coordinator's commands go.
#[derive(Clone, Debug)]
pub struct CoordinatorPorts {
    /// FetchRelease goes here.
    pub fetch: Recipient<FetchRelease>,
    /// CancelFetch goes here.
    pub cancel: Recipient<CancelFetch>,
    /// InstallRelease goes here.
    pub install: Recipient<InstallRelease>,
}

/// The Coordinator actor.
#[derive(Debug)]
pub struct Coordinator {
    machine: UpdateMachine,
    ports: CoordinatorPorts,
    tick: Duration,
    /// Releases whose rollout gates the watcher proved last (for `/status`).
    pub(crate) watching: Vec<firmchain_update::Sequence>,
    /// Where each verified payload is (from the fetcher, for the installer).
    fetched: HashMap<(Sequence, Payload), Cid>,
}

impl Coordinator {
    /// A Coordinator over `machine`, ticking every `tick` for retries.
    pub fn new(machine: UpdateMachine, ports: CoordinatorPorts, tick: Duration) -> Coordinator {
        Coordinator {
            machine,
            ports,
            tick,
            watching: Vec::new(),
            fetched: HashMap::new(),
        }
    }

    pub(crate) fn feed(&mut self, input: Input) {
        for action in self.machine.handle(input) {
            match action {
                Action::Fetch { record, payload } => {
                    self.ports.fetch.do_send(FetchRelease { record, payload })
                }
                Action::Install { record, payload } => {
                    match self.fetched.remove(&(record.sequence, payload)) {
                        Some(root) => self.ports.install.do_send(InstallRelease {
                            record,
                            payload,
                            root,
                        }),
                        // Not reachable: the machine installs only what was reported fetched.
                        None => {
                            tracing::warn!(sequence = record.sequence.0, "no verified payload to install")
                        }
                    }
                }
                Action::Cancel { sequence } => self.ports.cancel.do_send(CancelFetch { sequence }),
            }
        }
    }
}

impl Actor for Coordinator {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.tick, |act, _| act.feed(Input::Tick { now: unix_now() }));
    }
}

impl Handler<ReleaseSeen> for Coordinator {
    type Result = ();

    fn handle(&mut self, msg: ReleaseSeen, _: &mut Context<Self>) {
        self.feed(Input::ReleaseSeen {
            record: msg.record,
            revoked: msg.revoked,
        });
    }
}

impl Handler<ReleaseRevoked> for Coordinator {
    type Result = ();

    fn handle(&mut self, msg: ReleaseRevoked, _: &mut Context<Self>) {
        self.feed(Input::Revoked {
            sequence: msg.sequence,
        });
    }
}

impl Handler<ReleaseFetched> for Coordinator {
    type Result = ();

    fn handle(&mut self, msg: ReleaseFetched, _: &mut Context<Self>) {
        let input = match msg.outcome {
            Ok(root) => {
                self.fetched.insert((msg.sequence, msg.payload), root);
                Input::Fetched {
                    sequence: msg.sequence,
                    payload: msg.payload,
                }
            }
            Err(_) => Input::FetchFailed {
                sequence: msg.sequence,
                payload: msg.payload,
                now: unix_now(),
            },
        };
        self.feed(input);
    }
}

impl Handler<ReleaseInstalled> for Coordinator {
    type Result = ();

    fn handle(&mut self, msg: ReleaseInstalled, _: &mut Context<Self>) {
        let input = match msg {
            ReleaseInstalled::Installed { sequence, hash } => Input::Installed { sequence, hash },
            ReleaseInstalled::RolledBack { sequence, .. } => Input::RolledBack { sequence },
            ReleaseInstalled::Interrupted { sequence, .. } => Input::InstallFailed {
                sequence,
                now: unix_now(),
            },
        };
        self.feed(input);
    }
}

impl Handler<GetStatus> for Coordinator {
    type Result = CoordinatorStatus;

    fn handle(&mut self, _: GetStatus, _: &mut Context<Self>) -> CoordinatorStatus {
        let installed = self.machine.installed();
        CoordinatorStatus {
            installed: installed.sequence,
            hash: installed.hash,
            working_on: self.machine.job().map(|j| (j.sequence, j.payload, j.failures)),
            rolled_back: self.machine.rolled_back().collect(),
            waiting: crate::rollout::waiting(&self.machine, &self.watching),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix::Addr;
    use firmchain_update::machine::{Installed, Payload, Policy};
    use firmchain_update::{Blake3Hash, ReleaseKind, ReleaseRecord, Sequence};
    use std::sync::Arc;
    use tokio::sync::mpsc;

    /// An in-memory fetcher and installer: they report what they were asked on a channel, and answer the
    /// Coordinator as a real one would (fetch fails `fail_fetches` times, installs succeed).
    #[derive(Debug)]
    struct FakePorts {
        coordinator: Option<Addr<Coordinator>>,
        seen: mpsc::UnboundedSender<String>,
        fail_fetches: u32,
    }

    impl Actor for FakePorts {
        type Context = Context<Self>;
    }

    #[derive(actix::Message)]
    #[rtype(result = "()")]
    struct Connect(Addr<Coordinator>);

    impl Handler<Connect> for FakePorts {
        type Result = ();
        fn handle(&mut self, msg: Connect, _: &mut Context<Self>) {
            self.coordinator = Some(msg.0);
        }
    }

    impl Handler<FetchRelease> for FakePorts {
        type Result = ();
        fn handle(&mut self, msg: FetchRelease, _: &mut Context<Self>) {
            let _ = self
                .seen
                .send(format!("fetch {} {:?}", msg.record.sequence, msg.payload));
            let outcome = if self.fail_fetches > 0 {
                self.fail_fetches -= 1;
                Err(Arc::new(crate::error::FetchError::BadCid("no provider".into())))
            } else {
                Ok(Cid::default())
            };
            if let Some(c) = &self.coordinator {
                c.do_send(ReleaseFetched {
                    sequence: msg.record.sequence,
                    payload: msg.payload,
                    outcome,
                });
            }
        }
    }

    impl Handler<CancelFetch> for FakePorts {
        type Result = ();
        fn handle(&mut self, msg: CancelFetch, _: &mut Context<Self>) {
            let _ = self.seen.send(format!("cancel {}", msg.sequence));
        }
    }

    impl Handler<InstallRelease> for FakePorts {
        type Result = ();
        fn handle(&mut self, msg: InstallRelease, _: &mut Context<Self>) {
            let _ = self
                .seen
                .send(format!("install {} {:?}", msg.record.sequence, msg.payload));
            if let Some(c) = &self.coordinator {
                c.do_send(ReleaseInstalled::Installed {
                    sequence: msg.record.sequence,
                    hash: msg.record.target_hash,
                });
            }
        }
    }

    fn release(seq: u64, base: Blake3Hash) -> ReleaseRecord {
        ReleaseRecord {
            product: "acme-sensor".parse().unwrap(),
            sequence: Sequence(seq),
            base_hash: base,
            target_hash: Blake3Hash([seq as u8; 32]),
            target_size: 10,
            patch_cid: vec![1],
            patch_hash: Blake3Hash([0xaa; 32]),
            patch_size: 5,
            kind: ReleaseKind::Patch,
            min_sequence: 0,
            terms: Default::default(),
        }
    }

    async fn next(rx: &mut mpsc::UnboundedReceiver<String>) -> String {
        tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap()
    }

    #[actix::test]
    async fn a_seen_release_is_fetched_installed_and_reported() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let ports = FakePorts {
            coordinator: None,
            seen: tx,
            fail_fetches: 1,
        }
        .start();
        let base = Blake3Hash([1; 32]);
        let machine = UpdateMachine::new(
            "acme-sensor".parse().unwrap(),
            Installed {
                sequence: Sequence(1),
                hash: base,
            },
            Policy {
                retry_base_secs: 0,
                ..Policy::default()
            },
        );
        let coordinator = Coordinator::new(
            machine,
            CoordinatorPorts {
                fetch: ports.clone().recipient(),
                cancel: ports.clone().recipient(),
                install: ports.clone().recipient(),
            },
            Duration::from_millis(50),
        )
        .start();
        ports.send(Connect(coordinator.clone())).await.unwrap();
        coordinator
            .send(ReleaseSeen {
                record: release(2, base),
                revoked: false,
            })
            .await
            .unwrap();
        assert_eq!(next(&mut rx).await, "fetch 2 Patch");
        // The first fetch failed; it is retried (the backoff is zero here).
        assert_eq!(next(&mut rx).await, "fetch 2 Patch");
        assert_eq!(next(&mut rx).await, "install 2 Patch");
        let status = loop {
            let s = coordinator.send(GetStatus).await.unwrap();
            if s.installed == Sequence(2) {
                break s;
            }
            tokio::task::yield_now().await;
        };
        assert_eq!(status.hash, Blake3Hash([2; 32]));
        assert_eq!(status.working_on, None);
        // A newer release whose base this device does not run: the full image.
        coordinator
            .send(ReleaseSeen {
                record: release(3, Blake3Hash([9; 32])),
                revoked: false,
            })
            .await
            .unwrap();
        assert_eq!(next(&mut rx).await, format!("fetch 3 {:?}", Payload::Full));
    }
}
