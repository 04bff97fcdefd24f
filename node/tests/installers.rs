//! `install.mode = "rauc"` and `"swupdate"` end to end: real `firmchain run` processes over a real anvil chain,
//! with stand-in `rauc`, `swupdate`, `fw_printenv`/`fw_setenv`, reboot and health-check programs (small sh
//! scripts the node runs directly, without a shell of its own). They record their arguments and keep the
//! bootloader's state in files; a reboot is a stop of the node, a new boot id and the slot the bootloader picks,
//! then a new node process on the same data folder.

mod common;
use common::Fleet;

use std::path::{Path, PathBuf};
use std::time::Duration;

use firmchain_tests::fleet::{NodeProc, NodeSpec};

const T: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Rauc,
    Swupdate,
}

/// The stand-in bootloader of one device: scripts and state files in `dir`.
struct Bootloader {
    kind: Kind,
    dir: PathBuf,
    boots: u32,
}

const RAUC: &str = r#"#!/bin/sh
bl=$(dirname "$0")
echo "rauc $*" >> "$bl/calls"
other() { if [ "$1" = rootfs.0 ]; then echo rootfs.1; else echo rootfs.0; fi; }
booted=$(cat "$bl/booted")
case "$1" in
install)
  [ -f "$bl/fail-install" ] && { echo "signature verification failed" >&2; exit 1; }
  cp "$2" "$bl/installed.bundle"
  other "$booted" > "$bl/primary" ;;
status)
  case "$2" in
  --output-format=json)
    s0=inactive; s1=inactive
    [ "$booted" = rootfs.0 ] && s0=booted
    [ "$booted" = rootfs.1 ] && s1=booted
    printf '{"compatible":"acme","booted":"%s","slots":[{"rootfs.0":{"class":"rootfs","bootname":"A","state":"%s"}},{"rootfs.1":{"class":"rootfs","bootname":"B","state":"%s"}}]}\n' \
      "$booted" "$s0" "$s1" ;;
  mark-good) echo "$booted" > "$bl/primary" ;;
  mark-bad) other "$booted" > "$bl/primary" ;;
  *) echo "unknown status command $2" >&2; exit 2 ;;
  esac ;;
*) echo "unknown command $1" >&2; exit 2 ;;
esac
"#;

const SWUPDATE: &str = r#"#!/bin/sh
bl=$(dirname "$0")
echo "swupdate $*" >> "$bl/calls"
image=
while [ $# -gt 0 ]; do
  case "$1" in
  -i) image=$2; shift 2 ;;
  -e) echo "$2" > "$bl/selection"; shift 2 ;;
  *) echo "unexpected argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$image" ] || { echo "expected -i IMAGE" >&2; exit 2; }
cp "$image" "$bl/installed.bundle"
# What the sw-description's bootenv section does: boot the other copy next, count the tries.
running=$(cat "$bl/env/boot_slot")
if [ "$running" = a ]; then echo b; else echo a; fi > "$bl/env/boot_slot"
echo 1 > "$bl/env/upgrade_available"
echo 1 > "$bl/env/ustate"
"#;

const PRINTENV: &str = r#"#!/bin/sh
bl=$(dirname "$0")
echo "fw_printenv $*" >> "$bl/calls"
[ "$1" = -n ] || exit 2
cat "$bl/env/$2"
"#;

const SETENV: &str = r#"#!/bin/sh
bl=$(dirname "$0")
echo "fw_setenv $*" >> "$bl/calls"
echo "$2" > "$bl/env/$1"
"#;

const REBOOT: &str = r#"#!/bin/sh
bl=$(dirname "$0")
echo reboot >> "$bl/calls"
"#;

const HEALTH: &str = r#"#!/bin/sh
bl=$(dirname "$0")
echo "health $FIRMCHAIN_SEQUENCE" >> "$bl/calls"
[ -f "$bl/unhealthy" ] && { echo "radio dead" >&2; exit 3; }
exit 0
"#;

fn script(dir: &Path, name: &str, text: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    format!("{:?}", path.display().to_string())
}

impl Bootloader {
    fn new(dir: PathBuf, kind: Kind) -> Bootloader {
        std::fs::create_dir_all(dir.join("env")).unwrap();
        std::fs::write(dir.join("boot_id"), "boot-1\n").unwrap();
        std::fs::write(dir.join("booted"), "rootfs.0\n").unwrap();
        std::fs::write(dir.join("env/boot_slot"), "a\n").unwrap();
        Bootloader { kind, dir, boots: 1 }
    }

    /// The `--set` values that point the node at the stand-ins.
    fn settings(&self) -> Vec<String> {
        let d = &self.dir;
        let mut set = vec![
            format!("install.reboot=[{}]", script(d, "reboot", REBOOT)),
            format!("install.health_check=[{}]", script(d, "health", HEALTH)),
            format!("install.boot_id={}", d.join("boot_id").display()),
        ];
        match self.kind {
            Kind::Rauc => {
                set.push("install.mode=rauc".into());
                set.push(format!("install.rauc=[{}]", script(d, "rauc", RAUC)));
            }
            Kind::Swupdate => {
                set.push("install.mode=swupdate".into());
                set.push(format!("install.swupdate=[{}]", script(d, "swupdate", SWUPDATE)));
                set.push(format!(
                    "install.fw_printenv=[{}]",
                    script(d, "fw_printenv", PRINTENV)
                ));
                set.push(format!("install.fw_setenv=[{}]", script(d, "fw_setenv", SETENV)));
                set.push("install.swupdate_select.a=stable,copy2".into());
                set.push("install.swupdate_select.b=stable,copy1".into());
            }
        }
        set
    }

    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn count(&self, prefix: &str) -> usize {
        self.calls().iter().filter(|c| c.starts_with(prefix)).count()
    }

    fn env(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join("env").join(name))
            .unwrap()
            .trim()
            .to_owned()
    }

    /// The slot the device would name as booted.
    fn booted(&self) -> String {
        match self.kind {
            Kind::Rauc => std::fs::read_to_string(self.dir.join("booted")).unwrap(),
            Kind::Swupdate => self.env("boot_slot"),
        }
        .trim()
        .to_owned()
    }

    /// The slot that ran before the first install.
    fn factory_slot(&self) -> &'static str {
        match self.kind {
            Kind::Rauc => "rootfs.0",
            Kind::Swupdate => "a",
        }
    }

    /// A new boot: into the slot the bootloader chose, or, when `fall_back`, into the one that ran before the
    /// install (what the bootloader does when the new slot never came up and its tries ran out).
    fn boot(&mut self, fall_back: bool) {
        self.boots += 1;
        std::fs::write(self.dir.join("boot_id"), format!("boot-{}\n", self.boots)).unwrap();
        match (self.kind, fall_back) {
            (Kind::Rauc, false) => {
                let primary = std::fs::read_to_string(self.dir.join("primary")).unwrap();
                std::fs::write(self.dir.join("booted"), primary).unwrap();
            }
            (Kind::Rauc, true) => {}
            // U-Boot's altbootcmd switches the slot variable back.
            (Kind::Swupdate, true) => std::fs::write(self.dir.join("env/boot_slot"), "a\n").unwrap(),
            (Kind::Swupdate, false) => {}
        }
    }
}

struct Device {
    name: String,
    bl: Bootloader,
    proc: NodeProc,
}

fn spec(bl: &Bootloader) -> NodeSpec {
    NodeSpec {
        set: bl.settings(),
        ..NodeSpec::default()
    }
}

impl Device {
    fn start(f: &Fleet, repo: &NodeProc, name: &str, kind: Kind) -> Device {
        let bl = Bootloader::new(f.dir.path().join(format!("{name}-bootloader")), kind);
        let proc = f.device(name, &[repo], spec(&bl));
        Device {
            name: name.to_owned(),
            bl,
            proc,
        }
    }

    /// Stop the node, boot (see [`Bootloader::boot`]) and start it again on the same data folder.
    fn reboot(&mut self, f: &Fleet, repo: &NodeProc, fall_back: bool) {
        assert_eq!(self.proc.daemon.terminate(T).unwrap(), Some(0));
        self.bl.boot(fall_back);
        self.proc = f.device(&self.name, &[repo], spec(&self.bl));
    }

    /// Wait until release `sequence` was handed to the installer and the node asked for a reboot.
    fn wait_pending(&self, sequence: u64) -> serde_json::Value {
        let s = self
            .proc
            .wait_for(&format!("release {sequence} pending"), T, |v| {
                v["commit"]["state"] == "pending" && v["commit"]["sequence"] == sequence
            })
            .unwrap();
        assert_ne!(
            s["installed"]["sequence"], sequence,
            "{}: not installed before the new boot confirmed it",
            self.name
        );
        s
    }
}

/// `/metrics` counts one rollback of `cause` (and none of the others).
fn assert_rollback_counted(node: &NodeProc, cause: &str) {
    let metrics = firmchain_tests::fleet::http(&node.api, "GET", "/metrics", &[], None)
        .unwrap()
        .1;
    let metrics = metrics.as_str().unwrap();
    for c in ["health_check", "installer", "image", "boot_fallback", "other"] {
        let want = u8::from(c == cause);
        let line = format!("firmchain_rollbacks_total{{cause=\"{c}\"}} {want}\n");
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }
}

fn install_call(kind: Kind) -> &'static str {
    match kind {
        Kind::Rauc => "rauc install ",
        Kind::Swupdate => "swupdate ",
    }
}

/// Install → pending → reboot into the new slot → health check there → confirmed (`rauc status mark-good`, or
/// SWUpdate's variables); the confirmed bundle is the base of the next release's patch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rauc_and_swupdate_installs_are_confirmed_after_the_health_check_on_the_new_boot() {
    let f = Fleet::new(1_000_000, 2).await;
    let repo = f.repository();
    let mut devices = [
        Device::start(&f, &repo, "rauc", Kind::Rauc),
        Device::start(&f, &repo, "swu", Kind::Swupdate),
    ];
    repo.publish(&f.images[1]).unwrap();
    for d in &mut devices {
        let s = d.wait_pending(1);
        assert_eq!(s["commit"]["from_slot"], d.bl.factory_slot());
        assert_eq!(
            s["commit"]["installer"],
            if d.bl.kind == Kind::Rauc {
                "rauc"
            } else {
                "swupdate"
            }
        );
        let calls = d.bl.calls();
        let install = calls
            .iter()
            .find(|c| c.starts_with(install_call(d.bl.kind)))
            .unwrap_or_else(|| panic!("{}: no install call in {calls:?}", d.name));
        let suffix = if d.bl.kind == Kind::Rauc { ".raucb" } else { ".swu" };
        assert!(install.ends_with(suffix), "{install}");
        if d.bl.kind == Kind::Swupdate {
            assert!(install.starts_with("swupdate -e stable,copy2 -i "), "{install}");
        }
        assert_eq!(
            std::fs::read(d.bl.dir.join("installed.bundle")).unwrap(),
            f.images[1]
        );
        assert_eq!(d.bl.count("reboot"), 1, "{calls:?}");
        assert_eq!(
            d.bl.count("health"),
            0,
            "no health check before the new boot: {calls:?}"
        );

        d.reboot(&f, &repo, false);
        assert_ne!(d.bl.booted(), d.bl.factory_slot());
        let s = d.proc.status().unwrap();
        assert_eq!(s["commit"]["state"], "confirmed", "{}: {s}", d.name);
        assert_eq!(s["commit"]["booted_slot"], d.bl.booted().as_str());
        assert_eq!(s["installed"]["sequence"], 1);
        assert_eq!(s["installed"]["hash"], f.hash(1));
        assert!(s["rollbacks"].as_array().unwrap().is_empty(), "{s}");
        let calls = d.bl.calls();
        assert!(calls.contains(&"health 1".to_owned()), "{calls:?}");
        match d.bl.kind {
            Kind::Rauc => assert!(
                calls.contains(&"rauc status mark-good booted".to_owned()),
                "{calls:?}"
            ),
            Kind::Swupdate => {
                for (var, value) in [("upgrade_available", "0"), ("bootcount", "0"), ("ustate", "0")] {
                    assert_eq!(d.bl.env(var), value, "{var}: {calls:?}");
                }
            }
        }
        assert_eq!(
            std::fs::read(d.proc.dir.join("image/current.bin")).unwrap(),
            f.images[1]
        );
    }

    // Release 2 is a patch on release 1's bundle: the confirmed bundle is the base.
    let r2 = repo.publish(&f.images[2]).unwrap();
    assert_eq!(r2["kind"], "patch");
    for d in &mut devices {
        let s = d.wait_pending(2);
        assert_eq!(s["last_fetch"]["payload"], "patch", "{}: {s}", d.name);
        assert_eq!(
            std::fs::read(d.bl.dir.join("installed.bundle")).unwrap(),
            f.images[2]
        );
        d.reboot(&f, &repo, false);
        let s = d.proc.status().unwrap();
        assert_eq!(
            (&s["commit"]["state"], &s["installed"]["sequence"]),
            (&"confirmed".into(), &2.into()),
            "{s}"
        );
        assert_eq!(d.bl.booted(), d.bl.factory_slot(), "the A/B pair alternates");
        if d.bl.kind == Kind::Swupdate {
            let selection = std::fs::read_to_string(d.bl.dir.join("selection")).unwrap();
            assert_eq!(
                selection.trim(),
                "stable,copy1",
                "running copy 2: copy 1 is written"
            );
        }
    }
}

/// A health check that fails on the new boot marks the slot bad (`rauc status mark-bad`, or the slot variable
/// set back and `ustate=3`), records the rollback with its reason, reboots into the old slot, and the release
/// is never tried again: the next release installs instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_health_check_failing_on_the_new_boot_marks_it_bad_and_rolls_back_for_good() {
    let f = Fleet::new(1_000_000, 2).await;
    let repo = f.repository();
    let mut devices = [
        Device::start(&f, &repo, "rauc", Kind::Rauc),
        Device::start(&f, &repo, "swu", Kind::Swupdate),
    ];
    repo.publish(&f.images[1]).unwrap();
    for d in &mut devices {
        d.wait_pending(1);
        std::fs::write(d.bl.dir.join("unhealthy"), "").unwrap();
        d.reboot(&f, &repo, false);
        let new_slot = d.bl.booted();
        let s = d.proc.status().unwrap();
        assert_eq!(s["commit"]["state"], "rolled_back", "{}: {s}", d.name);
        let reason = s["rollbacks"][0]["reason"].as_str().unwrap();
        assert!(
            reason.contains("code 3: radio dead") && reason.contains("on the new boot"),
            "{reason}"
        );
        assert_eq!(s["rollbacks"][0]["sequence"], 1);
        assert_eq!(s["installed"]["sequence"], 0);
        assert_rollback_counted(&d.proc, "health_check");
        let calls = d.bl.calls();
        assert!(calls.contains(&"health 1".to_owned()), "{calls:?}");
        assert_eq!(d.bl.count("reboot"), 2, "rebooted into the old slot: {calls:?}");
        match d.bl.kind {
            Kind::Rauc => {
                assert!(
                    calls.contains(&"rauc status mark-bad booted".to_owned()),
                    "{calls:?}"
                );
                assert_eq!(d.bl.count("rauc status mark-good"), 0, "{calls:?}");
            }
            Kind::Swupdate => {
                assert_eq!(d.bl.env("boot_slot"), "a", "slot variable set back: {calls:?}");
                assert_eq!(d.bl.env("ustate"), "3");
                assert_eq!(d.bl.env("upgrade_available"), "0");
            }
        }
        for bundle in ["image/pending.raucb", "image/pending.swu"] {
            assert!(!d.proc.dir.join(bundle).exists(), "{bundle} dropped");
        }
        assert_eq!(
            std::fs::read(d.proc.dir.join("image/current.bin")).unwrap(),
            f.images[0],
            "the confirmed bundle stays the base"
        );

        // The reboot into the old slot; the device is healthy there and stays on release 0.
        std::fs::remove_file(d.bl.dir.join("unhealthy")).unwrap();
        d.reboot(&f, &repo, false);
        assert_eq!(
            d.bl.booted(),
            d.bl.factory_slot(),
            "back on the old slot (was {new_slot})"
        );
        let s = d.proc.status().unwrap();
        assert_eq!(s["installed"]["sequence"], 0);
        assert_eq!(
            s["rollbacks"].as_array().unwrap().len(),
            0,
            "reported once, at the start that decided"
        );
    }
    // Never tried again: the next release is the one handed over.
    repo.publish(&f.images[2]).unwrap();
    for d in &devices {
        d.wait_pending(2);
        assert_eq!(d.bl.count(install_call(d.bl.kind)), 2, "{:?}", d.bl.calls());
        assert_eq!(
            std::fs::read(d.bl.dir.join("installed.bundle")).unwrap(),
            f.images[2]
        );
    }
}

/// The bootloader fell back to the old slot (the new one never came up): the node reports the rollback with
/// that reason, confirms nothing, and never tries that release again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bootloader_fallback_is_reported_as_a_rollback_and_never_retried() {
    let f = Fleet::new(1_000_000, 2).await;
    let repo = f.repository();
    let mut devices = [
        Device::start(&f, &repo, "rauc", Kind::Rauc),
        Device::start(&f, &repo, "swu", Kind::Swupdate),
    ];
    repo.publish(&f.images[1]).unwrap();
    for d in &mut devices {
        d.wait_pending(1);
        d.reboot(&f, &repo, true);
        let slot = d.bl.factory_slot();
        let s = d.proc.status().unwrap();
        assert_eq!(s["commit"]["state"], "rolled_back", "{}: {s}", d.name);
        assert_eq!(s["commit"]["booted_slot"], slot);
        let reason = s["rollbacks"][0]["reason"].as_str().unwrap();
        assert!(
            reason.contains(&format!("bootloader fell back to slot {slot}")) && reason.contains("release 1"),
            "{reason}"
        );
        assert_eq!(s["installed"]["sequence"], 0);
        assert_rollback_counted(&d.proc, "boot_fallback");
        let calls = d.bl.calls();
        assert_eq!(
            d.bl.count("health"),
            0,
            "no health check on the old slot: {calls:?}"
        );
        assert_eq!(d.bl.count("rauc status mark-"), 0, "{calls:?}");
        assert_eq!(d.bl.count("reboot"), 1, "{calls:?}");
        if d.bl.kind == Kind::Swupdate {
            assert_eq!(d.bl.env("ustate"), "3", "{calls:?}");
        }
    }
    repo.publish(&f.images[2]).unwrap();
    for d in &devices {
        d.wait_pending(2);
        assert_eq!(d.bl.count(install_call(d.bl.kind)), 2, "{:?}", d.bl.calls());
    }
}

/// A restart of the node without a reboot (the same boot id) keeps the release pending, asks for the reboot
/// again and installs nothing else; a pending commit whose booted slot cannot be read stops the start naming
/// why; an installer that refuses the bundle is a rollback with its message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_without_a_reboot_keeps_waiting_and_a_refused_bundle_rolls_back() {
    let f = Fleet::new(1_000_000, 2).await;
    let repo = f.repository();
    let mut d = Device::start(&f, &repo, "rauc", Kind::Rauc);
    repo.publish(&f.images[1]).unwrap();
    d.wait_pending(1);
    assert_eq!(d.proc.daemon.terminate(T).unwrap(), Some(0));
    d.proc = f.device(&d.name, &[&repo], spec(&d.bl));
    let s = d.proc.status().unwrap();
    assert_eq!(s["commit"]["state"], "pending", "{s}");
    assert_eq!(s["installed"]["sequence"], 0);
    assert_eq!(d.bl.count("reboot"), 2, "{:?}", d.bl.calls());

    // A pending commit and an installer that cannot say which slot booted: the node does not start, and says why.
    assert_eq!(d.proc.daemon.terminate(T).unwrap(), Some(0));
    let booted = d.bl.dir.join("booted");
    std::fs::rename(&booted, booted.with_extension("away")).unwrap();
    let blind = NodeSpec {
        dir: d.proc.dir.clone(),
        bootstrap: repo.addrs.clone(),
        initial_image: Some(f.image(0)),
        ..spec(&d.bl)
    };
    let err = NodeProc::spawn(common::bin(), &f.chain.anvil.url, &f.chain.contract, &blind).unwrap_err();
    let log = d.proc.log();
    assert!(
        log.contains("pending rauc/swupdate commit") && log.contains("rauc status names no booted slot"),
        "{err}\n{log}"
    );
    std::fs::rename(booted.with_extension("away"), &booted).unwrap();

    d.bl.boot(false);
    d.proc = f.device(&d.name, &[&repo], spec(&d.bl));
    d.proc.wait_installed(1, T).unwrap();
    assert_eq!(d.bl.count("rauc install "), 1, "{:?}", d.bl.calls());

    std::fs::write(d.bl.dir.join("fail-install"), "").unwrap();
    repo.publish(&f.images[2]).unwrap();
    let s = d
        .proc
        .wait_for("the refused bundle reported", T, |v| {
            v["rollbacks"].as_array().is_some_and(|r| !r.is_empty())
        })
        .unwrap();
    let reason = s["rollbacks"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("signature verification failed"), "{reason}");
    assert_eq!(s["installed"]["sequence"], 1);
    assert_rollback_counted(&d.proc, "installer");
    assert_eq!(d.bl.count("reboot"), 2, "no reboot for a refused bundle");
}
