//! Ed25519-signed checkpoints: a signed statement "the record with seq N has
//! hash H", written into the log and into a separate file that can be shipped
//! elsewhere. Whoever rewrites the log from some point on, or cuts it short,
//! cannot produce checkpoints that match without the private key.

use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Name of the checkpoint file inside a log directory.
pub const CHECKPOINT_FILE: &str = "checkpoints.jsonl";
/// Record kind of a checkpoint record in the log.
pub const CHECKPOINT_KIND: &str = "checkpoint";

/// What a checkpoint asserts. Signed over [`Checkpoint::signed_bytes`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The seq of the record the checkpoint vouches for (the head when it was taken).
    pub seq: u64,
    /// That record's hash.
    pub head_hash: String,
    /// When the checkpoint was taken.
    pub time: Timestamp,
    /// Which key signed it: the first 16 hex digits of SHA-256 of the public key.
    pub key_id: String,
}

/// A checkpoint with its signature, as it appears in the log (the
/// `checkpoint` record body) and in the checkpoint file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedCheckpoint {
    /// What is asserted.
    pub checkpoint: Checkpoint,
    /// Ed25519 signature over [`Checkpoint::signed_bytes`], lowercase hex.
    pub signature: String,
}

impl Checkpoint {
    /// The exact bytes signed: a fixed text form, so verifying never depends
    /// on how JSON was serialized.
    pub fn signed_bytes(&self) -> Vec<u8> {
        format!(
            "mandate-checkpoint/1\nseq {}\nhead_hash {}\ntime {}\nkey_id {}\n",
            self.seq, self.head_hash, self.time, self.key_id
        )
        .into_bytes()
    }
}

/// Why a key could not be made, read or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key file could not be read or written.
    #[error("cannot {action} key file `{}`: {error}", path.display())]
    Io {
        /// Read or write.
        action: &'static str,
        /// The key file.
        path: PathBuf,
        /// The operating system's reason.
        error: std::io::Error,
    },
    /// The file does not hold a key of the expected kind.
    #[error("`{}` is not a mandate {kind} key: {reason}", path.display())]
    Malformed {
        /// The key file.
        path: PathBuf,
        /// `signing` or `public`.
        kind: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The system's random source failed.
    #[error("cannot generate a key: the system random source failed: {0}")]
    Random(String),
    /// A secret key file that someone else could have written: another user owns it, or its
    /// group or others may write it. A key someone else controls proves nothing.
    #[error(
        "refusing {kind} key file `{}`: {reason}; a secret key must be owned by the user \
         running mandate and writable by them only (`chown` it, then `chmod 600` it)",
        path.display()
    )]
    Unsafe {
        /// The key file.
        path: PathBuf,
        /// `signing` or `salt`.
        kind: &'static str,
        /// Who else could write it.
        reason: String,
    },
}

const SIGNING_PREFIX: &str = "mandate-ed25519-signing:";
const PUBLIC_PREFIX: &str = "mandate-ed25519-public:";

fn key_id(public: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(public.as_bytes())[..8])
}

fn read_key_file(path: &Path, prefix: &str, kind: &'static str) -> Result<[u8; 32], KeyError> {
    let parse = |text: &str| parse_key(path, text, prefix, kind);
    // A public key is no secret; only the signing key's file must be the owner's alone.
    if prefix == SIGNING_PREFIX {
        return read_secret_key_file(path, kind, parse);
    }
    let text = std::fs::read_to_string(path).map_err(|error| KeyError::Io {
        action: "read",
        path: path.to_path_buf(),
        error,
    })?;
    parse(&text)
}

fn parse_key(
    path: &Path,
    text: &str,
    prefix: &str,
    kind: &'static str,
) -> Result<[u8; 32], KeyError> {
    let malformed = |reason: &str| KeyError::Malformed {
        path: path.to_path_buf(),
        kind,
        reason: reason.to_string(),
    };
    let hex_part = text
        .trim()
        .strip_prefix(prefix)
        .ok_or_else(|| malformed(&format!("expected a line starting with `{prefix}`")))?;
    let bytes = hex::decode(hex_part).map_err(|_| malformed("the key is not hex"))?;
    bytes
        .try_into()
        .map_err(|_| malformed("the key is not 32 bytes"))
}

/// The private key that signs checkpoints.
pub struct CheckpointSigner {
    key: SigningKey,
    key_id: String,
}

impl std::fmt::Debug for CheckpointSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CheckpointSigner({})", self.key_id)
    }
}

impl CheckpointSigner {
    /// A new random key.
    pub fn generate() -> Result<Self, KeyError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(Self::from_seed(seed))
    }

    fn from_seed(seed: [u8; 32]) -> Self {
        let key = SigningKey::from_bytes(&seed);
        let key_id = key_id(&key.verifying_key());
        CheckpointSigner { key, key_id }
    }

    /// Reads a signing key written by [`CheckpointSigner::save`].
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        Ok(Self::from_seed(read_key_file(
            path,
            SIGNING_PREFIX,
            "signing",
        )?))
    }

    /// Writes the signing key to `path` (readable by the owner only) and
    /// the public key to `public_path`.
    pub fn save(&self, path: &Path, public_path: &Path) -> Result<(), KeyError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |error| KeyError::Io {
                action: "write",
                path,
                error,
            }
        };
        write_private(
            path,
            format!("{SIGNING_PREFIX}{}\n", hex::encode(self.key.to_bytes())).as_bytes(),
        )
        .map_err(io(path))?;
        std::fs::write(
            public_path,
            format!(
                "{PUBLIC_PREFIX}{}\n",
                hex::encode(self.key.verifying_key().as_bytes())
            ),
        )
        .map_err(io(public_path))
    }

    /// The key id written in checkpoints.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The matching public key.
    pub fn public_key(&self) -> CheckpointVerifier {
        CheckpointVerifier {
            key: self.key.verifying_key(),
            key_id: self.key_id.clone(),
        }
    }

    /// Signs "record `seq` has hash `head_hash`" at `time`.
    pub fn sign(&self, seq: u64, head_hash: &str, time: Timestamp) -> SignedCheckpoint {
        let checkpoint = Checkpoint {
            seq,
            head_hash: head_hash.to_string(),
            time,
            key_id: self.key_id.clone(),
        };
        let signature = hex::encode(self.key.sign(&checkpoint.signed_bytes()).to_bytes());
        SignedCheckpoint {
            checkpoint,
            signature,
        }
    }
}

/// Reads a secret key file (a signing key or a salt key) with `parse`, after checking, on the
/// opened file, that nobody else could have written it: refused when another user owns it or
/// its group or others may write it; once it parsed as a key, a warning (on stderr, once per
/// file) when its group or others may read it, as the secret is then no longer only the owner's.
#[cfg(unix)]
pub fn read_secret_key_file<T>(
    path: &Path,
    kind: &'static str,
    parse: impl FnOnce(&str) -> Result<T, KeyError>,
) -> Result<T, KeyError> {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    let io = |error| KeyError::Io {
        action: "read",
        path: path.to_path_buf(),
        error,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    let unsafe_key = |reason: String| KeyError::Unsafe {
        path: path.to_path_buf(),
        kind,
        reason,
    };
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(unsafe_key(format!(
            "it is owned by uid {}, not by uid {me} who runs mandate",
            meta.uid()
        )));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(unsafe_key(format!(
            "its mode {mode:04o} lets {} write it",
            if mode & 0o002 != 0 {
                "every user"
            } else {
                "its group"
            }
        )));
    }
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(io)?;
    let key = parse(&text)?;
    if mode & 0o044 != 0 {
        warn_once(
            path,
            &format!(
                "warning: {kind} key file `{}` has mode {mode:04o}: {} can read the secret; \
             `chmod 600` it",
                path.display(),
                if mode & 0o004 != 0 {
                    "every user"
                } else {
                    "its group"
                }
            ),
        );
    }
    Ok(key)
}

#[cfg(not(unix))]
pub fn read_secret_key_file<T>(
    path: &Path,
    _kind: &'static str,
    parse: impl FnOnce(&str) -> Result<T, KeyError>,
) -> Result<T, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|error| KeyError::Io {
        action: "read",
        path: path.to_path_buf(),
        error,
    })?;
    parse(&text)
}

/// Prints `message` on stderr unless it was printed for `path` already in this process: a key
/// loaded again on every reload warns once.
#[cfg(unix)]
fn warn_once(path: &Path, message: &str) {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock, PoisonError};
    static WARNED: OnceLock<Mutex<HashSet<PathBuf>>> = OnceLock::new();
    let first = WARNED
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(path.to_path_buf());
    if first {
        eprintln!("{message}");
    }
}

/// Writes a new key file readable by its owner only; never overwrites one.
#[cfg(unix)]
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(not(unix))]
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Why a checkpoint does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// Signed by another key.
    #[error("checkpoint at seq {seq} was signed by key `{found}`, not `{expected}`")]
    WrongKey {
        /// The checkpoint's seq.
        seq: u64,
        /// The key id in the checkpoint.
        found: String,
        /// The key id of the public key given.
        expected: String,
    },
    /// The signature does not match.
    #[error("checkpoint at seq {seq} has an invalid signature")]
    BadSignature {
        /// The checkpoint's seq.
        seq: u64,
    },
}

/// The public key that verifies checkpoints.
#[derive(Debug, Clone)]
pub struct CheckpointVerifier {
    key: VerifyingKey,
    key_id: String,
}

impl CheckpointVerifier {
    /// Reads a public key written by [`CheckpointSigner::save`].
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let bytes = read_key_file(path, PUBLIC_PREFIX, "public")?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|e| KeyError::Malformed {
            path: path.to_path_buf(),
            kind: "public",
            reason: e.to_string(),
        })?;
        Ok(CheckpointVerifier {
            key_id: key_id(&key),
            key,
        })
    }

    /// The key id.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Checks the key id and signature of `signed`.
    pub fn verify(&self, signed: &SignedCheckpoint) -> Result<(), CheckpointError> {
        let seq = signed.checkpoint.seq;
        if signed.checkpoint.key_id != self.key_id {
            return Err(CheckpointError::WrongKey {
                seq,
                found: signed.checkpoint.key_id.clone(),
                expected: self.key_id.clone(),
            });
        }
        let bad = || CheckpointError::BadSignature { seq };
        let bytes: [u8; 64] = hex::decode(&signed.signature)
            .map_err(|_| bad())?
            .try_into()
            .map_err(|_| bad())?;
        self.key
            .verify(
                &signed.checkpoint.signed_bytes(),
                &Signature::from_bytes(&bytes),
            )
            .map_err(|_| bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved_signer(dir: &Path) -> (CheckpointSigner, PathBuf) {
        let signer = CheckpointSigner::generate().unwrap();
        let path = dir.join("checkpoint.key");
        signer.save(&path, &dir.join("checkpoint.pub")).unwrap();
        (signer, path)
    }

    fn chmod(path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_signing_key_others_may_write_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (_, path) = saved_signer(dir.path());
        for mode in [0o666, 0o620, 0o602] {
            chmod(&path, mode);
            let error = CheckpointSigner::load(&path).unwrap_err();
            assert!(
                matches!(error, KeyError::Unsafe { .. }),
                "{mode:o}: {error}"
            );
            assert!(error.to_string().contains("chmod 600"), "{error}");
        }
    }

    #[test]
    fn a_signing_key_others_may_read_loads_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let (signer, path) = saved_signer(dir.path());
        chmod(&path, 0o644);
        assert_eq!(
            CheckpointSigner::load(&path).unwrap().key_id(),
            signer.key_id()
        );
        // The public key may be read by anyone, and is not checked as a secret.
        chmod(&dir.path().join("checkpoint.pub"), 0o666);
        CheckpointVerifier::load(&dir.path().join("checkpoint.pub")).unwrap();
    }

    #[test]
    fn a_signing_key_another_user_owns_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (_, path) = saved_signer(dir.path());
        let me = rustix::process::geteuid().as_raw();
        if me != 0 {
            eprintln!("skipped: needs root to give a file to another user (CI runs as root)");
            return;
        }
        let status = std::process::Command::new("chown")
            .arg("nobody")
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success());
        let error = CheckpointSigner::load(&path).unwrap_err();
        assert!(error.to_string().contains("is owned by uid"), "{error}");
    }

    #[test]
    fn a_signed_checkpoint_verifies_and_any_change_does_not() {
        let signer = CheckpointSigner::generate().unwrap();
        let verifier = signer.public_key();
        let signed = signer.sign(42, &"ab".repeat(32), Timestamp::now());
        verifier.verify(&signed).unwrap();

        // Each of the four signed fields, changed alone, breaks the signature.
        let mut other = signed.clone();
        other.checkpoint.seq = 43;
        assert_eq!(
            verifier.verify(&other),
            Err(CheckpointError::BadSignature { seq: 43 })
        );
        let mut other = signed.clone();
        other.checkpoint.head_hash = "cd".repeat(32);
        assert_eq!(
            verifier.verify(&other),
            Err(CheckpointError::BadSignature { seq: 42 })
        );
        let mut other = signed.clone();
        other.checkpoint.time = signed.checkpoint.time + jiff::SignedDuration::from_millis(1);
        assert_eq!(
            verifier.verify(&other),
            Err(CheckpointError::BadSignature { seq: 42 })
        );
        // A changed key id is refused by the id check; a verifier that claims
        // the changed id (same key) shows the signature covers the id too.
        let mut other = signed.clone();
        other.checkpoint.key_id = "0".repeat(16);
        assert!(matches!(
            verifier.verify(&other),
            Err(CheckpointError::WrongKey { seq: 42, .. })
        ));
        let claims_other_id = CheckpointVerifier {
            key: verifier.key,
            key_id: other.checkpoint.key_id.clone(),
        };
        assert_eq!(
            claims_other_id.verify(&other),
            Err(CheckpointError::BadSignature { seq: 42 })
        );
        // The signature itself, one bit flipped.
        let mut other = signed.clone();
        let mut sig = hex::decode(&other.signature).unwrap();
        sig[0] ^= 1;
        other.signature = hex::encode(sig);
        assert_eq!(
            verifier.verify(&other),
            Err(CheckpointError::BadSignature { seq: 42 })
        );

        let stranger = CheckpointSigner::generate().unwrap().public_key();
        assert!(matches!(
            stranger.verify(&signed),
            Err(CheckpointError::WrongKey { .. })
        ));
    }

    #[test]
    fn keys_round_trip_through_files() {
        let dir = tempfile::tempdir().unwrap();
        let (sk, pk) = (dir.path().join("k"), dir.path().join("k.pub"));
        let signer = CheckpointSigner::generate().unwrap();
        signer.save(&sk, &pk).unwrap();
        let loaded = CheckpointSigner::load(&sk).unwrap();
        assert_eq!(loaded.key_id(), signer.key_id());
        let verifier = CheckpointVerifier::load(&pk).unwrap();
        verifier
            .verify(&loaded.sign(1, &"00".repeat(32), Timestamp::now()))
            .unwrap();
        let err = CheckpointVerifier::load(&sk).unwrap_err().to_string();
        assert!(err.contains("is not a mandate public key"), "{err}");
    }
}
