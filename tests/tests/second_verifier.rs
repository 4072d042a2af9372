//! The second verifier (`verifiers/python/mandate_verify.py`, written from
//! `docs/audit-log-format.md` alone) against `mandate audit verify` on logs the real writer wrote
//! and on every case of one mutation suite: both must give the same exit code, the same first
//! bad seq and the same set of problem seqs (each verifier reports every problem, in
//! `--format json`). A disagreement means the specification is incomplete or one verifier is
//! wrong, and fails the test.
//!
//! Each case states what the SPECIFICATION expects of the exit code and the first bad seq.
//!
//! The test needs `python3` with the `cryptography` package; `scripts/test` installs it. Without
//! it the test prints a loud reason and checks nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use mandate::audit::{
    AuditConfig, AuditLog, CHECKPOINT_FILE, CheckpointSigner, Retention, list_segments,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// `,"hash":"` + 64 hex + `"}`: what follows the hashed bytes (before the newline).
const SUFFIX_LEN: usize = 75;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn python_verifier() -> PathBuf {
    repo_root().join("verifiers/python/mandate_verify.py")
}

/// Whether `python3` can run the second verifier; prints why not.
fn python_ready() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import cryptography"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!(
            "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
             SKIPPED: `python3 -c 'import cryptography'` failed: the second verifier cannot\n\
             run. Install it (`python3 -m pip install cryptography`; scripts/test does).\n\
             !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
        );
    }
    ok
}

/// The `mandate` binary cargo built beside this test (`target/<profile>/mandate`), or the one
/// `MANDATE_BIN` names (to hold another build against the same suite).
fn mandate_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("MANDATE_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let bin = dir.join("mandate");
    assert!(
        bin.is_file(),
        "`{}` is missing: run with `cargo test --workspace`",
        bin.display()
    );
    bin
}

/// Exit code, first bad seq and the seqs of every problem of one verifier run.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Verdict {
    code: i32,
    first_bad_seq: Option<u64>,
    /// The distinct seqs of `problems`, sorted (`None` for a problem with no seq). Left out of
    /// what the spec expects of a case (see [`expect`]).
    problem_seqs: Option<Vec<Option<u64>>>,
}

/// The verdict of a run with `--format json`: anything but one JSON object on stdout is a
/// failure of the verifier.
fn verdict_of(who: &str, output: &std::process::Output) -> Verdict {
    let code = output.status.code().unwrap_or(-1);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "{who} did not print one JSON object ({e}):\nstdout: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let mut seqs: Vec<Option<u64>> = report["problems"]
        .as_array()
        .map(|problems| problems.iter().map(|p| p["seq"].as_u64()).collect())
        .unwrap_or_default();
    seqs.sort();
    seqs.dedup();
    Verdict {
        code,
        first_bad_seq: report["first_bad_seq"].as_u64(),
        problem_seqs: Some(seqs),
    }
}

struct Args<'a> {
    key: Option<&'a Path>,
    checkpoints: Option<&'a Path>,
    allow_unsigned_tail: bool,
}

impl Args<'_> {
    fn list(&self, log: &Path) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(key) = self.key {
            out.extend(["--key".to_owned(), key.display().to_string()]);
        }
        if let Some(file) = self.checkpoints {
            out.extend(["--checkpoints".to_owned(), file.display().to_string()]);
        }
        if self.allow_unsigned_tail {
            out.push("--allow-unsigned-tail".to_owned());
        }
        out.push(log.display().to_string());
        out
    }
}

/// The verdict of `mandate audit verify --format json`.
fn run_mandate(log: &Path, args: &Args<'_>) -> Verdict {
    let mut list = vec!["audit".to_owned(), "verify".to_owned()];
    list.extend(["--format".to_owned(), "json".to_owned()]);
    list.extend(args.list(log));
    verdict_of(
        "mandate",
        &Command::new(mandate_binary()).args(&list).output().unwrap(),
    )
}

fn run_python(log: &Path, args: &Args<'_>) -> Verdict {
    let mut list = vec![
        python_verifier().display().to_string(),
        "--format".to_owned(),
        "json".to_owned(),
    ];
    list.extend(args.list(log));
    verdict_of(
        "the Python verifier",
        &Command::new("python3").args(&list).output().unwrap(),
    )
}

/// A log of `records` appended records (plus what the writer adds), rotated every ~2 KB,
/// checkpointed every 5 records and at close.
fn write_log(dir: &Path, signer: &Arc<CheckpointSigner>, records: u64, keep: Option<usize>) {
    let config = AuditConfig {
        segment_max_bytes: 2048,
        checkpoint_signer: Some(Arc::clone(signer)),
        checkpoint_every_records: 5,
        retention: Retention {
            keep_segments: keep,
            max_age: None,
        },
        ..AuditConfig::default()
    };
    let log = AuditLog::open_with(dir, config).unwrap();
    for n in 0..records {
        log.append(&json!({
            "kind": "decision",
            "call_id": format!("sess-1:{n}"),
            "user": {"id": "bob"},
            "action": {"tool": "read_document", "arguments": {"document_id": format!("doc_{n}"), "n": 1e20}},
        }))
        .unwrap();
    }
    log.close().unwrap();
}

/// A log as its segments' lines (without their newlines), to mutate and write back.
struct Lines {
    dir: PathBuf,
    segments: Vec<(PathBuf, Vec<Vec<u8>>)>,
}

impl Lines {
    fn read(dir: &Path) -> Self {
        let segments = list_segments(dir)
            .unwrap()
            .into_iter()
            .map(|s| {
                let bytes = std::fs::read(&s.path).unwrap();
                let mut lines: Vec<Vec<u8>> =
                    bytes.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
                assert_eq!(lines.pop(), Some(Vec::new()));
                (s.path, lines)
            })
            .collect();
        Lines {
            dir: dir.to_path_buf(),
            segments,
        }
    }

    fn write(&self) {
        for segment in list_segments(&self.dir).unwrap() {
            std::fs::remove_file(segment.path).unwrap();
        }
        for (path, lines) in &self.segments {
            let mut bytes = Vec::new();
            for line in lines {
                bytes.extend_from_slice(line);
                bytes.push(b'\n');
            }
            std::fs::write(path, bytes).unwrap();
        }
    }

    /// (segment index, line index) of the record at `seq`.
    fn at(&self, seq: u64) -> (usize, usize) {
        for (s, (_, lines)) in self.segments.iter().enumerate() {
            for (l, line) in lines.iter().enumerate() {
                if seq_of(line) == seq {
                    return (s, l);
                }
            }
        }
        panic!("no record at seq {seq}")
    }

    fn line_mut(&mut self, seq: u64) -> &mut Vec<u8> {
        let (s, l) = self.at(seq);
        &mut self.segments[s].1[l]
    }

    fn all(&self) -> Vec<&Vec<u8>> {
        self.segments.iter().flat_map(|(_, l)| l.iter()).collect()
    }

    fn head_seq(&self) -> u64 {
        seq_of(self.all().last().unwrap())
    }

    /// Seqs of the records of `kind`.
    fn seqs_of(&self, kind: &str) -> Vec<u64> {
        let needle = format!("\"kind\":\"{kind}\"");
        self.all()
            .into_iter()
            .filter(|l| l.windows(needle.len()).any(|w| w == needle.as_bytes()))
            .map(|l| seq_of(l))
            .collect()
    }

    /// Renumbers every record from the first one's seq, relinks and rehashes them all, and
    /// renames the segments (and their `previous_segment` fields) to match: what an attacker
    /// without the signing key does after an edit.
    fn rechain(&mut self) {
        let first = self.all().first().map(|l| seq_of(l)).unwrap();
        let mut prev: Option<String> = None;
        let mut previous_name: Option<String> = None;
        let mut seq = first;
        for (path, lines) in &mut self.segments {
            let name = format!("segment-{seq:020}.jsonl");
            *path = path.with_file_name(&name);
            for (at, line) in lines.iter_mut().enumerate() {
                if at == 0
                    && let Some(previous) = &previous_name
                {
                    *line = with_previous_segment(line, previous);
                }
                let prev_hash = prev.clone().unwrap_or_else(|| prev_hash_of(line));
                *line = with_seq_and_prev(line, seq, &prev_hash);
                prev = Some(hash_of(line));
                seq += 1;
            }
            previous_name = Some(name);
        }
    }
}

fn with_previous_segment(line: &[u8], previous: &str) -> Vec<u8> {
    let text = String::from_utf8(line.to_vec()).unwrap();
    let key = "\"previous_segment\":\"";
    let Some(at) = text.find(key) else {
        return line.to_vec();
    };
    let start = at + key.len();
    let end = start + text[start..].find('"').unwrap();
    format!("{}{previous}{}", &text[..start], &text[end..]).into_bytes()
}

fn seq_of(line: &[u8]) -> u64 {
    let text = std::str::from_utf8(&line[7..]).unwrap();
    text.split(',').next().unwrap().parse().unwrap()
}

fn prev_hash_of(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let at = text.find("\"prev_hash\":\"").unwrap() + 13;
    text[at..at + 64].to_owned()
}

fn hash_of(line: &[u8]) -> String {
    String::from_utf8(line[line.len() - 66..line.len() - 2].to_vec()).unwrap()
}

/// The line with its hash recomputed over its (changed) bytes.
fn rehash(line: &[u8]) -> Vec<u8> {
    let prefix = &line[..line.len() - SUFFIX_LEN];
    let hash = hex::encode(Sha256::digest(prefix));
    let mut out = prefix.to_vec();
    out.extend_from_slice(format!(",\"hash\":\"{hash}\"}}").as_bytes());
    out
}

fn with_seq_and_prev(line: &[u8], seq: u64, prev_hash: &str) -> Vec<u8> {
    let text = String::from_utf8(line.to_vec()).unwrap();
    let at = text.find(",\"prev_hash\":\"").unwrap();
    let rest = &text[at + 14 + 64..];
    rehash(format!("{{\"seq\":{seq},\"prev_hash\":\"{prev_hash}{rest}").as_bytes())
}

fn replace(line: &[u8], from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8(line.to_vec()).unwrap();
    assert!(text.contains(from), "`{from}` not in {text}");
    text.replacen(from, to, 1).into_bytes()
}

/// What the specification says a verifier must answer.
fn expect(code: i32, first_bad_seq: Option<u64>) -> Verdict {
    Verdict {
        code,
        first_bad_seq,
        problem_seqs: None,
    }
}

/// What the spec says of a verdict: its exit code and first bad seq.
fn spec_part(verdict: &Verdict) -> Verdict {
    expect(verdict.code, verdict.first_bad_seq)
}

struct Case {
    name: &'static str,
    log: PathBuf,
    key: bool,
    shipped: bool,
    allow_unsigned_tail: bool,
    expected: Verdict,
}

struct Suite {
    root: tempfile::TempDir,
    signer: Arc<CheckpointSigner>,
    public: PathBuf,
    cases: Vec<Case>,
}

impl Suite {
    fn new() -> Self {
        // MANDATE_KEEP_LOGS=1 keeps the mutated logs for a look after a failure.
        let root = tempfile::Builder::new()
            .disable_cleanup(std::env::var_os("MANDATE_KEEP_LOGS").is_some())
            .tempdir()
            .unwrap();
        eprintln!("logs in {}", root.path().display());
        let signer = Arc::new(CheckpointSigner::generate().unwrap());
        let public = root.path().join("checkpoint.pub");
        signer
            .save(&root.path().join("checkpoint.key"), &public)
            .unwrap();
        Suite {
            root,
            signer,
            public,
            cases: Vec::new(),
        }
    }

    /// A fresh log (and a shipped copy of its checkpoint file), mutated by `mutate`.
    fn case(
        &mut self,
        name: &'static str,
        expected: impl FnOnce(&Lines) -> Verdict,
        mutate: impl FnOnce(&mut Lines),
    ) -> &mut Case {
        self.case_with(name, None, expected, mutate)
    }

    fn case_with(
        &mut self,
        name: &'static str,
        keep: Option<usize>,
        expected: impl FnOnce(&Lines) -> Verdict,
        mutate: impl FnOnce(&mut Lines),
    ) -> &mut Case {
        let log = self.root.path().join(name);
        write_log(&log, &self.signer, 40, keep);
        std::fs::copy(log.join(CHECKPOINT_FILE), self.shipped(name)).unwrap();
        let mut lines = Lines::read(&log);
        mutate(&mut lines);
        let expected = expected(&lines);
        lines.write();
        self.cases.push(Case {
            name,
            log,
            key: false,
            shipped: false,
            allow_unsigned_tail: false,
            expected,
        });
        self.cases.last_mut().unwrap()
    }

    /// A copy of the segments of `source` (a log the guard wrote), mutated by `mutate`.
    fn copied_case(
        &mut self,
        name: &'static str,
        source: &Path,
        expected: impl FnOnce(&Lines) -> Verdict,
        mutate: impl FnOnce(&mut Lines),
    ) -> &mut Case {
        let log = self.root.path().join(name);
        std::fs::create_dir_all(&log).unwrap();
        for segment in list_segments(source).unwrap() {
            std::fs::copy(&segment.path, log.join(segment.path.file_name().unwrap())).unwrap();
        }
        let mut lines = Lines::read(&log);
        mutate(&mut lines);
        let expected = expected(&lines);
        lines.write();
        self.cases.push(Case {
            name,
            log,
            key: false,
            shipped: false,
            allow_unsigned_tail: false,
            expected,
        });
        self.cases.last_mut().unwrap()
    }

    fn shipped(&self, name: &str) -> PathBuf {
        self.root.path().join(format!("{name}.shipped.jsonl"))
    }
}

impl Case {
    fn key(&mut self) -> &mut Self {
        self.key = true;
        self
    }
    fn shipped(&mut self) -> &mut Self {
        self.key = true;
        self.shipped = true;
        self
    }
}

fn mutation_suite() -> Suite {
    let mut s = Suite::new();
    let ok = |_: &Lines| expect(0, None);
    s.case("intact", ok, |_| {});
    s.case("intact_with_key", ok, |_| {}).shipped();
    s.case_with("retention_by_the_writer", Some(2), ok, |_| {})
        .shipped();
    s.case(
        "a_changed_byte",
        |_| expect(1, Some(10)),
        |l| {
            let line = replace(l.line_mut(10), "\"bob\"", "\"rob\"");
            *l.line_mut(10) = line;
        },
    );
    s.case(
        "a_changed_record_rehashed",
        |_| expect(1, Some(11)),
        |l| {
            let line = rehash(&replace(l.line_mut(10), "\"bob\"", "\"rob\""));
            *l.line_mut(10) = line;
        },
    );
    s.case(
        "a_deleted_record",
        |_| expect(1, Some(12)),
        |l| {
            let (seg, at) = l.at(12);
            l.segments[seg].1.remove(at);
        },
    );
    s.case(
        "an_inserted_record",
        |_| expect(1, Some(13)),
        |l| {
            let (seg, at) = l.at(12);
            let copy = l.segments[seg].1[at].clone();
            l.segments[seg].1.insert(at + 1, copy);
        },
    );
    s.case(
        "reordered_records",
        |_| expect(1, Some(12)),
        |l| {
            let (seg, at) = l.at(12);
            if l.segments[seg].1.len() <= at + 1 {
                panic!("record 12 ends its segment: pick another");
            }
            l.segments[seg].1.swap(at, at + 1);
        },
    );
    s.case(
        "a_torn_last_line",
        |l| expect(1, Some(l.head_seq())),
        |l| {
            let last = l.segments.last_mut().unwrap();
            let line = last.1.pop().unwrap();
            // Written back with a newline by `write`, so cut it inside and mark it torn below.
            last.1.push(line[..line.len() / 2].to_vec());
        },
    );
    s.case(
        "a_removed_middle_segment",
        |l| expect(1, Some(seq_of(l.segments[1].1.last().unwrap()) + 1)),
        |l| {
            std::fs::remove_file(&l.segments[2].0).unwrap();
            l.segments.remove(2);
        },
    );
    s.case(
        "a_removed_first_segment_without_retention",
        |_| expect(1, Some(1)),
        |l| {
            std::fs::remove_file(&l.segments[0].0).unwrap();
            l.segments.remove(0);
        },
    );
    s.case(
        "records_cut_from_the_end_with_a_shipped_file",
        |l| expect(1, Some(l.head_seq() + 1)),
        cut_two_from_the_end,
    )
    .shipped();
    s.case(
        "records_cut_from_the_end_without_a_key",
        |_| expect(0, None),
        cut_two_from_the_end,
    );
    s.case(
        "a_rechained_edit_is_caught_by_the_next_checkpoint",
        |l| {
            let next = l.seqs_of("checkpoint").into_iter().find(|&c| c > 20);
            expect(1, next)
        },
        |l| {
            let line = replace(l.line_mut(20), "\"bob\"", "\"rob\"");
            *l.line_mut(20) = line;
            l.rechain();
        },
    );
    s.case(
        "a_forged_checkpoint_signature",
        |l| expect(1, Some(l.seqs_of("checkpoint")[1])),
        |l| {
            let seq = l.seqs_of("checkpoint")[1];
            let line = l.line_mut(seq).clone();
            let text = String::from_utf8(line).unwrap();
            let at = text.find("\"signature\":\"").unwrap() + 13;
            let flipped = if &text[at..=at] == "0" { "1" } else { "0" };
            let forged = format!("{}{flipped}{}", &text[..at], &text[at + 1..]);
            *l.line_mut(seq) = forged.into_bytes();
            l.rechain();
        },
    )
    .key();
    s.case(
        "a_forged_line_in_the_shipped_checkpoint_file",
        |_| expect(1, None),
        |_| {},
    )
    .shipped();
    s.case(
        "a_crlf_line_ending",
        |_| expect(1, Some(5)),
        |l| {
            let line = l.line_mut(5);
            line.push(b'\r');
        },
    );
    s.case(
        "an_uppercase_hash",
        |_| expect(1, Some(7)),
        |l| {
            let line = l.line_mut(7);
            let n = line.len();
            line[n - 66..n - 2].make_ascii_uppercase();
        },
    );
    // Item 4: a hash-valid line that is not JSON.
    s.case(
        "a_hash_valid_line_that_is_not_json",
        |_| expect(1, Some(15)),
        |l| {
            let line = replace(l.line_mut(15), "\"user\":{", "\"user\":{{");
            *l.line_mut(15) = line;
            l.rechain();
        },
    );
    s.case(
        "a_hash_valid_line_with_a_duplicate_key",
        |_| expect(1, Some(15)),
        |l| {
            let line = replace(
                l.line_mut(15),
                "\"user\":{",
                "\"kind\":\"outcome\",\"user\":{",
            );
            *l.line_mut(15) = line;
            l.rechain();
        },
    );
    // Item 5: over MAX_RECORD_BYTES (16 MiB) with a valid hash.
    s.case(
        "a_hash_valid_line_over_the_record_limit",
        |_| expect(1, Some(15)),
        |l| {
            let pad = "x".repeat(16 * 1024 * 1024);
            let line = replace(
                l.line_mut(15),
                "\"user\":{",
                &format!("\"pad\":\"{pad}\",\"user\":{{"),
            );
            *l.line_mut(15) = line;
            l.rechain();
        },
    );
    // Item 3: every checkpoint stripped, the log re-chained, the in-log checkpoint file gone.
    s.case(
        "stripped_checkpoints_with_a_key",
        |_| expect(1, Some(1)),
        |l| {
            for (_, lines) in &mut l.segments {
                lines.retain(|line| {
                    !String::from_utf8_lossy(line).contains("\"kind\":\"checkpoint\"")
                });
            }
            l.segments.retain(|(_, lines)| !lines.is_empty());
            l.rechain();
            std::fs::remove_file(l.dir.join(CHECKPOINT_FILE)).unwrap();
        },
    )
    .key();
    s.case(
        "an_unsigned_tail_with_a_key",
        |l| expect(1, Some(l.head_seq())),
        |l| {
            let decision = *l.seqs_of("decision").last().unwrap();
            let line = l.line_mut(decision).clone();
            l.segments.last_mut().unwrap().1.push(line);
            l.rechain();
        },
    )
    .key();
    // Item 1: the oldest segments deleted, a keyless retention record appended.
    s.case(
        "a_forged_retention_with_a_shipped_file",
        |_| expect(1, Some(1)),
        forge_retention,
    )
    .shipped();
    s.case(
        "a_forged_retention_without_a_key",
        |_| expect(0, None),
        forge_retention,
    );
    s.case(
        "a_forged_retention_naming_the_wrong_segments",
        |l| expect(1, l.seqs_of("retention").last().copied()),
        |l| {
            forge_retention(l);
            let seq = l.head_seq();
            let line = l.line_mut(seq).clone();
            let text = String::from_utf8(line).unwrap();
            // The second removed segment named first: out of order.
            let value: Value = serde_json::from_str(&text).unwrap();
            let names = value["removed_segments"].to_string();
            let mut swapped: Vec<Value> = serde_json::from_str(&names).unwrap();
            swapped.reverse();
            let forged = text.replace(&names, &Value::from(swapped).to_string());
            *l.line_mut(seq) = rehash(forged.trim_end().as_bytes());
        },
    );
    // Item 5: one tampering hidden no longer hides the next: an oversized line and, far
    // after it, a changed byte are both reported.
    s.case(
        "two_tamperings_far_apart_one_an_oversized_line",
        |_| expect(1, Some(8)),
        |l| {
            let pad = "x".repeat(16 * 1024 * 1024);
            let line = replace(
                l.line_mut(8),
                "\"kind\":",
                &format!("\"pad\":\"{pad}\",\"kind\":"),
            );
            *l.line_mut(8) = line;
            let line = replace(l.line_mut(35), "\"timestamp\":\"20", "\"timestamp\":\"21");
            *l.line_mut(35) = line;
        },
    );

    // A log the guard itself wrote: sessions, decisions, outcomes, a refused unknown tool.
    let env = common::Env::example();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(env.script(json!([
            common::read_call("doc_88pk3r"),
            common::read_call("doc_missing"),
            {"tool": "no_such_tool", "arguments": {}},
        ])));
    let guard_log = env.audit_path.clone();
    s.copied_case("a_log_the_guard_wrote", &guard_log, ok, |_| {});
    s.copied_case(
        "a_guard_decision_changed",
        &guard_log,
        |_| expect(1, Some(3)),
        |l| {
            let line = replace(l.line_mut(3), "doc_88pk3r", "doc_88pk3s");
            *l.line_mut(3) = line;
        },
    );
    s
}

/// Cuts the last two records at a line boundary, keeping the last segment non-empty.
fn cut_two_from_the_end(l: &mut Lines) {
    if l.segments.last().unwrap().1.len() <= 2 {
        let (path, _) = l.segments.pop().unwrap();
        std::fs::remove_file(path).unwrap();
    }
    let last = l.segments.last_mut().unwrap();
    last.1.truncate(last.1.len() - 2);
}

fn forge_retention(l: &mut Lines) {
    let removed: Vec<String> = l.segments[..2]
        .iter()
        .map(|(p, _)| p.file_name().unwrap().to_str().unwrap().to_owned())
        .collect();
    for (path, _) in l.segments.drain(..2) {
        std::fs::remove_file(path).unwrap();
    }
    let first = &l.segments[0].1[0];
    let through = seq_of(first) - 1;
    let through_hash = prev_hash_of(first);
    let last = l.all().last().unwrap().to_vec();
    let head = seq_of(&last);
    let body = json!({
        "kind": "retention",
        "removed_segments": removed,
        "removed_through_seq": through,
        "removed_through_hash": through_hash,
    })
    .to_string();
    let line = format!(
        "{{\"seq\":{},\"prev_hash\":\"{}\",\"timestamp\":\"2026-12-05T10:00:00.000Z\",{},\"hash\":\"{}\"}}",
        head + 1,
        hash_of(&last),
        &body[1..body.len() - 1],
        "0".repeat(64)
    );
    l.segments
        .last_mut()
        .unwrap()
        .1
        .push(rehash(line.as_bytes()));
}

#[test]
fn the_second_verifier_agrees_with_mandate_on_every_mutation_case() {
    if !python_ready() {
        return;
    }
    let suite = mutation_suite();
    let mut failures = Vec::new();
    for case in &suite.cases {
        if case.name == "a_torn_last_line" {
            // `Lines::write` ended the cut line with a newline: take it off.
            let last = list_segments(&case.log).unwrap().pop().unwrap().path;
            let mut bytes = std::fs::read(&last).unwrap();
            bytes.pop();
            std::fs::write(&last, bytes).unwrap();
        }
        let shipped = suite.shipped(case.name);
        if case.name == "a_forged_line_in_the_shipped_checkpoint_file" {
            let text = std::fs::read_to_string(&shipped).unwrap();
            let at = text.find("\"signature\":\"").unwrap() + 13;
            let flipped = if &text[at..=at] == "0" { "1" } else { "0" };
            let forged = format!("{}{flipped}{}", &text[..at], &text[at + 1..]);
            std::fs::write(&shipped, forged).unwrap();
        }
        let args = Args {
            key: case.key.then_some(suite.public.as_path()),
            checkpoints: case.shipped.then_some(shipped.as_path()),
            allow_unsigned_tail: case.allow_unsigned_tail,
        };
        let python = run_python(&case.log, &args);
        let rust = run_mandate(&case.log, &args);
        eprintln!(
            "{:<55} spec {:?}\n{:<55} python {:?}\n{:<55} mandate {:?}",
            case.name, case.expected, "", python, "", rust
        );
        if spec_part(&python) != case.expected {
            failures.push(format!(
                "{}: the Python verifier says {python:?}, the spec {:?}",
                case.name, case.expected
            ));
        }
        if rust != python {
            failures.push(format!(
                "{}: mandate says {rust:?}, Python {python:?}",
                case.name
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    let _ = &suite.signer;
}

#[test]
fn the_second_verifier_s_own_tests_pass_with_the_rfc_8785_vectors() {
    if !python_ready() {
        return;
    }
    let output = Command::new("python3")
        .args(["-m", "unittest", "discover", "-s"])
        .arg(repo_root().join("verifiers/python"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The checked-in test vectors of `docs/test-vectors/` (see its README).
fn vectors_dir() -> PathBuf {
    repo_root().join("docs/test-vectors")
}

/// The fixed Ed25519 seed of the vectors' checkpoint key: a published test key, never a real one.
const VECTOR_SIGNING_SEED: [u8; 32] = [0x11; 32];
/// The fixed redaction salt key of the vectors: a published test key.
const VECTOR_SALT_KEY: [u8; 32] = [0x22; 32];
const VECTOR_CALL_ID: &str = "sess_vectors:1";
const VECTOR_PATH: &str = "arguments.body";

fn vector_value() -> Value {
    json!({"text": "Quarterly numbers", "amount": 1e20, "ratio": 0.1, "€": [1e21, -0.0, "\u{7f}"]})
}

/// Writes `docs/test-vectors/` anew with the real writer and signer:
/// `cargo test --workspace --test second_verifier -- --ignored regenerate`. Timestamps change,
/// so regenerate only when the format does.
#[test]
#[ignore = "rewrites docs/test-vectors; run by hand when the format changes"]
fn regenerate_the_test_vectors() {
    let dir = vectors_dir();
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let keys = tempfile::tempdir().unwrap();
    let seed_file = keys.path().join("seed.key");
    std::fs::write(
        &seed_file,
        format!(
            "mandate-ed25519-signing:{}\n",
            hex::encode(VECTOR_SIGNING_SEED)
        ),
    )
    .unwrap();
    let signer = Arc::new(CheckpointSigner::load(&seed_file).unwrap());
    signer
        .save(&dir.join("checkpoint.key"), &dir.join("checkpoint.pub"))
        .unwrap();
    let salt = mandate::pipeline::RedactionKey::from_bytes(VECTOR_SALT_KEY);
    salt.save(&dir.join("salt.key")).unwrap();

    let log_dir = dir.join("log");
    let config = AuditConfig {
        segment_max_bytes: 1500,
        checkpoint_signer: Some(Arc::clone(&signer)),
        checkpoint_every_records: 3,
        ..AuditConfig::default()
    };
    let log = AuditLog::open_with(&log_dir, config).unwrap();
    let committed = json!({
        "redacted": mandate::pipeline::commitment(&salt, VECTOR_CALL_ID, VECTOR_PATH, &vector_value()),
        "key_id": salt.key_id(),
    });
    for n in 0..6 {
        log.append(&json!({
            "kind": "decision",
            "call_id": if n == 0 { VECTOR_CALL_ID.to_owned() } else { format!("sess_vectors:{}", n + 1) },
            "action": {"type": "tool_call", "tool": "send_email",
                       "arguments": {"to": "bob@example.com", "body": committed}},
            "decision": {"effect": "allow", "decided_by": "policy"},
        }))
        .unwrap();
    }
    log.close().unwrap();
    // Only what a verifier reads: segments and the checkpoint file (no lock, no index).
    for entry in std::fs::read_dir(&log_dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if !(name.starts_with("segment-") || name == CHECKPOINT_FILE) {
            if path.is_dir() {
                std::fs::remove_dir_all(&path).unwrap();
            } else {
                std::fs::remove_file(&path).unwrap();
            }
        }
    }
    std::fs::copy(
        log_dir.join(CHECKPOINT_FILE),
        dir.join("shipped-checkpoints.jsonl"),
    )
    .unwrap();

    // The v2 commitment (issue 12 item 8) as the specification defines it, computed by the
    // second verifier until the writer makes v2 commitments itself.
    let nonce = "00112233445566778899aabbccddeeff";
    let script = format!(
        "import json,sys; sys.path.insert(0, {py:?}); import mandate_verify as m; \
         k=m.read_key({key:?}, 'mandate-redaction-key:'); v=m.parse_json(sys.stdin.read()); \
         print(json.dumps({{'value': v, 'jcs': m.jcs(v).decode(), 'call_id': {call:?}, 'path': {path:?}, \
         'salt_key_file': 'salt.key', 'commitment': {{'redacted': m.commitment_v2(k, {nonce:?}, {call:?}, {path:?}, v), \
         'key_id': m.salt_key_id(k), 'nonce': {nonce:?}}}}}, indent=2, ensure_ascii=False))",
        py = repo_root().join("verifiers/python").display().to_string(),
        key = dir.join("salt.key").display().to_string(),
        call = VECTOR_CALL_ID,
        path = VECTOR_PATH,
    );
    let mut child = Command::new("python3")
        .args(["-c", &script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(vector_value().to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    std::fs::write(dir.join("commitment-v2.json"), output.stdout).unwrap();
    std::fs::write(
        dir.join("commitment-v1.json"),
        serde_json::to_string_pretty(&json!({
            "value": vector_value(),
            "call_id": VECTOR_CALL_ID,
            "path": VECTOR_PATH,
            "salt_key_file": "salt.key",
            "commitment": committed,
            "record_seq": 2,
        }))
        .unwrap()
            + "\n",
    )
    .unwrap();
}

#[test]
fn the_checked_in_test_vectors_verify_and_match_what_the_code_computes() {
    let dir = vectors_dir();
    let log = dir.join("log");
    let public = dir.join("checkpoint.pub");
    let shipped = dir.join("shipped-checkpoints.jsonl");

    // The public key is the one of the fixed seed, and its key id is what the spec derives.
    let signer_dir = tempfile::tempdir().unwrap();
    let seed_file = signer_dir.path().join("seed.key");
    std::fs::write(
        &seed_file,
        format!(
            "mandate-ed25519-signing:{}\n",
            hex::encode(VECTOR_SIGNING_SEED)
        ),
    )
    .unwrap();
    let signer = CheckpointSigner::load(&seed_file).unwrap();
    let verifier = mandate::audit::CheckpointVerifier::load(&public).unwrap();
    assert_eq!(verifier.key_id(), signer.key_id());
    let public_text = std::fs::read_to_string(&public).unwrap();
    let raw = hex::decode(
        public_text
            .trim()
            .strip_prefix("mandate-ed25519-public:")
            .unwrap(),
    )
    .unwrap();
    assert_eq!(verifier.key_id(), &hex::encode(Sha256::digest(&raw))[..16]);

    // The log verifies with the key and the shipped file, everything signed.
    let report = mandate::audit::verify_log(
        &log,
        &mandate::audit::VerifyOptions {
            key: Some(verifier),
            checkpoints: Some(shipped.clone()),
            progress: None,
            allow_unsigned_tail: false,
        },
    )
    .unwrap();
    assert!(report.segments >= 2, "{report:?}");
    assert_eq!(report.checkpoints.last_vouched_seq, Some(report.head_seq));

    // The v1 commitment is what the code computes and proves against the record.
    let salt = mandate::pipeline::RedactionKey::load(&dir.join("salt.key")).unwrap();
    assert_eq!(
        salt.key_id(),
        mandate::pipeline::RedactionKey::from_bytes(VECTOR_SALT_KEY).key_id()
    );
    let v1: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("commitment-v1.json")).unwrap())
            .unwrap();
    assert_eq!(
        v1["commitment"]["redacted"],
        mandate::pipeline::commitment(&salt, VECTOR_CALL_ID, VECTOR_PATH, &v1["value"])
    );
    assert_eq!(v1["value"], vector_value());
    mandate::pipeline::prove(&log, 2, VECTOR_PATH, &v1["value"], &salt).unwrap();

    let v2: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("commitment-v2.json")).unwrap())
            .unwrap();
    assert_eq!(v2["value"], vector_value());
    assert_eq!(v2["commitment"]["key_id"], salt.key_id());

    if !python_ready() {
        return;
    }
    // The second verifier agrees on the log and proves the v2 commitment.
    let args = Args {
        key: Some(&public),
        checkpoints: Some(&shipped),
        allow_unsigned_tail: false,
    };
    assert_eq!(spec_part(&run_python(&log, &args)), expect(0, None));
    assert_eq!(run_mandate(&log, &args), run_python(&log, &args));
    let status = Command::new("python3")
        .arg(python_verifier())
        .args(["prove", "--salt-key"])
        .arg(dir.join("salt.key"))
        .args([
            "--call-id",
            VECTOR_CALL_ID,
            "--path",
            VECTOR_PATH,
            "--value",
        ])
        .arg(v2["value"].to_string())
        .arg("--commitment")
        .arg(v2["commitment"].to_string())
        .status()
        .unwrap();
    assert!(status.success());
}
