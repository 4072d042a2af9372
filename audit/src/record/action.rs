//! Question 4: what the agent tried to do.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{Form, Full};

/// The kind of action: which of the agent's doors it came through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// A call of a tool through `tools.call`.
    #[default]
    ToolCall,
    /// An outgoing HTTP request through `wasi:http/outgoing-handler`; its
    /// `tool` is `http_request` and its arguments describe the request
    /// (method, destination, path, query keys, header names, body size and
    /// SHA-256), never its header values or body.
    HttpRequest,
}

/// The attempted action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct ActionRecord<F: Form = Full> {
    /// What kind of action.
    #[serde(rename = "type", default)]
    pub kind: ActionKind,
    /// The tool name as the agent asked for it, bounded: a name that no
    /// tool could have is cut and escaped (see `tool_truncated`).
    pub tool: String,
    /// The size and SHA-256 of the name the agent gave, when `tool` is not
    /// all of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_truncated: Option<Truncated>,
    /// Its scope, when the tool exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Arguments with sensitive fields redacted; the raw text when it was
    /// not valid JSON. `null` when a record has none.
    #[serde(default)]
    pub arguments: F::Part<Value>,
    /// The Cedar resource, when one could be derived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
}

/// What a record keeps of a string it could not keep whole.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Truncated {
    /// The whole string's length in bytes.
    pub bytes: usize,
    /// SHA-256 of the whole string's UTF-8 bytes, lowercase hex.
    pub sha256: String,
}

impl Truncated {
    /// The size and digest of `text`.
    pub fn of(text: &str) -> Self {
        Truncated {
            bytes: text.len(),
            sha256: hex::encode(Sha256::digest(text.as_bytes())),
        }
    }
}
