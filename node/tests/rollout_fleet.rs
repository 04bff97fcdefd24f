//! Rollouts end to end: real `firmchain run` processes (one repository, devices with fixed names) over a real
//! anvil whose clock the test moves (`evm_increaseTime` + `evm_mine`). Which devices install is predicted from
//! the same rule the devices run, over the published record's digest; every assertion is on `/status`.

mod common;
use common::{Fleet, bin};

use std::process::Command;
use std::time::Duration;

use firmchain_tests::fleet::{NodeProc, NodeSpec, PRODUCT, http};
use firmchain_update::rollout::{DeviceId, inside, place};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(60);

impl Fleet {
    /// Devices named `names` with hardware class `class`, started in parallel, all bootstrapping from `repo`.
    fn devices(&self, repo: &NodeProc, names: &[(String, &str)]) -> Vec<NodeProc> {
        std::thread::scope(|s| {
            let handles: Vec<_> = names
                .iter()
                .map(|(name, class)| {
                    let spec = NodeSpec {
                        dir: self.dir.path().join(name),
                        bootstrap: repo.addrs.clone(),
                        initial_image: Some(self.image(0)),
                        set: vec![
                            format!("device.name={name}"),
                            format!("device.hardware_class={class}"),
                        ],
                        ..NodeSpec::default()
                    };
                    s.spawn(move || self.spawn(spec))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    }

    /// Publish image `i` through the repository's API with release-terms query parameters.
    fn publish(&self, repo: &NodeProc, i: usize, terms: &str) -> Value {
        let image = &self.images[i];
        let (code, v) = http(
            &repo.api,
            "POST",
            &format!("/publish?level=3{terms}"),
            image,
            None,
        )
        .unwrap();
        assert_eq!(code, 200, "{v}");
        v
    }

    /// Move anvil's clock forward and mine a block at the new time.
    fn advance(&self, secs: u64) {
        let addr = self.chain.anvil.url.trim_start_matches("http://");
        for (method, params) in [("evm_increaseTime", json!([secs])), ("evm_mine", json!([]))] {
            let body = json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params });
            let (code, v) = http(addr, "POST", "/", body.to_string().as_bytes(), None).unwrap();
            assert!(code == 200 && v.get("error").is_none(), "{method}: {v}");
        }
    }

    /// The newest block's timestamp.
    fn chain_time(&self) -> u64 {
        let addr = self.chain.anvil.url.trim_start_matches("http://");
        let body = json!({ "jsonrpc": "2.0", "id": 1, "method": "eth_getBlockByNumber", "params": ["latest", false] });
        let (_, v) = http(addr, "POST", "/", body.to_string().as_bytes(), None).unwrap();
        u64::from_str_radix(
            v["result"]["timestamp"]
                .as_str()
                .unwrap()
                .trim_start_matches("0x"),
            16,
        )
        .unwrap()
    }

    /// `firmchain contract ...` signed by anvil account `key`.
    fn contract(&self, key: usize, args: &[&str]) -> Value {
        let out = Command::new(bin())
            .args(["--json", "contract"])
            .args(args)
            .args(["--contract", &self.chain.contract])
            .env("FIRMCHAIN_RPC", &self.chain.anvil.url)
            .env("FIRMCHAIN_PRIVATE_KEY", &self.chain.anvil.keys[key])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

fn digest_of(v: &Value) -> [u8; 32] {
    let hex = v["digest"].as_str().unwrap().trim_start_matches("0x");
    let mut d = [0u8; 32];
    for (i, b) in d.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    d
}

/// The reason `/status` gives for release `seq` waiting, if it does.
fn waiting(v: &Value, seq: u64) -> Option<String> {
    v["waiting"]
        .as_array()?
        .iter()
        .find(|w| w["sequence"] == seq)
        .map(|w| w["reason"].as_str().unwrap_or_default().to_owned())
}

/// Wait until the device's poll at chain time `t` or later says release `seq` waits for `reason`.
fn wait_held(d: &NodeProc, seq: u64, reason: &str, t: u64) {
    d.wait_for(
        &format!("release {seq} held ({reason}) at chain time {t}"),
        T,
        |v| {
            v["chain"]["timestamp"].as_u64().is_some_and(|ts| ts >= t)
                && waiting(v, seq).as_deref() == Some(reason)
        },
    )
    .unwrap();
}

fn installed(d: &NodeProc) -> u64 {
    d.status().unwrap()["installed"]["sequence"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staged_rollout_installs_exactly_the_predicted_devices_then_pauses_resumes_and_grows() {
    let fleet = Fleet::new(200_000, 1).await;
    let repo = fleet.repository();
    // 18 devices of class board-a (the release's) and 2 of another class, all with fixed names.
    let names: Vec<(String, &str)> = (1..=20)
        .map(|i| {
            (
                format!("device-{i:02}"),
                if i <= 18 { "board-a" } else { "board-b" },
            )
        })
        .collect();
    let devices = fleet.devices(&repo, &names);

    // 25% at once, then 25% more every hour of chain time.
    let r = fleet.publish(
        &repo,
        1,
        "&hardware=board-a&rollout_start_bps=2500&rollout_step_bps=2500&rollout_interval_secs=3600",
    );
    assert_eq!(r["sequence"], 1);
    let digest = digest_of(&r);
    let needs = |name: &str| {
        (1..=4u16)
            .find(|k| inside(place(&DeviceId::from_name(name), &digest), 2500 * k))
            .unwrap()
    };
    let step: Vec<u16> = names.iter().map(|(n, _)| needs(n)).collect();
    let (class_a, class_b) = devices.split_at(18);
    let first: Vec<usize> = (0..18).filter(|i| step[*i] == 1).collect();
    assert!(
        !first.is_empty() && first.len() < 18,
        "predicted first wave {first:?}"
    );

    // Exactly the predicted devices install; every other one reports a rollout hold after seeing the gate.
    let t0 = fleet.chain_time();
    for i in &first {
        class_a[*i].wait_installed(1, T).unwrap();
    }
    for (i, d) in class_a.iter().enumerate().filter(|(i, _)| step[*i] > 1) {
        wait_held(d, 1, "rollout", t0);
        assert_eq!(installed(d), 0, "{} is not in the first 25%", names[i].0);
    }
    for d in class_b {
        wait_held(d, 1, "other_hardware", t0);
    }

    // A pause (the owner's: until resumed), then an hour: the second wave must not install while paused.
    fleet.contract(0, &["pause", "--product", PRODUCT]);
    fleet.advance(3600);
    let t1 = fleet.chain_time();
    for (i, d) in class_a.iter().enumerate().filter(|(i, _)| step[*i] > 1) {
        wait_held(d, 1, "paused", t1);
        assert_eq!(installed(d), 0, "{} installed during the pause", names[i].0);
    }
    // Resumed: the second wave (the 50% share) installs, the rest keep waiting for the rollout.
    fleet.contract(0, &["resume", "--product", PRODUCT]);
    let t2 = fleet.chain_time();
    for (i, d) in class_a.iter().enumerate() {
        if step[i] <= 2 {
            d.wait_installed(1, T).unwrap();
        } else {
            wait_held(d, 1, "rollout", t2);
            assert_eq!(installed(d), 0, "{} is not in the first 50%", names[i].0);
        }
    }
    // Two more hours: the whole class.
    fleet.advance(7200);
    for d in class_a {
        d.wait_installed(1, T).unwrap();
    }
    // The other class never fetched a byte.
    for d in class_b {
        let s = d.status().unwrap();
        assert_eq!(waiting(&s, 1).as_deref(), Some("other_hardware"));
        assert!(s["last_fetch"].is_null() && s["fetch"].is_null(), "{s}");
        assert_eq!(s["installed"]["sequence"], 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delay_holds_a_guardian_cancel_vetoes_and_an_expired_release_is_never_installed() {
    let fleet = Fleet::new(200_000, 3).await;
    let repo = fleet.repository();
    let names: Vec<(String, &str)> = (1..=3).map(|i| (format!("device-{i:02}"), "")).collect();
    let devices = fleet.devices(&repo, &names);

    // A delay of 10 minutes: nothing installs before it passed.
    fleet.contract(0, &["delay", "--product", PRODUCT, "10m"]);
    fleet.publish(&repo, 1, "");
    let t = fleet.chain_time();
    for d in &devices {
        wait_held(d, 1, "delay", t);
        assert_eq!(installed(d), 0);
    }
    fleet.advance(600);
    for d in &devices {
        d.wait_installed(1, T).unwrap();
    }

    // A guardian cancels release 2 inside its window: it is never installed, even long after.
    let guardian = fleet.chain.anvil.keys[1]
        .parse::<alloy_signer_local::PrivateKeySigner>()
        .unwrap();
    let guardian = guardian.address().to_string();
    fleet.contract(0, &["guardian", "add", &guardian, "--product", PRODUCT]);
    fleet.publish(&repo, 2, "");
    let t = fleet.chain_time();
    for d in &devices {
        wait_held(d, 2, "delay", t);
    }
    fleet.contract(
        1,
        &[
            "cancel",
            "--product",
            PRODUCT,
            "--sequence",
            "2",
            "--reason",
            "veto",
        ],
    );
    fleet.advance(3600);
    let t = fleet.chain_time();
    for d in &devices {
        d.wait_for("a poll after the window", T, |v| {
            v["chain"]["timestamp"].as_u64().is_some_and(|ts| ts >= t) && waiting(v, 2).is_none()
        })
        .unwrap();
        assert_eq!(installed(d), 1, "a cancelled release was installed");
    }

    // An expired release: paused while it goes live, expired by the time the pause ends.
    fleet.contract(0, &["delay", "--product", PRODUCT, "0"]);
    fleet.contract(0, &["pause", "--product", PRODUCT]);
    let expires = fleet.chain_time() + 120;
    fleet.publish(&repo, 3, &format!("&expires={expires}"));
    fleet.advance(300);
    fleet.contract(0, &["resume", "--product", PRODUCT]);
    let t = fleet.chain_time();
    for d in &devices {
        wait_held(d, 3, "expired", t);
        assert_eq!(installed(d), 1, "an expired release was installed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_publisher_key_at_threshold_two_can_neither_revoke_nor_resume() {
    let fleet = Fleet::new(200_000, 1).await;
    let repo = fleet.repository();
    let names: Vec<(String, &str)> = (1..=3).map(|i| (format!("device-{i:02}"), "")).collect();
    let devices = fleet.devices(&repo, &names);

    // The owner (account 0, also a publisher) pauses the product; release 1 goes live at m = 1, held.
    fleet.contract(0, &["pause", "--product", PRODUCT]);
    assert_eq!(fleet.publish(&repo, 1, "")["sequence"], 1);
    let t = fleet.chain_time();
    for d in &devices {
        wait_held(d, 1, "paused", t);
    }

    // A second publisher and m = 2: from now on account 1's key alone is one approval of two.
    let second = fleet.chain.anvil.keys[1]
        .parse::<alloy_signer_local::PrivateKeySigner>()
        .unwrap()
        .address()
        .to_string();
    fleet.contract(0, &["add-publisher", &second]);
    fleet.contract(0, &["threshold", "2"]);

    // The single key tries to revoke the release and to lift the pause: both stay one pending approval.
    let revoke = fleet.contract(
        1,
        &[
            "revoke",
            "--product",
            PRODUCT,
            "--sequence",
            "1",
            "--reason",
            "stolen key",
        ],
    );
    assert_eq!(revoke["revoked"], false, "{revoke}");
    let resume = fleet.contract(1, &["resume", "--product", PRODUCT]);
    assert_eq!(resume["resumed"], false, "{resume}");
    fleet.advance(3600);
    let t = fleet.chain_time();
    for d in &devices {
        wait_held(d, 1, "paused", t);
        assert_eq!(installed(d), 0, "one key lifted the pause");
    }

    // The owner resumes: release 1 was never revoked, so every device installs it.
    assert_eq!(
        fleet.contract(0, &["resume", "--product", PRODUCT])["resumed"],
        true
    );
    for d in &devices {
        d.wait_installed(1, T).unwrap();
        let s = d.status().unwrap();
        assert!(waiting(&s, 1).is_none(), "{s}");
    }
}
