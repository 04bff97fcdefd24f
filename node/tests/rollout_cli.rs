//! `firmchain contract pause|resume|cancel|guardian|delay|pause-bound|rollout-status` and `publish --hardware
//! --expires --rollout`, against a real anvil.

use std::process::{Command, Output};

use firmchain_update::rollout::{DeviceId, inside, place};
use serde_json::Value;

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json(out: &Output) -> Value {
    assert!(out.status.success(), "exit {}: {}", code(out), stderr(out));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

fn firmchain(anvil: &firmchain_tests::Anvil, key: Option<&str>, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_firmchain"));
    c.arg("--json")
        .args(args)
        .env("FIRMCHAIN_RPC", &anvil.url)
        .env_remove("FIRMCHAIN_PRIVATE_KEY")
        .env_remove("FIRMCHAIN_CONTRACT")
        .env_remove("FIRMCHAIN_CHAIN__CONTRACT")
        .env_remove("FIRMCHAIN_CHAIN__EXECUTION_RPC");
    if let Some(k) = key {
        c.env("FIRMCHAIN_PRIVATE_KEY", k);
    }
    c.output().unwrap()
}

fn address_of(key: &str) -> String {
    key.parse::<alloy_signer_local::PrivateKeySigner>()
        .unwrap()
        .address()
        .to_string()
}

fn names() -> Vec<String> {
    (1..=20).map(|i| format!("device-{i:02}")).collect()
}

#[test]
fn rollout_commands_pause_resume_delay_cancel_and_status() {
    let anvil = firmchain_tests::Anvil::start().unwrap();
    let (owner, publisher, guardian) = (
        anvil.keys[0].as_str(),
        anvil.keys[1].as_str(),
        anvil.keys[2].as_str(),
    );
    let d = json(&firmchain(
        &anvil,
        Some(owner),
        &["contract", "deploy", "--publisher", &address_of(publisher)],
    ));
    let contract = d["contract"].as_str().unwrap().to_owned();
    let c = contract.as_str();
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("v1.bin");
    std::fs::write(&image, firmchain_tests::pseudo_random(50_000, 7)).unwrap();
    let image = image.to_str().unwrap();
    let publish = |extra: &[&str]| {
        let mut args = vec![
            "publish",
            "--contract",
            c,
            "--product",
            "acme-sensor",
            "--level",
            "3",
            "--to",
            image,
        ];
        args.extend_from_slice(extra);
        firmchain(&anvil, Some(publisher), &args)
    };

    // Bad terms are refused before anything is sent.
    let out = publish(&["--rollout", "120%"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("whole fleet"), "{}", stderr(&out));
    let out = publish(&["--hardware", "has space"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));

    // A 25% canary for two classes: rollout-status names exactly the predicted devices.
    let p = json(&publish(&[
        "--rollout",
        "25%",
        "--hardware",
        "board-b,board-a",
        "--expires",
        "+30d",
    ]));
    assert_eq!(p["sequence"], 1);
    let fleet = names();
    let fleet_arg = fleet.join(",");
    let status_args = [
        "contract",
        "rollout-status",
        "--contract",
        c,
        "--product",
        "acme-sensor",
        "--hardware",
        "board-a",
        "--device",
        &fleet_arg,
    ];
    let s = json(&firmchain(&anvil, None, &status_args));
    assert_eq!(s["rollout"], "25%");
    assert_eq!(s["share_bps"], 2500);
    assert_eq!(s["hardware"], serde_json::json!(["board-a", "board-b"]));
    assert!(s["held"].is_null(), "{s}");
    // The prediction: the same rule over the printed record digest, computed here.
    let mut digest = [0u8; 32];
    let hex = s["digest"].as_str().unwrap().trim_start_matches("0x");
    for (i, b) in digest.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    let predicted: Vec<&str> = fleet
        .iter()
        .map(String::as_str)
        .filter(|n| inside(place(&DeviceId::from_name(n), &digest), 2500))
        .collect();
    let eligible: Vec<&str> = s["devices"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["eligible"] == true)
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(eligible, predicted);
    assert_eq!(s["eligible"], eligible.len());
    assert!(!eligible.is_empty() && eligible.len() < 20, "{eligible:?}");
    // Another hardware class: nobody.
    let mut other = status_args.to_vec();
    other[7] = "board-z";
    let o = json(&firmchain(&anvil, None, &other));
    assert_eq!(o["eligible"], 0);
    assert_eq!(o["devices"][0]["held"]["reason"], "other_hardware");
    // A publisher's pause lasts the pause bound; the owner resumes at once.
    let pb = json(&firmchain(
        &anvil,
        Some(owner),
        &["contract", "pause-bound", "--contract", c, "2h"],
    ));
    assert_eq!(pb["pause_bound_secs"], 7200);
    let paused = json(&firmchain(
        &anvil,
        Some(publisher),
        &["contract", "pause", "--contract", c, "--product", "acme-sensor"],
    ));
    let until = paused["paused_until"].as_u64().unwrap();
    assert!(until > 0 && until < u64::MAX, "{paused}");
    let s = json(&firmchain(&anvil, None, &status_args));
    assert_eq!(s["held"]["reason"], "paused", "{s}");
    assert_eq!(s["eligible"], 0);
    // A guardian that was never added may not pause.
    let out = firmchain(
        &anvil,
        Some(guardian),
        &[
            "contract",
            "pause",
            "--contract",
            c,
            "--product",
            "acme-sensor",
            "--sequence",
            "1",
        ],
    );
    assert_eq!(code(&out), 7, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("neither a guardian nor a publisher"),
        "{}",
        stderr(&out)
    );
    let r = json(&firmchain(
        &anvil,
        Some(owner),
        &["contract", "resume", "--contract", c, "--product", "acme-sensor"],
    ));
    assert_eq!(r["resumed"], true);
    let s = json(&firmchain(&anvil, None, &status_args));
    assert!(s["held"].is_null(), "{s}");
    assert_eq!(s["eligible"], eligible.len());

    // A delay and a guardian: the next release waits, and the guardian cancels it inside the window.
    json(&firmchain(
        &anvil,
        Some(owner),
        &[
            "contract",
            "guardian",
            "add",
            "--contract",
            c,
            &address_of(guardian),
            "--product",
            "acme-sensor",
        ],
    ));
    let dl = json(&firmchain(
        &anvil,
        Some(owner),
        &[
            "contract",
            "delay",
            "--contract",
            c,
            "--product",
            "acme-sensor",
            "1h",
        ],
    ));
    assert_eq!(dl["delay_secs"], 3600);
    let p2 = json(&publish(&[]));
    assert_eq!(p2["sequence"], 2);
    let mut s2_args = status_args.to_vec();
    s2_args.extend_from_slice(&["--sequence", "2"]);
    let s = json(&firmchain(&anvil, None, &s2_args));
    assert_eq!(s["held"]["reason"], "delay", "{s}");
    assert_eq!(
        s["installable_at"].as_u64().unwrap(),
        s["live_at"].as_u64().unwrap() + 3600
    );
    json(&firmchain(
        &anvil,
        Some(guardian),
        &[
            "contract",
            "cancel",
            "--contract",
            c,
            "--product",
            "acme-sensor",
            "--sequence",
            "2",
            "--reason",
            "veto",
        ],
    ));
    let s = json(&firmchain(&anvil, None, &s2_args));
    assert_eq!(s["revoked"], true);
    assert_eq!(s["eligible"], 0);
    // Removed, the guardian can no longer pause.
    json(&firmchain(
        &anvil,
        Some(owner),
        &[
            "contract",
            "guardian",
            "remove",
            "--contract",
            c,
            &address_of(guardian),
            "--product",
            "acme-sensor",
        ],
    ));
    let out = firmchain(
        &anvil,
        Some(guardian),
        &["contract", "pause", "--contract", c, "--product", "acme-sensor"],
    );
    assert_eq!(code(&out), 7, "{}", stderr(&out));
    // A release that does not exist.
    let mut none = status_args.to_vec();
    none.extend_from_slice(&["--sequence", "9"]);
    let out = firmchain(&anvil, None, &none);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("has no release 9"), "{}", stderr(&out));
}

#[test]
fn the_rollout_demo_installs_wave_by_wave_with_a_pause() {
    let out = Command::new(env!("CARGO_BIN_EXE_firmchain"))
        .args([
            "--json",
            "demo",
            "--devices",
            "6",
            "--rollout",
            "40%,+30%/1h",
            "--size-mib",
            "1",
        ])
        .output()
        .unwrap();
    let v = json(&out);
    assert_eq!(v["rollout"], "40%,+30%/1h");
    let waves = v["waves"].as_array().unwrap();
    // 40%, then (after the paused step) 70%, then 100%.
    let shares: Vec<u64> = waves.iter().map(|w| w["share_bps"].as_u64().unwrap()).collect();
    assert_eq!(shares, [4000, 7000, 10_000]);
    let installed: usize = waves
        .iter()
        .map(|w| w["installed"].as_array().unwrap().len())
        .sum();
    assert_eq!(installed, 6, "every device installed exactly once: {v}");
}
