//! `mandate audit keygen`

use std::process::ExitCode;

use mandate::audit::CheckpointSigner;

use super::audit::KeygenArgs;

pub fn run(args: KeygenArgs) -> anyhow::Result<ExitCode> {
    let public = {
        let mut name = args.out.clone().into_os_string();
        name.push(".pub");
        std::path::PathBuf::from(name)
    };
    let signer = CheckpointSigner::generate()?;
    signer.save(&args.out, &public)?;
    println!(
        "signing key {} (keep it secret)\npublic key  {} (give it to auditors)\nkey id      {}",
        args.out.display(),
        public.display(),
        signer.key_id()
    );
    Ok(ExitCode::SUCCESS)
}
