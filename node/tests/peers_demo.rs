//! `firmchain demo --peers`: the fleet demo with every device in `peers` mode (no RPC) and the repository in
//! light mode over the bundled beacon light-client server; each device says where its proofs came from.

use std::process::Command;

use serde_json::Value;

#[test]
fn the_peers_demo_installs_on_devices_with_no_rpc_and_names_the_proof_sources() {
    let out = Command::new(env!("CARGO_BIN_EXE_firmchain"))
        .args(["--json", "demo", "--peers", "--devices", "3", "--size-mib", "1"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "demo --peers failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let releases = v["releases"].as_array().unwrap();
    assert_eq!(releases.len(), 2, "{v}");
    let names = ["repository", "device-1", "device-2", "device-3"];
    for r in releases {
        let devices = r["devices"].as_array().unwrap();
        assert_eq!(devices.len(), 3, "{r}");
        for d in devices {
            assert_eq!(d["chain_mode"], "peers", "{d}");
            assert_eq!(d["installed"]["sequence"], r["sequence"], "{d}");
            let from = d["proofs_from"].as_str().unwrap_or("?");
            assert!(names.contains(&from), "proofs from {from:?}: {d}");
        }
    }
}
