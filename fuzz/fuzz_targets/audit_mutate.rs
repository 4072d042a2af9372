//! Tampering with a real log: any change to a verified log must be detected.
//!
//! A small log is written once with `mandate_audit::AuditLog` (several segments, signed
//! checkpoints in the log and in `checkpoints.jsonl`, record bodies taken from the demo log).
//! Each input is a list of edits (byte flips, insertions, cuts, line swaps and moves, field
//! rewrites, whole segments removed or emptied), optionally followed by re-chaining: every
//! `prev_hash` and `hash` recomputed, as a forger without the signing key would. The mutated
//! log is written to a scratch directory and verified without a key, with the key, and with the
//! key and the checkpoint file. Whatever the verifier says, it must not panic; and when it says
//! the log is intact, that must be true as far as the evidence reaches:
//!
//! - without re-chaining, the log must be the original or the original cut at a record
//!   boundary (which a chain alone cannot reveal; see the `mandate_audit` docs);
//! - with the key, every record up to the last seq a valid signature vouches for must be
//!   exactly the original record;
//! - with the checkpoint file, the log must also reach the last seq the file vouches for.
//!
//! A change that leaves the bytes as they were is not a change. With re-chaining, the rebuilt
//! log also goes through `AuditIndex::reindex`, which parses every record's JSON.
//!
//! `MANDATE_FUZZ_DEBUG=1` prints each input's verdicts, to see which states the inputs reach:
//! `MANDATE_FUZZ_DEBUG=1 target/x86_64-unknown-linux-gnu/release/audit_mutate -runs=0 <corpus>`.

#![no_main]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use mandate_audit::{
    AuditConfig, AuditIndex, AuditLog, CHECKPOINT_FILE, CallQuery, CheckpointSigner,
    CheckpointVerifier, VerifyOptions, VerifyReport, line_seq, list_segments, segment_name,
    verify_log,
};
use mandate_fuzz::{
    fuzz_dir, lines, rechain, recorded_hash, renumber, reset_dir, scratch_dir, set_previous_segment,
};
use serde_json::Value;

/// A fixed throwaway key, so runs and reproducers see the same log layout.
const SIGNING_KEY: &str =
    "mandate-ed25519-signing:0f0e0d0c0b0a09080706050403020100f0e0d0c0b0a090807060504030201000\n";

struct Original {
    /// Segment file names and contents, in seq order.
    segments: Vec<(String, Vec<u8>)>,
    /// Every record line (with its newline), index `seq - 1`.
    records: Vec<Vec<u8>>,
    checkpoints: Vec<u8>,
    key: CheckpointVerifier,
    scratch: PathBuf,
}

fn original() -> &'static Original {
    static ORIGINAL: OnceLock<Original> = OnceLock::new();
    ORIGINAL.get_or_init(|| {
        let scratch = scratch_dir("audit-mutate");
        let key_file = scratch.join("signing-key");
        std::fs::write(&key_file, SIGNING_KEY).expect("write the signing key");
        let signer = CheckpointSigner::load(&key_file).expect("load the signing key");
        let key = signer.public_key();

        let dir = scratch.join("original");
        let config = AuditConfig {
            segment_max_bytes: 3000,
            checkpoint_signer: Some(Arc::new(signer)),
            checkpoint_every_records: 4,
            ..AuditConfig::default()
        };
        let log = AuditLog::open_with(&dir, config).expect("open the log");
        // The guard's own record shapes: the bodies of the demo log's records.
        let demo =
            std::fs::read(fuzz_dir().join("fixtures/demo-log/segment-00000000000000000001.jsonl"))
                .expect("read the demo log");
        for line in demo.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let Ok(Value::Object(mut body)) = serde_json::from_slice::<Value>(line) else {
                continue;
            };
            if matches!(
                body.get("kind").and_then(Value::as_str),
                Some("log_start" | "checkpoint")
            ) {
                continue;
            }
            for reserved in ["seq", "prev_hash", "timestamp", "hash"] {
                body.remove(reserved);
            }
            log.append(&body).expect("append a record");
        }
        log.close().expect("close the log");

        let mut segments = Vec::new();
        let mut records = Vec::new();
        for segment in list_segments(&dir).expect("list the segments") {
            let bytes = std::fs::read(&segment.path).expect("read a segment");
            records.extend(lines(&bytes));
            let name = segment
                .path
                .file_name()
                .and_then(|n| n.to_str())
                .expect("segment name")
                .to_owned();
            segments.push((name, bytes));
        }
        let checkpoints = std::fs::read(dir.join(CHECKPOINT_FILE)).expect("read the checkpoints");
        let original = Original {
            segments,
            records,
            checkpoints,
            key,
            scratch,
        };
        assert!(original.segments.len() >= 3, "the log has several segments");
        for (i, record) in original.records.iter().enumerate() {
            assert_eq!(
                line_seq(record),
                Some(i as u64 + 1),
                "records are in seq order"
            );
        }
        // The unmutated log verifies every way.
        let written = original.scratch.join("check");
        write_log(&written, &original.segments, &original.checkpoints);
        for options in options(&original.key, &written, 3) {
            verify_log(&written, &options).expect("the original log verifies");
        }
        original
    })
}

fn write_log(dir: &std::path::Path, segments: &[(String, Vec<u8>)], checkpoints: &[u8]) {
    reset_dir(dir);
    for (name, bytes) in segments {
        std::fs::write(dir.join(name), bytes).expect("write a segment");
    }
    // Kept beside the log, where `--key` finds it by default, and given explicitly.
    std::fs::write(dir.join("evidence.jsonl"), checkpoints).expect("write the checkpoints");
}

/// Without a key; with the key only; with the key and the checkpoint file.
fn options(
    key: &CheckpointVerifier,
    dir: &std::path::Path,
    ways: u8,
) -> Vec<VerifyOptions<'static>> {
    let mut all = Vec::new();
    if ways & 1 != 0 {
        all.push(VerifyOptions::default());
    }
    if ways & 2 != 0 {
        all.push(VerifyOptions {
            key: Some(key.clone()),
            ..VerifyOptions::default()
        });
        all.push(VerifyOptions {
            key: Some(key.clone()),
            checkpoints: Some(dir.join("evidence.jsonl")),
            ..VerifyOptions::default()
        });
    }
    all
}

/// Values a field rewrite may put in, besides raw bytes.
const VALUES: [&str; 16] = [
    "\"retention\"",
    "\"checkpoint\"",
    "\"segment_start\"",
    "\"log_start\"",
    "\"decision\"",
    "\"outcome\"",
    "null",
    "0",
    "1",
    "18446744073709551615",
    "-1",
    "{}",
    "[]",
    "\"\"",
    "\"mandate-audit/1\"",
    "\"0000000000000000000000000000000000000000000000000000000000000000\"",
];

#[derive(Arbitrary, Debug)]
enum Value2 {
    Known(u8),
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Op {
    FlipBit {
        segment: u8,
        at: u16,
        bit: u8,
    },
    SetByte {
        segment: u8,
        at: u16,
        byte: u8,
    },
    Insert {
        segment: u8,
        at: u16,
        bytes: Vec<u8>,
    },
    Remove {
        segment: u8,
        at: u16,
        len: u8,
    },
    Truncate {
        segment: u8,
        len: u16,
    },
    SwapLines {
        segment: u8,
        a: u8,
        b: u8,
    },
    DuplicateLine {
        segment: u8,
        line: u8,
    },
    RemoveLine {
        segment: u8,
        line: u8,
    },
    MoveLine {
        from: u8,
        line: u8,
        to: u8,
        at: u8,
    },
    /// Replaces the value after the `field`-th `":` of a line, up to the next `,"` or `}`.
    SetField {
        segment: u8,
        line: u8,
        field: u8,
        value: Value2,
    },
    RemoveSegment {
        segment: u8,
    },
    EmptySegment {
        segment: u8,
    },
    /// The same edits on the checkpoint file.
    Checkpoints(Box<Op>),
}

/// What a forger without the key does after the edits.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
enum Rechain {
    /// Nothing: the edits are all there is.
    No,
    /// Recomputes every `prev_hash`, `hash` and checkpoint `head_hash`.
    Hashes,
    /// Also renumbers the records from the first one on, renames the segment files after
    /// their first seq and points every `segment_start` at the renamed file before it.
    Renumber,
}

#[derive(Arbitrary, Debug)]
struct Input {
    ops: Vec<Op>,
    rechain: Rechain,
}

fn pick(n: usize, i: impl Into<usize>) -> Option<usize> {
    (n > 0).then(|| i.into() % n)
}

fn edit_bytes(bytes: &mut Vec<u8>, op: &Op) {
    match op {
        Op::FlipBit { at, bit, .. } => {
            if let Some(i) = pick(bytes.len(), *at) {
                bytes[i] ^= 1 << (bit % 8);
            }
        }
        Op::SetByte { at, byte, .. } => {
            if let Some(i) = pick(bytes.len(), *at) {
                bytes[i] = *byte;
            }
        }
        Op::Insert { at, bytes: new, .. } => {
            let i = usize::from(*at) % (bytes.len() + 1);
            bytes.splice(i..i, new.iter().copied());
        }
        Op::Remove { at, len, .. } => {
            if let Some(i) = pick(bytes.len(), *at) {
                let end = (i + usize::from(*len)).min(bytes.len());
                bytes.drain(i..end);
            }
        }
        Op::Truncate { len, .. } => {
            let len = usize::from(*len) % (bytes.len() + 1);
            bytes.truncate(len);
        }
        Op::SwapLines { a, b, .. } => {
            let mut ls = lines(bytes);
            if let (Some(a), Some(b)) = (pick(ls.len(), *a), pick(ls.len(), *b)) {
                ls.swap(a, b);
                *bytes = ls.concat();
            }
        }
        Op::DuplicateLine { line, .. } => {
            let mut ls = lines(bytes);
            if let Some(i) = pick(ls.len(), *line) {
                // The copy is always a whole line: a last line without its newline would
                // otherwise fuse with its copy and double in length with every repeat (found
                // as an out-of-memory in the harness itself, 2^25 times a record).
                let mut copy = ls[i].clone();
                if copy.last() != Some(&b'\n') {
                    copy.push(b'\n');
                }
                ls.insert(i, copy);
                *bytes = ls.concat();
            }
        }
        Op::RemoveLine { line, .. } => {
            let mut ls = lines(bytes);
            if let Some(i) = pick(ls.len(), *line) {
                ls.remove(i);
                *bytes = ls.concat();
            }
        }
        Op::SetField {
            line, field, value, ..
        } => {
            let mut ls = lines(bytes);
            let Some(i) = pick(ls.len(), *line) else {
                return;
            };
            let l = &mut ls[i];
            let starts: Vec<usize> = l
                .windows(2)
                .enumerate()
                .filter(|(_, w)| w == b"\":")
                .map(|(at, _)| at + 2)
                .collect();
            let Some(f) = pick(starts.len(), *field) else {
                return;
            };
            let start = starts[f];
            let end = (start..l.len())
                .find(|&j| l[j] == b'}' || l[j..].starts_with(b",\""))
                .unwrap_or(l.len());
            let new: Vec<u8> = match value {
                Value2::Known(k) => VALUES[usize::from(*k) % VALUES.len()].as_bytes().to_vec(),
                Value2::Raw(raw) => raw.clone(),
            };
            l.splice(start..end, new);
            *bytes = ls.concat();
        }
        Op::MoveLine { .. }
        | Op::RemoveSegment { .. }
        | Op::EmptySegment { .. }
        | Op::Checkpoints(_) => {}
    }
}

fn segment_of(op: &Op) -> u8 {
    match op {
        Op::FlipBit { segment, .. }
        | Op::SetByte { segment, .. }
        | Op::Insert { segment, .. }
        | Op::Remove { segment, .. }
        | Op::Truncate { segment, .. }
        | Op::SwapLines { segment, .. }
        | Op::DuplicateLine { segment, .. }
        | Op::RemoveLine { segment, .. }
        | Op::SetField { segment, .. }
        | Op::RemoveSegment { segment }
        | Op::EmptySegment { segment } => *segment,
        Op::MoveLine { from, .. } => *from,
        Op::Checkpoints(_) => 0,
    }
}

fn apply(segments: &mut Vec<(String, Vec<u8>)>, checkpoints: &mut Vec<u8>, op: &Op) {
    match op {
        Op::Checkpoints(inner) => edit_bytes(checkpoints, inner),
        Op::RemoveSegment { segment } => {
            if let Some(i) = pick(segments.len(), *segment) {
                segments.remove(i);
            }
        }
        Op::EmptySegment { segment } => {
            if let Some(i) = pick(segments.len(), *segment) {
                segments[i].1.clear();
            }
        }
        Op::MoveLine { from, line, to, at } => {
            let (Some(from), Some(to)) = (pick(segments.len(), *from), pick(segments.len(), *to))
            else {
                return;
            };
            let mut source = lines(&segments[from].1);
            let Some(l) = pick(source.len(), *line) else {
                return;
            };
            let moved = source.remove(l);
            segments[from].1 = source.concat();
            let mut target = lines(&segments[to].1);
            let at = usize::from(*at) % (target.len() + 1);
            target.insert(at, moved);
            segments[to].1 = target.concat();
        }
        other => {
            if let Some(i) = pick(segments.len(), segment_of(other)) {
                edit_bytes(&mut segments[i].1, other);
            }
        }
    }
}

/// Recomputes every `prev_hash` and `hash` along the segments, in order (and renumbers them).
fn rechain_all(segments: &mut [(String, Vec<u8>)], how: Rechain) {
    let mut prev: Option<Vec<u8>> = None;
    let mut prev_seq: Option<u64> = None;
    let mut prev_name: Option<String> = None;
    for (name, bytes) in segments.iter_mut() {
        let mut ls = lines(bytes);
        for l in &mut ls {
            let (body, newline) = match l.strip_suffix(b"\n") {
                Some(body) => (body.to_vec(), true),
                None => (l.clone(), false),
            };
            let mut body = body;
            if how == Rechain::Renumber {
                if let Some(seq) = prev_seq {
                    renumber(&mut body, seq.saturating_add(1));
                }
                if let Some(previous) = &prev_name {
                    set_previous_segment(&mut body, previous);
                }
                prev_seq = line_seq(&body).or(prev_seq);
            }
            rechain(&mut body, prev.as_deref());
            prev = recorded_hash(&body).map(<[u8]>::to_vec);
            if newline {
                body.push(b'\n');
            }
            *l = body;
        }
        *bytes = ls.concat();
        if how == Rechain::Renumber {
            if let Some(first) = ls.first().and_then(|l| line_seq(l)) {
                *name = segment_name(first);
            }
            prev_name = Some(name.clone());
        }
    }
}

/// Whether `mutated` is `original` or `original` cut at a record boundary: segments before
/// the last one kept whole, the last one a prefix of whole lines.
fn is_cut_at_record_boundary(
    original: &[(String, Vec<u8>)],
    mutated: &[(String, Vec<u8>)],
) -> bool {
    let Some(((last_name, last), whole)) = mutated.split_last() else {
        return true;
    };
    if whole.len() >= original.len() || whole != &original[..whole.len()] {
        return false;
    }
    let (name, bytes) = &original[whole.len()];
    last_name == name && bytes.starts_with(last) && (last.is_empty() || last.ends_with(b"\n"))
}

/// The highest seq a line of the checkpoint file claims to vouch for.
fn file_vouches(checkpoints: &[u8]) -> Option<u64> {
    checkpoints
        .split(|&b| b == b'\n')
        .filter_map(|l| serde_json::from_slice::<Value>(l).ok())
        .filter_map(|v| v.get("checkpoint")?.get("seq")?.as_u64())
        .max()
}

/// Every record of `mutated` with a seq up to `through` is the original record, byte for
/// byte: the checkpoint record a signature covers included (the verifier holds it to the
/// exact bytes the checkpoint file names since issue 12; the reproducer of the old gap is in
/// `fuzz/regressions/`).
fn check_records_through(
    original: &Original,
    mutated: &[(String, Vec<u8>)],
    through: u64,
    what: &str,
) {
    for (name, bytes) in mutated {
        for line in lines(bytes) {
            let Some(seq) = line_seq(&line) else {
                panic!("{what}: verified log holds a line without a seq in {name}: {line:?}");
            };
            if seq <= through {
                let expected = usize::try_from(seq - 1)
                    .ok()
                    .and_then(|i| original.records.get(i));
                assert_eq!(
                    Some(&line),
                    expected,
                    "{what}: record seq {seq} in {name} is not the original, yet the log verified \
                     and a signature vouches for seq {through}"
                );
            }
        }
    }
}

fn check_report(report: &VerifyReport) {
    assert!(report.records >= 1);
    assert!(report.first_seq >= 1 && report.first_seq <= report.head_seq);
    assert_eq!(report.records, report.head_seq - report.first_seq + 1);
}

fuzz_target!(|input: Input| {
    let original = original();
    let mut segments = original.segments.clone();
    let mut checkpoints = original.checkpoints.clone();
    for op in &input.ops {
        apply(&mut segments, &mut checkpoints, op);
    }
    if input.rechain != Rechain::No {
        rechain_all(&mut segments, input.rechain);
        // Renamed segments may collide: the file written last is the one on disk.
        let mut seen = std::collections::HashSet::new();
        segments.reverse();
        segments.retain(|(name, _)| seen.insert(name.clone()));
        segments.reverse();
    }
    let dir = original.scratch.join("mutated");
    write_log(&dir, &segments, &checkpoints);

    let all = options(&original.key, &dir, 3);
    let results: Vec<_> = all.iter().map(|o| verify_log(&dir, o)).collect();
    let unchanged_log = segments == original.segments;
    if std::env::var_os("MANDATE_FUZZ_DEBUG").is_some() {
        let oks: Vec<String> = results
            .iter()
            .map(|r| match r {
                Ok(r) => format!("ok{}", r.head_seq),
                Err(e) => format!("err{:?}", e.first_bad_seq()),
            })
            .collect();
        eprintln!(
            "DEBUG rechain={:?} unchanged={} segments={} {:?}",
            input.rechain,
            unchanged_log,
            segments.len(),
            oks
        );
    }
    for (options, result) in all.iter().zip(&results) {
        let Ok(report) = result else { continue };
        check_report(report);
        let keyed = options.key.is_some();
        if input.rechain == Rechain::No {
            assert!(
                is_cut_at_record_boundary(&original.segments, &segments),
                "a changed log verified (key: {keyed}, checkpoint file: {}): {report:?}",
                options.checkpoints.is_some()
            );
        }
        if keyed && let Some(vouched) = report.checkpoints.last_vouched_seq {
            check_records_through(original, &segments, vouched, "report");
        }
        if options.checkpoints.is_some()
            && let Some(vouched) = file_vouches(&checkpoints)
        {
            assert!(
                report.head_seq >= vouched,
                "the log ends at seq {} but the checkpoint file vouches for seq {vouched}",
                report.head_seq
            );
            check_records_through(original, &segments, vouched, "checkpoint file");
        }
        if unchanged_log {
            assert_eq!(report.head_seq, original.records.len() as u64);
        }
    }
    if results.first().is_some_and(Result::is_err) {
        for result in &results[1..] {
            assert!(
                result.is_err(),
                "a log that fails without a key verifies with one"
            );
        }
    }

    if input.rechain != Rechain::No {
        let index = AuditIndex::reindex(&dir);
        if let Ok((index, caught_up)) = &index {
            let _ = index.query(&CallQuery::default());
            if let Some(Ok(report)) = results.first() {
                assert_eq!(
                    caught_up.head_seq,
                    Some(report.head_seq),
                    "the index and the verifier disagree about the head"
                );
            }
        }
    }
});
