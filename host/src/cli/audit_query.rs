//! `mandate audit query` and `mandate audit reindex`

use std::process::ExitCode;

use anyhow::bail;

use super::audit::{QueryArgs, ReindexArgs};

pub fn run(_args: QueryArgs) -> anyhow::Result<ExitCode> {
    bail!("`mandate audit query` is not built yet")
}

pub fn reindex(_args: ReindexArgs) -> anyhow::Result<ExitCode> {
    bail!("`mandate audit reindex` is not built yet")
}
