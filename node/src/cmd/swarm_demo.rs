//! `firmchain demo`: a local fleet on loopback. anvil, the FirmwareIndex, one repository node and N device
//! nodes (all real processes of this binary), two releases of a sample firmware image, and each device's
//! convergence: sequence, hash, where its blocks came from. Everything it started is stopped at the end.
//! With `--light` the devices run the light client over the beacon harness (a 32-key sync committee signing
//! headers that carry anvil's blocks): each install names the verified slot and the signatures behind it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use alloy::signers::local::PrivateKeySigner;
use alloy::transports::http::reqwest;
use firmchain_contracts::{DEFAULT_TIMEOUT, IndexClient, provider};
use firmchain_harness::beacon::{BeaconHarness, Behaviour};
use firmchain_harness::{HarnessError, NodeStart, Proc, find_anvil};
use firmchain_update::Blake3Hash;
use serde_json::{Value, json};

use super::demo::{next_release_with, sample_firmware};
use crate::error::CliError;
use crate::output::{Output, human_bytes};

/// Options of the fleet demo.
#[derive(Debug)]
pub struct DemoArgs {
    pub dir: Option<PathBuf>,
    pub size_mib: u32,
    pub devices: u32,
    pub change_kib: u32,
    pub anvil: Option<PathBuf>,
    /// Devices in light mode over the beacon harness.
    pub light: bool,
    /// Devices in `peers` mode, the repository in light mode over a local beacon server.
    pub peers: bool,
}

pub(super) fn fail(message: impl Into<String>) -> CliError {
    CliError::Demo(message.into())
}

/// A process of the fleet, its stderr in `log`, stopped (SIGTERM, then SIGKILL) when dropped.
pub(super) fn spawn(name: &str, mut cmd: Command, log: &Path) -> Result<Proc, CliError> {
    let log = std::fs::File::create(log).map_err(CliError::file(log))?;
    cmd.stdin(Stdio::null()).stderr(Stdio::from(log));
    Ok(Proc::spawn(name, &mut cmd).map_err(harness)?.graceful())
}

/// The demo's chain: anvil on a free port, its first account's key, and a FirmwareIndex deployed by that account,
/// which is also its publisher.
pub(super) struct DemoChain {
    pub anvil: Proc,
    pub rpc: String,
    pub key: String,
    pub me: alloy::primitives::Address,
    pub index: IndexClient,
}

/// Starts anvil (logging to `dir/anvil.log`) and deploys the index.
pub(super) async fn start_chain(
    anvil: Option<&Path>,
    dir: &Path,
    step: &dyn Fn(String),
) -> Result<DemoChain, CliError> {
    let anvil_bin = find_anvil(anvil);
    step(format!("starting anvil ({})", anvil_bin.display()));
    let mut cmd = Command::new(&anvil_bin);
    cmd.args(["--host", "127.0.0.1", "--port", "0", "--accounts", "2"]);
    let anvil = spawn("anvil", cmd, &dir.join("anvil.log")).map_err(|e| {
        fail(format!(
            "{e}: install anvil with `bash scripts/setup`, or pass --anvil PATH"
        ))
    })?;
    let mut key = None;
    let rpc = anvil
        .wait_line(Duration::from_secs(30), |l| {
            let l = l.trim();
            if key.is_none()
                && l.starts_with("(0)")
                && l.split_whitespace().nth(1).is_some_and(|k| k.len() == 66)
            {
                key = l.split_whitespace().nth(1).map(str::to_owned);
            }
            l.strip_prefix("Listening on ").map(|a| format!("http://{a}"))
        })
        .map_err(harness)?;
    let key = key.ok_or_else(|| fail("anvil printed no private key"))?;
    let signer: PrivateKeySigner = key.parse().map_err(|_| fail("anvil's key does not parse"))?;
    let me = signer.address();
    let index = IndexClient::deploy(provider(&rpc, Some(signer))?, me, 1, DEFAULT_TIMEOUT).await?;
    index.add_publisher(me, None).await?;
    Ok(DemoChain {
        anvil,
        rpc,
        key,
        me,
        index,
    })
}

pub(super) fn harness(e: HarnessError) -> CliError {
    fail(e.to_string())
}

/// A node of the fleet and what its start-up line said.
pub(super) struct Node {
    pub(super) proc: Proc,
    pub(super) api: String,
    pub(super) peer_id: String,
    pub(super) addrs: Vec<String>,
}

pub(super) fn node_command(exe: &Path, dir: &Path, rpc: &str, contract: &str, extra: &[String]) -> Command {
    firmchain_harness::node_command(exe, dir, rpc, contract, "demo-sensor", extra)
}

pub(super) fn start_node(name: &str, cmd: Command, log: &Path) -> Result<Node, CliError> {
    let proc = spawn(name, cmd, log)?;
    let s = proc
        .wait_line(Duration::from_secs(60), NodeStart::parse)
        .map_err(harness)?;
    Ok(Node {
        api: s.api,
        peer_id: s.peer_id,
        addrs: s.addrs,
        proc,
    })
}

pub(super) async fn status(http: &reqwest::Client, node: &Node) -> Result<Value, CliError> {
    let r = http
        .get(format!("http://{}/status", node.api))
        .send()
        .await
        .map_err(|e| fail(format!("{}: {e}", node.proc.name())))?;
    r.json()
        .await
        .map_err(|e| fail(format!("{}: {e}", node.proc.name())))
}

/// Light mode: the beacon harness over anvil at `rpc` (its thread serves until the demo exits), its chain
/// config written to `dir`, and the `--set` values of a device that follows it.
fn light_settings(
    rpc: &str,
    dir: &Path,
    step: &dyn Fn(String),
) -> Result<(BeaconHarness, Vec<String>), CliError> {
    let beacon =
        BeaconHarness::start(rpc, Behaviour::Honest).map_err(|e| fail(format!("beacon harness: {e}")))?;
    let config = dir.join("beacon-chain.yaml");
    std::fs::write(&config, &beacon.config).map_err(CliError::file(&config))?;
    step(format!(
        "beacon harness at {}: a 32-key sync committee signs headers carrying anvil's blocks (1 s slots); \
         devices trust checkpoint {} and verify every header, and prove the index against it",
        beacon.url, beacon.checkpoint
    ));
    let set = vec![
        "chain.mode=light".into(),
        format!("chain.consensus_rpc={}", beacon.url),
        format!("chain.checkpoint={}", beacon.checkpoint),
        format!("chain.chain_config={}", config.display()),
    ];
    Ok((beacon, set))
}

/// `; verified at slot S (P of N sync-committee signatures)` for a light-mode install's `verified` head.
fn authorised_by(verified: &Value) -> String {
    let light = &verified["light"];
    let Some(slot) = light["slot"].as_u64() else {
        return String::new();
    };
    let block = &verified["block"];
    match light["participation"]
        .as_array()
        .map(|p| (p[0].as_u64(), p[1].as_u64()))
    {
        Some((Some(p), Some(n))) => {
            format!("; verified at slot {slot} (block {block}), {p} of {n} sync-committee signatures")
        }
        _ if light["finalized"] == true => format!("; verified at finalized slot {slot} (block {block})"),
        _ => format!("; verified at slot {slot} (block {block})"),
    }
}

pub fn run(args: DemoArgs, out: &Output) -> Result<(), CliError> {
    super::block_on_threads(demo(args, out))
}

async fn demo(args: DemoArgs, out: &Output) -> Result<(), CliError> {
    let step = |text: String| {
        if !out.is_json() {
            println!("==> {text}");
        }
    };
    let tmp;
    let dir = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(CliError::file(d))?;
            d.clone()
        }
        None => {
            tmp = tempfile::Builder::new()
                .prefix("firmchain-demo-")
                .tempdir()
                .map_err(CliError::file(Path::new("temporary folder")))?;
            tmp.path().to_owned()
        }
    };
    let exe = std::env::current_exe().map_err(|e| fail(format!("cannot find this binary: {e}")))?;
    let started = Instant::now();

    // The chain.
    let DemoChain {
        anvil,
        rpc,
        key,
        me,
        index,
    } = start_chain(args.anvil.as_deref(), &dir, &step).await?;
    let contract = index.address().to_string();
    step(format!(
        "anvil at {rpc}; FirmwareIndex deployed at {contract}, publisher {me}"
    ));

    // The firmware.
    let size = args.size_mib as usize * 1024 * 1024;
    let v0 = sample_firmware(size, 1);
    let change = args.change_kib as usize * 1024;
    let v1 = next_release_with(&v0, change, 7);
    let v2 = next_release_with(&v1, change, 8);
    let factory = dir.join("factory.bin");
    std::fs::write(&factory, &v0).map_err(CliError::file(&factory))?;
    let light = if args.light {
        Some(light_settings(&rpc, &dir, &step)?)
    } else {
        None
    };

    // Peers mode: a beacon light-client server over anvil, blocks mined every half second (it follows anvil's
    // head), the repository in light mode serving proofs, the devices with no RPC.
    let peers = match args.peers {
        true => Some(super::peers_demo::PeersDemo::start(&rpc, &dir, &step)?),
        false => None,
    };
    let repo_extra = peers.as_ref().map(|p| p.repository_sets()).unwrap_or_default();
    let device_extra = peers.as_ref().map(|p| p.device_sets()).unwrap_or_default();

    // The nodes.
    let mut cmd = node_command(&exe, &dir.join("repository"), &rpc, &contract, &repo_extra);
    cmd.arg("--repository").env("FIRMCHAIN_PRIVATE_KEY", &key);
    let repo = start_node("repository", cmd, &dir.join("repository.log"))?;
    step(format!(
        "repository node {} (api http://{})",
        repo.peer_id, repo.api
    ));
    let mut names: HashMap<String, String> = HashMap::from([(repo.peer_id.clone(), "repository".into())]);
    let mut devices = Vec::new();
    for i in 1..=args.devices {
        let name = format!("device-{i}");
        let mut extra = vec![
            format!("p2p.bootstrap={}", repo.addrs.join(",")),
            format!("install.initial_image={}", factory.display()),
        ];
        extra.extend(light.iter().flat_map(|(_, set)| set.iter().cloned()));
        extra.extend(device_extra.iter().cloned());
        let cmd = node_command(&exe, &dir.join(&name), &rpc, &contract, &extra);
        let d = start_node(&name, cmd, &dir.join(format!("{name}.log")))?;
        step(format!(
            "{name} {} runs the factory image ({})",
            d.peer_id,
            human_bytes(size as u64)
        ));
        names.insert(d.peer_id.clone(), name);
        devices.push(d);
    }

    let http =
        firmchain_lightclient::http::api_client(Duration::from_secs(600)).map_err(|e| fail(e.to_string()))?;
    let mut releases = Vec::new();
    for (seq, image) in [(1u64, &v1), (2, &v2)] {
        let target = Blake3Hash::of(image);
        step(format!(
            "publishing release {seq} ({}, blake3 {target})",
            human_bytes(image.len() as u64)
        ));
        let uploaded_before = status(&http, &repo).await?["uploaded_bytes"]
            .as_u64()
            .unwrap_or(0);
        let r: Value = http
            .post(format!("http://{}/publish", repo.api))
            .body(image.to_vec())
            .send()
            .await
            .map_err(|e| fail(format!("POST /publish: {e}")))?
            .json()
            .await
            .map_err(|e| fail(format!("POST /publish: {e}")))?;
        if let Some(e) = r["error"].as_str() {
            return Err(fail(format!("publishing release {seq}: {e}")));
        }
        let published = Instant::now();
        let payload = r["entries"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["name"] == if r["kind"] == "patch" { "patch" } else { "full" })
            .and_then(|e| e["size"].as_u64())
            .unwrap_or(0);
        step(format!(
            "release {seq} is in block {} as a {} of {} (bundle {})",
            r["block"],
            r["kind"].as_str().unwrap_or("?"),
            human_bytes(payload),
            r["bundle"].as_str().unwrap_or("?")
        ));
        let deadline = published + Duration::from_secs(120);
        let mut done: Vec<Option<Value>> = vec![None; devices.len()];
        while done.iter().any(Option::is_none) {
            if Instant::now() > deadline {
                return Err(fail(format!(
                    "release {seq} did not reach every device within 120 s"
                )));
            }
            for (i, d) in devices.iter().enumerate() {
                if done[i].is_some() {
                    continue;
                }
                let s = status(&http, d).await?;
                if s["installed"]["sequence"].as_u64() == Some(seq) {
                    let from: Vec<String> = s["last_fetch"]["peers"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|p| {
                            let peer = p["peer"].as_str().unwrap_or("?");
                            format!(
                                "{} blocks from {}",
                                p["blocks"],
                                names.get(peer).map_or(peer, |n| n.as_str())
                            )
                        })
                        .collect();
                    let mut s = s;
                    let proofs = match &peers {
                        Some(_) => {
                            let log = dir.join(format!("{}.log", d.proc.name()));
                            let source = super::peers_demo::proof_source(&log, &names);
                            let line = format!(
                                "; {} mode, proofs from {source}",
                                s["chain"]["mode"].as_str().unwrap_or("?")
                            );
                            s["proofs_from"] = json!(source);
                            line
                        }
                        None => String::new(),
                    };
                    step(format!(
                        "{} installed release {seq} after {:.2} s: blake3 {} ({}, {}){}{proofs}",
                        d.proc.name(),
                        published.elapsed().as_secs_f64(),
                        s["installed"]["hash"].as_str().unwrap_or("?"),
                        s["last_fetch"]["payload"].as_str().unwrap_or("?"),
                        if from.is_empty() {
                            "all blocks already held".into()
                        } else {
                            from.join(", ")
                        },
                        authorised_by(&s["last_install"]["verified"])
                    ));
                    if s["installed"]["hash"].as_str() != Some(target.to_string().as_str()) {
                        return Err(fail(format!("{} installed the wrong image", d.proc.name())));
                    }
                    done[i] = Some(s);
                } else if let Some(e) = s["rollbacks"].as_array().and_then(|r| r.last()) {
                    return Err(fail(format!("{} rolled back: {}", d.proc.name(), e["reason"])));
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let converged = published.elapsed().as_secs_f64();
        let uploaded = status(&http, &repo).await?["uploaded_bytes"]
            .as_u64()
            .unwrap_or(0)
            - uploaded_before;
        step(format!(
            "all {} devices run release {seq}, {converged:.2} s after inclusion; the repository uploaded {} ({:.1}× the payload)",
            devices.len(),
            human_bytes(uploaded),
            uploaded as f64 / payload.max(1) as f64
        ));
        releases.push(json!({
            "sequence": seq, "kind": r["kind"], "payload_bytes": payload, "target_hash": target.to_string(),
            "converged_seconds": converged, "repository_uploaded_bytes": uploaded,
            "devices": done.into_iter().flatten().collect::<Vec<_>>().iter().map(|s| json!({
                "peer_id": s["peer_id"], "installed": s["installed"], "fetched": s["last_fetch"],
                "verified": s["last_install"]["verified"],
                "chain_mode": s["chain"]["mode"], "proofs_from": s["proofs_from"],
            })).collect::<Vec<_>>(),
        }));
    }

    let mode = match (&light, &peers) {
        (Some(_), _) => "light",
        (_, Some(_)) => "peers",
        _ => "rpc",
    };
    step("stopping the fleet and anvil".into());
    drop(devices);
    drop(repo);
    drop(peers);
    drop(anvil);
    let summary = json!({ "dir": dir.display().to_string(), "releases": releases, "mode": mode,
        "seconds": started.elapsed().as_secs_f64() });
    out.result(&summary, || {
        format!(
            "demo passed in {:.1} s: every device runs release 2, verified against the chain{}",
            started.elapsed().as_secs_f64(),
            match mode {
                "light" => " through the sync committee (light client)",
                "peers" => " through chain proofs relayed by peers (no RPC on any device)",
                _ => "",
            }
        )
    });
    Ok(())
}
