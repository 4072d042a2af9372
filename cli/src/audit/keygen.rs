//! `mandate audit keygen`

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use mandate::audit::CheckpointSigner;

#[derive(Args)]
pub struct KeygenArgs {
    /// Where to write the signing key; the public key goes to <out>.pub.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(args: KeygenArgs) -> anyhow::Result<ExitCode> {
    let public = {
        let mut name = args.out.clone().into_os_string();
        name.push(".pub");
        PathBuf::from(name)
    };
    // Overwriting either half would orphan the other, and every checkpoint signed before.
    for path in [&args.out, &public] {
        if path.exists() {
            anyhow::bail!(
                "`{}` already exists: refusing to overwrite a key (choose another --out)",
                path.display()
            );
        }
    }
    let signer = CheckpointSigner::generate()?;
    signer.save(&args.out, &public)?;
    println!(
        "signing key {} (keep it secret)\npublic key  {} (give it to auditors: mandate audit verify --key {} <log>)\nkey id      {}",
        args.out.display(),
        public.display(),
        public.display(),
        signer.key_id()
    );
    Ok(ExitCode::SUCCESS)
}
