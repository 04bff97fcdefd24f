//! The node end to end: real `firmchain run` processes (one repository, several devices) on loopback over a
//! real anvil chain. Every assertion is on what devices report in `/status` and on the bytes in their slots.

mod common;
use common::{Fleet, bin};

use std::time::Duration;

use firmchain_tests::fleet::{NodeSpec, PRODUCT, active_image};
use firmchain_update::Sequence;

const T: Duration = Duration::from_secs(60);

fn fetched_from(status: &serde_json::Value) -> Vec<String> {
    status["last_fetch"]["peers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["peer"].as_str().map(str::to_owned))
        .collect()
}

/// Publish → every device installs the exact bytes; a device offline during two releases catches up by a chain
/// of patches served by another device after the repository stopped; a device whose image is not the patch's
/// base takes the full image.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_converges_catches_up_from_peers_and_falls_back_to_full_images() {
    let f = Fleet::new(1_500_000, 3).await;
    let mut repo = f.repository();
    let d1 = f.device("d1", &[&repo], NodeSpec::default());
    let mut d2 = f.device("d2", &[&repo], NodeSpec::default());
    let d3 = f.device("d3", &[&repo], NodeSpec::default());

    // Release 1: the first release is a full image.
    let r1 = repo.publish(&f.images[1]).unwrap();
    assert_eq!(r1["sequence"], 1);
    assert_eq!(r1["kind"], "full");
    for d in [&d1, &d2, &d3] {
        let s = d.wait_installed(1, T).unwrap();
        assert_eq!(s["installed"]["hash"], f.hash(1));
        assert_eq!(s["last_fetch"]["payload"], "full");
        assert_eq!(
            active_image(&d.dir).unwrap(),
            f.images[1],
            "slot bytes of {}",
            d.peer_id
        );
    }

    // d2 goes offline for two releases.
    assert_eq!(
        d2.daemon.terminate(T).unwrap(),
        Some(0),
        "graceful stop on SIGTERM"
    );
    let r2 = repo.publish(&f.images[2]).unwrap();
    assert_eq!(r2["kind"], "patch");
    d1.wait_installed(2, T).unwrap();
    let r3 = repo.publish(&f.images[3]).unwrap();
    assert_eq!(r3["kind"], "patch");
    let s1 = d1.wait_installed(3, T).unwrap();
    assert_eq!(s1["last_fetch"]["payload"], "patch");
    assert_eq!(active_image(&d1.dir).unwrap(), f.images[3]);
    // One copy of each payload on disk: the Patcher read it in the blockstore, nothing was copied out.
    assert!(
        !d1.dir.join("downloads").exists(),
        "a downloads folder in {}",
        d1.dir.display()
    );
    d3.wait_installed(3, T).unwrap();

    // A device running an image that is no release's base: the full image of the newest release.
    std::fs::write(f.dir.path().join("custom.bin"), b"a locally built image").unwrap();
    let d4 = f.device(
        "d4",
        &[&repo],
        NodeSpec {
            initial_image: Some(f.dir.path().join("custom.bin")),
            ..NodeSpec::default()
        },
    );
    let s4 = d4.wait_installed(3, T).unwrap();
    assert_eq!(s4["last_fetch"]["payload"], "full");
    assert_eq!(active_image(&d4.dir).unwrap(), f.images[3]);

    // The repository stops; d2 comes back at release 1 and follows the patch chain 2, 3 from the devices.
    let uploaded = repo.status().unwrap()["uploaded_bytes"].as_u64().unwrap();
    assert_eq!(repo.daemon.terminate(T).unwrap(), Some(0));
    assert!(repo.status().is_err(), "the repository is down");
    let d2 = f.device("d2", &[&d1, &d3], NodeSpec::default());
    assert_eq!(
        d2.status().unwrap()["installed"]["sequence"],
        1,
        "d2 restarts on release 1"
    );
    let s2 = d2.wait_installed(3, T).unwrap();
    assert_eq!(s2["last_fetch"]["sequence"], 3);
    assert_eq!(s2["last_fetch"]["payload"], "patch");
    let sources = fetched_from(&s2);
    assert!(!sources.is_empty());
    let devices = [&d1.peer_id, &d3.peer_id, &d4.peer_id];
    for p in &sources {
        assert!(devices.contains(&p), "block from {p}, which is not a device");
    }
    assert_eq!(active_image(&d2.dir).unwrap(), f.images[3]);
    // What the publisher uploaded: each release's payload to a few devices, far less than full images to all.
    let full = f.images[1].len() as u64;
    assert!(uploaded < 6 * full, "repository uploaded {uploaded} bytes");
}

/// A revoked release is never fetched or installed; the next release is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_release_is_not_installed() {
    let f = Fleet::new(1_500_000, 2).await;
    let repo = f.repository();
    let r1 = repo.publish(&f.images[1]).unwrap();
    let block = r1["block"].as_u64().unwrap();
    let product = PRODUCT.parse().unwrap();
    f.chain
        .index
        .revoke(&product, Sequence(1), "bricks the radio")
        .await
        .unwrap();
    let d = f.device("d", &[&repo], NodeSpec::default());
    // The device has read the index past the revocation and still runs its factory image.
    let s = d
        .wait_for("index read after the revocation", T, |v| {
            v["chain"]["block"].as_u64() > Some(block)
        })
        .unwrap();
    assert_eq!(s["installed"]["sequence"], 0);
    assert!(s["working_on"].is_null(), "working on {}", s["working_on"]);
    assert!(s["last_fetch"].is_null());

    repo.publish(&f.images[2]).unwrap();
    let s = d.wait_installed(2, T).unwrap();
    assert_eq!(s["last_fetch"]["sequence"], 2);
    assert_eq!(active_image(&d.dir).unwrap(), f.images[2]);
    let metrics = firmchain_tests::fleet::http(&d.api, "GET", "/metrics", &[], None)
        .unwrap()
        .1;
    assert!(
        metrics.as_str().unwrap().contains("firmchain_installs_total 1\n"),
        "{metrics}"
    );
}

/// A failing health check rolls back to the previous image, says so in `/status`, and the release is not tried
/// again, not even after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_health_check_rolls_back() {
    let f = Fleet::new(1_500_000, 2).await;
    let repo = f.repository();
    let health = NodeSpec {
        set: vec![
            r#"install.health_check=["sh", "-c", "test \"$FIRMCHAIN_SEQUENCE\" != 2 || { echo radio dead >&2; exit 3; }"]"#
                .into(),
        ],
        ..NodeSpec::default()
    };
    let mut d = f.device("d", &[&repo], health.clone());
    repo.publish(&f.images[1]).unwrap();
    d.wait_installed(1, T).unwrap();
    repo.publish(&f.images[2]).unwrap();
    let s = d
        .wait_for("a rollback", T, |v| {
            v["rollbacks"].as_array().is_some_and(|r| !r.is_empty())
        })
        .unwrap();
    let rollback = &s["rollbacks"][0];
    assert_eq!(rollback["sequence"], 2);
    let reason = rollback["reason"].as_str().unwrap();
    assert!(
        reason.contains("health check exited") && reason.contains("radio dead"),
        "{reason}"
    );
    assert!(reason.contains("rolled back to release 1"), "{reason}");
    assert_eq!(s["installed"]["sequence"], 1);
    assert_eq!(active_image(&d.dir).unwrap(), f.images[1]);

    d.daemon.terminate(T).unwrap();
    let d = f.device("d", &[&repo], health);
    let s = d
        .wait_for("an index read after the restart", T, |v| !v["chain"].is_null())
        .unwrap();
    assert_eq!(s["installed"]["sequence"], 1);
    assert_eq!(s["rolled_back_releases"], serde_json::json!([2]));
    assert!(s["working_on"].is_null());
}

/// kill -9 in the middle of writing the new image, and right after the slot switch: on restart the device boots
/// a verified image (the old one, or the new one) and finishes the update.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_killed_mid_install_boots_a_verified_image_and_finishes() {
    let f = Fleet::new(1_500_000, 1).await;
    let repo = f.repository();
    let pause = |point: &str| NodeSpec {
        env: vec![("FIRMCHAIN_TEST_PAUSE_AT".into(), point.into())],
        ..NodeSpec::default()
    };
    let mut mid_write = f.device("mid-write", &[&repo], pause("patching"));
    let mut switched = f.device("switched", &[&repo], pause("switched"));
    repo.publish(&f.images[1]).unwrap();

    mid_write.wait_log("paused at patching", T).unwrap();
    mid_write.daemon.kill9();
    switched.wait_log("paused at switched", T).unwrap();
    switched.daemon.kill9();

    // Half an image in the inactive slot: the old image boots.
    assert_eq!(active_image(&mid_write.dir).unwrap(), f.images[0]);
    let d = f.device("mid-write", &[&repo], NodeSpec::default());
    assert_eq!(d.status().unwrap()["installed"]["sequence"], 0);
    d.wait_installed(1, T).unwrap();
    assert_eq!(active_image(&d.dir).unwrap(), f.images[1]);

    // The pointer had switched, the state store had not: the new image boots and the store follows it.
    assert_eq!(active_image(&switched.dir).unwrap(), f.images[1]);
    let d = f.device("switched", &[&repo], NodeSpec::default());
    let s = d.status().unwrap();
    assert_eq!(s["installed"]["sequence"], 1);
    assert_eq!(s["installed"]["hash"], f.hash(1));
}

/// Devices in light mode: headers verified by the sync committee (the beacon harness signs over anvil's blocks),
/// storage proven against them. A device whose beacon server signs with keys that are not the committee's
/// verifies nothing and installs nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn light_mode_devices_install_only_what_the_sync_committee_signed() {
    use firmchain_tests::beacon::{BeaconHarness, Behaviour};
    let f = Fleet::new(1_500_000, 1).await;
    let honest = BeaconHarness::start(&f.chain.anvil.url, Behaviour::Honest).unwrap();
    let forged = BeaconHarness::start(&f.chain.anvil.url, Behaviour::ForeignKeys).unwrap();
    let light = |h: &BeaconHarness, name: &str| {
        let config = f.dir.path().join(format!("{name}-chain.yaml"));
        std::fs::write(&config, &h.config).unwrap();
        NodeSpec {
            set: vec![
                "chain.mode=light".into(),
                format!("chain.consensus_rpc={}", h.url),
                format!("chain.checkpoint={}", h.checkpoint),
                format!("chain.chain_config={}", config.display()),
            ],
            ..NodeSpec::default()
        }
    };
    let repo = f.repository();
    let d = f.device("light", &[&repo], light(&honest, "light"));
    let bad = f.device("forged", &[&repo], light(&forged, "forged"));
    let r1 = repo.publish(&f.images[1]).unwrap();
    let s = d.wait_installed(1, T).unwrap();
    assert_eq!(s["chain"]["mode"], "light");
    assert!(s["chain"]["block"].as_u64() >= r1["block"].as_u64());
    assert_eq!(active_image(&d.dir).unwrap(), f.images[1]);

    let s = bad
        .wait_for("a refused update", T, |v| !v["chain_error"].is_null())
        .unwrap();
    let why = s["chain_error"].as_str().unwrap();
    assert!(why.contains("signature"), "{why}");
    assert!(s["chain"].is_null(), "nothing was verified");
    assert_eq!(s["installed"]["sequence"], 0);
    assert!(s["last_fetch"].is_null());
}

/// `firmchain publish --api` goes through a running repository node; `POST /publish` needs the node's token, and
/// a device refuses to publish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_through_the_api_needs_the_token() {
    use firmchain_tests::fleet::http;
    let f = Fleet::new(1_500_000, 2).await;
    let repo = f.spawn(NodeSpec {
        dir: f.dir.path().join("repo"),
        repository: true,
        key: Some(f.chain.key().to_owned()),
        set: vec!["api.token=s3cret".into()],
        ..NodeSpec::default()
    });
    let d = f.device("d", &[&repo], NodeSpec::default());
    let (code, v) = http(&repo.api, "POST", "/publish", &f.images[1], None).unwrap();
    assert_eq!(code, 401, "{v}");
    let (code, _) = http(&repo.api, "POST", "/publish", &f.images[1], Some("wrong")).unwrap();
    assert_eq!(code, 401);
    let (code, v) = http(&d.api, "POST", "/publish", &f.images[1], None).unwrap();
    assert_eq!(code, 404);
    assert!(v["error"].as_str().unwrap().contains("not a repository"), "{v}");
    let (code, v) = http(
        &repo.api,
        "POST",
        "/publish?colour=red",
        &f.images[1],
        Some("s3cret"),
    )
    .unwrap();
    assert_eq!(code, 400, "{v}");

    let publish = |args: &[&str]| {
        let out = std::process::Command::new(bin())
            .args([
                "--json",
                "publish",
                "--api",
                &format!("http://{}", repo.api),
                "--product",
                PRODUCT,
            ])
            .args(args)
            .env("FIRMCHAIN_API_TOKEN", "s3cret")
            .env_remove("FIRMCHAIN_RPC")
            .env_remove("FIRMCHAIN_CONTRACT")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let v1 = f.image(1);
    let r = publish(&["--to", v1.to_str().unwrap()]);
    assert_eq!(
        (r["sequence"].as_u64(), r["kind"].as_str()),
        (Some(1), Some("full"))
    );
    d.wait_installed(1, T).unwrap();
    // An explicit base: the patch is made from --from.
    let v2 = f.image(2);
    let r = publish(&["--from", v1.to_str().unwrap(), "--to", v2.to_str().unwrap()]);
    assert_eq!(
        (r["sequence"].as_u64(), r["kind"].as_str()),
        (Some(2), Some("patch"))
    );
    let s = d.wait_installed(2, T).unwrap();
    assert_eq!(s["last_fetch"]["payload"], "patch");
    assert_eq!(active_image(&d.dir).unwrap(), f.images[2]);
}

/// A dishonest RPC provider rewrites the ReleasePublished events it serves (another target image): the device
/// refuses the record, because its keccak is not the digest proven against the state root, says so in
/// `/status`, and installs nothing; a device on an honest RPC installs the release.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_release_event_is_refused() {
    use firmchain_tests::fleet::TamperingRpc;
    let f = Fleet::new(1_500_000, 1).await;
    let forge = |answer: &mut serde_json::Value| {
        for log in answer["result"].as_array_mut().into_iter().flatten() {
            if let Some(data) = log["data"].as_str() {
                // The record's targetHash: the sixth 32-byte word of the event data.
                let mut d: Vec<u8> = data.bytes().collect();
                let at = 2 + 2 * (5 * 32 + 7);
                d[at] = if d[at] == b'0' { b'1' } else { b'0' };
                log["data"] = serde_json::Value::String(String::from_utf8(d).unwrap());
            }
        }
    };
    let liar = TamperingRpc::start(&f.chain.anvil.url, "eth_getLogs", forge).unwrap();
    let repo = f.repository();
    let fooled = f.device(
        "fooled",
        &[&repo],
        NodeSpec {
            set: vec![format!("chain.execution_rpc={}", liar.url)],
            ..NodeSpec::default()
        },
    );
    let honest = f.device("honest", &[&repo], NodeSpec::default());
    let r1 = repo.publish(&f.images[1]).unwrap();
    honest.wait_installed(1, T).unwrap();
    let s = fooled
        .wait_for("the forged event refused", T, |v| {
            v["rejected"].as_array().is_some_and(|r| !r.is_empty())
                && v["chain"]["block"].as_u64() >= r1["block"].as_u64()
        })
        .unwrap();
    let why = s["rejected"][0].as_str().unwrap();
    assert!(
        why.contains("release 1") && why.contains("proven digest"),
        "{why}"
    );
    assert_eq!(s["installed"]["sequence"], 0);
    assert!(s["working_on"].is_null() && s["last_fetch"].is_null());
}

/// `install.mode = "command"`: the verified image goes to an external installer, which gets its path as the last
/// argument; a failing installer leaves the device on the release it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_mode_hands_the_verified_image_to_the_installer() {
    let f = Fleet::new(1_500_000, 2).await;
    let repo = f.repository();
    let flashed = f.dir.path().join("flashed.bin");
    let installer = f.dir.path().join("install.sh");
    std::fs::write(
        &installer,
        format!(
            "#!/bin/sh\n[ \"$FIRMCHAIN_SEQUENCE\" = 2 ] && {{ echo 'flash write error' >&2; exit 5; }}\ncp \"$1\" {}\n",
            flashed.display()
        ),
    )
    .unwrap();
    let d = f.device(
        "d",
        &[&repo],
        NodeSpec {
            set: vec![
                "install.mode=command".into(),
                format!("install.command=sh {}", installer.display()),
            ],
            ..NodeSpec::default()
        },
    );
    assert_eq!(d.status().unwrap()["installed"]["sequence"], 0);
    repo.publish(&f.images[1]).unwrap();
    d.wait_installed(1, T).unwrap();
    assert_eq!(std::fs::read(&flashed).unwrap(), f.images[1]);
    assert_eq!(
        std::fs::read(d.dir.join("image/current.bin")).unwrap(),
        f.images[1]
    );

    repo.publish(&f.images[2]).unwrap();
    let s = d
        .wait_for("the failed install reported", T, |v| {
            v["rollbacks"].as_array().is_some_and(|r| !r.is_empty())
        })
        .unwrap();
    let reason = s["rollbacks"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("code 5") && reason.contains("flash write error"),
        "{reason}"
    );
    assert_eq!(s["installed"]["sequence"], 1);
    assert_eq!(
        std::fs::read(d.dir.join("image/current.bin")).unwrap(),
        f.images[1]
    );
}

/// kill -9 after the slot switch and before the health check ended: the check runs at the next start, and a
/// failing one rolls back there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_health_check_cut_short_by_a_crash_runs_at_the_next_start() {
    let f = Fleet::new(1_500_000, 1).await;
    let repo = f.repository();
    let unhealthy =
        vec![r#"install.health_check=["sh", "-c", "test \"$FIRMCHAIN_SEQUENCE\" != 1"]"#.to_owned()];
    let mut d = f.device(
        "d",
        &[&repo],
        NodeSpec {
            set: unhealthy.clone(),
            env: vec![("FIRMCHAIN_TEST_PAUSE_AT".into(), "switched".into())],
            ..NodeSpec::default()
        },
    );
    repo.publish(&f.images[1]).unwrap();
    d.wait_log("paused at switched", T).unwrap();
    d.daemon.kill9();
    assert_eq!(
        active_image(&d.dir).unwrap(),
        f.images[1],
        "the pointer had switched"
    );

    let d = f.device(
        "d",
        &[&repo],
        NodeSpec {
            set: unhealthy,
            ..NodeSpec::default()
        },
    );
    let s = d.status().unwrap();
    assert_eq!(s["installed"]["sequence"], 0);
    let reason = s["rollbacks"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("after a restart"), "{reason}");
    assert_eq!(s["rolled_back_releases"], serde_json::json!([1]));
    assert_eq!(active_image(&d.dir).unwrap(), f.images[0]);
}
