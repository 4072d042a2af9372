//! `mandate audit verify --database`: every host's records, from the fleet
//! database alone. One `ok: host ...` block or `tampered: host ...` lines per
//! host; exit 1 when any host fails a check, 2 when the database cannot be
//! read.

use std::process::ExitCode;

use mandate::audit::CheckpointVerifier;
use mandate::terminal;
use mandate_fleet::verify::{DatabaseVerifyOptions, HostVerification, verify_host};
use serde_json::{Value, json};

use super::verify::{VerifyArgs, VerifyFormat, kind, message, summary};
use crate::database::{open, runtime};

pub fn run(
    url: &str,
    host: Option<&str>,
    key: Option<CheckpointVerifier>,
    args: &VerifyArgs,
) -> anyhow::Result<ExitCode> {
    let options = DatabaseVerifyOptions {
        key,
        allow_unsigned_tail: args.allow_unsigned_tail,
    };
    let json = matches!(args.format, VerifyFormat::Json);
    runtime()?.block_on(async {
        let database = match open(url).await {
            Ok(database) => database,
            Err(error) => return Ok(unreadable(json, &format!("{error:#}"))),
        };
        let hosts = match host {
            Some(host) => vec![host.to_owned()],
            None => match mandate_fleet::export::hosts(&database.client).await {
                Ok(hosts) => hosts,
                Err(error) => return Ok(unreadable(json, &error.to_string())),
            },
        };
        if hosts.is_empty() {
            return Ok(unreadable(
                json,
                "the database holds no records of any host",
            ));
        }
        let mut clean = true;
        let mut reports = Vec::new();
        for host in &hosts {
            let verified = match verify_host(&database.client, host, &options).await {
                Ok(verified) => verified,
                Err(error) => return Ok(unreadable(json, &error.to_string())),
            };
            clean &= verified.is_clean();
            if json {
                reports.push(json_host(&verified));
            } else {
                print_host(&verified);
            }
        }
        if json {
            println!("{}", json!({"ok": clean, "hosts": reports}));
        } else if clean {
            println!("ok: {} hosts verified from the database", hosts.len());
        }
        Ok(ExitCode::from(if clean { 0 } else { 1 }))
    })
}

fn unreadable(json: bool, error: &str) -> ExitCode {
    let error = terminal::bounded(error, 1024);
    if json {
        println!("{}", json!({"ok": false, "error": error, "hosts": []}));
    } else {
        eprintln!("error: {error}");
    }
    ExitCode::from(2)
}

fn print_host(verified: &HostVerification) {
    let host = terminal::cell(&verified.host_id);
    if verified.is_clean() {
        for (n, line) in summary(&verified.chain.report).lines().enumerate() {
            // The scratch copy's segment count and bytes say nothing about the database.
            if n == 0 {
                println!("ok: host {host}: {}", line.trim_start_matches("ok: "));
            } else if !line.trim_start().starts_with("seqs ") {
                println!("{line}");
            }
        }
        return;
    }
    for problem in &verified.chain.problems {
        let seq = problem
            .first_bad_seq()
            .map_or_else(|| "-".to_owned(), |seq| seq.to_string());
        eprintln!("tampered: host {host}: seq {seq}: {}", message(problem));
    }
    for seq in &verified.exported.hash_mismatches {
        eprintln!(
            "tampered: host {host}: seq {seq}: the row's hash column is not the hash its line ends with"
        );
    }
    for problem in &verified.rows {
        eprintln!("tampered: host {host}: {problem}");
    }
    let unlisted = verified
        .row_problems
        .saturating_sub(verified.rows.len() as u64);
    if unlisted > 0 {
        eprintln!(
            "tampered: host {host}: and {unlisted} more query rows that do not match their records"
        );
    }
}

fn json_host(verified: &HostVerification) -> Value {
    let report = &verified.chain.report;
    let problems: Vec<Value> = verified
        .chain
        .problems
        .iter()
        .map(|problem| {
            json!({
                "seq": problem.first_bad_seq(),
                "kind": kind(problem),
                "message": message(problem),
            })
        })
        .chain(verified.exported.hash_mismatches.iter().map(|seq| {
            json!({"seq": seq, "kind": "hash_column_mismatch",
                   "message": "the row's hash column is not the hash its line ends with"})
        }))
        .chain(verified.rows.iter().map(|row| {
            json!({"seq": row.seq, "kind": "query_row_mismatch", "table": row.table,
                   "message": row.to_string()})
        }))
        .collect();
    json!({
        "host_id": verified.host_id,
        "ok": verified.is_clean(),
        "problems": problems,
        "query_row_problems": verified.row_problems,
        "records": report.records,
        "first_seq": report.first_seq,
        "head_seq": report.head_seq,
        "head_hash": report.head_hash,
        "checkpoints": verified.exported.checkpoints,
        "signed_through_seq": report.checkpoints.signed_through_seq,
        "unsigned_tail": report.checkpoints.unsigned_tail,
    })
}
