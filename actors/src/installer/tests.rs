//! Actor tests of the Installer with a real Patcher, real slots and a real state store in a temporary folder.

use std::time::Duration;

use actix::{Actor, Context, Handler, SyncArbiter};
use firmchain_update::dag::{DagOptions, build_from_reader};
use firmchain_update::patch::{PatchOptions, create_best};
use firmchain_update::{ReleaseKind, ReleaseRecord};
use tokio::sync::mpsc;

use super::*;
use crate::messages::StatusEvent;

/// Collects what the Installer reports.
struct Collect(mpsc::UnboundedSender<ReleaseInstalled>);

impl Actor for Collect {
    type Context = Context<Self>;
}

impl Handler<ReleaseInstalled> for Collect {
    type Result = ();
    fn handle(&mut self, msg: ReleaseInstalled, _: &mut Context<Self>) {
        let _ = self.0.send(msg);
    }
}

impl Handler<StatusEvent> for Collect {
    type Result = ();
    fn handle(&mut self, _: StatusEvent, _: &mut Context<Self>) {}
}

struct Device {
    dir: tempfile::TempDir,
    state: Arc<NodeState>,
    store: Arc<Blockstore>,
    installer: Addr<Installer>,
    outcomes: mpsc::UnboundedReceiver<ReleaseInstalled>,
}

/// `script` as the argument vector of a shell (the health check runs no shell of its own).
fn sh(script: &str) -> Vec<String> {
    vec!["sh".into(), "-c".into(), script.into()]
}

fn product() -> ProductId {
    "acme-sensor".parse().unwrap()
}

fn image(seed: u8) -> Vec<u8> {
    (0..64 * 1024u32)
        .map(|i| (i as u8).wrapping_mul(seed) ^ seed)
        .collect()
}

/// A device on `image(1)` (release 0) with `health` as its check.
fn device(health: Option<&str>) -> Device {
    let dir = tempfile::tempdir().unwrap();
    let initial = dir.path().join("initial.bin");
    std::fs::write(&initial, image(1)).unwrap();
    let slots = Slots::open(&dir.path().join("slots"), Some(&initial)).unwrap();
    let store = Arc::new(Blockstore::open(&dir.path().join("blocks.redb"), 64 << 20).unwrap());
    let state = Arc::new(NodeState::open(&dir.path().join("state.redb")).unwrap());
    let (tx, outcomes) = mpsc::unbounded_channel();
    let collect = Collect(tx).start();
    let config = InstallerConfig {
        target: InstallTarget::Slots(slots),
        health_check: health.map(sh),
        health_timeout: Duration::from_secs(20),
        staging: dir.path().join("staging.bin"),
        store: store.clone(),
    };
    let patcher = SyncArbiter::start(1, || Patcher);
    let installer = Installer::new(
        config,
        patcher,
        state.clone(),
        None,
        collect.clone().recipient(),
        collect.recipient(),
    )
    .start();
    Device {
        dir,
        state,
        store,
        installer,
        outcomes,
    }
}

/// Release `sequence` with `new` as its image, its full payload verified and waiting in the blockstore (small
/// blocks, so the Patcher reads across many leaves); `patch_cid` is the payload's root.
fn release(d: &Device, sequence: u64, new: &[u8]) -> ReleaseRecord {
    release_keeping(d, sequence, new, |_| true)
}

/// [`release`], storing only the blocks `keep` accepts.
fn release_keeping(d: &Device, sequence: u64, new: &[u8], keep: impl Fn(usize) -> bool) -> ReleaseRecord {
    let opts = PatchOptions {
        level: 3,
        ..PatchOptions::default()
    };
    let full = create_best(None, new, &opts).unwrap().full;
    let mut blocks = Vec::new();
    let dag = DagOptions {
        chunk_size: 4096,
        max_links: 8,
        ..DagOptions::default()
    };
    let root = build_from_reader(&full[..], dag, |c, b| {
        blocks.push((*c, bytes::Bytes::copy_from_slice(b)))
    })
    .unwrap();
    let blocks: Vec<_> = blocks
        .into_iter()
        .enumerate()
        .filter(|(i, _)| keep(*i))
        .map(|(_, b)| b)
        .collect();
    d.store.put_batch(Some(&root.cid), &blocks).unwrap();
    ReleaseRecord {
        product: product(),
        sequence: Sequence(sequence),
        base_hash: Blake3Hash::ZERO,
        target_hash: Blake3Hash::of(new),
        target_size: new.len() as u64,
        patch_cid: root.cid.to_bytes(),
        patch_hash: Blake3Hash::of(&full),
        patch_size: full.len() as u64,
        kind: ReleaseKind::Full,
        min_sequence: 0,
        terms: Default::default(),
    }
}

async fn install(d: &mut Device, record: &ReleaseRecord) -> ReleaseInstalled {
    d.installer
        .send(InstallRelease {
            record: record.clone(),
            payload: Payload::Full,
            root: Cid::try_from(record.patch_cid.as_slice()).unwrap(),
        })
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), d.outcomes.recv())
        .await
        .expect("the installer answers")
        .unwrap()
}

fn slots_of(d: &Device) -> Slots {
    Slots::open(&d.dir.path().join("slots"), None).unwrap()
}

#[actix::test]
async fn a_verified_payload_is_installed_and_recorded() {
    let mut d = device(Some("test -f \"$FIRMCHAIN_IMAGE\""));
    let new = image(2);
    let record = release(&d, 1, &new);
    match install(&mut d, &record).await {
        ReleaseInstalled::Installed { sequence, hash } => {
            assert_eq!((sequence, hash), (Sequence(1), Blake3Hash::of(&new)))
        }
        other => panic!("{other:?}"),
    }
    let slots = slots_of(&d);
    assert_eq!(slots.active().sequence, Sequence(1));
    assert_eq!(std::fs::read(slots.active_path()).unwrap(), new);
    let installed = d.state.installed(&product()).unwrap().unwrap();
    assert_eq!(installed.sequence, Sequence(1));
    assert_eq!(d.state.health_pending(&product()).unwrap(), None);
    assert!(d.state.rolled_back(&product()).unwrap().is_empty());
}

#[actix::test]
async fn a_failed_health_check_rolls_back_and_is_remembered_with_its_reason() {
    let mut d = device(Some("echo radio dead >&2; exit 3"));
    let record = release(&d, 1, &image(2));
    let reason = match install(&mut d, &record).await {
        ReleaseInstalled::RolledBack { sequence, reason } => {
            assert_eq!(sequence, Sequence(1));
            reason
        }
        other => panic!("{other:?}"),
    };
    assert!(
        reason.contains("health check exited with code 3: radio dead")
            && reason.contains("rolled back to release 0"),
        "{reason}"
    );
    let slots = slots_of(&d);
    assert_eq!(slots.active().sequence, Sequence(0));
    assert_eq!(std::fs::read(slots.active_path()).unwrap(), image(1));
    let rolled = d.state.rolled_back(&product()).unwrap();
    assert_eq!(rolled.len(), 1);
    assert_eq!(rolled[0].sequence, 1);
    assert!(rolled[0].reason.contains("radio dead"), "{:?}", rolled[0]);
    assert_eq!(
        d.state.installed(&product()).unwrap().unwrap().sequence,
        Sequence(0)
    );
    assert_eq!(d.state.health_pending(&product()).unwrap(), None);
}

/// A write that fails for a reason of this device (here the inactive slot is `/dev/full`: no space left) leaves the
/// old image running and is reported as interrupted, not rolled back; once the disk has room the same install
/// succeeds. (A read-only folder would not do: the tests may run as root.)
#[actix::test]
async fn a_transient_write_failure_is_interrupted_not_rolled_back_and_succeeds_later() {
    let mut d = device(None);
    let new = image(3);
    let record = release(&d, 1, &new);
    let inactive = d.dir.path().join("slots").join("b");
    let _ = std::fs::remove_file(&inactive);
    std::os::unix::fs::symlink("/dev/full", &inactive).unwrap();
    match install(&mut d, &record).await {
        ReleaseInstalled::Interrupted { sequence, error } => {
            assert_eq!(sequence, Sequence(1));
            assert!(error.is_transient(), "{error}");
            let msg = error.to_string();
            assert!(msg.contains("No space left"), "{msg}");
        }
        other => panic!("a full disk is not a verdict on the release: {other:?}"),
    }
    assert!(d.state.rolled_back(&product()).unwrap().is_empty());
    assert_eq!(slots_of(&d).active().sequence, Sequence(0));
    std::fs::remove_file(&inactive).unwrap();
    match install(&mut d, &record).await {
        ReleaseInstalled::Installed { sequence, .. } => assert_eq!(sequence, Sequence(1)),
        other => panic!("{other:?}"),
    }
    assert_eq!(std::fs::read(slots_of(&d).active_path()).unwrap(), new);
}

/// An image that does not match the record is a verdict: rolled back (the old image never stopped running).
#[actix::test]
async fn an_image_that_does_not_match_its_record_is_a_verdict() {
    let mut d = device(None);
    let mut record = release(&d, 1, &image(2));
    record.target_hash = Blake3Hash([7; 32]);
    match install(&mut d, &record).await {
        ReleaseInstalled::RolledBack { reason, .. } => {
            assert!(reason.contains("the previous image still runs"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(slots_of(&d).active().sequence, Sequence(0));
}

/// A payload block that went missing from the blockstore after verification (evicted, a damaged disk) fails the
/// read in the middle of the patch: the store's fault, so interrupted and retried, never a verdict on the release.
#[actix::test]
async fn a_payload_block_missing_from_the_store_is_interrupted_not_rolled_back() {
    let mut d = device(None);
    // Noise does not compress: the payload spans about 16 leaves; the third block the builder emits is a leaf in
    // the middle of it.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let noise: Vec<u8> = (0..64 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let record = release_keeping(&d, 1, &noise, |i| i != 2);
    assert!(record.patch_size > 8 * 4096, "{}", record.patch_size);
    match install(&mut d, &record).await {
        ReleaseInstalled::Interrupted { sequence, error } => {
            assert_eq!(sequence, Sequence(1));
            assert!(error.is_transient(), "{error}");
            assert!(
                error
                    .to_string()
                    .contains("reading the payload from the blockstore"),
                "{error}"
            );
        }
        other => panic!("a missing block is not a verdict on the release: {other:?}"),
    }
    assert!(d.state.rolled_back(&product()).unwrap().is_empty());
    assert_eq!(slots_of(&d).active().sequence, Sequence(0));
}

/// The marker of a health check cut short by a crash: the check runs at the next start and rolls back when it
/// fails; a passing check keeps the new image. Either way the marker is cleared.
#[actix::test]
async fn the_crash_marker_runs_the_check_at_the_next_start() {
    for (check, rolls_back) in [("exit 1", true), ("exit 0", false)] {
        let dir = tempfile::tempdir().unwrap();
        let initial = dir.path().join("initial.bin");
        std::fs::write(&initial, image(1)).unwrap();
        let mut slots = Slots::open(&dir.path().join("slots"), Some(&initial)).unwrap();
        let state = NodeState::open(&dir.path().join("state.redb")).unwrap();
        // The node switched to release 1 and crashed before the check ended.
        let new = image(2);
        let (path, _) = slots.begin().unwrap();
        std::fs::write(&path, &new).unwrap();
        slots.commit(Sequence(1), Blake3Hash::of(&new)).unwrap();
        state.set_health_pending(&product(), Some(Sequence(1))).unwrap();

        let outcome = check_after_restart(
            &mut slots,
            &state,
            &product(),
            Some(&sh(check)),
            Duration::from_secs(20),
        )
        .await
        .unwrap();
        assert_eq!(state.health_pending(&product()).unwrap(), None, "{check}");
        let rolled = state.rolled_back(&product()).unwrap();
        if rolls_back {
            let (sequence, reason) = outcome.unwrap();
            assert_eq!(sequence, Sequence(1));
            assert!(reason.contains("after a restart"), "{reason}");
            assert_eq!(slots.active().sequence, Sequence(0));
            assert_eq!(rolled.len(), 1);
        } else {
            assert_eq!(outcome, None);
            assert_eq!(slots.active().sequence, Sequence(1));
            assert!(rolled.is_empty());
        }
    }
}
