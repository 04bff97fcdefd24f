//! Rollout wiring: on every poll the IndexWatcher proves the rollout state ([`ReleaseGate`]) of the releases it
//! has seen and the device has not installed, at the same verified block as everything else, and sends it with
//! that block's timestamp (chain time, never the device clock) to the Coordinator, whose `UpdateMachine`
//! enforces the rules. [`waiting`] says for `/status` why a release is not installed yet.

use actix::{Context, Handler, Message, Recipient};
use alloy::primitives::Address;
use firmchain_contracts::proven::{AtBlock, ProvenError};
use firmchain_contracts::proven_rollout::read_gates;
use firmchain_lightclient::execution_rpc::ExecutionRpc;
use firmchain_update::machine::{Input, UpdateMachine};
use firmchain_update::rollout::{Hold, ReleaseGate};
use firmchain_update::{ProductId, Sequence};
use serde::Serialize;

use crate::coordinator::Coordinator;

/// IndexWatcher → Coordinator: chain time and the proven gates of the releases waiting on this device, at one
/// verified block.
#[derive(Clone, Debug, PartialEq, Eq, Message)]
#[rtype(result = "()")]
pub struct RolloutProven {
    /// The verified header's timestamp.
    pub now: u64,
    /// Each release seen, not installed, not revoked, and its gate.
    pub gates: Vec<(Sequence, ReleaseGate)>,
}

/// The proven gates of `seqs` at `at`, paired with their sequence (one `eth_getProof`).
pub async fn prove(
    rpc: &impl ExecutionRpc,
    index: Address,
    product: &ProductId,
    seqs: &[Sequence],
    at: AtBlock,
) -> Result<Vec<(Sequence, ReleaseGate)>, ProvenError> {
    let gates = read_gates(rpc, index, product, seqs, at).await?;
    Ok(seqs.iter().copied().zip(gates).collect())
}

/// Send what a poll proved to the Coordinator, if this node has one.
pub fn tell(
    to: Option<&Recipient<RolloutProven>>,
    now: Option<u64>,
    gates: Option<Vec<(Sequence, ReleaseGate)>>,
) {
    if let (Some(to), Some(now), Some(gates)) = (to, now, gates) {
        to.do_send(RolloutProven { now, gates });
    }
}

/// A release the device knows of and does not install yet, and why (for `/status`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Waiting {
    pub sequence: u64,
    /// `unproven`, `other_hardware`, `expired`, `paused`, `delay` or `rollout`.
    pub reason: &'static str,
    /// Chain time at which this may change (a pause's or delay's end, the next rollout step; None: never, or
    /// not known).
    pub until: Option<u64>,
    /// The reason in words.
    pub message: String,
}

/// The machine-readable name of a hold, and when it may lift.
pub fn describe(hold: &Hold) -> (&'static str, Option<u64>) {
    match hold {
        Hold::Unproven => ("unproven", None),
        Hold::OtherHardware => ("other_hardware", None),
        Hold::Expired { .. } => ("expired", None),
        Hold::Paused { until } => ("paused", Some(*until)),
        Hold::Delay { until } => ("delay", Some(*until)),
        Hold::Rollout { next_step_at, .. } => ("rollout", *next_step_at),
    }
}

/// Why each of `seqs` is held back on this device (releases that are not held are left out).
pub fn waiting(machine: &UpdateMachine, seqs: &[Sequence]) -> Vec<Waiting> {
    seqs.iter()
        .filter_map(|s| {
            let hold = machine.hold(*s)?;
            let (reason, until) = describe(&hold);
            Some(Waiting {
                sequence: s.0,
                reason,
                until,
                message: hold.to_string(),
            })
        })
        .collect()
}

impl Handler<RolloutProven> for Coordinator {
    type Result = ();

    fn handle(&mut self, msg: RolloutProven, _: &mut Context<Self>) {
        self.feed(Input::ChainTime { now: msg.now });
        self.watching = msg.gates.iter().map(|(s, _)| *s).collect();
        for (sequence, gate) in msg.gates {
            self.feed(Input::RolloutProven { sequence, gate });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use firmchain_update::machine::{Installed, Policy};
    use firmchain_update::record::ReleaseTerms;
    use firmchain_update::rollout::{Device, DeviceId};
    use firmchain_update::{Blake3Hash, ReleaseKind, ReleaseRecord};

    fn record(terms: ReleaseTerms) -> ReleaseRecord {
        ReleaseRecord {
            product: "acme-sensor".parse().unwrap(),
            sequence: Sequence(2),
            base_hash: Blake3Hash::ZERO,
            target_hash: Blake3Hash([2; 32]),
            target_size: 10,
            patch_cid: vec![1],
            patch_hash: Blake3Hash([0xaa; 32]),
            patch_size: 5,
            kind: ReleaseKind::Full,
            min_sequence: 0,
            terms: Box::new(terms),
        }
    }

    #[test]
    fn waiting_names_each_reason_and_when_it_lifts() {
        let device = Device {
            id: DeviceId::from_name("device-01"),
            class: Some("board-a".parse().unwrap()),
        };
        let mut m = UpdateMachine::new(
            "acme-sensor".parse().unwrap(),
            Installed {
                sequence: Sequence(1),
                hash: Blake3Hash([1; 32]),
            },
            Policy::default(),
        )
        .with_rollout(device);
        let other = ReleaseTerms {
            hardware: vec!["board-b".parse().unwrap()],
            ..ReleaseTerms::default()
        };
        m.handle(Input::ReleaseSeen {
            record: record(other),
            revoked: false,
        });
        let w = waiting(&m, &[Sequence(2)]);
        assert_eq!(w[0].reason, "unproven");
        m.handle(Input::ChainTime { now: 1000 });
        m.handle(Input::RolloutProven {
            sequence: Sequence(2),
            gate: ReleaseGate {
                live_at: 900,
                installable_at: 900,
                product_paused_until: 2000,
                release_paused_until: 0,
            },
        });
        assert_eq!(waiting(&m, &[Sequence(2)])[0].reason, "other_hardware");
        let (reason, until) = describe(&Hold::Paused { until: 2000 });
        assert_eq!((reason, until), ("paused", Some(2000)));
        assert!(
            waiting(&m, &[Sequence(7)]).is_empty(),
            "unknown releases are not listed"
        );
    }
}
