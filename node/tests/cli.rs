//! The `firmchain` command line on real files: results, exit codes, and that a failed command never
//! touches its output path.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn firmchain(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_firmchain"))
        .args(args)
        .output()
        .unwrap()
}

macro_rules! run {
    ($($arg:expr),* $(,)?) => { firmchain(&[$(std::ffi::OsStr::new($arg)),*]) };
}

fn json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    old: Vec<u8>,
    new: Vec<u8>,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_owned();
        let mut x = 0x1234_5678_9abc_def1u64;
        let old: Vec<u8> = (0..600_000)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                if i % 16 < 10 { (i / 16) as u8 } else { x as u8 }
            })
            .collect();
        let mut new = old.clone();
        new.splice(1000..1000, *b"new feature");
        new[400_000] ^= 0xff;
        std::fs::write(root.join("old.bin"), &old).unwrap();
        std::fs::write(root.join("new.bin"), &new).unwrap();
        Fixture {
            _dir: dir,
            root,
            old,
            new,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// `apply BASE PATCH -o out.bin` where out.bin already holds "previous contents".
    fn apply_over_existing(&self, base: &str, patch: &Path) -> (Output, PathBuf) {
        let out_path = self.path("out.bin");
        std::fs::write(&out_path, b"previous contents").unwrap();
        let out = run!(
            "apply",
            self.path(base).as_os_str(),
            patch.as_os_str(),
            "-o",
            out_path.as_os_str()
        );
        (out, out_path)
    }

    fn diff(&self) -> (PathBuf, Value) {
        let patch = self.path("update.patch");
        let out = run!(
            "--json",
            "diff",
            self.path("old.bin").as_os_str(),
            self.path("new.bin").as_os_str(),
            "-o",
            patch.as_os_str(),
            "--level",
            "3"
        );
        (patch, json(&out))
    }
}

fn blake3_hex(bytes: &[u8]) -> String {
    firmchain_update::Blake3Hash::of(bytes).to_string()
}

#[test]
fn diff_then_apply_rebuilds_the_new_image() {
    let f = Fixture::new();
    let (patch, d) = f.diff();
    assert_eq!(d["kind"], "patch");
    assert!(d["patch_bytes"].as_u64().unwrap() < d["full_bytes"].as_u64().unwrap());
    assert_eq!(d["target_hash"], blake3_hex(&f.new));
    assert_eq!(
        d["patch_size"].as_u64().unwrap(),
        std::fs::metadata(&patch).unwrap().len()
    );
    let out_path = f.path("out.bin");
    let a = json(&run!(
        "--json",
        "apply",
        f.path("old.bin").as_os_str(),
        patch.as_os_str(),
        "-o",
        out_path.as_os_str(),
        "--expect",
        &blake3_hex(&f.new)
    ));
    assert_eq!(a["target_hash"], blake3_hex(&f.new));
    assert_eq!(std::fs::read(&out_path).unwrap(), f.new);
}

#[test]
fn full_image_update_needs_no_base() {
    let f = Fixture::new();
    let full = f.path("full.patch");
    let d = json(&run!(
        "--json",
        "diff",
        f.path("old.bin").as_os_str(),
        f.path("new.bin").as_os_str(),
        "-o",
        full.as_os_str(),
        "--kind",
        "full",
        "--level",
        "3"
    ));
    assert_eq!(d["kind"], "full");
    let out_path = f.path("out.bin");
    json(&run!(
        "--json",
        "apply",
        f.path("missing.bin").as_os_str(),
        full.as_os_str(),
        "-o",
        out_path.as_os_str()
    ));
    assert_eq!(std::fs::read(&out_path).unwrap(), f.new);
}

/// The command failed with `exit`, said `needle`, and left `path` as it was.
fn assert_refused(out: &Output, exit: i32, needle: &str, path: &Path) {
    assert_eq!(code(out), exit, "{}", stderr(out));
    assert!(stderr(out).contains(needle), "{}", stderr(out));
    assert_untouched(path);
}

fn assert_untouched(path: &Path) {
    assert_eq!(
        std::fs::read(path).unwrap(),
        b"previous contents",
        "{} was overwritten",
        path.display()
    );
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left behind: {leftovers:?}");
}

#[test]
fn wrong_base_exits_3_names_both_hashes_and_keeps_the_output() {
    let f = Fixture::new();
    let (patch, _) = f.diff();
    let mut other = f.old.clone();
    other[10] ^= 1;
    std::fs::write(f.path("other.bin"), &other).unwrap();
    let (out, out_path) = f.apply_over_existing("other.bin", &patch);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let msg = stderr(&out);
    assert!(msg.contains("wrong base image"), "{msg}");
    assert!(
        msg.contains(&blake3_hex(&f.old)) && msg.contains(&blake3_hex(&other)),
        "{msg}"
    );
    assert_untouched(&out_path);
}

#[test]
fn corrupt_patch_exits_4_or_5_and_keeps_the_output() {
    let f = Fixture::new();
    let (patch, _) = f.diff();
    let mut bytes = std::fs::read(&patch).unwrap();
    let at = bytes.len() - 12; // inside the last zstd frame
    bytes[at] ^= 0x40;
    std::fs::write(&patch, &bytes).unwrap();
    let (out, out_path) = f.apply_over_existing("old.bin", &patch);
    assert!(
        matches!(code(&out), 4 | 5),
        "exit {}: {}",
        code(&out),
        stderr(&out)
    );
    assert_untouched(&out_path);

    std::fs::write(
        &patch,
        b"this is not a patch at all, not even close, and longer than a header would be............",
    )
    .unwrap();
    let (out, out_path) = f.apply_over_existing("old.bin", &patch);
    assert_refused(&out, 4, "not a firmchain patch", &out_path);
}

#[test]
fn truncated_patch_exits_6() {
    let f = Fixture::new();
    let (patch, _) = f.diff();
    let bytes = std::fs::read(&patch).unwrap();
    std::fs::write(&patch, &bytes[..bytes.len() - 7]).unwrap();
    let (out, out_path) = f.apply_over_existing("old.bin", &patch);
    assert_refused(&out, 6, "truncated", &out_path);
}

#[test]
fn unexpected_target_exits_5() {
    let f = Fixture::new();
    let (patch, _) = f.diff();
    let out_path = f.path("out.bin");
    let out = run!(
        "apply",
        f.path("old.bin").as_os_str(),
        patch.as_os_str(),
        "-o",
        out_path.as_os_str(),
        "--expect",
        &blake3_hex(b"another release")
    );
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert!(!out_path.exists());
}

#[test]
fn hash_prints_blake3() {
    let f = Fixture::new();
    let h = json(&run!("--json", "hash", f.path("new.bin").as_os_str()));
    assert_eq!(h["blake3"], blake3_hex(&f.new));
    assert_eq!(h["size"].as_u64().unwrap(), f.new.len() as u64);
    let plain = run!("hash", f.path("new.bin").as_os_str());
    assert!(String::from_utf8_lossy(&plain.stdout).starts_with(&blake3_hex(&f.new)));
    assert_eq!(code(&run!("hash", f.path("nope").as_os_str())), 1);
}

#[test]
fn pack_unpack_round_trip_and_bad_cars() {
    let f = Fixture::new();
    let car = f.path("new.car");
    let p = json(&run!(
        "--json",
        "pack",
        f.path("new.bin").as_os_str(),
        "-o",
        car.as_os_str()
    ));
    let root = p["root"].as_str().unwrap().to_owned();
    assert!(root.starts_with("bafy"), "{root}");
    assert_eq!(p["blocks"].as_u64().unwrap(), 4); // three leaves and a root
    let out_path = f.path("unpacked.bin");
    let u = json(&run!(
        "--json",
        "unpack",
        car.as_os_str(),
        "-o",
        out_path.as_os_str()
    ));
    assert_eq!(u["root"], root.as_str());
    assert_eq!(std::fs::read(&out_path).unwrap(), f.new);

    let bytes = std::fs::read(&car).unwrap();
    std::fs::write(&out_path, b"previous contents").unwrap();
    let cut = f.path("cut.car");
    std::fs::write(&cut, &bytes[..bytes.len() - 100]).unwrap();
    let out = run!("unpack", cut.as_os_str(), "-o", out_path.as_os_str());
    assert_eq!(code(&out), 6, "{}", stderr(&out));
    assert_untouched(&out_path);

    let mut tampered = bytes.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let bad = f.path("bad.car");
    std::fs::write(&bad, &tampered).unwrap();
    let out = run!("unpack", bad.as_os_str(), "-o", out_path.as_os_str());
    assert_refused(&out, 5, "does not match its CID", &out_path);
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(code(&run!("apply")), 2);
    assert_eq!(code(&run!("apply", "a", "b", "-o", "c", "--expect", "xyz")), 2);
    let v = run!("--version");
    assert!(String::from_utf8_lossy(&v.stdout).starts_with("firmchain "));
}

#[test]
fn demo_passes() {
    let dir = tempfile::tempdir().unwrap();
    let d = json(&run!(
        "--json",
        "demo",
        "--pipeline",
        "--size-mib",
        "1",
        "--dir",
        dir.path().as_os_str()
    ));
    assert_eq!(d["verified"], true);
    assert!(
        d["wrong_base_rejected"]
            .as_str()
            .unwrap()
            .contains("wrong base image")
    );
    let applied = std::fs::read(dir.path().join("firmware-v2.applied.bin")).unwrap();
    assert_eq!(
        applied,
        std::fs::read(dir.path().join("firmware-v2.bin")).unwrap()
    );
}

// ----- contract commands, against a real anvil --------------------------------------------------------

fn contract_cmd(anvil: &firmchain_tests::Anvil, key: Option<&str>, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_firmchain"));
    c.args(["--json", "contract"])
        .args(args)
        .env("FIRMCHAIN_RPC", &anvil.url)
        .env_remove("FIRMCHAIN_PRIVATE_KEY");
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

#[test]
fn contract_deploy_publishers_revoke() {
    let anvil = firmchain_tests::Anvil::start().unwrap();
    let (owner, publisher) = (anvil.keys[0].as_str(), anvil.keys[1].as_str());
    let d = json(&contract_cmd(
        &anvil,
        Some(owner),
        &["deploy", "--publisher", &address_of(publisher)],
    ));
    let contract = d["contract"].as_str().unwrap().to_owned();
    assert!(contract.starts_with("0x") && contract.len() == 42, "{contract}");

    let p = json(&contract_cmd(
        &anvil,
        None,
        &["publishers", "--contract", &contract],
    ));
    assert_eq!(p["owner"], address_of(owner));
    assert_eq!(p["threshold"], 1);
    assert_eq!(p["publishers"][0]["publisher"], address_of(publisher));
    assert!(p["publishers"][0]["product"].is_null());

    // Revoking a release that does not exist is refused by the contract, by name, with exit code 7.
    let out = contract_cmd(
        &anvil,
        Some(publisher),
        &[
            "revoke",
            "--contract",
            &contract,
            "--product",
            "acme-sensor",
            "--sequence",
            "1",
            "--reason",
            "bad",
        ],
    );
    assert_eq!(code(&out), 7, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("acme-sensor has no release 1"),
        "{}",
        stderr(&out)
    );

    // An account that is not the owner cannot add publishers.
    let out = contract_cmd(
        &anvil,
        Some(publisher),
        &["add-publisher", "--contract", &contract, &address_of(owner)],
    );
    assert_eq!(code(&out), 7, "{}", stderr(&out));
    assert!(stderr(&out).contains("only the owner"), "{}", stderr(&out));

    let l = json(&contract_cmd(
        &anvil,
        None,
        &["latest", "--contract", &contract, "--product", "acme-sensor"],
    ));
    assert_eq!(l["sequence"], 0);
}

#[test]
fn contract_keys_come_from_env_or_keystore_only() {
    let anvil = firmchain_tests::Anvil::start().unwrap();
    let out = contract_cmd(&anvil, None, &["deploy"]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("FIRMCHAIN_PRIVATE_KEY"), "{}", stderr(&out));
    let out = contract_cmd(&anvil, Some("not-a-key"), &["deploy"]);
    assert!(stderr(&out).contains("not a 32-byte hex private key") && !stderr(&out).contains("not-a-key"));
    // There is no flag that takes a private key.
    assert_eq!(
        code(&contract_cmd(
            &anvil,
            None,
            &["deploy", "--private-key", anvil.keys[0].as_str()]
        )),
        2
    );

    let dir = tempfile::tempdir().unwrap();
    let key = hex_key(&anvil.keys[0]);
    alloy_signer_local::PrivateKeySigner::encrypt_keystore(
        dir.path(),
        &mut rand::thread_rng(),
        key,
        "correct horse",
        Some("owner.json"),
    )
    .unwrap();
    let keystore = dir.path().join("owner.json");
    let password = dir.path().join("password");
    std::fs::write(&password, "correct horse\n").unwrap();
    let args = [
        "deploy",
        "--keystore",
        keystore.to_str().unwrap(),
        "--password-file",
        password.to_str().unwrap(),
    ];
    let d = json(&contract_cmd(&anvil, None, &args));
    assert_eq!(d["owner"], address_of(&anvil.keys[0]));
    std::fs::write(&password, "wrong\n").unwrap();
    let out = contract_cmd(&anvil, None, &args);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("cannot decrypt keystore"),
        "{}",
        stderr(&out)
    );
}

fn hex_key(key: &str) -> Vec<u8> {
    let digits = key.trim_start_matches("0x");
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn chain_read_head_reports_proven_values() {
    let anvil = firmchain_tests::Anvil::start().unwrap();
    let owner = anvil.keys[0].as_str();
    let d = json(&contract_cmd(&anvil, Some(owner), &["deploy"]));
    let contract = d["contract"].as_str().unwrap().to_owned();
    let read = |extra: &[&str]| json(&read_head(&anvil.url, &contract).args(extra).output().unwrap());
    let before = read(&[]);
    assert_eq!(before["sequence"], 0);
    let empty_block = before["block"].as_u64().unwrap();

    // Publish one release through the library, then revoke it through the CLI.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let record = rt.block_on(async {
        let key: alloy_signer_local::PrivateKeySigner = owner.parse().unwrap();
        let me = key.address();
        let p = firmchain_contracts::provider(&anvil.url, Some(key)).unwrap();
        let index = firmchain_contracts::IndexClient::connect(
            p,
            contract.parse().unwrap(),
            firmchain_contracts::DEFAULT_TIMEOUT,
        )
        .await
        .unwrap();
        index.add_publisher(me, None).await.unwrap();
        let image = b"sensor firmware 1";
        let record = firmchain_update::ReleaseRecord {
            product: "acme-sensor".parse().unwrap(),
            sequence: firmchain_update::Sequence(1),
            base_hash: firmchain_update::Blake3Hash::ZERO,
            target_hash: firmchain_update::Blake3Hash::of(image),
            target_size: image.len() as u64,
            patch_cid: firmchain_update::dag::cid_of(firmchain_update::dag::RAW, image).to_bytes(),
            patch_hash: firmchain_update::Blake3Hash::of(b"payload"),
            patch_size: 7,
            kind: firmchain_update::ReleaseKind::Full,
            min_sequence: 0,
            terms: Default::default(),
        };
        index.publish(&record).await.unwrap();
        record
    });
    let after = read(&[]);
    assert_eq!(after["sequence"], 1);
    assert_eq!(after["digest"], format!("0x{}", hex_of(&record.digest())));
    assert_eq!(after["revoked"], false);

    json(&contract_cmd(
        &anvil,
        Some(owner),
        &[
            "revoke",
            "--contract",
            &contract,
            "--product",
            "acme-sensor",
            "--sequence",
            "1",
            "--reason",
            "recall",
        ],
    ));
    assert_eq!(read(&[])["revoked"], true);
    // Reading at an older block proves the state of then.
    assert_eq!(read(&["--block", &empty_block.to_string()])["sequence"], 0);
}

/// `firmchain --json chain read-head acme-sensor` against `rpc` and `contract`.
fn read_head(rpc: &str, contract: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_firmchain"));
    c.args([
        "--json",
        "chain",
        "read-head",
        "acme-sensor",
        "--rpc",
        rpc,
        "--contract",
        contract,
    ]);
    c
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn chain_status_follows_the_sync_committee() {
    let server = firmchain_tests::serve_beacon_fixtures(|_, body| body);
    let checkpoint = "0x5afc212a7924789b2bc86acad3ab3a6ffb1f6e97253ea50bee7f4f51422c9275";
    let status = |server: &str, extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_firmchain"))
            .args([
                "--json",
                "chain",
                "status",
                "--consensus-rpc",
                server,
                "--checkpoint",
                checkpoint,
            ])
            .args(extra)
            .output()
            .unwrap()
    };
    // The recorded checkpoint is from 2023: far outside the two-week weak-subjectivity window.
    let out = status(&server, &[]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("weak-subjectivity"), "{}", stderr(&out));

    let s = json(&status(&server, &["--force-checkpoint"]));
    assert_eq!(s["mode"], "light");
    // Seen from today, a whole period passed without newer finality; the spec's force update (which would
    // promote the best verified update to finalized) is off, so finalized stays the supermajority's.
    assert_eq!(s["finalized"]["block"], 17923026);
    assert_eq!(s["optimistic"]["block"], 17923113);
    assert_eq!(s["stale"], true, "a head from 2023 is stale");
    assert!(s["staleness_seconds"].as_u64().unwrap() > 365 * 24 * 3600);

    // --state keeps the newest finalized checkpoint; the next start uses it instead of --checkpoint. The
    // recorded server only has the original bootstrap, so the restart's mismatch shows which root was used.
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("lightclient.json");
    let state_arg = state.to_str().unwrap();
    json(&status(&server, &["--force-checkpoint", "--state", state_arg]));
    let saved: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(saved["finalized_block"], 17923026);
    assert_ne!(saved["checkpoint"], checkpoint);
    let out = status(&server, &["--force-checkpoint", "--state", state_arg]);
    assert_eq!(code(&out), 8, "{}", stderr(&out));
    assert!(
        stderr(&out).contains(saved["checkpoint"].as_str().unwrap()),
        "{}",
        stderr(&out)
    );
    let no_checkpoint = Command::new(env!("CARGO_BIN_EXE_firmchain"))
        .args(["chain", "status", "--consensus-rpc", &server])
        .output()
        .unwrap();
    assert_eq!(code(&no_checkpoint), 2, "{}", stderr(&no_checkpoint));

    let liar = firmchain_tests::serve_beacon_fixtures(|file, body| {
        if file != "optimistic.json" {
            return body;
        }
        let mut v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["data"]["sync_aggregate"]["sync_committee_signature"] =
            serde_json::json!(format!("0x{}", "ab".repeat(96)));
        v.to_string()
    });
    let out = status(&liar, &["--force-checkpoint"]);
    assert_eq!(code(&out), 8, "{}", stderr(&out));
    assert!(stderr(&out).contains("optimistic update"), "{}", stderr(&out));
}

#[test]
fn chain_read_head_in_light_mode_verifies_the_block_through_the_sync_committee() {
    use firmchain_tests::beacon::{BeaconHarness, Behaviour};
    let anvil = firmchain_tests::Anvil::start().unwrap();
    let owner = anvil.keys[0].as_str();
    let d = json(&contract_cmd(&anvil, Some(owner), &["deploy"]));
    let contract = d["contract"].as_str().unwrap().to_owned();
    let honest = BeaconHarness::start(&anvil.url, Behaviour::Honest).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("chain.yaml");
    std::fs::write(&config, &honest.config).unwrap();
    let read = |h: &BeaconHarness| {
        read_head(&anvil.url, &contract)
            .args([
                "--consensus-rpc",
                &h.url,
                "--checkpoint",
                &h.checkpoint,
                "--chain-config",
            ])
            .arg(&config)
            .output()
            .unwrap()
    };
    let out = read(&honest);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["mode"], "light (finalized)");
    assert_eq!(v["sequence"], 0);
    // The verified block is the one anvil has at that height.
    assert!(v["block"].as_u64().unwrap() >= 1);

    // A server whose updates are signed by keys outside the committee: exit 8, naming the signature.
    honest.set_behaviour(Behaviour::ForeignKeys);
    let out = read(&honest);
    assert_eq!(code(&out), 8, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("signature does not verify"),
        "{}",
        stderr(&out)
    );

    // Light mode needs both flags.
    let half = read_head(&anvil.url, &contract)
        .args(["--consensus-rpc", &honest.url])
        .output()
        .unwrap();
    assert_eq!(code(&half), 2);
}

#[test]
fn publish_then_fetch_the_patch_over_p2p_and_apply_it() {
    let anvil = firmchain_tests::Anvil::start().unwrap();
    let owner = anvil.keys[0].as_str();
    let d = json(&contract_cmd(
        &anvil,
        Some(owner),
        &["deploy", "--publisher", &address_of(owner)],
    ));
    let contract = d["contract"].as_str().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let old = firmchain_tests::pseudo_random(600_000, 41);
    let mut new = old.clone();
    new[1000..1100].fill(7);
    new.extend_from_slice(b"version 2");
    let (old_path, new_path) = (dir.path().join("v1.bin"), dir.path().join("v2.bin"));
    std::fs::write(&old_path, &old).unwrap();
    std::fs::write(&new_path, &new).unwrap();
    let publish = |to: &std::path::Path| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_firmchain"));
        c.args([
            "--json",
            "publish",
            "--product",
            "acme-sensor",
            "--rpc",
            &anvil.url,
            "--contract",
            &contract,
        ])
        .args(["--level", "3", "--to"])
        .arg(to)
        .env("FIRMCHAIN_PRIVATE_KEY", owner);
        c
    };
    // Without a key: refused before anything is sent.
    let no_key = publish(&new_path)
        .env_remove("FIRMCHAIN_PRIVATE_KEY")
        .output()
        .unwrap();
    assert_ne!(code(&no_key), 0);
    assert!(
        stderr(&no_key).contains("FIRMCHAIN_PRIVATE_KEY"),
        "{}",
        stderr(&no_key)
    );
    // A patch from an image the index never released is refused by the contract (exit 7).
    let orphan = publish(&new_path).arg("--from").arg(&old_path).output().unwrap();
    assert_eq!(code(&orphan), 7, "{}", stderr(&orphan));

    // Release 1: the full image of v1. Release 2: v1 → v2, served.
    let first = json(&publish(&old_path).output().unwrap());
    assert_eq!(
        (first["sequence"].as_u64(), first["kind"].as_str()),
        (Some(1), Some("full"))
    );
    let data = dir.path().join("repo");
    let mut cmd = publish(&new_path);
    cmd.args(["--serve", "--listen", "/ip4/127.0.0.1/tcp/0", "--data"])
        .arg(&data)
        .arg("--from")
        .arg(&old_path);
    let server = firmchain_tests::Daemon::spawn(cmd, std::time::Duration::from_secs(120)).unwrap();
    let p: Value = serde_json::from_str(&server.first_line).unwrap();
    assert_eq!(p["sequence"], 2);
    assert_eq!(p["kind"], "patch");
    assert_eq!(p["live"], true);
    // The index says what publish says.
    let head = json(&read_head(&anvil.url, &contract).output().unwrap());
    assert_eq!(head["sequence"], 2);
    assert_eq!(head["digest"], p["digest"]);

    // A device fetches only the patch entry of the bundle, then applies it to its image.
    let bundle = p["bundle"].as_str().unwrap();
    let addr = wait_for_serving(&server);
    let patch_path = dir.path().join("patch.fcpt");
    let got = Command::new(env!("CARGO_BIN_EXE_firmchain"))
        .args([
            "--json",
            "p2p",
            "get",
            bundle,
            "--entry",
            "patch",
            "--peer",
            &addr,
            "--timeout",
            "20",
            "-o",
        ])
        .arg(&patch_path)
        .output()
        .unwrap();
    assert_eq!(code(&got), 0, "{}", stderr(&got));
    let out = dir.path().join("v2.out");
    let applied = Command::new(env!("CARGO_BIN_EXE_firmchain"))
        .args(["--json", "apply"])
        .arg(&old_path)
        .arg(&patch_path)
        .arg("-o")
        .arg(&out)
        .args(["--expect", p["target_hash"].as_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(code(&applied), 0, "{}", stderr(&applied));
    assert_eq!(std::fs::read(&out).unwrap(), new);
}

/// The address a `publish --serve` prints on its second line.
fn wait_for_serving(server: &firmchain_tests::Daemon) -> String {
    let line = server.next_line(std::time::Duration::from_secs(60)).unwrap();
    let v: Value = serde_json::from_str(&line).unwrap();
    v["addrs"][0].as_str().unwrap().to_owned()
}
