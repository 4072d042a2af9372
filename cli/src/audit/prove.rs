//! `mandate audit prove`: exit 0 on a match, 1 when the value differs, 2
//! when it could not be checked (bad path, seq, value or key).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::anyhow;
use clap::Args;
use mandate::pipeline::{RedactionKey, prove};
use serde_json::Value;

#[derive(Args)]
pub struct ProveArgs {
    /// The audit log.
    pub log: PathBuf,
    /// The seq of the decision record holding the redacted argument.
    #[arg(long)]
    pub seq: u64,
    /// The redacted field, e.g. `arguments.body` or `arguments.attachments[0].content`.
    #[arg(long)]
    pub path: String,
    /// The original value, as JSON (a JSON string needs its quotes: '"hello"').
    /// It may start with `-` (`--value -12`): it is never read as an option.
    #[arg(long, allow_hyphen_values = true)]
    pub value: String,
    /// The salt key the guard redacted with.
    #[arg(long)]
    pub salt_key: PathBuf,
}

pub fn run(args: ProveArgs) -> anyhow::Result<ExitCode> {
    let value: Value = serde_json::from_str(&args.value).map_err(|e| {
        anyhow!(
            "`--value` is not valid json ({e}); a JSON string needs its quotes, e.g. --value '\"hello\"'"
        )
    })?;
    let key = RedactionKey::load(&args.salt_key)?;
    let proof = prove(&args.log, args.seq, &args.path, &value, &key)?;
    // v1 commitments (no nonce) are still proven, but say so: they repeat
    // when a session id is reused.
    let version = if proof.nonce.is_some() { "v2" } else { "v1" };
    let call = format!(
        "record {} (call `{}`) commits `{}` ({version} commitment) to",
        proof.seq, proof.call_id, proof.path
    );
    if proof.matches {
        println!("match: {call} this value ({})", proof.recorded);
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "no match: {call} another value ({}); this value gives {}",
            proof.recorded, proof.computed
        );
        Ok(ExitCode::from(1))
    }
}
