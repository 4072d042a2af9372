//! `mandate audit ship`: a host's records to the fleet database, and how far
//! behind it is.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use mandate_fleet::ship::{ShipStatus, Shipped, ship, status};

use crate::database::{DATABASE_ENV, open, runtime, shown};

#[derive(Args)]
pub struct ShipArgs {
    /// The host's audit log directory.
    pub log: PathBuf,
    /// The fleet database, as `postgresql://host-role@host/db`: the login
    /// role, a member of `mandate_host`, is the host's name in the database.
    #[arg(long, env = DATABASE_ENV, hide_env_values = true)]
    pub database: String,
    /// Only say how far the database is behind the log; ship nothing.
    #[arg(long, conflicts_with = "follow")]
    pub status: bool,
    /// Keep shipping new records as they are written, until interrupted;
    /// a database outage is waited out and shipping resumes where it left off.
    #[arg(long)]
    pub follow: bool,
    /// With --follow, how often to look for new records, in milliseconds.
    #[arg(long, default_value_t = 1000, requires = "follow")]
    pub interval_ms: u64,
}

pub fn run(args: ShipArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        if args.follow {
            return follow(&args).await;
        }
        let mut database = open(&args.database).await?;
        if args.status {
            let state = status(&database.client, &args.log)
                .await
                .with_context(|| format!("cannot compare `{}`", args.log.display()))?;
            println!("{}", status_line(&state));
            return Ok(ExitCode::SUCCESS);
        }
        let shipped = ship(&mut database.client, &args.log)
            .await
            .with_context(|| {
                format!(
                    "cannot ship `{}` to `{}`",
                    args.log.display(),
                    shown(&args.database)
                )
            })?;
        println!("{}", shipped_line(&shipped));
        Ok(ExitCode::SUCCESS)
    })
}

/// Ships, waits, ships again; reconnects after an outage.
async fn follow(args: &ShipArgs) -> anyhow::Result<ExitCode> {
    let every = Duration::from_millis(args.interval_ms.max(10));
    let mut database = None;
    let mut failing = false;
    loop {
        if database.is_none() {
            match open(&args.database).await {
                Ok(d) => database = Some(d),
                Err(error) => {
                    if !failing {
                        eprintln!(
                            "warning: {error:#}; retrying every {} ms",
                            every.as_millis()
                        );
                    }
                    failing = true;
                }
            }
        }
        if let Some(d) = &mut database {
            match ship(&mut d.client, &args.log).await {
                Ok(shipped) => {
                    if failing || shipped.shipped > 0 || shipped.checkpoints > 0 {
                        println!("{}", shipped_line(&shipped));
                    }
                    failing = false;
                }
                Err(error) => {
                    eprintln!(
                        "warning: cannot ship `{}`: {}; retrying every {} ms",
                        args.log.display(),
                        mandate::terminal::escape(&error.to_string()),
                        every.as_millis()
                    );
                    failing = true;
                    // A broken connection is replaced; anything else is tried again.
                    if d.client.is_closed() {
                        database = None;
                    }
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
        }
    }
}

fn shipped_line(shipped: &Shipped) -> String {
    let host = mandate::terminal::cell(&shipped.host_id);
    let checkpoints = match shipped.checkpoints {
        0 => String::new(),
        1 => " and 1 checkpoint".to_owned(),
        n => format!(" and {n} checkpoints"),
    };
    if shipped.shipped == 0 {
        format!(
            "nothing new to ship{checkpoints}: the database holds host {host} through seq {}",
            shipped.through
        )
    } else {
        format!(
            "shipped {} records{checkpoints} of host {host} (seq {}..={}); the database holds it through seq {}",
            shipped.shipped,
            shipped.from + 1,
            shipped.through,
            shipped.through
        )
    }
}

fn status_line(state: &ShipStatus) -> String {
    let host = mandate::terminal::cell(&state.host_id);
    let last = state
        .last_shipped_at
        .as_deref()
        .map_or_else(|| "never".to_owned(), str::to_owned);
    format!(
        "host {host}: local log at seq {}, database at seq {}, lag {} records; last shipped {last}",
        state.local_seq,
        state.database_seq,
        state.lag()
    )
}
