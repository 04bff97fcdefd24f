//! `firmchain demo --rollout 25%`: a staged rollout on a local fleet. anvil, the FirmwareIndex, a repository
//! node and devices named `device-01`… (real processes of this binary); one release under the schedule; the
//! devices the rule predicts install first, then anvil's clock is moved one interval at a time and each new
//! wave installs, with a pause (nobody new installs through a step) and a resume on the way.

use std::time::{Duration, Instant};

use alloy::transports::http::reqwest;
use firmchain_update::record::{FULL_SHARE, RolloutSchedule};
use firmchain_update::rollout::{DeviceId, min_share, place};
use serde_json::{Value, json};

use super::demo::sample_firmware;
use super::rollout::pct;

use super::swarm_demo::{DemoArgs, DemoChain, Node, fail, node_command, start_chain, start_node, status};
use crate::error::CliError;
use crate::output::Output;

pub fn run(args: DemoArgs, schedule: RolloutSchedule, out: &Output) -> Result<(), CliError> {
    super::block_on_threads(demo(args, schedule, out))
}

async fn rpc_call(http: &reqwest::Client, rpc: &str, method: &str, params: Value) -> Result<Value, CliError> {
    let body = json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params });
    let v: Value = http
        .post(rpc)
        .json(&body)
        .send()
        .await
        .map_err(|e| fail(format!("{method}: {e}")))?
        .json()
        .await
        .map_err(|e| fail(format!("{method}: {e}")))?;
    match v.get("error") {
        Some(e) => Err(fail(format!("{method}: {e}"))),
        None => Ok(v["result"].clone()),
    }
}

/// Move anvil's clock forward by `secs` and mine a block; returns the new chain time.
async fn advance(http: &reqwest::Client, rpc: &str, secs: u64) -> Result<u64, CliError> {
    rpc_call(http, rpc, "evm_increaseTime", json!([secs])).await?;
    rpc_call(http, rpc, "evm_mine", json!([])).await?;
    chain_time(http, rpc).await
}

async fn chain_time(http: &reqwest::Client, rpc: &str) -> Result<u64, CliError> {
    let b = rpc_call(http, rpc, "eth_getBlockByNumber", json!(["latest", false])).await?;
    let t = b["timestamp"].as_str().unwrap_or("0x0").trim_start_matches("0x");
    u64::from_str_radix(t, 16).map_err(|_| fail("anvil returned a block without a timestamp"))
}

/// Wait until every device in `which` has polled at chain time `t` or later, then return their statuses.
async fn polled(
    http: &reqwest::Client,
    devices: &[Node],
    which: &[usize],
    t: u64,
    until: impl Fn(&Value) -> bool,
) -> Result<Vec<Value>, CliError> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut out = vec![Value::Null; devices.len()];
    for &i in which {
        loop {
            let s = status(http, &devices[i]).await?;
            if s["chain"]["timestamp"].as_u64().is_some_and(|ts| ts >= t) && until(&s) {
                out[i] = s;
                break;
            }
            if Instant::now() > deadline {
                return Err(fail(format!(
                    "{} did not get there within 120 s: {s}",
                    devices[i].proc.name()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(out)
}

async fn demo(args: DemoArgs, schedule: RolloutSchedule, out: &Output) -> Result<(), CliError> {
    let step = |text: String| {
        if !out.is_json() {
            println!("==> {text}");
        }
    };
    let schedule = match schedule.step_bps {
        0 => RolloutSchedule {
            step_bps: schedule.start_bps.max(1),
            interval_secs: 3600,
            ..schedule
        },
        _ => schedule,
    };
    let tmp = tempfile::Builder::new()
        .prefix("firmchain-rollout-demo-")
        .tempdir()
        .map_err(CliError::file(std::path::Path::new("temporary folder")))?;
    let dir = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(CliError::file(d))?;
            d.clone()
        }
        None => tmp.path().to_owned(),
    };
    let exe = std::env::current_exe().map_err(|e| fail(format!("cannot find this binary: {e}")))?;
    let started = Instant::now();
    let http =
        firmchain_lightclient::http::api_client(Duration::from_secs(600)).map_err(|e| fail(e.to_string()))?;

    let DemoChain {
        anvil,
        rpc,
        key,
        me,
        index,
    } = start_chain(args.anvil.as_deref(), &dir, &step).await?;
    let product: firmchain_update::ProductId = "demo-sensor".parse().map_err(|_| fail("product name"))?;
    let contract = index.address().to_string();
    step(format!(
        "FirmwareIndex at {contract} on {rpc}; owner and publisher {me}"
    ));

    let size = args.size_mib as usize * 1024 * 1024;
    let v0 = sample_firmware(size, 1);
    let v1 = super::demo::next_release_with(&v0, args.change_kib as usize * 1024, 7);
    let factory = dir.join("factory.bin");
    std::fs::write(&factory, &v0).map_err(CliError::file(&factory))?;
    let mut cmd = node_command(&exe, &dir.join("repository"), &rpc, &contract, &[]);
    cmd.arg("--repository").env("FIRMCHAIN_PRIVATE_KEY", &key);
    let repo = start_node("repository", cmd, &dir.join("repository.log"))?;
    let names: Vec<String> = (1..=args.devices).map(|i| format!("device-{i:02}")).collect();
    let mut devices = Vec::new();
    for name in &names {
        let extra = vec![
            format!("p2p.bootstrap={}", repo.addrs.join(",")),
            format!("install.initial_image={}", factory.display()),
            format!("device.name={name}"),
        ];
        let cmd = node_command(
            args.device_binary.as_deref().unwrap_or(&exe),
            &dir.join(name),
            &rpc,
            &contract,
            &extra,
        );
        devices.push(start_node(name, cmd, &dir.join(format!("{name}.log")))?);
    }
    step(format!(
        "{} devices run the factory image: {}",
        names.len(),
        names.join(", ")
    ));

    let r: Value = http
        .post(format!(
            "http://{}/publish?rollout_start_bps={}&rollout_step_bps={}&rollout_interval_secs={}",
            repo.api, schedule.start_bps, schedule.step_bps, schedule.interval_secs
        ))
        .body(v1)
        .send()
        .await
        .map_err(|e| fail(format!("POST /publish: {e}")))?
        .json()
        .await
        .map_err(|e| fail(format!("POST /publish: {e}")))?;
    if let Some(e) = r["error"].as_str() {
        return Err(fail(format!("publishing: {e}")));
    }
    let mut digest = [0u8; 32];
    hex::decode_to_slice(
        r["digest"].as_str().unwrap_or_default().trim_start_matches("0x"),
        &mut digest,
    )
    .map_err(|_| fail("the publish answer has no digest"))?;
    let needs: Vec<u16> = names
        .iter()
        .map(|n| min_share(place(&DeviceId::from_name(n), &digest)))
        .collect();
    step(format!(
        "release 1 published in block {} with rollout {schedule}",
        r["block"]
    ));
    let live = chain_time(&http, &rpc).await?;

    let mut share = schedule.start_bps;
    let mut done = vec![false; names.len()];
    let mut waves = Vec::new();
    let mut paused_once = false;
    let mut now = live;
    loop {
        let wave: Vec<usize> = (0..names.len())
            .filter(|i| !done[*i] && needs[*i] <= share)
            .collect();
        let rest: Vec<usize> = (0..names.len())
            .filter(|i| !done[*i] && needs[*i] > share)
            .collect();
        let listed: Vec<&str> = wave.iter().map(|i| names[*i].as_str()).collect();
        step(format!(
            "share {}: the rule predicts {} more device(s): {}",
            pct(share),
            wave.len(),
            if listed.is_empty() {
                "none".into()
            } else {
                listed.join(", ")
            }
        ));
        let t = Instant::now();
        polled(&http, &devices, &wave, now, |s| s["installed"]["sequence"] == 1).await?;
        let held = polled(&http, &devices, &rest, now, |s| {
            !s["waiting"].as_array().is_none_or(Vec::is_empty)
        })
        .await?;
        for i in &wave {
            done[*i] = true;
        }
        step(format!(
            "  installed in {:.1} s; the other {} wait ({})",
            t.elapsed().as_secs_f64(),
            rest.len(),
            rest.first()
                .map_or("-".into(), |i| held[*i]["waiting"][0]["message"]
                    .as_str()
                    .unwrap_or("?")
                    .to_owned())
        ));
        waves.push(json!({ "share_bps": share, "installed": listed }));
        if rest.is_empty() {
            break;
        }
        if !paused_once {
            paused_once = true;
            index.pause(&product, firmchain_update::Sequence(0)).await?;
            now = advance(&http, &rpc, schedule.interval_secs).await?;
            step(format!(
                "paused the product, then moved anvil's clock {} s forward",
                schedule.interval_secs
            ));
            polled(&http, &devices, &rest, now, |s| {
                s["waiting"][0]["reason"] == "paused"
            })
            .await?;
            let still = rest.iter().filter(|i| !done[**i]).count();
            step(format!(
                "  the share grew but nobody installed: all {still} remaining devices say paused"
            ));
            index.resume(&product, firmchain_update::Sequence(0)).await?;
            now = chain_time(&http, &rpc).await?;
            step("resumed".into());
        } else {
            now = advance(&http, &rpc, schedule.interval_secs).await?;
            step(format!(
                "moved anvil's clock {} s forward",
                schedule.interval_secs
            ));
        }
        share = schedule.share_at(live, now).min(FULL_SHARE);
    }
    step("stopping the fleet and anvil".into());
    drop(devices);
    drop(repo);
    drop(anvil);
    let summary = json!({ "rollout": schedule.to_string(), "waves": waves,
        "seconds": started.elapsed().as_secs_f64() });
    out.result(&summary, || {
        format!(
            "rollout demo passed in {:.1} s: every device installed in the wave the rule predicted",
            started.elapsed().as_secs_f64()
        )
    });
    Ok(())
}
