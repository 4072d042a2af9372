//! Helpers shared by the fuzz targets: scratch directories and the record framing needed to
//! re-chain a mutated log.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// This crate's directory, where the fixtures are.
pub fn fuzz_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh scratch directory for this process: in `/dev/shm` when there is one, so the
/// files written per input never touch a disk.
pub fn scratch_dir(name: &str) -> PathBuf {
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    sweep(&base);
    let dir = base.join(format!("{SCRATCH_PREFIX}{name}-{}", std::process::id()));
    reset_dir(&dir);
    dir
}

const SCRATCH_PREFIX: &str = "mandate-fuzz-";

/// Removes the scratch directories of fuzzing processes that are gone: libFuzzer ends a run
/// with `exit`, so no process cleans up after itself.
fn sweep(base: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(pid) = name
            .strip_prefix(SCRATCH_PREFIX)
            .and_then(|rest| rest.rsplit('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new("/proc").join(pid.to_string()).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Empties `dir` (creating it if needed).
pub fn reset_dir(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("create a scratch directory");
}

/// The lines of `bytes`, each with its newline (the last one may have none).
pub fn lines(bytes: &[u8]) -> Vec<Vec<u8>> {
    bytes
        .split_inclusive(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

const SEQ_PREFIX: &[u8] = b"{\"seq\":";
const PREV_INFIX: &[u8] = b",\"prev_hash\":\"";
const HASH_INFIX: &[u8] = b",\"hash\":\"";
const HEAD_HASH_KEY: &[u8] = b"\"head_hash\":\"";

/// The `hash` a line records: the 64 characters after its last `,"hash":"`.
pub fn recorded_hash(line: &[u8]) -> Option<&[u8]> {
    let at = find_last(line, HASH_INFIX)? + HASH_INFIX.len();
    line.get(at..at + 64)
}

/// Rewrites a record line the way a forger with no key would: sets its `prev_hash` (and, in a
/// `checkpoint` record, the `head_hash` it vouches for) to `prev` and its `hash` to the SHA-256
/// of what it covers, as the writer frames them (`mandate_audit` module docs). Lines that are
/// not framed like a record are left alone. Returns whether the line was rewritten.
pub fn rechain(line: &mut [u8], prev: Option<&[u8]>) -> bool {
    if !line.starts_with(SEQ_PREFIX) {
        return false;
    }
    if let Some(prev) = prev.filter(|p| p.len() == 64) {
        for key in [PREV_INFIX, HEAD_HASH_KEY] {
            if let Some(at) = find(line, key) {
                let start = at + key.len();
                if let Some(old) = line.get_mut(start..start + 64) {
                    old.copy_from_slice(prev);
                }
            }
        }
    }
    let Some(at) = find_last(line, HASH_INFIX) else {
        return false;
    };
    let start = at + HASH_INFIX.len();
    if line.len() < start + 64 {
        return false;
    }
    let hash = hex::encode(Sha256::digest(&line[..at]));
    line[start..start + 64].copy_from_slice(hash.as_bytes());
    true
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn find_last(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).rposition(|w| w == needle)
}

/// The seq a record line starts with, as `mandate_audit::line_seq` reads it, and where its
/// digits are.
fn seq_digits(line: &[u8]) -> Option<std::ops::Range<usize>> {
    let start = SEQ_PREFIX.len();
    let rest = line.strip_prefix(SEQ_PREFIX)?;
    let len = rest.iter().position(|b| !b.is_ascii_digit())?;
    (len > 0).then_some(start..start + len)
}

/// Renumbers a record line as a forger who removed or inserted records would: its own seq
/// becomes `seq`, and in a `checkpoint` record the seq it vouches for becomes `seq - 1`.
/// Call [`rechain`] afterwards.
pub fn renumber(line: &mut Vec<u8>, seq: u64) {
    let Some(digits) = seq_digits(line) else {
        return;
    };
    line.splice(digits, seq.to_string().into_bytes());
    let key: &[u8] = b"\"checkpoint\":{\"seq\":";
    if let Some(at) = find(line, key) {
        let start = at + key.len();
        let len = line[start..]
            .iter()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(0);
        line.splice(
            start..start + len,
            seq.saturating_sub(1).to_string().into_bytes(),
        );
    }
}

/// Points a `segment_start` record at another previous segment file.
pub fn set_previous_segment(line: &mut Vec<u8>, name: &str) {
    let key: &[u8] = b"\"previous_segment\":\"";
    if let Some(at) = find(line, key) {
        let start = at + key.len();
        if let Some(len) = line[start..].iter().position(|&b| b == b'"') {
            line.splice(start..start + len, name.bytes());
        }
    }
}
