//! `mandate policy test`: runs declarative policy test files (format in
//! `mandate::testing` and docs/policies.md) and reports each case.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use jiff::Timestamp;
use mandate::policy::Effect;
use mandate::testing::{Actual, CaseOutcome, PolicyTestFile, TestPolicies, load_test_file};
use serde::Serialize;

use super::explain::{Format, emit};

#[derive(Args)]
pub struct TestArgs {
    /// Test files, or directories whose `*.json` files are test files.
    #[arg(required = true, value_name = "DIR OR FILE")]
    paths: Vec<PathBuf>,
    /// Test this policy directory instead of each file's `policies`.
    #[arg(long, value_name = "DIR")]
    policies: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
    /// Also fail when a policy is named by no case's `determining_policies`
    /// or `approval_demanded_by`.
    #[arg(long)]
    require_coverage: bool,
    #[command(flatten)]
    tools: crate::tools::ToolsArg,
}

/// The test files named on the command line: files as given, directories
/// as their `*.json` files in name order.
fn test_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found = Vec::new();
            let entries = std::fs::read_dir(path)
                .with_context(|| format!("cannot read `{}`", path.display()))?;
            for entry in entries {
                let p = entry
                    .with_context(|| format!("cannot read `{}`", path.display()))?
                    .path();
                if p.is_file() && p.extension().is_some_and(|e| e == "json") {
                    found.push(p);
                }
            }
            if found.is_empty() {
                bail!("no test files (`*.json`) in `{}`", path.display());
            }
            found.sort();
            files.extend(found);
        } else if path.is_file() {
            files.push(path.clone());
        } else {
            bail!("`{}`: no such test file or directory", path.display());
        }
    }
    Ok(files)
}

/// The outcome of one file, as printed by `--format json`.
#[derive(Serialize)]
struct FileReport {
    file: String,
    policies: String,
    cases: Vec<CaseOutcome>,
}

/// Policies no case names, per policy directory.
#[derive(Serialize)]
struct Coverage {
    policies: String,
    uncovered: Vec<String>,
}

#[derive(Serialize)]
struct Report {
    passed: usize,
    failed: usize,
    total: usize,
    files: Vec<FileReport>,
    coverage: Vec<Coverage>,
}

pub fn run(args: TestArgs) -> anyhow::Result<ExitCode> {
    let mut files: Vec<PolicyTestFile> = Vec::new();
    for path in test_files(&args.paths)? {
        let mut file = load_test_file(&path)?;
        if let Some(dir) = &args.policies {
            file.policies = dir.clone();
        }
        files.push(file);
    }
    let mut sets: BTreeMap<PathBuf, TestPolicies> = BTreeMap::new();
    for file in &files {
        if !sets.contains_key(&file.policies) {
            let set = TestPolicies::load(&file.policies)
                .with_context(|| format!("test file `{}`", file.path.display()))?;
            sets.insert(file.policies.clone(), set);
        }
    }
    let tools = args.tools.declarations()?;
    let now = Timestamp::now();

    let mut named: BTreeMap<&Path, BTreeSet<&str>> = BTreeMap::new();
    let mut reports = Vec::new();
    for file in &files {
        let Some(set) = sets.get(&file.policies) else {
            bail!("policies `{}` were not loaded", file.policies.display());
        };
        let names = named.entry(file.policies.as_path()).or_default();
        let mut cases = Vec::new();
        for case in &file.cases {
            names.extend(case.expect.named_policies());
            cases.push(set.run(&tools, case, now));
        }
        reports.push(FileReport {
            file: file.path.display().to_string(),
            policies: file.policies.display().to_string(),
            cases,
        });
    }
    let coverage: Vec<Coverage> = sets
        .iter()
        .map(|(dir, set)| {
            let names = named.get(dir.as_path());
            Coverage {
                policies: dir.display().to_string(),
                uncovered: set
                    .policy_ids()
                    .into_iter()
                    .filter(|id| !names.is_some_and(|n| n.contains(id.as_str())))
                    .collect(),
            }
        })
        .collect();

    let total: usize = reports.iter().map(|r| r.cases.len()).sum();
    let failed = reports
        .iter()
        .flat_map(|r| &r.cases)
        .filter(|c| !c.passed)
        .count();
    let uncovered: usize = coverage.iter().map(|c| c.uncovered.len()).sum();
    let report = Report {
        passed: total - failed,
        failed,
        total,
        files: reports,
        coverage,
    };
    let out = match args.format {
        Format::Json => format!("{}\n", serde_json::to_string_pretty(&report)?),
        Format::Text => text(&report, &sets, args.require_coverage),
    };
    emit(&out)?;
    let ok = failed == 0 && (uncovered == 0 || !args.require_coverage);
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn effect(e: Effect) -> &'static str {
    match e {
        Effect::Allow => "allow",
        Effect::Deny => "deny",
    }
}

/// What a failing case got, in one line.
fn actual_line(a: &Actual) -> String {
    let mut line = format!(
        "got: {}, approval_required {}, determining_policies [{}]",
        effect(a.decision),
        a.approval_required,
        a.determining_policies.join(", ")
    );
    if !a.approval_demanded_by.is_empty() {
        line.push_str(&format!(
            ", approval_demanded_by [{}]",
            a.approval_demanded_by.join(", ")
        ));
    }
    if !a.evaluation_errors.is_empty() {
        line.push_str(&format!(
            ", evaluation_errors [{}]",
            a.evaluation_errors.join(", ")
        ));
    }
    line
}

/// The report for people. Uncovered policies are warned about on stderr
/// (errors with `--require-coverage`).
fn text(report: &Report, sets: &BTreeMap<PathBuf, TestPolicies>, require_coverage: bool) -> String {
    let mut out = String::new();
    for file in &report.files {
        out.push_str(&format!("{} (policies `{}`)\n", file.file, file.policies));
        for case in &file.cases {
            if case.passed {
                out.push_str(&format!("  pass  {}\n", case.name));
                continue;
            }
            out.push_str(&format!("  FAIL  {}\n", case.name));
            for m in &case.mismatches {
                out.push_str(&format!("        {m}\n"));
            }
            if let Some(actual) = &case.actual {
                out.push_str(&format!("        {}\n", actual_line(actual)));
            }
        }
    }
    let level = if require_coverage { "error" } else { "warning" };
    let mut uncovered = 0;
    for c in &report.coverage {
        let set = sets.get(Path::new(&c.policies));
        for id in &c.uncovered {
            uncovered += 1;
            let at = set
                .and_then(|s| s.policies().info(&cedar_policy::PolicyId::new(id.as_str())))
                .map(|info| format!(" ({}:{})", info.pos.file.display(), info.pos.line))
                .unwrap_or_default();
            eprintln!(
                "{level}: policy `{id}`{at} is named by no case's `determining_policies` or `approval_demanded_by`"
            );
        }
    }
    let files = match report.files.len() {
        1 => "1 file".to_string(),
        n => format!("{n} files"),
    };
    if report.failed > 0 {
        out.push_str(&format!(
            "FAILED: {} of {} cases failed, {} passed ({files})\n",
            report.failed, report.total, report.passed
        ));
    } else if require_coverage && uncovered > 0 {
        out.push_str(&format!(
            "FAILED: {} cases passed ({files}), but {uncovered} policies are named by no case\n",
            report.passed
        ));
    } else {
        out.push_str(&format!("ok: {} cases passed ({files})\n", report.passed));
    }
    out
}
