//! Every mutation of a small segmented log with signed checkpoints is detected, and named by its
//! first bad seq; checkpoints catch what a chain cannot; retention keeps the rest verifiable.
//!
//! The logs are built record by record with the same framing the writer uses
//! ([`encode_line`]), so that a test can also forge records with correct hashes.

use std::fs;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde_json::{Value, json};

use super::*;
use crate::chain::{BodyFields, GENESIS_HASH, encode_line};
use crate::checkpoint::{CheckpointError, CheckpointSigner};
use crate::segments::segment_name;

/// One segment file: its name and its lines, each with its newline.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SegmentFile {
    name: String,
    lines: Vec<Vec<u8>>,
}

/// A log as files: segments and the checkpoint file.
#[derive(Debug, Clone)]
struct Log {
    segments: Vec<SegmentFile>,
    checkpoints: Vec<u8>,
}

impl Log {
    /// Writes the segments into `dir` (replacing any there) and the checkpoint file to
    /// `shipped`, outside the log directory, as an operator would keep it.
    fn write(&self, dir: &Path) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                fs::remove_file(path).unwrap();
            }
        }
        for segment in &self.segments {
            fs::write(dir.join(&segment.name), segment.lines.concat()).unwrap();
        }
    }

    /// The seq of each line, segment by segment.
    fn seqs(&self) -> Vec<Vec<u64>> {
        self.segments
            .iter()
            .map(|s| {
                s.lines
                    .iter()
                    .map(|l| crate::segments::line_seq(l).unwrap())
                    .collect()
            })
            .collect()
    }
}

/// Builds logs record by record.
struct Builder<'a> {
    signer: &'a CheckpointSigner,
    seq: u64,
    prev: String,
    millis: i64,
    log: Log,
}

impl<'a> Builder<'a> {
    fn new(signer: &'a CheckpointSigner) -> Self {
        let mut builder = Builder {
            signer,
            seq: 0,
            prev: GENESIS_HASH.to_owned(),
            millis: 1_790_000_000_000,
            log: Log {
                segments: vec![SegmentFile {
                    name: segment_name(1),
                    lines: Vec::new(),
                }],
                checkpoints: Vec::new(),
            },
        };
        builder.push(json!({"kind": "log_start", "format": "mandate-audit/1"}));
        builder
    }

    fn time(&self) -> Timestamp {
        Timestamp::from_millisecond(self.millis).unwrap()
    }

    /// Appends a record to the current segment; returns its hash.
    fn push(&mut self, body: Value) -> String {
        self.seq += 1;
        self.millis += 7;
        let line = encode_line(
            self.seq,
            &self.prev,
            self.time(),
            &BodyFields::new(&body).unwrap(),
        );
        self.log.segments.last_mut().unwrap().lines.push(line.bytes);
        self.prev = line.hash.clone();
        line.hash
    }

    /// Starts a new segment with its `segment_start` record.
    fn rotate(&mut self) {
        let previous = self.log.segments.last().unwrap().name.clone();
        self.log.segments.push(SegmentFile {
            name: segment_name(self.seq + 1),
            lines: Vec::new(),
        });
        self.push(json!({"kind": "segment_start", "previous_segment": previous}));
    }

    /// Appends a checkpoint record for the head, and its line in the checkpoint file.
    fn checkpoint(&mut self) {
        // Signed at the time the record is written, as the writer does.
        let at = Timestamp::from_millisecond(self.millis + 7).unwrap();
        let signed = self.signer.sign(self.seq, &self.prev, at);
        self.push(json!({
            "kind": "checkpoint",
            "checkpoint": signed.checkpoint,
            "signature": signed.signature,
        }));
        let mut line = serde_json::to_vec(&json!({
            "checkpoint": signed.checkpoint,
            "signature": signed.signature,
            "record_seq": self.seq,
        }))
        .unwrap();
        line.push(b'\n');
        self.log.checkpoints.extend_from_slice(&line);
    }

    fn call(&mut self, n: u64, edited: bool) {
        let mut body =
            json!({"kind": "decision", "call_id": format!("s:{n}"), "user": {"id": "alice"}});
        if edited {
            body["edited"] = json!(true);
        }
        self.push(body);
    }
}

/// The small log of these tests, 11 records in 3 segments, ending with a checkpoint as the
/// writer leaves a log it closes:
///
/// ```text
/// segment 1: 1 log_start, 2 session_start, 3 decision, 4 outcome
/// segment 2: 5 segment_start, 6 decision, 7 checkpoint (vouches for 6), 8 outcome
/// segment 3: 9 segment_start, 10 session_end, 11 checkpoint (vouches for 10)
/// ```
///
/// From seq `rewrite_from` on, records are edited and checkpoints left out, with every hash
/// recomputed: what someone rewriting the tail without the signing key would produce.
fn small_log(signer: &CheckpointSigner, rewrite_from: Option<u64>) -> Log {
    let mut b = Builder::new(signer);
    let edited = |b: &Builder<'_>| rewrite_from.is_some_and(|k| b.seq + 1 >= k);
    let checkpoint = |b: &mut Builder<'_>| {
        if !edited(b) {
            b.checkpoint();
        }
    };
    let e = edited(&b);
    b.push(json!({"kind": "session_start", "session_id": "s", "edited": e}));
    let e = edited(&b);
    b.call(3, e);
    let e = edited(&b);
    b.push(json!({"kind": "outcome", "call_id": "s:3", "edited": e}));
    b.rotate();
    let e = edited(&b);
    b.call(6, e);
    checkpoint(&mut b);
    let e = edited(&b);
    b.push(json!({"kind": "outcome", "call_id": "s:6", "edited": e}));
    b.rotate();
    let e = edited(&b);
    b.push(json!({"kind": "session_end", "session_id": "s", "edited": e}));
    checkpoint(&mut b);
    b.log
}

/// A log directory and, outside it, the shipped checkpoint file.
struct Fixture {
    _dir: tempfile::TempDir,
    log_dir: PathBuf,
    shipped: PathBuf,
}

impl Fixture {
    fn new(log: &Log) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log_dir = dir.path().join("log");
        fs::create_dir(&log_dir).unwrap();
        let shipped = dir.path().join("shipped-checkpoints.jsonl");
        fs::write(&shipped, &log.checkpoints).unwrap();
        log.write(&log_dir);
        Fixture {
            _dir: dir,
            log_dir,
            shipped,
        }
    }

    fn plain(&self) -> Result<VerifyReport, VerifyError> {
        verify_file(&self.log_dir)
    }

    fn with_key(&self, signer: &CheckpointSigner) -> Result<VerifyReport, VerifyError> {
        verify_log(
            &self.log_dir,
            &VerifyOptions {
                key: Some(signer.public_key()),
                ..VerifyOptions::default()
            },
        )
    }

    fn allowing_unsigned_tail(
        &self,
        signer: &CheckpointSigner,
    ) -> Result<VerifyReport, VerifyError> {
        verify_log(
            &self.log_dir,
            &VerifyOptions {
                key: Some(signer.public_key()),
                checkpoints: Some(self.shipped.clone()),
                progress: None,
                allow_unsigned_tail: true,
            },
        )
    }

    fn with_file(&self, signer: &CheckpointSigner) -> Result<VerifyReport, VerifyError> {
        verify_log(
            &self.log_dir,
            &VerifyOptions {
                key: Some(signer.public_key()),
                checkpoints: Some(self.shipped.clone()),
                progress: None,
                allow_unsigned_tail: false,
            },
        )
    }
}

fn bad_seq(result: Result<VerifyReport, VerifyError>) -> Option<u64> {
    match result {
        Ok(report) => panic!("a tampered log verified: {report:?}"),
        Err(error) => {
            let message = error.to_string();
            assert!(!message.ends_with('.'), "{message}");
            assert!(!message.starts_with(char::is_uppercase), "{message}");
            error.first_bad_seq()
        }
    }
}

#[test]
fn the_small_log_verifies_with_its_checkpoints() {
    let signer = CheckpointSigner::generate().unwrap();
    let log = small_log(&signer, None);
    assert_eq!(
        log.seqs(),
        vec![vec![1, 2, 3, 4], vec![5, 6, 7, 8], vec![9, 10, 11]]
    );
    let fixture = Fixture::new(&log);

    let report = fixture.plain().unwrap();
    assert_eq!(
        (report.records, report.first_seq, report.head_seq),
        (11, 1, 11)
    );
    assert_eq!((report.segments, report.origin), (3, Origin::LogStart));
    assert_eq!(report.checkpoints.in_log, 2);
    assert_eq!(report.checkpoints.key_id, None);
    assert_eq!(report.checkpoints.last_vouched_seq, None);

    let report = fixture.with_file(&signer).unwrap();
    let checkpoints = &report.checkpoints;
    assert_eq!(checkpoints.key_id.as_deref(), Some(signer.key_id()));
    assert_eq!(checkpoints.file.as_deref(), Some(fixture.shipped.as_path()));
    assert_eq!(
        (checkpoints.file_checkpoints, checkpoints.file_matched),
        (2, 2)
    );
    // The last checkpoint record (seq 11) vouches for seq 10, and the file says it is seq 11.
    assert_eq!(checkpoints.last_vouched_seq, Some(11));
    let bytes: usize = log.segments.iter().map(|s| s.lines.concat().len()).sum();
    assert_eq!(report.bytes, bytes as u64);
}

#[test]
fn every_changed_byte_is_detected_and_names_its_record() {
    let signer = CheckpointSigner::generate().unwrap();
    let log = small_log(&signer, None);
    let fixture = Fixture::new(&log);
    let seqs = log.seqs();
    let mut checked = 0;
    for (s, segment) in log.segments.iter().enumerate() {
        for (l, line) in segment.lines.iter().enumerate() {
            for position in 0..line.len() {
                let mut tampered = log.clone();
                tampered.segments[s].lines[l][position] ^= 0x01;
                tampered.write(&fixture.log_dir);
                // The chain alone catches a changed byte: every byte is hashed or framing.
                let result = fixture.plain();
                let seq = seqs[s][l];
                match result {
                    Err(VerifyError::NotALog(_)) => {
                        assert_eq!(seq, 1, "only line 1 can stop looking like a log")
                    }
                    other => assert_eq!(bad_seq(other), Some(seq), "byte {position} of seq {seq}"),
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 1000, "{checked}");
}

#[test]
fn every_deleted_line_is_detected_and_names_the_deleted_seq() {
    let signer = CheckpointSigner::generate().unwrap();
    let log = small_log(&signer, None);
    let fixture = Fixture::new(&log);
    let seqs = log.seqs();
    for (s, segment_seqs) in seqs.iter().enumerate() {
        for (l, &seq) in segment_seqs.iter().enumerate() {
            let mut tampered = log.clone();
            tampered.segments[s].lines.remove(l);
            tampered.write(&fixture.log_dir);
            let result = fixture.with_file(&signer);
            if seq == 11 {
                // The last record gone leaves a shorter chain that verifies on its own; the
                // checkpoint file knows that seq 11 was written.
                fixture.plain().unwrap();
                assert!(
                    matches!(result, Err(VerifyError::CutShort(_))),
                    "{result:?}"
                );
            }
            assert_eq!(bad_seq(result), Some(seq), "deleted seq {seq}");
        }
    }
}

#[test]
fn every_swapped_pair_of_lines_is_detected_and_names_the_first_moved_seq() {
    let signer = CheckpointSigner::generate().unwrap();
    let log = small_log(&signer, None);
    let fixture = Fixture::new(&log);
    let seqs = log.seqs();
    let places: Vec<(usize, usize)> = seqs
        .iter()
        .enumerate()
        .flat_map(|(s, lines)| (0..lines.len()).map(move |l| (s, l)))
        .collect();
    let mut pairs = 0;
    for (i, &(s1, l1)) in places.iter().enumerate() {
        for &(s2, l2) in &places[i + 1..] {
            let mut tampered = log.clone();
            let first = tampered.segments[s1].lines[l1].clone();
            let second = std::mem::replace(&mut tampered.segments[s2].lines[l2], first);
            tampered.segments[s1].lines[l1] = second;
            tampered.write(&fixture.log_dir);
            let seq = seqs[s1][l1];
            assert_eq!(
                bad_seq(fixture.plain()),
                Some(seq),
                "swapped seq {seq} with seq {}",
                seqs[s2][l2]
            );
            pairs += 1;
        }
    }
    assert_eq!(pairs, 11 * 10 / 2);
}

/// The log cut at byte `cut` of the concatenated segments: segments after the cut are gone.
fn truncated(log: &Log, mut cut: usize) -> Log {
    let mut out = log.clone();
    out.segments.clear();
    for segment in &log.segments {
        let bytes = segment.lines.concat();
        if cut == 0 {
            break;
        }
        let kept = &bytes[..cut.min(bytes.len())];
        cut -= kept.len();
        out.segments.push(SegmentFile {
            name: segment.name.clone(),
            lines: kept
                .split_inclusive(|&b| b == b'\n')
                .map(<[u8]>::to_vec)
                .collect(),
        });
    }
    out
}

#[test]
fn every_truncation_point_is_detected() {
    let signer = CheckpointSigner::generate().unwrap();
    let log = small_log(&signer, None);
    let fixture = Fixture::new(&log);
    let total: usize = log.segments.iter().map(|s| s.lines.concat().len()).sum();
    let mut boundaries = 0;
    for cut in 1..total {
        let tampered = truncated(&log, cut);
        tampered.write(&fixture.log_dir);
        let whole = tampered
            .segments
            .iter()
            .flat_map(|s| &s.lines)
            .filter(|l| l.ends_with(b"\n"))
            .count() as u64;
        let last = tampered.segments.last().unwrap();
        if last.lines.last().unwrap().ends_with(b"\n") {
            // Cut between records: the rest is a valid, shorter chain; only the checkpoint
            // file, which vouches for later records, shows that records were removed.
            boundaries += 1;
            assert_eq!(fixture.plain().unwrap().head_seq, whole);
            let error = fixture.with_file(&signer).unwrap_err();
            assert!(matches!(error, VerifyError::CutShort(_)), "{error}");
            assert_eq!(error.first_bad_seq(), Some(whole + 1));
            assert!(
                error.to_string().contains(&format!(
                    "ends at seq {whole} but checkpoint file `{}`",
                    fixture.shipped.display()
                )),
                "{error}"
            );
        } else {
            // Cut inside a record: the chain itself shows the torn record.
            assert_eq!(
                bad_seq(fixture.plain()),
                Some(whole + 1),
                "cut at byte {cut}"
            );
        }
    }
    assert_eq!(boundaries, 10);
}

#[test]
fn a_forged_record_appended_is_detected_unless_it_is_perfectly_linked() {
    let signer = CheckpointSigner::generate().unwrap();
    let log = small_log(&signer, None);
    let fixture = Fixture::new(&log);
    let head = fixture.plain().unwrap();
    let body = BodyFields::new(&json!({"kind": "decision", "forged": true})).unwrap();
    let at = Timestamp::from_millisecond(1_800_000_000_000).unwrap();
    let append = |line: Vec<u8>| {
        let mut tampered = log.clone();
        tampered.segments.last_mut().unwrap().lines.push(line);
        tampered.write(&fixture.log_dir);
    };

    // Linked to the wrong record, or claiming a seq already taken, or hashed wrongly.
    append(encode_line(12, GENESIS_HASH, at, &body).bytes);
    assert_eq!(bad_seq(fixture.plain()), Some(12));
    append(encode_line(11, &head.head_hash, at, &body).bytes);
    assert_eq!(bad_seq(fixture.plain()), Some(12));
    let mut wrong_hash = encode_line(12, &head.head_hash, at, &body).bytes;
    let len = wrong_hash.len();
    wrong_hash[len - 4] = if wrong_hash[len - 4] == b'0' {
        b'1'
    } else {
        b'0'
    };
    append(wrong_hash);
    assert_eq!(bad_seq(fixture.plain()), Some(12));

    // Linked perfectly and vouched for by a checkpoint signed with another key.
    let forger = CheckpointSigner::generate().unwrap();
    let forged = encode_line(12, &head.head_hash, at, &body);
    let signed = forger.sign(12, &forged.hash, at);
    let checkpoint = BodyFields::new(&json!({
        "kind": "checkpoint", "checkpoint": signed.checkpoint, "signature": signed.signature,
    }))
    .unwrap();
    let mut tampered = log.clone();
    let last = tampered.segments.last_mut().unwrap();
    last.lines.push(forged.bytes.clone());
    last.lines
        .push(encode_line(13, &forged.hash, at, &checkpoint).bytes);
    tampered.write(&fixture.log_dir);
    let error = fixture.with_key(&signer).unwrap_err();
    assert_eq!(error.first_bad_seq(), Some(13));
    assert!(
        matches!(&error, VerifyError::Broken(b) if matches!(
            b.problem,
            ChainProblem::Checkpoint(CheckpointProblem::Signature(CheckpointError::WrongKey { seq: 12, .. }))
        )),
        "{error:?}"
    );

    // A perfectly linked record after the last checkpoint, with no checkpoint of its own,
    // is what the writer itself would append next: nothing can tell it from a real one, so
    // with a key it is an unsigned tail, refused unless the user accepts one.
    append(forged.bytes);
    let error = fixture.with_file(&signer).unwrap_err();
    assert!(matches!(error, VerifyError::UnsignedTail(_)), "{error}");
    assert_eq!(error.first_bad_seq(), Some(12));
    let report = fixture.allowing_unsigned_tail(&signer).unwrap();
    assert_eq!(report.checkpoints.signed_through_seq, Some(11));
    assert_eq!(report.checkpoints.unsigned_tail, 1);
}

#[test]
fn a_checkpoint_file_catches_a_tail_rewritten_with_recomputed_hashes() {
    let signer = CheckpointSigner::generate().unwrap();
    let original = small_log(&signer, None);
    for k in 2..=11 {
        let rewritten = small_log(&signer, Some(k));
        // The shipped checkpoint file is the original's: the forger cannot change it.
        let fixture = Fixture::new(&Log {
            checkpoints: original.checkpoints.clone(),
            ..rewritten.clone()
        });
        assert_ne!(rewritten.segments, original.segments.clone(), "k = {k}");

        // The rewritten chain is valid, and the checkpoints left in it (all before k) are
        // genuine: the chain cannot tell, and the key only that the records from the first
        // rewritten one on are not signed.
        fixture.plain().unwrap();
        let error = fixture.with_key(&signer).unwrap_err();
        assert!(
            matches!(error, VerifyError::UnsignedTail(_)),
            "k = {k}: {error}"
        );
        assert!(error.first_bad_seq().unwrap() <= k, "k = {k}: {error}");

        // The checkpoint file can: its first checkpoint at or after k contradicts the log.
        let error = fixture.with_file(&signer).unwrap_err();
        let seq = error.first_bad_seq().unwrap();
        // Checkpoints vouch for seqs 6 and 10 and were written as records 7 and 11.
        let first_vouched = [6, 7, 10, 11].into_iter().find(|&s| s >= k).unwrap();
        assert_eq!(seq, first_vouched, "k = {k}: {error}");
        match &error {
            VerifyError::Rewritten(rewritten) => {
                let message = error.to_string();
                assert!(
                    message.contains(&format!("the log was rewritten from seq {seq} or earlier")),
                    "{message}"
                );
                assert_eq!(rewritten.file, fixture.shipped);
            }
            // Stripping the final checkpoint record leaves the log one record short.
            VerifyError::CutShort(short) => assert_eq!((k, short.vouched_seq), (11, 11)),
            other => panic!("k = {k}: {other}"),
        }
    }
}

#[test]
fn checkpoints_in_the_log_are_checked_against_the_chain_and_the_key() {
    let signer = CheckpointSigner::generate().unwrap();
    let stranger = CheckpointSigner::generate().unwrap();
    let log = small_log(&signer, None);
    let fixture = Fixture::new(&log);

    // Another key: the in-log checkpoint at seq 7 is refused, naming its seq.
    let error = fixture.with_key(&stranger).unwrap_err();
    assert_eq!(error.first_bad_seq(), Some(7));
    let message = error.to_string();
    assert!(message.contains("(seq 7)"), "{message}");
    assert!(message.contains("was signed by key"), "{message}");
    // And so is the checkpoint file, line 1.
    let error = verify_log(
        &fixture.log_dir,
        &VerifyOptions {
            key: Some(stranger.public_key()),
            checkpoints: Some(fixture.shipped.clone()),
            progress: None,
            allow_unsigned_tail: false,
        },
    )
    .unwrap_err();
    assert!(
        matches!(
            &error,
            VerifyError::CheckpointFile(CheckpointFileError::Signature { line: 1, .. })
        ),
        "{error:?}"
    );

    // Same key id, another signer: an invalid signature.
    let mut b = Builder::new(&signer);
    b.push(json!({"kind": "session_start"}));
    let mut signed = signer.sign(b.seq, &b.prev, b.time());
    signed.signature = stranger.sign(b.seq, &b.prev, b.time()).signature;
    b.push(json!({"kind": "checkpoint", "checkpoint": signed.checkpoint, "signature": signed.signature}));
    let forged = Fixture::new(&b.log);
    forged.plain().unwrap();
    let error = forged.with_key(&signer).unwrap_err();
    assert!(
        error.to_string().contains("has an invalid signature"),
        "{error}"
    );
    assert_eq!(error.first_bad_seq(), Some(3));

    // A checkpoint that vouches for another record than the one before it.
    let mut b = Builder::new(&signer);
    b.push(json!({"kind": "session_start"}));
    let stale = signer.sign(1, &b.prev, b.time());
    b.push(
        json!({"kind": "checkpoint", "checkpoint": stale.checkpoint, "signature": stale.signature}),
    );
    let wrong = Fixture::new(&b.log);
    let error = wrong.plain().unwrap_err();
    assert!(
        matches!(&error, VerifyError::Broken(b) if matches!(b.problem, ChainProblem::Checkpoint(CheckpointProblem::WrongHead { vouched_seq: 1, head_seq: 2, .. }))),
        "{error:?}"
    );
}

#[test]
fn the_checkpoint_file_is_found_in_the_log_directory_when_a_key_is_given() {
    let signer = CheckpointSigner::generate().unwrap();
    let log = small_log(&signer, None);
    let fixture = Fixture::new(&log);
    fs::write(fixture.log_dir.join(CHECKPOINT_FILE), &log.checkpoints).unwrap();
    let report = fixture.with_key(&signer).unwrap();
    assert_eq!(
        report.checkpoints.file,
        Some(fixture.log_dir.join(CHECKPOINT_FILE))
    );
    // Without a key the file is not read: it would prove nothing.
    assert_eq!(fixture.plain().unwrap().checkpoints.file, None);
    let error = verify_log(
        &fixture.log_dir,
        &VerifyOptions {
            checkpoints: Some(fixture.shipped.clone()),
            ..VerifyOptions::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(error, VerifyError::CheckpointsNeedKey(_)),
        "{error}"
    );

    // A damaged checkpoint file is refused, naming its line.
    let mut damaged = log.checkpoints.clone();
    damaged.extend_from_slice(b"{\"checkpoint\":\n");
    fs::write(&fixture.shipped, damaged).unwrap();
    let error = fixture.with_file(&signer).unwrap_err();
    assert!(
        matches!(
            &error,
            VerifyError::CheckpointFile(CheckpointFileError::Malformed { line: 3, .. })
        ),
        "{error:?}"
    );
}

/// 14 records in 4 segments; the last segment holds a retention record that removes the
/// first `removed` segments (each 4 records long).
fn retained_log(signer: &CheckpointSigner, removed: usize, claimed_hash: Option<&str>) -> Log {
    let mut b = Builder::new(signer);
    let mut ends = Vec::new();
    for segment in 0..3 {
        while b.seq < 4 * (segment + 1) {
            b.call(b.seq + 1, false);
        }
        ends.push((b.seq, b.prev.clone()));
        b.rotate();
    }
    if removed > 0 {
        let (through, hash) = ends[removed - 1].clone();
        let names: Vec<String> = (0..removed)
            .map(|i| b.log.segments[i].name.clone())
            .collect();
        b.push(json!({
            "kind": "retention",
            "removed_segments": names,
            "removed_through_seq": through,
            "removed_through_hash": claimed_hash.unwrap_or(&hash),
        }));
    }
    b.call(b.seq + 1, false);
    b.log
}

#[test]
fn a_log_trimmed_by_retention_verifies_from_its_oldest_segment() {
    let signer = CheckpointSigner::generate().unwrap();
    let log = retained_log(&signer, 2, None);
    assert_eq!(log.seqs()[3], vec![13, 14, 15]);

    // Written but not yet deleted: everything still verifies.
    let fixture = Fixture::new(&log);
    assert_eq!(fixture.plain().unwrap().origin, Origin::LogStart);

    // Deleted oldest first, as retention does; partly (a crash in between) or wholly.
    for gone in 1..=2 {
        let mut trimmed = log.clone();
        trimmed.segments.drain(..gone);
        trimmed.write(&fixture.log_dir);
        let report = fixture.plain().unwrap();
        assert_eq!(report.first_seq, 4 * gone as u64 + 1);
        assert_eq!(report.records, 15 - 4 * gone as u64);
        assert_eq!(
            report.origin,
            Origin::Retention {
                record_seq: 14,
                signed: false
            }
        );
    }
}

#[test]
fn segments_deleted_without_a_retention_record_are_named() {
    let signer = CheckpointSigner::generate().unwrap();
    let fixture = Fixture::new(&retained_log(&signer, 0, None));

    // The oldest segment gone, no retention record.
    let mut trimmed = retained_log(&signer, 0, None);
    trimmed.segments.remove(0);
    trimmed.write(&fixture.log_dir);
    let error = fixture.plain().unwrap_err();
    assert!(matches!(error, VerifyError::UnexplainedStart(_)), "{error}");
    assert_eq!(error.first_bad_seq(), Some(1));
    assert!(
        error.to_string().contains("starts at seq 5") && error.to_string().contains("seqs 1 to 4"),
        "{error}"
    );

    // Retention removed one segment; someone deleted the next one too.
    let mut trimmed = retained_log(&signer, 1, None);
    trimmed.segments.drain(..2);
    trimmed.write(&fixture.log_dir);
    let error = fixture.plain().unwrap_err();
    assert_eq!(error.first_bad_seq(), Some(5), "{error}");
    assert!(error.to_string().contains("seqs 5 to 8"), "{error}");

    // A segment in the middle gone: the chain breaks where it was.
    let mut holed = retained_log(&signer, 0, None);
    holed.segments.remove(1);
    holed.write(&fixture.log_dir);
    let error = fixture.plain().unwrap_err();
    assert!(
        matches!(&error, VerifyError::Broken(b) if b.seq == 5 && b.problem == ChainProblem::SeqOutOfOrder { expected: 5, found: 9 }),
        "{error:?}"
    );

    // A retention record whose hash is not the chain's.
    let wrong = "ab".repeat(32);
    let mut trimmed = retained_log(&signer, 1, Some(&wrong));
    trimmed.segments.remove(0);
    trimmed.write(&fixture.log_dir);
    let error = fixture.plain().unwrap_err();
    assert!(
        matches!(&error, VerifyError::Broken(b) if b.seq == 14 && matches!(b.problem, ChainProblem::Retention(RetentionProblem::HashMismatch { through: 4, .. }))),
        "{error:?}"
    );
}

#[test]
fn a_checkpoint_for_the_last_removed_record_is_held_against_the_oldest_link() {
    let signer = CheckpointSigner::generate().unwrap();
    let log = retained_log(&signer, 1, None);
    let fixture = Fixture::new(&log);
    // A checkpoint for seq 4, which retention removed: its hash survives as seq 5's prev_hash.
    let segment_one = &log.segments[0].lines;
    let hash4 = serde_json::from_slice::<Value>(&segment_one[3]).unwrap()["hash"]
        .as_str()
        .unwrap()
        .to_owned();
    // And one for the head, seq 15, which covers the retention record at seq 14: with a key,
    // only a signed retention record excuses the missing start.
    let last = log.segments.last().unwrap().lines.last().unwrap();
    let hash15 = serde_json::from_slice::<Value>(last).unwrap()["hash"]
        .as_str()
        .unwrap()
        .to_owned();
    let at = Timestamp::from_millisecond(1_790_000_000_000).unwrap();
    let write_file = |hash: &str| {
        let mut lines = Vec::new();
        for signed in [signer.sign(4, hash, at), signer.sign(15, &hash15, at)] {
            lines.extend(serde_json::to_vec(&signed).unwrap());
            lines.push(b'\n');
        }
        fs::write(&fixture.shipped, lines).unwrap();
    };
    let mut trimmed = log.clone();
    trimmed.segments.remove(0);
    trimmed.write(&fixture.log_dir);

    write_file(&hash4);
    let report = fixture.with_file(&signer).unwrap();
    assert_eq!(report.checkpoints.last_vouched_seq, Some(15));
    write_file(&"cd".repeat(32));
    let error = fixture.with_file(&signer).unwrap_err();
    assert!(matches!(error, VerifyError::Rewritten(_)), "{error}");
    assert_eq!(error.first_bad_seq(), Some(4));
}

#[test]
fn segment_files_must_start_as_the_layout_says() {
    let signer = CheckpointSigner::generate().unwrap();
    let log = small_log(&signer, None);
    let fixture = Fixture::new(&log);

    // Renamed.
    let mut renamed = log.clone();
    renamed.segments[2].name = segment_name(10);
    renamed.write(&fixture.log_dir);
    let error = fixture.plain().unwrap_err();
    assert!(
        matches!(&error, VerifyError::Broken(b) if b.problem == ChainProblem::Segment(SegmentProblem::Named { named: 10 })),
        "{error:?}"
    );

    // Empty.
    let mut empty = log.clone();
    empty.segments.push(SegmentFile {
        name: segment_name(12),
        lines: Vec::new(),
    });
    empty.write(&fixture.log_dir);
    let error = fixture.plain().unwrap_err();
    assert!(
        matches!(&error, VerifyError::Broken(b) if b.seq == 12 && b.problem == ChainProblem::Segment(SegmentProblem::Empty)),
        "{error:?}"
    );

    // Split in the middle: the new segment does not start with `segment_start`.
    let mut split = log.clone();
    let tail = split.segments[0].lines.split_off(2);
    split.segments.insert(
        1,
        SegmentFile {
            name: segment_name(3),
            lines: tail,
        },
    );
    split.write(&fixture.log_dir);
    let error = fixture.plain().unwrap_err();
    assert!(
        matches!(&error, VerifyError::Broken(b) if b.seq == 3 && b.problem == ChainProblem::Segment(SegmentProblem::NotSegmentStart { found: Some("decision".into()) })),
        "{error:?}"
    );

    // No segments at all.
    Log {
        segments: Vec::new(),
        checkpoints: Vec::new(),
    }
    .write(&fixture.log_dir);
    let error = fixture.plain().unwrap_err();
    assert!(
        matches!(&error, VerifyError::NotALog(n) if n.reason == NotALogReason::NoSegments),
        "{error:?}"
    );
}

#[test]
fn a_single_segment_file_verifies_on_its_own() {
    let signer = CheckpointSigner::generate().unwrap();
    let fixture = Fixture::new(&small_log(&signer, None));
    let first = verify_file(&fixture.log_dir.join(segment_name(1))).unwrap();
    assert_eq!(
        (first.first_seq, first.head_seq, first.origin),
        (1, 4, Origin::LogStart)
    );
    let later = verify_file(&fixture.log_dir.join(segment_name(5))).unwrap();
    assert_eq!(
        (later.first_seq, later.head_seq, later.origin),
        (5, 8, Origin::Unlinked)
    );
    assert_eq!(later.checkpoints.in_log, 1);
}

#[test]
fn progress_is_reported_up_to_the_total() {
    let signer = CheckpointSigner::generate().unwrap();
    let fixture = Fixture::new(&small_log(&signer, None));
    let seen = std::cell::RefCell::new(Vec::new());
    let progress = |done, total| seen.borrow_mut().push((done, total));
    let report = verify_log(
        &fixture.log_dir,
        &VerifyOptions {
            progress: Some(&progress),
            ..VerifyOptions::default()
        },
    )
    .unwrap();
    let seen = seen.into_inner();
    assert_eq!(seen.len(), 3, "one read per small segment: {seen:?}");
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0));
    assert_eq!(seen.last(), Some(&(report.bytes, report.bytes)));
}

/// Found by fuzzing (`fuzz/fuzz_targets/audit_mutate.rs`): the checkpoint file's `record_seq`
/// makes the verifier count the checkpoint record itself as vouched for
/// (`last_vouched_seq` = its seq, so `audit verify` says nothing is left to the chain alone),
/// but only the record's `checkpoint` and `signature` fields are compared with the file. Its
/// timestamp, or any field added to it, can be rewritten with the hashes recomputed and the log
/// still verifies with the key and the checkpoint file.
#[test]
fn a_rewritten_checkpoint_record_is_not_reported_as_vouched_for() {
    let signer = CheckpointSigner::generate().unwrap();
    let mut log = small_log(&signer, None);
    // Seq 11, the last record, is the checkpoint that vouches for seq 10.
    let last = log.segments.last_mut().unwrap();
    let record: Value = serde_json::from_slice(last.lines.last().unwrap()).unwrap();
    let prev = record["prev_hash"].as_str().unwrap().to_owned();
    let mut body = record.clone();
    for key in ["seq", "prev_hash", "timestamp", "hash"] {
        body.as_object_mut().unwrap().remove(key);
    }
    body["note"] = json!("inserted after the fact");
    let forged = encode_line(
        11,
        &prev,
        Timestamp::from_millisecond(1_800_000_000_000).unwrap(),
        &BodyFields::new(&body).unwrap(),
    );
    *last.lines.last_mut().unwrap() = forged.bytes;
    let fixture = Fixture::new(&log);

    match fixture.with_file(&signer) {
        Err(error) => assert_eq!(error.first_bad_seq(), Some(11), "{error}"),
        Ok(report) => {
            assert_eq!(report.head_seq, 11);
            assert!(
                report.checkpoints.last_vouched_seq < Some(11),
                "the rewritten record 11 is reported as vouched for: {:?}",
                report.checkpoints
            );
        }
    }
}

/// Found by fuzzing (`scripts/fuzz 900 audit_mutate`, issue 12 item 10), rebuilt here by hand:
/// the oldest segments removed and the rest renumbered, re-chained and renamed so that the
/// oldest one left starts at seq 0 (its file named for seq 0). Seqs start at 1, so no record
/// has seq 0, yet the log verified as starting with its `log_start` record, with a report whose
/// `first_seq` (0) is outside 1..=`head_seq`.
#[test]
fn a_log_renumbered_to_start_at_seq_zero_is_refused() {
    let mut prev = "ab".repeat(32);
    let mut lines = Vec::new();
    for (seq, body) in [
        (
            0,
            json!({"kind": "segment_start", "previous_segment": segment_name(1)}),
        ),
        (1, json!({"kind": "decision", "call_id": "s:1"})),
        (2, json!({"kind": "outcome", "call_id": "s:1"})),
    ] {
        let line = encode_line(
            seq,
            &prev,
            Timestamp::from_millisecond(1_790_000_000_000).unwrap(),
            &BodyFields::new(&body).unwrap(),
        );
        prev = line.hash.clone();
        lines.push(line.bytes);
    }
    let log = Log {
        segments: vec![SegmentFile {
            name: segment_name(0),
            lines,
        }],
        checkpoints: Vec::new(),
    };
    let fixture = Fixture::new(&log);
    assert_eq!(bad_seq(fixture.plain()), Some(0));
}

/// Issue 12 item 4: a line whose hash is right but which is not JSON was taken as a record by
/// the verifier, while `audit query` and the writer refused the log.
#[test]
fn a_hash_valid_line_that_is_not_json_is_refused_and_names_its_seq() {
    let signer = CheckpointSigner::generate().unwrap();
    let mut log = small_log(&signer, None);
    // Seq 3 (segment 1, line 3) rewritten as a line that is not JSON, with a correct hash; seq
    // 4 is re-linked to it, so only the JSON check can tell.
    let segment = &mut log.segments[0];
    let old: Value = serde_json::from_slice(&segment.lines[2]).unwrap();
    let prefix = format!(
        "{{\"seq\":3,\"prev_hash\":\"{}\",\"timestamp\":\"{}\",\"kind\":\"decision\",\"x\":tru",
        old["prev_hash"].as_str().unwrap(),
        old["timestamp"].as_str().unwrap()
    );
    let hash = crate::chain::hash_prefix(prefix.as_bytes());
    segment.lines[2] = format!("{prefix},\"hash\":\"{hash}\"}}\n").into_bytes();
    let mut next: Value = serde_json::from_slice(&segment.lines[3]).unwrap();
    let body = next.as_object_mut().unwrap();
    for key in ["seq", "prev_hash", "timestamp", "hash"] {
        body.remove(key);
    }
    let relinked = encode_line(
        4,
        &hash,
        Timestamp::from_millisecond(1_790_000_000_100).unwrap(),
        &BodyFields::new(&next).unwrap(),
    );
    segment.lines[3] = relinked.bytes;
    let fixture = Fixture::new(&log);
    let error = fixture.plain().unwrap_err();
    assert_eq!(error.first_bad_seq(), Some(3), "{error}");
    assert!(error.to_string().contains("malformed record"), "{error}");
}

/// A log of 3 segments with a signed checkpoint in each, from which the first `removed`
/// segments are gone and a keyless `retention` record, hash recomputed, accounts for them at
/// the end: issue 12 item 1's attack. With `checkpoint_after`, the writer's signed checkpoint
/// follows the retention record, as it does for a real one.
fn forged_retention(signer: &CheckpointSigner, checkpoint_after: bool) -> Log {
    let mut b = Builder::new(signer);
    let mut ends = Vec::new();
    for segment in 0..3u64 {
        while b.seq < 4 * (segment + 1) - 1 {
            b.call(b.seq + 1, false);
        }
        b.checkpoint();
        ends.push((b.seq, b.prev.clone()));
        if segment < 2 {
            b.rotate();
        }
    }
    let (through, hash) = ends[1].clone();
    let names: Vec<String> = b.log.segments[..2].iter().map(|s| s.name.clone()).collect();
    b.push(json!({
        "kind": "retention",
        "removed_segments": names,
        "removed_through_seq": through,
        "removed_through_hash": hash,
    }));
    if checkpoint_after {
        b.checkpoint();
    }
    b.log.segments.drain(..2);
    b.log
}

#[test]
fn a_forged_retention_record_is_refused_with_a_key() {
    let signer = CheckpointSigner::generate().unwrap();
    let fixture = Fixture::new(&forged_retention(&signer, false));

    // With the key (and with the shipped file, which vouches for the deleted records) the
    // missing start is not excused.
    for result in [fixture.with_key(&signer), fixture.with_file(&signer)] {
        let error = result.unwrap_err();
        assert_eq!(error.first_bad_seq(), Some(1), "{error}");
        assert!(
            error
                .to_string()
                .contains("retention record at seq 13 that accounts for seqs 1 to 8 is not covered by a signed checkpoint"),
            "{error}"
        );
    }
    // Without a key nothing can be checked: it verifies, and the report says so.
    let report = fixture.plain().unwrap();
    assert_eq!(
        report.origin,
        Origin::Retention {
            record_seq: 13,
            signed: false
        }
    );
}

#[test]
fn a_retention_record_covered_by_a_signed_checkpoint_excuses_the_missing_start() {
    let signer = CheckpointSigner::generate().unwrap();
    let fixture = Fixture::new(&forged_retention(&signer, true));
    for result in [fixture.with_key(&signer), fixture.with_file(&signer)] {
        let report = result.unwrap();
        assert_eq!(report.first_seq, 9);
        assert_eq!(
            report.origin,
            Origin::Retention {
                record_seq: 13,
                signed: true
            }
        );
    }
}

#[test]
fn a_retention_record_must_name_the_segments_it_removed() {
    let signer = CheckpointSigner::generate().unwrap();
    // Without a checkpoint after it, so that nothing but the check of the names can tell.
    let log = forged_retention(&signer, false);
    let fixture = Fixture::new(&log);
    fixture.plain().unwrap();
    for names in [
        json!([]),
        json!([segment_name(5)]),
        json!([segment_name(5), segment_name(1)]),
        json!(["../../etc/passwd"]),
        json!([segment_name(1), segment_name(9)]),
    ] {
        let mut forged = log.clone();
        let lines = &mut forged.segments[0].lines;
        let mut text = String::from_utf8(lines[4].clone()).unwrap();
        let record: Value = serde_json::from_str(&text).unwrap();
        let old = record["removed_segments"].to_string();
        text = text.replace(&old, &names.to_string());
        lines[4] = text.into_bytes();
        // Re-chained with the hashes recomputed: only the check of the names can tell.
        let mut prev = record["prev_hash"].as_str().unwrap().to_owned();
        for line in lines.iter_mut().skip(4) {
            let mut body: Value = serde_json::from_slice(line).unwrap();
            let seq = body["seq"].as_u64().unwrap();
            let at: Timestamp = body["timestamp"].as_str().unwrap().parse().unwrap();
            let object = body.as_object_mut().unwrap();
            for key in ["seq", "prev_hash", "timestamp", "hash"] {
                // `shift_remove` keeps `kind` first, where the fixed prefix wants it.
                object.shift_remove(key);
            }
            let encoded = encode_line(seq, &prev, at, &BodyFields::new(&body).unwrap());
            prev = encoded.hash;
            *line = encoded.bytes;
        }
        forged.write(&fixture.log_dir);
        let error = fixture.plain().unwrap_err();
        assert_eq!(error.first_bad_seq(), Some(13), "{names}: {error}");
        assert!(error.to_string().contains("removed_segments"), "{error}");
    }
}

#[test]
fn a_segment_a_retention_record_removed_must_not_still_exist() {
    let signer = CheckpointSigner::generate().unwrap();
    let fixture = Fixture::new(&forged_retention(&signer, true));
    // Not a regular file, so not listed as a segment, yet still there under the removed name.
    fs::create_dir(fixture.log_dir.join(segment_name(5))).unwrap();
    let error = fixture.with_file(&signer).unwrap_err();
    assert_eq!(error.first_bad_seq(), Some(13), "{error}");
    assert!(error.to_string().contains("which still exists"), "{error}");
}

/// Issue 12 item 5: a line over the record limit made `verify` stop there, so tampering
/// after it went unreported. Every problem is reported, in the order found, and the walk
/// resynchronises after each.
#[test]
fn two_tamperings_far_apart_one_an_oversized_line_are_both_reported() {
    let signer = CheckpointSigner::generate().unwrap();
    let mut b = Builder::new(&signer);
    while b.seq < 40 {
        b.call(b.seq + 1, false);
    }
    let mut log = b.log;
    let lines = &mut log.segments[0].lines;
    // Seq 5: a record whose hash is right but which is longer than any record may be.
    let old: Value = serde_json::from_slice(&lines[4]).unwrap();
    let prev = old["prev_hash"].as_str().unwrap();
    let at: Timestamp = old["timestamp"].as_str().unwrap().parse().unwrap();
    let pad = "x".repeat(crate::chain::MAX_RECORD_BYTES + 1);
    let body = json!({"kind": "decision", "call_id": "s:5", "pad": pad});
    lines[4] = encode_line(5, prev, at, &BodyFields::new(&body).unwrap()).bytes;
    // Seq 35: one byte changed, far after it.
    let text = String::from_utf8(lines[34].clone()).unwrap();
    lines[34] = text.replace("alice", "alicf").into_bytes();
    let fixture = Fixture::new(&log);

    let verification = verify_log_all(&fixture.log_dir, &VerifyOptions::default()).unwrap();
    let found: Vec<(Option<u64>, String)> = verification
        .problems
        .iter()
        .map(|p| (p.first_bad_seq(), p.to_string()))
        .collect();
    assert_eq!(
        found.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(),
        [Some(5), Some(35)],
        "{found:#?}"
    );
    assert!(found[0].1.contains("longer than"), "{}", found[0].1);
    assert!(found[1].1.contains("hash does not match"), "{}", found[1].1);
    assert_eq!(verification.first_bad_seq(), Some(5));
    // The records around them were all walked.
    assert_eq!(verification.report.head_seq, 40);
    assert_eq!(verification.report.records, 38);
    // `verify_log` still names the first.
    assert_eq!(bad_seq(fixture.plain()), Some(5));
}
