//! Reviewer tokens: the server's configuration says which bearer token
//! belongs to which reviewer. A decision's reviewer is the token's user,
//! never a name the browser sends.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::pipeline::hmac_sha256;

/// Shortest token accepted: long enough that guessing one over HTTP is
/// hopeless (`openssl rand -hex 16` makes 32 characters).
pub const MIN_TOKEN_CHARS: usize = 16;

/// Why a token file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The file could not be read.
    #[error("cannot read the token file `{path}`: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is neither a JSON object nor a TOML table of strings.
    #[error(
        "the token file `{path}` is not a map of token to reviewer user id: {message}; write e.g. {{\"<token>\": \"carol\"}} (JSON) or `\"<token>\" = \"carol\"` (TOML)"
    )]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// No token at all: nobody could decide anything.
    #[error(
        "no reviewer tokens are configured; add at least one `token -> reviewer user id` entry"
    )]
    Empty,
    /// A token too short or with characters a header cannot carry.
    #[error(
        "the token of reviewer `{reviewer}` is unusable: it needs at least {MIN_TOKEN_CHARS} visible ASCII characters and no spaces (e.g. `openssl rand -hex 24`)"
    )]
    WeakToken {
        /// Whose token (the token itself is never shown).
        reviewer: String,
    },
    /// A token mapped to an empty reviewer id.
    #[error("a token maps to an empty reviewer user id; name the reviewer, e.g. `carol`")]
    EmptyReviewer,
}

/// The configured tokens, kept only as SHA-256 digests so that comparing a
/// presented token takes the same time whatever it is, and as the page key
/// derived from each (see `page_key`).
#[derive(Clone)]
pub struct ReviewerTokens {
    entries: Vec<Entry>,
}

#[derive(Clone)]
struct Entry {
    digest: [u8; 32],
    page_key: [u8; 32],
    key_id: [u8; KEY_ID_BYTES],
    reviewer: String,
}

/// Bytes of a page key's id (sent as hex in the handshake).
pub(super) const KEY_ID_BYTES: usize = 16;

/// The key the review page derives from a token and proves knowledge of,
/// instead of sending the token: HMAC-SHA256(token, `mandate-review/key`).
/// The page (app.js) computes the same with WebCrypto.
pub(super) fn page_key(token: &str) -> [u8; 32] {
    hmac_sha256(token.as_bytes(), &[b"mandate-review/key"])
}

/// The public name of a page key, so the server knows which reviewer's key
/// a handshake is for: the first 16 bytes of HMAC-SHA256(key, `mandate-review/id`).
pub(super) fn key_id(page_key: &[u8; 32]) -> [u8; KEY_ID_BYTES] {
    let full = hmac_sha256(page_key, &[b"mandate-review/id"]);
    let mut id = [0u8; KEY_ID_BYTES];
    id.copy_from_slice(&full[..KEY_ID_BYTES]);
    id
}

/// Compares without stopping at the first difference.
pub(super) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len()
        && std::hint::black_box(a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y))) == 0
}

impl std::fmt::Debug for ReviewerTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let reviewers: Vec<&str> = self.entries.iter().map(|e| e.reviewer.as_str()).collect();
        f.debug_struct("ReviewerTokens")
            .field("reviewers", &reviewers)
            .finish_non_exhaustive()
    }
}

impl ReviewerTokens {
    /// Reads a token file: a JSON object or a TOML table mapping each token
    /// to the reviewer's user id. A `.toml` file is read as TOML, anything
    /// else as JSON.
    ///
    /// ```toml
    /// "9f2c0d6b7e1a4c3f8b5d2e7a" = "carol"
    /// ```
    pub fn from_file(path: &Path) -> Result<Self, TokenError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokenError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let is_toml = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("toml"));
        // Two parsers, two error types: the file's name and their message.
        let unparsed = |message: String| TokenError::Parse {
            path: path.to_path_buf(),
            message,
        };
        let map: BTreeMap<String, String> = if is_toml {
            toml::from_str(&text).map_err(|e| unparsed(e.message().to_string()))?
        } else {
            serde_json::from_str(&text).map_err(|e| unparsed(e.to_string()))?
        };
        Self::from_map(map)
    }

    /// Tokens from `token -> reviewer user id` pairs.
    ///
    /// ```
    /// use mandate::review_server::ReviewerTokens;
    /// let tokens = ReviewerTokens::from_map([("c4f1d2a9e8b7c6d5".to_string(), "carol".to_string())])?;
    /// assert_eq!(tokens.authenticate("c4f1d2a9e8b7c6d5"), Some("carol"));
    /// assert_eq!(tokens.authenticate("guess"), None);
    /// # Ok::<(), mandate::review_server::TokenError>(())
    /// ```
    pub fn from_map(map: impl IntoIterator<Item = (String, String)>) -> Result<Self, TokenError> {
        let mut entries = Vec::new();
        for (token, reviewer) in map {
            let reviewer = reviewer.trim().to_string();
            if reviewer.is_empty() {
                return Err(TokenError::EmptyReviewer);
            }
            let usable = token.chars().count() >= MIN_TOKEN_CHARS
                && token.bytes().all(|b| b.is_ascii_graphic());
            if !usable {
                return Err(TokenError::WeakToken { reviewer });
            }
            let page_key = page_key(&token);
            entries.push(Entry {
                digest: digest(&token),
                page_key,
                key_id: key_id(&page_key),
                reviewer,
            });
        }
        if entries.is_empty() {
            return Err(TokenError::Empty);
        }
        Ok(ReviewerTokens { entries })
    }

    /// The reviewer whose token `presented` is, if any. Every configured
    /// token is compared, each in constant time, so the time taken says
    /// nothing about how close a guess was.
    pub fn authenticate(&self, presented: &str) -> Option<&str> {
        let presented = digest(presented);
        let mut found = None;
        for entry in &self.entries {
            if same_bytes(&entry.digest, &presented) {
                found = Some(entry.reviewer.as_str());
            }
        }
        found
    }

    /// The reviewer and page key whose key id is `key_id`, if any; every
    /// entry is compared, as in [`ReviewerTokens::authenticate`].
    pub(super) fn by_key_id(&self, key_id: &[u8]) -> Option<(&str, [u8; 32])> {
        let mut found = None;
        for entry in &self.entries {
            if same_bytes(&entry.key_id, key_id) {
                found = Some((entry.reviewer.as_str(), entry.page_key));
            }
        }
        found
    }

    /// How many reviewers have a token.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Always false: a configuration without tokens is refused.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAROL: &str = "carol-token-0123456789";

    #[test]
    fn a_token_names_its_reviewer_and_nothing_else_does() {
        let tokens = ReviewerTokens::from_map([
            (CAROL.to_string(), "carol".to_string()),
            ("dave-token-0123456789".to_string(), "dave".to_string()),
        ])
        .unwrap();
        assert_eq!(tokens.authenticate(CAROL), Some("carol"));
        assert_eq!(tokens.authenticate("dave-token-0123456789"), Some("dave"));
        assert_eq!(tokens.authenticate(""), None);
        assert_eq!(tokens.authenticate("carol-token-012345678"), None);
        assert_eq!(tokens.authenticate("carol"), None);
        assert!(!format!("{tokens:?}").contains(CAROL));
    }

    #[test]
    fn weak_empty_and_missing_tokens_are_refused() {
        let weak = ReviewerTokens::from_map([("short".to_string(), "carol".to_string())]);
        assert!(
            matches!(&weak, Err(TokenError::WeakToken { reviewer }) if reviewer == "carol"),
            "{weak:?}"
        );
        let spaced =
            ReviewerTokens::from_map([("has a space in it!".to_string(), "carol".to_string())]);
        assert!(matches!(spaced, Err(TokenError::WeakToken { .. })));
        let nobody = ReviewerTokens::from_map([(CAROL.to_string(), " ".to_string())]);
        assert!(matches!(nobody, Err(TokenError::EmptyReviewer)));
        assert!(matches!(
            ReviewerTokens::from_map(Vec::new()),
            Err(TokenError::Empty)
        ));
    }

    #[test]
    fn token_files_are_json_or_toml() {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("tokens.json");
        std::fs::write(&json, format!("{{\"{CAROL}\": \"carol\"}}")).unwrap();
        let tokens = ReviewerTokens::from_file(&json).unwrap();
        assert_eq!(tokens.authenticate(CAROL), Some("carol"));

        let toml = dir.path().join("tokens.toml");
        std::fs::write(&toml, format!("# reviewers\n\"{CAROL}\" = \"carol\"\n")).unwrap();
        let tokens = ReviewerTokens::from_file(&toml).unwrap();
        assert_eq!(tokens.authenticate(CAROL), Some("carol"));
        assert_eq!(tokens.len(), 1);

        std::fs::write(&json, "[\"not a map\"]").unwrap();
        let e = ReviewerTokens::from_file(&json).unwrap_err().to_string();
        assert!(e.contains("not a map of token to reviewer user id"), "{e}");
        let e = ReviewerTokens::from_file(&dir.path().join("missing.json"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("cannot read the token file"), "{e}");
    }
}
