//! The MAC that authenticates a decision in the queue file. Only holders of
//! the queue key (the host and Mandate's reviewer tools, run by the same
//! user) can make one, so a row approved by anything else (a direct SQL
//! `UPDATE`, a file another user prepared) does not check and is refused.

use sha2::{Digest, Sha256};

use crate::pipeline::redact::hmac_sha256;

/// Domain separation: a queue MAC is never valid as any other HMAC.
const CONTEXT: &[u8] = b"mandate-queue-decision/1";

/// What a decision MAC covers: the approval, what was decided, by whom, why,
/// when, how far it reaches, and the exact pending call it was shown (the
/// SHA-256 of the stored `pending` JSON), so that a MAC copied onto another
/// approval or another call does not check.
pub(super) struct Decided<'a> {
    pub(super) approval_id: &'a str,
    pub(super) status: &'a str,
    pub(super) reviewer: &'a str,
    pub(super) reason: Option<&'a str>,
    pub(super) decided_at: &'a str,
    pub(super) scope: &'a str,
    pub(super) pending_json: &'a str,
}

impl Decided<'_> {
    /// The MAC, as 64 lowercase hex characters.
    pub(super) fn mac(&self, key: &[u8]) -> String {
        let digest: [u8; 32] = Sha256::digest(self.pending_json.as_bytes()).into();
        let reason_tag: &[u8] = if self.reason.is_some() {
            b"\x01"
        } else {
            b"\x00"
        };
        let fields = [
            self.approval_id.as_bytes(),
            self.status.as_bytes(),
            self.reviewer.as_bytes(),
            self.reason.unwrap_or("").as_bytes(),
            self.decided_at.as_bytes(),
            self.scope.as_bytes(),
            &digest,
        ];
        // Each field length-prefixed, so no two field lists share an input.
        let lens: Vec<[u8; 8]> = fields
            .iter()
            .map(|f| (f.len() as u64).to_be_bytes())
            .collect();
        let mut parts: Vec<&[u8]> = vec![CONTEXT, b"\x00", reason_tag];
        for (len, field) in lens.iter().zip(fields) {
            parts.push(len);
            parts.push(field);
        }
        hex::encode(hmac_sha256(key, &parts))
    }

    /// Whether `mac` is this decision's MAC, compared in constant time.
    pub(super) fn verify(&self, key: &[u8], mac: Option<&str>) -> bool {
        let Some(mac) = mac else {
            return false;
        };
        let want = self.mac(key);
        want.len() == mac.len()
            && want
                .bytes()
                .zip(mac.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}
