//! `mandate audit prove`

use std::process::ExitCode;

use anyhow::bail;

use super::audit::ProveArgs;

pub fn run(_args: ProveArgs) -> anyhow::Result<ExitCode> {
    bail!("`mandate audit prove` is not built yet")
}
