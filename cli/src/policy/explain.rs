//! `mandate policy explain`: what policy would decide for one hypothetical
//! call, and why, without running anything or writing a record.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use clap::{Args, ValueEnum};
use jiff::Timestamp;
use mandate::pipeline::{ExplainError, Explanation, HypotheticalCall, Session, explain};
use mandate::policy::{Decision, DeterminingPolicy, Effect, Policies};
use serde::Serialize;
use serde_json::Value;

/// How results are printed.
#[derive(Clone, Copy, Default, ValueEnum)]
pub enum Format {
    /// For people.
    #[default]
    Text,
    /// One JSON document, for programs.
    Json,
}

#[derive(Args)]
pub struct ExplainArgs {
    /// Directory with schema.cedarschema, *.cedar and entities.json.
    #[arg(long, value_name = "DIR")]
    policies: PathBuf,
    /// Session file (JSON) the call would run in.
    #[arg(long, value_name = "FILE")]
    session: PathBuf,
    /// The tool the agent would call, e.g. `send_email`.
    #[arg(long, value_name = "NAME")]
    tool: String,
    /// The call's arguments as JSON text, e.g. '{"document_id": "doc_88pk3r"}'.
    #[arg(long, value_name = "JSON")]
    args: String,
    /// A user who approves the call if policy holds it, to check that policy
    /// accepts their approval.
    #[arg(long, value_name = "USER ID")]
    reviewer: Option<String>,
    /// When the call is made (default: now).
    #[arg(long, value_name = "RFC3339")]
    now: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
    #[command(flatten)]
    tools: crate::tools::ToolsArg,
}

pub fn run(args: ExplainArgs) -> anyhow::Result<ExitCode> {
    let policies = Policies::load_dir(&args.policies)
        .with_context(|| format!("cannot load policies from `{}`", args.policies.display()))?;
    let session = Session::from_file(&args.session)?;
    let arguments: Value =
        serde_json::from_str(&args.args).map_err(|e| anyhow!("--args is not valid json: {e}"))?;
    let now = match &args.now {
        Some(text) => text.parse::<Timestamp>().map_err(|e| {
            anyhow!("--now `{text}` is not an rfc 3339 timestamp like 2026-12-01T10:00:00Z: {e}")
        })?,
        None => Timestamp::now(),
    };
    // The tools only run in `mandate run`; here they just declare their
    // action, resource and argument shape.
    let tools = args.tools.declarations()?;
    let call = HypotheticalCall {
        session: &session,
        tool: &args.tool,
        arguments: &arguments,
        reviewer: args.reviewer.as_deref(),
        now,
    };
    let explanation =
        explain(&policies, &tools, policies.entities(), &call).map_err(|e| match e {
            ExplainError::UnknownTool(_) => {
                let mut known: Vec<&str> = tools.iter().map(|t| t.spec().name.as_str()).collect();
                known.sort_unstable();
                anyhow!("{e}; known tools: {}", known.join(", "))
            }
            ExplainError::SessionExpired { .. } => {
                anyhow!("session `{}`: {e}", args.session.display())
            }
            ExplainError::InvalidArguments(_) => anyhow!("tool `{}`: {e}", args.tool),
            other => anyhow!("{other}"),
        })?;
    let out = match args.format {
        Format::Text => text(&policies, &explanation, args.reviewer.as_deref()),
        Format::Json => {
            let json =
                serde_json::to_string_pretty(&JsonExplanation::new(&policies, &explanation))?;
            format!("{json}\n")
        }
    };
    emit(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// Writes `out` to stdout; a reader that stops early (`| head`) is not an
/// error.
pub(super) fn emit(out: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow!("cannot write to stdout: {e}"))
        }
        _ => Ok(()),
    }
}

fn effect(e: Effect) -> &'static str {
    match e {
        Effect::Allow => "allow",
        Effect::Deny => "deny",
    }
}

/// `policies/approval.cedar:3`, when the policy is known.
fn position(policies: &Policies, id: &str) -> Option<(String, usize)> {
    policies
        .info(&cedar_policy::PolicyId::new(id))
        .map(|info| (info.pos.file.display().to_string(), info.pos.line))
}

fn policy_line(policies: &Policies, p: &DeterminingPolicy) -> String {
    let mut line = format!("  {}", p.id);
    if let Some((file, n)) = position(policies, &p.id) {
        line.push_str(&format!(" ({file}:{n})"));
    }
    if let Some(reason) = &p.reason {
        line.push_str(&format!(": {reason}"));
    }
    line
}

/// One evaluation: its effect, what determined it, and what failed.
fn decision_text(out: &mut String, policies: &Policies, title: &str, d: &Decision) {
    out.push_str(&format!("{title}: {}\n", effect(d.effect)));
    if d.determining_policies.is_empty() && d.errors.is_empty() {
        out.push_str("  no policy applies: denied by default\n");
    }
    for p in &d.determining_policies {
        out.push_str(&policy_line(policies, p));
        out.push('\n');
    }
    for e in &d.errors {
        let at = position(policies, &e.policy)
            .map(|(file, n)| format!(" ({file}:{n})"))
            .unwrap_or_default();
        out.push_str(&format!(
            "  error in {}{at}: {}; a policy that fails to evaluate denies the call\n",
            e.policy, e.message
        ));
    }
}

fn text(policies: &Policies, x: &Explanation, reviewer: Option<&str>) -> String {
    let mut out = format!("call: {} on {} ({})\n", x.tool, x.resource, x.action);
    if x.approval_required {
        decision_text(&mut out, policies, "without approval", &x.first);
        out.push_str("approval: required, demanded by\n");
        for p in &x.approval_demanded_by {
            out.push_str(&policy_line(policies, p));
            out.push('\n');
        }
    } else {
        decision_text(&mut out, policies, "decision", &x.decision);
        match reviewer {
            Some(r) => out.push_str(&format!(
                "approval: not required (reviewer {r} is not asked)\n"
            )),
            None => out.push_str("approval: not required\n"),
        }
    }
    match (&x.reviewer, &x.with_reviewer) {
        (Some(reviewer), Some(with)) => {
            decision_text(&mut out, policies, &format!("approved by {reviewer}"), with);
            out.push_str(&format!("effect: {}\n", effect(x.effect)));
        }
        _ if x.approval_required => {
            out.push_str(
                "effect: deny, unless a reviewer approves (check one with --reviewer <user id>)\n",
            );
        }
        _ => out.push_str(&format!("effect: {}\n", effect(x.effect))),
    }
    out
}

/// A policy with where it is written.
#[derive(Serialize)]
struct JsonPolicy<'a> {
    id: &'a str,
    reason: Option<&'a str>,
    file: Option<String>,
    line: Option<usize>,
}

impl<'a> JsonPolicy<'a> {
    fn new(policies: &Policies, p: &'a DeterminingPolicy) -> Self {
        let pos = position(policies, &p.id);
        JsonPolicy {
            id: &p.id,
            reason: p.reason.as_deref(),
            line: pos.as_ref().map(|(_, n)| *n),
            file: pos.map(|(f, _)| f),
        }
    }
}

#[derive(Serialize)]
struct JsonError<'a> {
    policy: &'a str,
    message: &'a str,
    file: Option<String>,
    line: Option<usize>,
}

#[derive(Serialize)]
struct JsonDecision<'a> {
    effect: Effect,
    determining_policies: Vec<JsonPolicy<'a>>,
    errors: Vec<JsonError<'a>>,
}

impl<'a> JsonDecision<'a> {
    fn new(policies: &Policies, d: &'a Decision) -> Self {
        JsonDecision {
            effect: d.effect,
            determining_policies: d
                .determining_policies
                .iter()
                .map(|p| JsonPolicy::new(policies, p))
                .collect(),
            errors: d
                .errors
                .iter()
                .map(|e| {
                    let pos = position(policies, &e.policy);
                    JsonError {
                        policy: &e.policy,
                        message: &e.message,
                        line: pos.as_ref().map(|(_, n)| *n),
                        file: pos.map(|(f, _)| f),
                    }
                })
                .collect(),
        }
    }
}

/// The explanation as printed by `--format json`: every key always present
/// (`null` when it does not apply), policies with their file and line.
#[derive(Serialize)]
struct JsonExplanation<'a> {
    tool: &'a str,
    action: &'a str,
    resource: &'a str,
    effect: Effect,
    approval_required: bool,
    approval_demanded_by: Vec<JsonPolicy<'a>>,
    reviewer: Option<&'a str>,
    first: JsonDecision<'a>,
    with_reviewer: Option<JsonDecision<'a>>,
    decision: JsonDecision<'a>,
    policy_digest: &'a str,
}

impl<'a> JsonExplanation<'a> {
    fn new(policies: &'a Policies, x: &'a Explanation) -> Self {
        JsonExplanation {
            tool: &x.tool,
            action: &x.action,
            resource: &x.resource,
            effect: x.effect,
            approval_required: x.approval_required,
            approval_demanded_by: x
                .approval_demanded_by
                .iter()
                .map(|p| JsonPolicy::new(policies, p))
                .collect(),
            reviewer: x.reviewer.as_deref(),
            first: JsonDecision::new(policies, &x.first),
            with_reviewer: x
                .with_reviewer
                .as_ref()
                .map(|d| JsonDecision::new(policies, d)),
            decision: JsonDecision::new(policies, &x.decision),
            policy_digest: policies.digest(),
        }
    }
}
