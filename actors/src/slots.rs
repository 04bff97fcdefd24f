//! A/B image slots with one atomic pointer: `<dir>/a`, `<dir>/b` and `<dir>/state.json`.
//!
//! A new image is written into the inactive slot, fsynced and verified, and only then does the pointer switch
//! (write a temporary file, fsync, rename over `state.json`, fsync the folder). A crash at any moment leaves the
//! pointer on a complete, verified image: the old one before the rename, the new one after it. The pointer keeps
//! the previous image so a failed health check rolls back. On open, the active image is checked against its hash;
//! if it does not match (a damaged disk), the previous image is activated and the reason reported.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use firmchain_update::hash::hash_reader;
use firmchain_update::{Blake3Hash, Sequence};
use serde::{Deserialize, Serialize};

/// One of the two slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Slot {
    /// Slot a.
    A,
    /// Slot b.
    B,
}

impl Slot {
    fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Slot::A => "a",
            Slot::B => "b",
        }
    }
}

/// An image in a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// The slot.
    pub slot: Slot,
    /// The release it came from (0 for the initial image).
    #[serde(with = "as_u64")]
    pub sequence: Sequence,
    /// blake3 of the image.
    #[serde(with = "as_hex")]
    pub hash: Blake3Hash,
    /// Size in bytes.
    pub size: u64,
}

mod as_u64 {
    use firmchain_update::Sequence;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(s: &Sequence, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_u64(s.0)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Sequence, D::Error> {
        u64::deserialize(d).map(Sequence)
    }
}

mod as_hex {
    use firmchain_update::Blake3Hash;
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(h: &Blake3Hash, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(&h.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Blake3Hash, D::Error> {
        String::deserialize(d)?.parse().map_err(D::Error::custom)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Pointer {
    active: Image,
    previous: Option<Image>,
}

/// Why the slots failed.
#[derive(Debug, thiserror::Error)]
pub enum SlotError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path} is damaged: {reason}")]
    State { path: PathBuf, reason: String },
    #[error("no image installed yet: give an initial image")]
    Empty,
    #[error("the new image in slot {slot} has blake3 {actual}, expected {expected}; the active image stays")]
    Mismatch {
        slot: &'static str,
        expected: Blake3Hash,
        actual: Blake3Hash,
    },
    #[error("no previous image to roll back to")]
    NoPrevious,
    #[error("neither slot holds a verified image: {0}")]
    Unbootable(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SlotError + '_ {
    move |source| SlotError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The slots of one device.
#[derive(Debug)]
pub struct Slots {
    dir: PathBuf,
    pointer: Pointer,
    /// What went wrong at open and was repaired (reported in the node's status).
    pub recovered: Option<String>,
}

fn hash_file(path: &Path) -> Result<(Blake3Hash, u64), SlotError> {
    let f = File::open(path).map_err(io_err(path))?;
    hash_reader(f, |_| {}).map_err(io_err(path))
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        // Not every platform lets a folder be synced; the rename is atomic regardless.
        let _ = d.sync_all();
    }
}

/// The active and previous images the pointer in `dir` names, read without touching anything (for `firmchain
/// status`); `None` when the slots were never set up. The images themselves are not hashed here.
pub fn read_pointer(dir: &Path) -> Result<Option<(Image, Option<Image>)>, SlotError> {
    let state = dir.join("state.json");
    match fs::read(&state) {
        Ok(bytes) => {
            let p = serde_json::from_slice::<Pointer>(&bytes).map_err(|e| SlotError::State {
                path: state.clone(),
                reason: e.to_string(),
            })?;
            Ok(Some((p.active, p.previous)))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(&state)(e)),
    }
}

impl Slots {
    /// Open the slots in `dir`. With no pointer yet, `initial` (the image the device runs) is copied into slot a.
    pub fn open(dir: &Path, initial: Option<&Path>) -> Result<Slots, SlotError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let state = dir.join("state.json");
        let pointer = match fs::read(&state) {
            Ok(bytes) => serde_json::from_slice::<Pointer>(&bytes).map_err(|e| SlotError::State {
                path: state.clone(),
                reason: e.to_string(),
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let initial = initial.ok_or(SlotError::Empty)?;
                let a = dir.join(Slot::A.name());
                copy_synced(initial, &a)?;
                let (hash, size) = hash_file(&a)?;
                let pointer = Pointer {
                    active: Image {
                        slot: Slot::A,
                        sequence: Sequence(0),
                        hash,
                        size,
                    },
                    previous: None,
                };
                write_pointer(dir, &pointer)?;
                pointer
            }
            Err(e) => return Err(io_err(&state)(e)),
        };
        let mut slots = Slots {
            dir: dir.to_owned(),
            pointer,
            recovered: None,
        };
        slots.check_active()?;
        Ok(slots)
    }

    /// Verify the active image; fall back to the previous one if it does not match.
    fn check_active(&mut self) -> Result<(), SlotError> {
        let active = self.pointer.active;
        let (hash, _) = hash_file(&self.path(active.slot)).unwrap_or((Blake3Hash::ZERO, 0));
        if hash == active.hash {
            return Ok(());
        }
        let reason = format!(
            "slot {} should hold blake3 {} (sequence {}) but holds {hash}",
            active.slot.name(),
            active.hash,
            active.sequence
        );
        let previous = self
            .pointer
            .previous
            .ok_or_else(|| SlotError::Unbootable(reason.clone()))?;
        let (prev_hash, _) = hash_file(&self.path(previous.slot)).unwrap_or((Blake3Hash::ZERO, 0));
        if prev_hash != previous.hash {
            return Err(SlotError::Unbootable(reason));
        }
        self.pointer = Pointer {
            active: previous,
            previous: None,
        };
        write_pointer(&self.dir, &self.pointer)?;
        self.recovered = Some(format!(
            "{reason}; switched back to sequence {}",
            previous.sequence
        ));
        Ok(())
    }

    fn path(&self, slot: Slot) -> PathBuf {
        self.dir.join(slot.name())
    }

    /// The image the device runs.
    pub fn active(&self) -> Image {
        self.pointer.active
    }

    /// The path of the image the device runs.
    pub fn active_path(&self) -> PathBuf {
        self.path(self.pointer.active.slot)
    }

    /// The image to roll back to, if any.
    pub fn previous(&self) -> Option<Image> {
        self.pointer.previous
    }

    /// Open the inactive slot for a new image (truncated). The active image is never touched.
    pub fn begin(&self) -> Result<(PathBuf, File), SlotError> {
        let path = self.path(self.pointer.active.slot.other());
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(io_err(&path))?;
        Ok((path, f))
    }

    /// Make the image written into the inactive slot the active one, after checking it is `hash` on disk. The
    /// old image becomes the one to roll back to.
    pub fn commit(&mut self, sequence: Sequence, hash: Blake3Hash) -> Result<Image, SlotError> {
        let slot = self.pointer.active.slot.other();
        let path = self.path(slot);
        File::open(&path)
            .and_then(|f| f.sync_all())
            .map_err(io_err(&path))?;
        let (actual, size) = hash_file(&path)?;
        if actual != hash {
            return Err(SlotError::Mismatch {
                slot: slot.name(),
                expected: hash,
                actual,
            });
        }
        let image = Image {
            slot,
            sequence,
            hash,
            size,
        };
        let pointer = Pointer {
            active: image,
            previous: Some(self.pointer.active),
        };
        write_pointer(&self.dir, &pointer)?;
        self.pointer = pointer;
        Ok(image)
    }

    /// Switch back to the previous image (after a failed health check).
    pub fn rollback(&mut self) -> Result<Image, SlotError> {
        let previous = self.pointer.previous.ok_or(SlotError::NoPrevious)?;
        let (hash, _) = hash_file(&self.path(previous.slot))?;
        if hash != previous.hash {
            return Err(SlotError::Mismatch {
                slot: previous.slot.name(),
                expected: previous.hash,
                actual: hash,
            });
        }
        let pointer = Pointer {
            active: previous,
            previous: None,
        };
        write_pointer(&self.dir, &pointer)?;
        self.pointer = pointer;
        Ok(previous)
    }
}

fn copy_synced(from: &Path, to: &Path) -> Result<(), SlotError> {
    fs::copy(from, to).map_err(io_err(from))?;
    File::open(to).and_then(|f| f.sync_all()).map_err(io_err(to))
}

fn write_pointer(dir: &Path, pointer: &Pointer) -> Result<(), SlotError> {
    let tmp = dir.join("state.json.tmp");
    let state = dir.join("state.json");
    let bytes = serde_json::to_vec_pretty(pointer).map_err(|e| SlotError::State {
        path: state.clone(),
        reason: e.to_string(),
    })?;
    {
        let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(&bytes).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
    }
    fs::rename(&tmp, &state).map_err(io_err(&state))?;
    sync_dir(dir);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, Slots) {
        let dir = tempfile::tempdir().unwrap();
        let initial = dir.path().join("factory.bin");
        fs::write(&initial, b"factory image").unwrap();
        let slots = Slots::open(&dir.path().join("slots"), Some(&initial)).unwrap();
        (dir, slots)
    }

    fn install(slots: &mut Slots, seq: u64, image: &[u8]) -> Result<Image, SlotError> {
        let (_, mut f) = slots.begin()?;
        f.write_all(image).unwrap();
        drop(f);
        slots.commit(Sequence(seq), Blake3Hash::of(image))
    }

    #[test]
    fn the_initial_image_is_active_and_survives_reopen() {
        let (dir, slots) = setup();
        assert_eq!(slots.active().sequence, Sequence(0));
        assert_eq!(slots.active().hash, Blake3Hash::of(b"factory image"));
        assert_eq!(fs::read(slots.active_path()).unwrap(), b"factory image");
        let again = Slots::open(&dir.path().join("slots"), None).unwrap();
        assert_eq!(again.active(), slots.active());
        assert!(matches!(
            Slots::open(&dir.path().join("none"), None),
            Err(SlotError::Empty)
        ));
    }

    #[test]
    fn commit_switches_and_rollback_returns() {
        let (dir, mut slots) = setup();
        let new = install(&mut slots, 1, b"release one").unwrap();
        assert_eq!(new.slot, Slot::B);
        assert_eq!(fs::read(slots.active_path()).unwrap(), b"release one");
        assert_eq!(slots.previous().unwrap().sequence, Sequence(0));
        let back = slots.rollback().unwrap();
        assert_eq!(back.sequence, Sequence(0));
        assert_eq!(fs::read(slots.active_path()).unwrap(), b"factory image");
        assert!(matches!(slots.rollback(), Err(SlotError::NoPrevious)));
        // The pointer on disk agrees.
        let again = Slots::open(&dir.path().join("slots"), None).unwrap();
        assert_eq!(again.active().sequence, Sequence(0));
    }

    #[test]
    fn the_pointer_reads_without_changing_anything() {
        let (dir, mut slots) = setup();
        let new = install(&mut slots, 1, b"release one").unwrap();
        let state = dir.path().join("slots").join("state.json");
        let before = fs::read(&state).unwrap();
        let (active, previous) = read_pointer(&dir.path().join("slots")).unwrap().unwrap();
        assert_eq!((active, previous), (new, Some(slots.previous().unwrap())));
        assert_eq!(fs::read(&state).unwrap(), before);
        assert!(read_pointer(&dir.path().join("none")).unwrap().is_none());
        assert!(!dir.path().join("none").exists(), "reading created the folder");
        fs::write(&state, b"{").unwrap();
        assert!(matches!(
            read_pointer(&dir.path().join("slots")),
            Err(SlotError::State { .. })
        ));
    }

    #[test]
    fn a_wrong_image_is_refused_and_the_active_one_stays() {
        let (_dir, mut slots) = setup();
        let (_, mut f) = slots.begin().unwrap();
        f.write_all(b"truncated rele").unwrap();
        drop(f);
        let err = slots
            .commit(Sequence(1), Blake3Hash::of(b"truncated release"))
            .unwrap_err();
        assert!(matches!(err, SlotError::Mismatch { slot: "b", .. }), "{err}");
        assert_eq!(slots.active().sequence, Sequence(0));
        assert_eq!(fs::read(slots.active_path()).unwrap(), b"factory image");
    }

    #[test]
    fn a_crash_while_writing_the_new_image_boots_the_old_one() {
        let (dir, slots) = setup();
        {
            let (_, mut f) = slots.begin().unwrap();
            f.write_all(b"half of a new im").unwrap();
            // Crash: no commit.
        }
        let again = Slots::open(&dir.path().join("slots"), None).unwrap();
        assert_eq!(again.active().sequence, Sequence(0));
        assert!(again.recovered.is_none());
        // A torn temporary pointer from a crash during the switch is ignored: the rename never happened.
        fs::write(dir.path().join("slots/state.json.tmp"), b"{\"act").unwrap();
        let again = Slots::open(&dir.path().join("slots"), None).unwrap();
        assert_eq!(again.active().sequence, Sequence(0));
    }

    #[test]
    fn a_damaged_active_image_falls_back_to_the_previous_one() {
        let (dir, mut slots) = setup();
        install(&mut slots, 1, b"release one").unwrap();
        fs::write(slots.active_path(), b"bit rot").unwrap();
        let again = Slots::open(&dir.path().join("slots"), None).unwrap();
        assert_eq!(again.active().sequence, Sequence(0));
        let reason = again.recovered.clone().unwrap();
        assert!(
            reason.contains("slot b") && reason.contains("sequence 0"),
            "{reason}"
        );
        // Both damaged: refuse to pretend.
        fs::write(again.active_path(), b"more rot").unwrap();
        let mut slots = again;
        install(&mut slots, 2, b"release two").unwrap();
        fs::write(slots.active_path(), b"x").unwrap();
        fs::write(
            dir.path()
                .join("slots")
                .join(slots.previous().unwrap().slot.name()),
            b"y",
        )
        .unwrap();
        assert!(matches!(
            Slots::open(&dir.path().join("slots"), None),
            Err(SlotError::Unbootable(_))
        ));
        // A garbage pointer is named.
        fs::write(dir.path().join("slots/state.json"), b"not json").unwrap();
        let err = Slots::open(&dir.path().join("slots"), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("state.json"), "{err}");
    }
}
