//! What came of a call that was allowed: the `outcome` record's part.

use serde::{Deserialize, Serialize};

use super::Truncated;

/// Whether an allowed call succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallStatus {
    /// The tool returned a result.
    Ok,
    /// The tool failed.
    Failed,
}

/// The outcome part of an outcome record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeRecord {
    /// Sequence number of the call's decision record.
    pub decision_seq: u64,
    /// Ok or failed.
    pub status: CallStatus,
    /// How long the tool ran, in microseconds.
    pub latency_us: u64,
    /// The tool's error, bounded by the guard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The size and SHA-256 of the whole error, when it was cut.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_truncated: Option<Truncated>,
    /// What went over the wire, for an outgoing HTTP request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpExchange>,
}

/// What an outgoing HTTP request sent and received. Bodies are recorded
/// only as their size and SHA-256.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpExchange {
    /// The response's status code, when one came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The address the host connected to, resolved by the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Bytes of request body sent.
    pub request_bytes: u64,
    /// Bytes of response body received.
    pub response_bytes: u64,
    /// SHA-256 of the response body, lowercase hex, when it was read whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_sha256: Option<String>,
}
