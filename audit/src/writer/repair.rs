//! Crash repair: a torn last line is moved into `<log>/torn/` and the move is recorded in the
//! chain with a `repair` record. Nothing is deleted: the torn bytes are copied out (and synced)
//! before the segment is truncated.
//!
//! A crash can also strike during the repair itself. Between copying and truncating, the next
//! open finds the same torn bytes and an unrecorded copy of them in `torn/`, and reuses that
//! copy; between truncating and writing the `repair` record, it finds only the unrecorded copy
//! and records it then. So every file in `torn/` ends up named by a `repair` record.

use crate::Modes;
use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::super::segments::TORN_DIR;
use super::bodies::{REPAIR_KIND, Repair};
use super::segment::sync_dir;

/// Sets aside the torn bytes from `cut` to the end of `segment` and truncates it at `cut`.
/// `recorded` are the `set_aside` paths of the `repair` records already in the segment.
/// Returns the repair records to write, oldest first.
pub(super) fn repair(
    dir: &Path,
    segment: &Path,
    cut: u64,
    recorded: &HashSet<String>,
    modes: Modes,
) -> io::Result<Vec<Repair>> {
    let name = file_name(segment);
    let mut unrecorded = unrecorded_copies(dir, &name, recorded)?;
    let mut file = OpenOptions::new().read(true).write(true).open(segment)?;
    let len = file.metadata()?.len();
    let mut repairs = Vec::new();
    let torn = if len > cut {
        let mut torn = Vec::new();
        file.seek(SeekFrom::Start(cut))?;
        (&mut file).take(len - cut).read_to_end(&mut torn)?;
        Some(torn)
    } else {
        None
    };
    // Copies left by an interrupted repair, except one that holds exactly these torn bytes,
    // which is reused below rather than copied again.
    let reused = match &torn {
        Some(torn) => unrecorded
            .iter()
            .position(|(_, bytes)| bytes == torn)
            .map(|index| unrecorded.remove(index).0),
        None => None,
    };
    for (set_aside, bytes) in unrecorded {
        repairs.push(record(&name, cut, &bytes, set_aside));
    }
    if let Some(torn) = torn {
        let set_aside = match reused {
            Some(set_aside) => set_aside,
            None => set_aside_copy(dir, &name, &torn, modes)?,
        };
        file.set_len(cut)?;
        file.sync_all()?;
        repairs.push(record(&name, cut, &torn, set_aside));
    }
    Ok(repairs)
}

fn record(segment: &str, cut: u64, torn: &[u8], set_aside: String) -> Repair {
    Repair {
        kind: REPAIR_KIND,
        segment: segment.to_owned(),
        truncated_at: cut,
        torn_bytes: torn.len() as u64,
        torn_sha256: hex::encode(Sha256::digest(torn)),
        set_aside,
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The copies of `segment`'s torn tails in `torn/` that no `repair` record names, oldest first,
/// with their bytes.
fn unrecorded_copies(
    dir: &Path,
    segment: &str,
    recorded: &HashSet<String>,
) -> io::Result<Vec<(String, Vec<u8>)>> {
    let torn_dir = dir.join(TORN_DIR);
    let entries = match std::fs::read_dir(&torn_dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    let prefix = format!("{segment}.torn-");
    let mut copies = Vec::new();
    for entry in entries {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let set_aside = format!("{TORN_DIR}/{name}");
        if name.starts_with(&prefix) && !recorded.contains(&set_aside) {
            copies.push((set_aside, std::fs::read(entry.path())?));
        }
    }
    // Names end in the time they were made, so name order is age order within one segment.
    copies.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(copies)
}

/// Writes `torn` to a new file `torn/<segment>.torn-<unix millis>`, durably, and returns its
/// path relative to the log directory.
fn set_aside_copy(dir: &Path, segment: &str, torn: &[u8], modes: Modes) -> io::Result<String> {
    let torn_dir = dir.join(TORN_DIR);
    if !torn_dir.is_dir() {
        modes.create_dir(&torn_dir)?;
        sync_dir(dir)?;
    }
    let millis = jiff::Timestamp::now().as_millisecond();
    let (path, mut file) =
        create_unique(&torn_dir, &format!("{segment}.torn-{millis:013}"), modes)?;
    modes.set_file(&file)?;
    file.write_all(torn)?;
    file.sync_all()?;
    sync_dir(&torn_dir)?;
    let name = file_name(&path);
    Ok(format!("{TORN_DIR}/{name}"))
}

/// Creates `base`, or `base-2`, `base-3`... if it exists (two repairs in one millisecond).
fn create_unique(dir: &Path, base: &str, modes: Modes) -> io::Result<(PathBuf, File)> {
    let mut attempt = 1u32;
    loop {
        let name = if attempt == 1 {
            base.to_owned()
        } else {
            format!("{base}-{attempt}")
        };
        let path = dir.join(&name);
        match modes.options().write(true).create_new(true).open(&path) {
            Ok(file) => return Ok((path, file)),
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists && attempt < 1000 => {
                attempt += 1;
            }
            Err(error) => return Err(error),
        }
    }
}
