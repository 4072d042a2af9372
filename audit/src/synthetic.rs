//! Realistic generated logs for tests and benchmarks: sessions of many users
//! and agents making calls that are allowed, denied, held for approval and
//! approved or not, in the same record shapes the guard writes. Written
//! straight to segment files (no fsync), so a million records take seconds.

use std::io::{BufWriter, Write};
use std::path::Path;

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use super::chain::{BodyFields, FORMAT, GENESIS_HASH, LOG_START_KIND, encode_line};
use super::segments::{SEGMENT_START_KIND, segment_name};

/// What to generate.
#[derive(Debug, Clone)]
pub struct SyntheticSpec {
    /// Total records, the opening `log_start` included (at least 1).
    pub records: u64,
    /// Seed of the generator: the same seed gives the same log.
    pub seed: u64,
    /// Number of distinct users.
    pub users: u64,
    /// Number of distinct agents.
    pub agents: u64,
    /// Start a new segment after this many records.
    pub segment_records: u64,
    /// Time of the first record.
    pub start: Timestamp,
}

impl Default for SyntheticSpec {
    fn default() -> Self {
        SyntheticSpec {
            records: 1000,
            seed: 1,
            users: 100,
            agents: 10,
            segment_records: u64::MAX,
            start: Timestamp::from_second(1_790_000_000).unwrap_or(Timestamp::UNIX_EPOCH),
        }
    }
}

/// A deterministic generator (splitmix64): no dependency, same sequence everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

const TOOLS: [(&str, &str); 4] = [
    ("read_document", "documents:read"),
    ("write_summary", "documents:write"),
    ("send_email", "email:send"),
    ("search_web", "web:search"),
];

struct Session {
    id: String,
    user: u64,
    agent: u64,
    calls: u64,
}

fn identity(s: &Session) -> Value {
    json!({
        "session_id": s.id,
        "trace_id": format!("trace-{}", s.id),
        "user": { "id": format!("user-{}", s.user), "email": format!("user-{}@example.com", s.user) },
        "agent": { "id": format!("agent-{}", s.agent), "name": format!("Agent {}", s.agent), "version": "1.0.0" },
        "authorization": { "scopes": ["documents:read", "documents:write", "email:send"],
                           "session_type": "human_approved", "expires_at": "2099-01-01T00:00:00Z",
                           "approved_by": format!("user-{}", s.user) },
        "delegation_chain": [format!("user:user-{}", s.user), format!("agent:agent-{}", s.agent)],
    })
}

fn with(mut base: Value, extra: Value) -> Value {
    if let (Value::Object(b), Value::Object(e)) = (&mut base, extra) {
        b.extend(e);
    }
    base
}

/// Writes a log of `spec.records` records into the directory `dir` (created
/// if missing). Returns the head: the last seq and hash.
pub fn write_synthetic_log(dir: &Path, spec: &SyntheticSpec) -> std::io::Result<(u64, String)> {
    std::fs::create_dir_all(dir)?;
    let mut rng = Rng(spec.seed);
    let mut prev = GENESIS_HASH.to_string();
    let mut time = spec.start;
    let mut out: Option<BufWriter<std::fs::File>> = None;
    let mut in_segment = 0u64;
    let mut sessions: Vec<Session> = Vec::new();
    let mut next_session = 0u64;
    let mut pending_outcome: Option<(Value, String, u64)> = None;
    let to_io = |e: super::error::BodyError| std::io::Error::other(e.to_string());

    for seq in 1..=spec.records.max(1) {
        let body = if seq == 1 {
            json!({ "kind": LOG_START_KIND, "format": FORMAT })
        } else if in_segment >= spec.segment_records {
            if let Some(mut w) = out.take() {
                w.flush()?;
            }
            in_segment = 0;
            json!({ "kind": SEGMENT_START_KIND })
        } else if let Some((ident, call_id, decision_seq)) = pending_outcome.take() {
            let failed = rng.below(20) == 0;
            with(
                ident,
                json!({
                    "kind": "outcome",
                    "call_id": call_id,
                    "outcome": { "decision_seq": decision_seq,
                                 "status": if failed { "failed" } else { "ok" },
                                 "latency_us": 50 + rng.below(5000),
                                 "error": if failed { Value::from("upstream timeout") } else { Value::Null } },
                }),
            )
        } else if sessions.len() < 8 || rng.below(30) == 0 {
            next_session += 1;
            let s = Session {
                id: format!("sess-{:08}", next_session),
                user: rng.below(spec.users),
                agent: rng.below(spec.agents),
                calls: 0,
            };
            let body = with(identity(&s), json!({ "kind": "session_start" }));
            sessions.push(s);
            body
        } else {
            let i = usize::try_from(rng.below(sessions.len() as u64)).unwrap_or(0);
            let ending = rng.below(40) == 0;
            let Some(s) = sessions.get_mut(i) else {
                continue;
            };
            if ending {
                let s = sessions.swap_remove(i);
                with(
                    identity(&s),
                    json!({ "kind": "session_end", "detail": { "status": "completed" } }),
                )
            } else {
                s.calls += 1;
                let call_id = format!("{}:{}", s.id, s.calls);
                let (tool, scope) = TOOLS[usize::try_from(rng.below(4)).unwrap_or(0)];
                let roll = rng.below(100);
                let (effect, approval) = match (tool, roll) {
                    ("send_email", r) if r < 60 => (
                        "allow",
                        json!({ "required": true, "outcome": "approved",
                                "reviewer": format!("user-{}", rng.below(spec.users)),
                                "reason": "looks fine" }),
                    ),
                    ("send_email", r) if r < 85 => (
                        "deny",
                        json!({ "required": true, "outcome": "denied",
                                "reviewer": format!("user-{}", rng.below(spec.users)) }),
                    ),
                    ("send_email", _) => {
                        ("deny", json!({ "required": true, "outcome": "timed_out" }))
                    }
                    (_, r) if r < 80 => (
                        "allow",
                        json!({ "required": false, "outcome": "not_required" }),
                    ),
                    _ => (
                        "deny",
                        json!({ "required": false, "outcome": "not_required" }),
                    ),
                };
                let ident = identity(s);
                let body = with(
                    ident.clone(),
                    json!({
                        "kind": "decision",
                        "call_id": call_id,
                        "action": { "type": "tool_call", "tool": tool, "scope": scope,
                                    "arguments": { "document_id": format!("doc_{}", rng.below(100_000)) },
                                    "resource": format!("Document::\"doc_{}\"", rng.below(100_000)) },
                        "decision": { "effect": effect, "decided_by": "policy",
                                      "determining_policies": [ { "id": format!("scope-{scope}") } ],
                                      "errors": [], "policy_digest": "ab".repeat(32) },
                        "approval": approval,
                    }),
                );
                if effect == "allow" {
                    pending_outcome = Some((ident, call_id, seq));
                }
                body
            }
        };
        if out.is_none() {
            let file = std::fs::File::create(dir.join(segment_name(seq)))?;
            out = Some(BufWriter::with_capacity(1 << 20, file));
        }
        let fields = BodyFields::new(&body).map_err(to_io)?;
        let line = encode_line(seq, &prev, time, &fields);
        if let Some(w) = out.as_mut() {
            w.write_all(&line.bytes)?;
        }
        prev = line.hash;
        in_segment += 1;
        time = time
            .checked_add(SignedDuration::from_millis(
                1 + i64::try_from(rng.below(500)).unwrap_or(0),
            ))
            .unwrap_or(time);
    }
    if let Some(mut w) = out {
        w.flush()?;
    }
    Ok((spec.records.max(1), prev))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_synthetic_log_verifies_and_is_deterministic() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let spec = SyntheticSpec {
            records: 500,
            ..SyntheticSpec::default()
        };
        let head_a = write_synthetic_log(a.path(), &spec).unwrap();
        let head_b = write_synthetic_log(b.path(), &spec).unwrap();
        assert_eq!(head_a, head_b);
        let seg = a.path().join(segment_name(1));
        let report = crate::verify_file(&seg).unwrap();
        assert_eq!((report.head_seq, report.head_hash), head_a);
    }
}
