//! [`RedactionKey`]: the operator's secret salt key, and the HMAC-SHA256
//! that derives a salt per call and path from it.

use crate::audit::write_private;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::audit::KeyError;

const KEY_PREFIX: &str = "mandate-redaction-key:";
const KEY_KIND: &str = "salt";
/// Domain of the salt derivation; a new scheme gets a new tag.
const SALT_DOMAIN: &[u8] = b"mandate-redaction/1";
/// Domain tag of v2 salts, which also cover the value's nonce.
const SALT_DOMAIN_V2: &[u8] = b"mandate-redaction/2";
/// Domain of the key id, so it is never a salt or a commitment.
const KEY_ID_DOMAIN: &[u8] = b"mandate-redaction-key-id/1";

/// The secret salt key: 32 random bytes from which every commitment's salt
/// is derived. Whoever holds it and an original value can prove that value
/// was sent; it never appears in a record (only its [`key_id`](Self::key_id)).
///
/// The key file is one line, `mandate-redaction-key:<64 hex>`, readable by
/// its owner only.
///
/// ```
/// use mandate::pipeline::RedactionKey;
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("salt.key");
/// let key = RedactionKey::generate()?;
/// key.save(&path)?;
/// assert_eq!(RedactionKey::load(&path)?.key_id(), key.key_id());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct RedactionKey {
    key: [u8; 32],
    key_id: String,
}

impl std::fmt::Debug for RedactionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RedactionKey({})", self.key_id)
    }
}

impl RedactionKey {
    /// A key of these bytes.
    pub fn from_bytes(key: [u8; 32]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(KEY_ID_DOMAIN);
        hasher.update(key);
        let digest = hasher.finalize();
        let key_id = hex::encode(digest.get(..8).unwrap_or_default());
        RedactionKey { key, key_id }
    }

    /// A new random key from the system's random source.
    pub fn generate() -> Result<Self, KeyError> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(Self::from_bytes(key))
    }

    /// Reads a key written by [`RedactionKey::save`].
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        crate::audit::read_secret_key_file(path, KEY_KIND, |text| Self::parse(path, text))
    }

    fn parse(path: &Path, text: &str) -> Result<Self, KeyError> {
        let malformed = |reason: String| KeyError::Malformed {
            path: path.to_path_buf(),
            kind: KEY_KIND,
            reason,
        };
        let hex_part = text.trim().strip_prefix(KEY_PREFIX).ok_or_else(|| {
            malformed(format!(
                "expected a line starting with `{KEY_PREFIX}`; make one with `mandate run --salt-key <file>`"
            ))
        })?;
        let bytes = hex::decode(hex_part).map_err(|_| malformed("the key is not hex".into()))?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| malformed("the key is not 32 bytes".into()))?;
        Ok(Self::from_bytes(key))
    }

    /// Writes the key to a new file at `path`, readable by its owner only.
    /// Refuses to overwrite an existing file: a lost key cannot be remade.
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        let line = format!("{KEY_PREFIX}{}\n", hex::encode(self.key));
        write_private(path, line.as_bytes()).map_err(|error| KeyError::Io {
            action: "write",
            path: path.to_path_buf(),
            error,
        })
    }

    /// Reads the key at `path`, or, when there is no file there, generates
    /// one and saves it. The flag says whether it was created.
    pub fn load_or_generate(path: &Path) -> Result<(Self, bool), KeyError> {
        match std::fs::symlink_metadata(path) {
            Ok(_) => Ok((Self::load(path)?, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate()?;
                key.save(path)?;
                Ok((key, true))
            }
            Err(error) => Err(KeyError::Io {
                action: "read",
                path: path.to_path_buf(),
                error,
            }),
        }
    }

    /// The key's public name, written next to each commitment: the first 16
    /// hex digits of SHA-256 over a fixed tag and the key. It tells which key
    /// a record was redacted with and reveals nothing about the key.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The salt of the value at the concrete `path` of the call `call_id`:
    /// HMAC-SHA256 keyed with the salt key over the domain tag, a zero byte,
    /// then call id and path each preceded by its length (u64, big endian),
    /// so no two (call id, path) pairs share an input.
    pub(crate) fn salt(&self, call_id: &str, path: &str) -> [u8; 32] {
        let call_len = u64::try_from(call_id.len())
            .unwrap_or(u64::MAX)
            .to_be_bytes();
        let path_len = u64::try_from(path.len()).unwrap_or(u64::MAX).to_be_bytes();
        hmac_sha256(
            &self.key,
            &[
                SALT_DOMAIN,
                &[0],
                &call_len,
                call_id.as_bytes(),
                &path_len,
                path.as_bytes(),
            ],
        )
    }
}

impl RedactionKey {
    /// The v2 salt of one committed value: HMAC-SHA256 keyed with the salt
    /// key over `mandate-redaction/2`, a zero byte, then the nonce (its hex
    /// text), the call id and the path, each preceded by its length (u64,
    /// big endian). The nonce is drawn afresh for every value, so a call id
    /// that a later run reuses (the same session id) never repeats a salt.
    pub(crate) fn salt_v2(&self, nonce: &str, call_id: &str, path: &str) -> [u8; 32] {
        let len = |s: &str| u64::try_from(s.len()).unwrap_or(u64::MAX).to_be_bytes();
        hmac_sha256(
            &self.key,
            &[
                SALT_DOMAIN_V2,
                &[0],
                &len(nonce),
                nonce.as_bytes(),
                &len(call_id),
                call_id.as_bytes(),
                &len(path),
                path.as_bytes(),
            ],
        )
    }
}

/// HMAC-SHA256 (RFC 2104) of the concatenation of `parts`.
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        for (b, k) in block.iter_mut().zip(Sha256::digest(key)) {
            *b = k;
        }
    } else {
        for (b, k) in block.iter_mut().zip(key) {
            *b = *k;
        }
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    for part in parts {
        inner.update(part);
    }
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// HMAC-SHA256 of `message`, for tests that recompute a salt by hand.
#[cfg(test)]
pub(crate) fn hmac_for_tests(key: &[u8], message: &[u8]) -> [u8; 32] {
    hmac_sha256(key, &[message])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_the_rfc_4231_test_vectors() {
        let cases: [(&[u8], &[u8], &str); 3] = [
            (
                &[0x0b; 20],
                b"Hi There",
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            ),
            (
                b"Jefe",
                b"what do ya want for nothing?",
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First",
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
        ];
        for (key, data, expected) in cases {
            assert_eq!(hex::encode(hmac_sha256(key, &[data])), expected);
            // Parts are concatenated.
            let (a, b) = data.split_at(3);
            assert_eq!(hex::encode(hmac_sha256(key, &[a, b])), expected);
        }
    }

    #[test]
    fn a_saved_key_is_owner_only_loads_back_and_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("salt.key");
        let (key, created) = RedactionKey::load_or_generate(&path).unwrap();
        assert!(created);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (again, created) = RedactionKey::load_or_generate(&path).unwrap();
        assert!(!created);
        assert_eq!(again.key, key.key);
        assert_eq!(again.key_id(), key.key_id());
        assert_eq!(key.key_id().len(), 16);
        assert!(!format!("{key:?}").contains(&hex::encode(key.key)));

        let err = RedactionKey::generate().unwrap().save(&path).unwrap_err();
        assert!(
            matches!(
                err,
                KeyError::Io {
                    action: "write",
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(RedactionKey::load(&path).unwrap().key, key.key);
    }

    #[test]
    fn a_salt_key_others_may_write_is_refused_and_one_they_may_read_warns() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("salt.key");
        let key = RedactionKey::generate().unwrap();
        key.save(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o646)).unwrap();
        let error = RedactionKey::load(&path).unwrap_err();
        assert!(matches!(error, KeyError::Unsafe { .. }), "{error}");
        assert!(error.to_string().contains("every user"), "{error}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(RedactionKey::load(&path).unwrap().key_id(), key.key_id());
    }

    #[test]
    fn a_file_that_is_not_a_salt_key_is_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        for (text, reason) in [
            (
                "mandate-ed25519-signing:00",
                "expected a line starting with",
            ),
            ("mandate-redaction-key:zz", "not hex"),
            ("mandate-redaction-key:0011", "not 32 bytes"),
        ] {
            std::fs::write(&path, text).unwrap();
            let err = RedactionKey::load(&path).unwrap_err().to_string();
            assert!(err.contains("is not a mandate salt key"), "{err}");
            assert!(err.contains(reason), "{err}");
        }
        let err = RedactionKey::load(&dir.path().join("missing")).unwrap_err();
        assert!(err.to_string().starts_with("cannot read key file"), "{err}");
    }

    #[test]
    fn salts_differ_by_call_and_path() {
        let key = RedactionKey::from_bytes([1; 32]);
        let s = key.salt("c:1", "arguments.body");
        assert_ne!(s, key.salt("c:2", "arguments.body"));
        assert_ne!(s, key.salt("c:1", "arguments.bodx"));
        assert_ne!(s, key.salt("c:1arguments.body", ""));
        assert_eq!(s, key.salt("c:1", "arguments.body"));
    }
}
