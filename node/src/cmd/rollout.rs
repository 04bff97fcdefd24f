//! `firmchain contract pause|resume|cancel|guardian|delay|pause-bound|rollout-status` and the release terms of
//! `publish` (`--hardware`, `--expires`, `--rollout`, `--notes`).
// A device build (no `publisher` feature) keeps only `rollout-status` and the terms: the rest is unused there.
#![cfg_attr(not(feature = "publisher"), allow(dead_code, unused_imports))]

use std::time::Duration;

use alloy::primitives::Address;
use cid::Cid;
use firmchain_actors::chain::{BlockError, HeaderSource, verified_block};
use firmchain_contracts::proven::{self, AtBlock, ProvenError};
use firmchain_contracts::proven_rollout::read_gates;
use firmchain_lightclient::execution_rpc::HttpExecutionRpc;
use firmchain_lightclient::rpc::HttpRpc;
use firmchain_update::record::{HardwareClass, ReleaseTerms};
use firmchain_update::rollout::{self, Device, DeviceId, Hold};
use firmchain_update::{ProductId, Sequence};
use serde_json::{Value, json};

use super::contract::connect;
use crate::cli::{ContractCommand, GuardianCommand, IndexArgs, PauseTarget, TermsArgs};
use crate::error::CliError;
use crate::output::Output;

/// The release terms `publish` records: classes sorted (the record wants them ascending), checked as the
/// contract checks them.
pub fn terms(args: &TermsArgs) -> Result<ReleaseTerms, CliError> {
    let mut hardware = args.hardware.clone();
    hardware.sort();
    hardware.dedup();
    let notes_cid = match &args.notes {
        None => Vec::new(),
        Some(text) => text
            .parse::<Cid>()
            .map_err(|e| CliError::Usage(format!("--notes {text:?} is not a CID: {e}")))?
            .to_bytes(),
    };
    let terms = ReleaseTerms {
        hardware,
        not_after: args.expires.unwrap_or(0),
        rollout: args.rollout.unwrap_or_default(),
        notes_cid,
    };
    terms
        .validate()
        .map_err(|e| CliError::Usage(format!("release terms: {e}")))?;
    Ok(terms)
}

/// A share in basis points as a percentage.
pub fn pct(bps: u16) -> String {
    match bps % 100 {
        0 => format!("{}%", bps / 100),
        f => format!("{}.{f:02}%", bps / 100),
    }
}

fn scope(product: &ProductId, sequence: Option<u64>) -> String {
    match sequence {
        None | Some(0) => format!("{product} (every release)"),
        Some(s) => format!("{product} release {s}"),
    }
}

fn address(text: &str, what: &str) -> Result<Address, CliError> {
    text.parse()
        .map_err(|_| CliError::Usage(format!("{what} {text:?} is not an address")))
}

/// Run one of the rollout subcommands of `contract`.
pub async fn run(command: ContractCommand, out: &Output) -> Result<(), CliError> {
    match command {
        #[cfg(feature = "publisher")]
        ContractCommand::Pause { index, target } => {
            let PauseTarget { product, sequence } = target;
            let seq = Sequence(sequence.unwrap_or(0));
            let (tx, until) = connect(&index, true).await?.pause(&product, seq).await?;
            let what = scope(&product, sequence);
            out.result(
                &json!({ "tx": tx.to_string(), "product": product.to_string(), "sequence": seq.0, "paused_until": until }),
                || match until {
                    u64::MAX => format!("paused {what} until resumed (tx {tx})"),
                    u => format!("paused {what} until chain time {u} (tx {tx})"),
                },
            );
        }
        #[cfg(feature = "publisher")]
        ContractCommand::Resume { index, target } => {
            let PauseTarget { product, sequence } = target;
            let seq = Sequence(sequence.unwrap_or(0));
            let a = connect(&index, true).await?.resume(&product, seq).await?;
            let (tx, what) = (a.tx, scope(&product, sequence));
            out.result(
                &json!({ "tx": tx.to_string(), "product": product.to_string(), "sequence": seq.0, "resumed": a.done }),
                || match a.done {
                    true => format!("resumed {what} (tx {tx})"),
                    false => format!("approved resuming {what}; more publishers must approve (tx {tx})"),
                },
            );
        }
        #[cfg(feature = "publisher")]
        ContractCommand::Cancel {
            index,
            product,
            sequence,
            reason,
        } => {
            let tx = connect(&index, true)
                .await?
                .cancel(&product, Sequence(sequence), &reason)
                .await?;
            out.result(
                &json!({ "tx": tx.to_string(), "product": product.to_string(), "sequence": sequence, "cancelled": true }),
                || format!("cancelled {product} release {sequence} (tx {tx})"),
            );
        }
        #[cfg(feature = "publisher")]
        ContractCommand::Guardian(GuardianCommand::Add {
            index,
            guardian,
            product,
        }) => {
            let who = address(&guardian, "guardian")?;
            let tx = connect(&index, true)
                .await?
                .add_guardian(who, product.as_ref())
                .await?;
            out.result(
                &json!({ "tx": tx.to_string(), "guardian": who.to_string() }),
                || format!("{who} now guards {} (tx {tx})", scope_of(product.as_ref())),
            );
        }
        #[cfg(feature = "publisher")]
        ContractCommand::Guardian(GuardianCommand::Remove {
            index,
            guardian,
            product,
        }) => {
            let who = address(&guardian, "guardian")?;
            let tx = connect(&index, true)
                .await?
                .remove_guardian(who, product.as_ref())
                .await?;
            out.result(
                &json!({ "tx": tx.to_string(), "guardian": who.to_string() }),
                || format!("{who} no longer guards {} (tx {tx})", scope_of(product.as_ref())),
            );
        }
        #[cfg(feature = "publisher")]
        ContractCommand::Delay {
            index,
            product,
            delay,
        } => {
            let tx = connect(&index, true)
                .await?
                .set_activation_delay(&product, delay)
                .await?;
            out.result(
                &json!({ "tx": tx.to_string(), "product": product.to_string(), "delay_secs": delay }),
                || format!("{product}: releases going live from now on wait {delay} s (tx {tx})"),
            );
        }
        #[cfg(feature = "publisher")]
        ContractCommand::PauseBound { index, bound } => {
            let tx = connect(&index, true).await?.set_pause_bound(bound).await?;
            out.result(
                &json!({ "tx": tx.to_string(), "pause_bound_secs": bound }),
                || format!("a single key's pause now lasts {bound} s (tx {tx})"),
            );
        }
        ContractCommand::RolloutStatus {
            index,
            product,
            sequence,
            devices,
            devices_file,
            hardware,
        } => {
            let mut list: Vec<(String, Option<HardwareClass>)> =
                devices.into_iter().map(|d| (d, hardware)).collect();
            if let Some(file) = &devices_file {
                let text = std::fs::read_to_string(file).map_err(CliError::file(file))?;
                list.extend(parse_devices(&text, hardware)?);
            }
            let v = rollout_status(&index, &product, sequence.map(Sequence), &list).await?;
            out.result(&v, || status_text(&v));
        }
        other => {
            return Err(CliError::Usage(format!("not a rollout command: {other:?}")));
        }
    }
    Ok(())
}

fn scope_of(product: Option<&ProductId>) -> String {
    product.map_or_else(|| "every product".to_owned(), |p| p.to_string())
}

/// Lines of `name [hardware-class]`; blank lines and `#` comments are skipped.
pub fn parse_devices(
    text: &str,
    default: Option<HardwareClass>,
) -> Result<Vec<(String, Option<HardwareClass>)>, CliError> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        let name = words.next().unwrap_or_default().to_owned();
        let class = match words.next() {
            None => default,
            Some(c) => Some(
                c.parse()
                    .map_err(|e| CliError::Usage(format!("--devices-file line {}: {e}", n + 1)))?,
            ),
        };
        if words.next().is_some() {
            return Err(CliError::Usage(format!(
                "--devices-file line {}: expected `name [hardware-class]`",
                n + 1
            )));
        }
        out.push((name, class));
    }
    Ok(out)
}

fn proof_error(what: &'static str) -> impl Fn(ProvenError) -> CliError {
    move |e| match e {
        ProvenError::Verify(v) => CliError::Verify(v),
        ProvenError::Rpc(r) => CliError::Rpc {
            what,
            message: r.to_string(),
        },
    }
}

fn hold_json(h: &Hold) -> Value {
    let (kind, until) = match h {
        Hold::Unproven => ("unproven", None),
        Hold::OtherHardware => ("other_hardware", None),
        Hold::Expired { not_after } => ("expired", Some(*not_after)),
        Hold::Paused { until } => ("paused", Some(*until)),
        Hold::Delay { until } => ("delay", Some(*until)),
        Hold::Rollout { next_step_at, .. } => ("rollout", *next_step_at),
    };
    json!({ "reason": kind, "until": until, "message": h.to_string() })
}

/// The proven rollout of one release at the newest block (headers checked against their hash, as `chain
/// read-head` in rpc mode; storage proven).
async fn rollout_status(
    index: &IndexArgs,
    product: &ProductId,
    sequence: Option<Sequence>,
    devices: &[(String, Option<HardwareClass>)],
) -> Result<Value, CliError> {
    let url = super::contract::rpc(&index.chain)?;
    let contract = super::contract::flag_or_legacy(index.contract.as_deref(), "FIRMCHAIN_CONTRACT")
        .ok_or_else(|| CliError::Usage("--contract (or FIRMCHAIN_CHAIN__CONTRACT) is required".into()))?;
    let at_index = address(&contract, "--contract")?;
    let reader =
        HttpExecutionRpc::new(vec![url], Duration::from_secs(index.chain.rpc_timeout)).map_err(|e| {
            CliError::Rpc {
                what: "execution RPC",
                message: e.to_string(),
            }
        })?;
    let mut source: HeaderSource<HttpRpc> = HeaderSource::Rpc;
    let head = verified_block(&reader, &mut source, None, 0)
        .await
        .map_err(|e| match e {
            BlockError::Header(v) => CliError::Verify(v),
            e => CliError::Rpc {
                what: "fetching the block header",
                message: e.to_string(),
            },
        })?;
    let at = AtBlock {
        number: head.block,
        state_root: head.state_root,
    };
    let proven_head = proven::read_head(&reader, at_index, product, at.number, at.state_root)
        .await
        .map_err(proof_error("eth_getProof"))?;
    let seq = sequence.unwrap_or(proven_head.sequence);
    if seq.0 == 0 || seq > proven_head.sequence {
        return Err(CliError::Usage(format!(
            "{product} has no release {} (the newest is {})",
            seq.0, proven_head.sequence.0
        )));
    }
    let releases = proven::read_releases(&reader, at_index, product, Sequence(seq.0 - 1), seq, 0, at)
        .await
        .map_err(proof_error("reading release events"))?;
    let Some((_, record, _)) = releases.found.into_iter().find(|(_, r, _)| r.sequence == seq) else {
        return Err(CliError::Rpc {
            what: "reading release events",
            message: format!(
                "no event matching the proven digest of release {} was served",
                seq.0
            ),
        });
    };
    let gate = read_gates(&reader, at_index, product, &[seq], at)
        .await
        .map_err(proof_error("eth_getProof"))?
        .first()
        .copied()
        .unwrap_or_default();
    let revoked = proven::read_revoked(&reader, at_index, product, &[seq], at.number, at.state_root)
        .await
        .map_err(proof_error("eth_getProof"))?
        .first()
        .copied()
        .unwrap_or(false);
    let now = head.timestamp;
    let fleet: Vec<Device> = devices
        .iter()
        .map(|(name, class)| Device {
            id: DeviceId::from_name(name),
            class: *class,
        })
        .collect();
    let status = rollout::status(&record, &gate, &fleet, now);
    let digest = record.digest();
    let listed: Vec<Value> = devices
        .iter()
        .zip(&fleet)
        .zip(&status.admitted)
        .map(|(((name, class), d), ok)| {
            let why = if revoked {
                None
            } else {
                rollout::check(&record, &gate, d, now).err()
            };
            json!({ "name": name, "hardware": class.map(|c| c.to_string()),
                "needs_bps": rollout::min_share(rollout::place(&d.id, &digest)),
                "eligible": *ok && !revoked, "held": why.as_ref().map(hold_json) })
        })
        .collect();
    let eligible = status.admitted.iter().filter(|a| **a).count() * usize::from(!revoked);
    let t = &record.terms;
    Ok(json!({
        "product": product.to_string(), "sequence": seq.0, "block": at.number, "chain_time": now,
        "digest": format!("0x{}", hex::encode(digest)),
        "hardware": t.hardware.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
        "expires": (t.not_after != 0).then_some(t.not_after), "rollout": t.rollout.to_string(),
        "live_at": gate.live_at, "installable_at": gate.installable_at,
        "paused_until": (gate.held_until() != 0).then_some(gate.held_until()),
        "revoked": revoked, "share_bps": status.share_bps, "share": pct(status.share_bps),
        "next_step_at": status.next_step_at,
        "held": status.held.as_ref().map(hold_json),
        "devices": listed, "eligible": eligible, "listed": devices.len(),
    }))
}

fn status_text(v: &Value) -> String {
    let mut s = format!(
        "{} release {} at block {} (chain time {})\n  rollout  {}, now {} of the fleet",
        v["product"].as_str().unwrap_or_default(),
        v["sequence"],
        v["block"],
        v["chain_time"],
        v["rollout"].as_str().unwrap_or_default(),
        v["share"].as_str().unwrap_or_default(),
    );
    if let Some(n) = v["next_step_at"].as_u64() {
        s.push_str(&format!(", grows at chain time {n}"));
    }
    if v["revoked"].as_bool() == Some(true) {
        s.push_str("\n  REVOKED or cancelled: no device installs it");
    } else if let Some(m) = v["held"]["message"].as_str() {
        s.push_str(&format!("\n  held     {m}"));
    }
    if let Some(list) = v["devices"].as_array().filter(|l| !l.is_empty()) {
        s.push_str(&format!(
            "\n  eligible {} of {} listed devices",
            v["eligible"], v["listed"]
        ));
        for d in list {
            let state = match (d["eligible"].as_bool(), d["held"]["message"].as_str()) {
                (Some(true), _) => "eligible".to_owned(),
                (_, Some(m)) => m.to_owned(),
                _ => "not eligible".to_owned(),
            };
            s.push_str(&format!(
                "\n    {:<24} {state}",
                d["name"].as_str().unwrap_or_default()
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_files_take_names_and_optional_classes() {
        let class: HardwareClass = "board-a".parse().unwrap();
        let list = parse_devices("# fleet\ndev-1\n\ndev-2 board-b\n", Some(class)).unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0], ("dev-1".to_owned(), Some(class)));
        assert_eq!(list[1].1.unwrap().to_string(), "board-b");
        let e = parse_devices("dev-1 a b\n", None).unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
    }

    #[test]
    fn terms_sort_classes_and_refuse_bad_notes() {
        let args = TermsArgs {
            hardware: vec!["b".parse().unwrap(), "a".parse().unwrap()],
            rollout: Some("10%,+20%/1h".parse().unwrap()),
            ..TermsArgs::default()
        };
        let t = terms(&args).unwrap();
        assert_eq!(t.hardware[0].to_string(), "a");
        assert_eq!(t.rollout.start_bps, 1000);
        let bad = TermsArgs {
            notes: Some("not-a-cid".into()),
            ..TermsArgs::default()
        };
        assert!(terms(&bad).unwrap_err().to_string().contains("--notes"));
        assert_eq!(pct(2500), "25%");
        assert_eq!(pct(250), "2.50%");
    }
}
