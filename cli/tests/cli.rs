//! The `mandate` binary on bad input: every error names what is wrong and
//! where, in lowercase; and `audit verify` / `policy validate` exit codes.

// Tests may unwrap; clippy counts only `#[test]` functions as tests, not
// the helpers of an integration test file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{mandate, policies_dir, s, stderr, stdout};

use std::path::{Path, PathBuf};
use std::process::Output;

use mandate::audit::AuditLog;

fn example_session() -> PathBuf {
    policies_dir().join("session.json")
}

/// Checks that the run failed with exit code `code` and that its error
/// message (stderr) starts with `error: ` and a lowercase word or a quoted
/// name; returns the message.
fn failure(output: &Output, code: i32) -> String {
    let err = stderr(output);
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout: {}\nstderr: {err}",
        stdout(output)
    );
    let first = err
        .strip_prefix("error: ")
        .unwrap_or_else(|| panic!("no `error: ` prefix: {err}"));
    let c = first.chars().next().unwrap();
    assert!(!c.is_uppercase(), "the message starts in uppercase: {err}");
    err
}

/// `mandate run` with the given agent, policies and session, appending to the
/// audit log directory `dir/audit`.
fn run(dir: &Path, agent: &Path, policies: &Path, session: &Path) -> Output {
    let audit = dir.join("audit");
    mandate(&[
        "run",
        "--agent",
        s(agent),
        "--policies",
        s(policies),
        "--session",
        s(session),
        "--audit",
        s(&audit),
        "--workspace",
        s(dir),
        "summarize doc_88pk3r",
    ])
}

/// A copy of the example policies in `dir/policies` plus `file` = `text`.
fn policies_with(dir: &Path, file: &str, text: &str) -> PathBuf {
    let dest = dir.join("policies");
    std::fs::create_dir_all(&dest).unwrap();
    for entry in std::fs::read_dir(policies_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, dest.join(path.file_name().unwrap())).unwrap();
        }
    }
    std::fs::write(dest.join(file), text).unwrap();
    dest
}

#[test]
fn run_with_a_missing_session_file_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let session = dir.path().join("no-such-session.json");
    let out = run(
        dir.path(),
        &dir.path().join("agent.wasm"),
        &policies_dir(),
        &session,
    );
    let err = failure(&out, 2);
    assert!(
        err.starts_with(&format!(
            "error: cannot read session file `{}`",
            s(&session)
        )),
        "{err}"
    );
}

#[test]
fn run_with_a_malformed_session_names_line_column_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let session = dir.path().join("session.json");
    let text = std::fs::read_to_string(example_session()).unwrap();
    let broken = text.replace("\"trace_id\": \"trace_example_01\",", "");
    assert_ne!(broken, text);
    std::fs::write(&session, broken).unwrap();
    let out = run(
        dir.path(),
        &dir.path().join("agent.wasm"),
        &policies_dir(),
        &session,
    );
    let err = failure(&out, 2);
    assert!(
        err.starts_with(&format!("error: session file `{}` line ", s(&session))),
        "{err}"
    );
    assert!(err.contains(" column "), "{err}");
    assert!(err.contains("missing field `trace_id`"), "{err}");
}

#[test]
fn run_with_a_policy_syntax_error_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let policies = policies_with(
        dir.path(),
        "zz-broken.cedar",
        "// a comment\npermit(principal action, resource);\n",
    );
    let out = run(
        dir.path(),
        &dir.path().join("agent.wasm"),
        &policies,
        &example_session(),
    );
    let err = failure(&out, 2);
    assert!(
        err.starts_with(&format!(
            "error: cannot load policies from `{}`",
            s(&policies)
        )),
        "{err}"
    );
    let at = format!("{}:2:", s(&policies.join("zz-broken.cedar")));
    assert!(err.contains(&at), "{err} should name {at}");
    assert!(err.contains("unexpected token"), "{err}");
}

#[test]
fn run_with_a_policy_failing_validation_shows_the_line_with_a_caret() {
    let dir = tempfile::tempdir().unwrap();
    let policies = policies_with(
        dir.path(),
        "zz-typo.cedar",
        "permit(principal, action, resource)\nwhen { context.sesion.scopes.contains(\"x\") };\n",
    );
    let out = run(
        dir.path(),
        &dir.path().join("agent.wasm"),
        &policies,
        &example_session(),
    );
    let err = failure(&out, 2);
    let at = format!("{}:2:", s(&policies.join("zz-typo.cedar")));
    assert!(err.contains(&at), "{err} should name {at}");
    assert!(
        err.contains("2 | when { context.sesion.scopes.contains(\"x\") };"),
        "{err}"
    );
    let caret = err
        .lines()
        .find(|l| l.trim_start().starts_with('|') && l.contains('^'));
    assert!(caret.is_some(), "no caret line: {err}");
}

#[test]
fn run_with_a_text_file_as_agent_says_it_is_not_webassembly() {
    let dir = tempfile::tempdir().unwrap();
    let agent = dir.path().join("agent.wasm");
    std::fs::write(&agent, "this is not wasm\n").unwrap();
    let out = run(dir.path(), &agent, &policies_dir(), &example_session());
    let err = failure(&out, 2);
    assert!(err.contains(&format!("`{}`", s(&agent))), "{err}");
    assert!(err.contains("not a webassembly file"), "{err}");
}

#[test]
fn run_with_a_core_module_as_agent_says_it_is_not_a_component() {
    let dir = tempfile::tempdir().unwrap();
    let agent = dir.path().join("core.wasm");
    std::fs::write(&agent, b"\0asm\x01\0\0\0").unwrap();
    let out = run(dir.path(), &agent, &policies_dir(), &example_session());
    let err = failure(&out, 2);
    assert!(err.contains(&format!("`{}`", s(&agent))), "{err}");
    assert!(err.contains("core wasm module, not a component"), "{err}");
    assert!(err.contains("wasm32-wasip2"), "{err}");
}

/// An audit log with `log_start` and three records; returns its directory.
fn write_log(dir: &Path) -> PathBuf {
    let path = dir.join("audit");
    let log = AuditLog::open(&path).unwrap();
    for n in 1..=3 {
        log.append(&serde_json::json!({"kind": "note", "n": n, "text": "some audited event"}))
            .unwrap();
    }
    log.close().unwrap();
    path
}

/// The log's only segment.
fn segment(log: &Path) -> PathBuf {
    log.join(mandate::audit::segment_name(1))
}

#[test]
fn audit_verify_on_a_file_that_is_not_a_log_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, "hello\n").unwrap();
    let out = mandate(&["audit", "verify", s(&file)]);
    let err = failure(&out, 2);
    assert!(err.contains(&format!("`{}`", s(&file))), "{err}");
    assert!(err.contains("not a mandate audit log"), "{err}");
}

#[test]
fn audit_verify_on_an_intact_log_prints_the_record_count() {
    let dir = tempfile::tempdir().unwrap();
    let log = write_log(dir.path());
    let out = mandate(&["audit", "verify", s(&log)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("ok: 4 records, chain intact"), "{text}");
    assert!(text.contains("head seq 4"), "{text}");
}

#[test]
fn audit_verify_on_a_tampered_log_names_the_first_bad_seq() {
    let dir = tempfile::tempdir().unwrap();
    let log = write_log(dir.path());
    let text = std::fs::read_to_string(segment(&log)).unwrap();
    let tampered: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with("{\"seq\":3,") {
                l.replace("some audited event", "some edited event")
            } else {
                l.to_string()
            }
        })
        .collect();
    std::fs::write(segment(&log), tampered.join("\n") + "\n").unwrap();
    assert_ne!(std::fs::read_to_string(segment(&log)).unwrap(), text);

    let out = mandate(&["audit", "verify", s(&log)]);
    assert_ne!(out.status.code(), Some(0));
    let err = stderr(&out);
    let at = format!("tampered: seq 3 ({}:3): ", s(&segment(&log)));
    assert!(err.starts_with(&at), "{err}");
}

#[test]
fn policy_validate_accepts_the_example_policies() {
    let out = mandate(&["policy", "validate", s(&policies_dir())]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("ok: 9 policies valid"), "{text}");
    assert!(text.contains("digest "), "{text}");
}

#[test]
fn policy_validate_on_a_bad_dir_lists_each_error_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let policies = policies_with(
        dir.path(),
        "zz-one.cedar",
        "permit(principal, action, resource)\nwhen { context.sesion.id == \"x\" };\n",
    );
    std::fs::write(
        policies.join("zz-two.cedar"),
        "// two\n\nforbid(principal, action, resource)\nwhen { context.now > 3 };\n",
    )
    .unwrap();
    let out = mandate(&["policy", "validate", s(&policies)]);
    let err = failure(&out, 1);
    for at in ["zz-one.cedar:2:", "zz-two.cedar:4:"] {
        let at = format!("error: {}", s(&policies.join(at)));
        assert!(err.contains(&at), "{err} should contain {at}");
    }
    // Every error line names a file and line of the directory.
    let prefix = format!("error: {}/zz-", s(&policies));
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error: ")).collect();
    assert!(errors.len() >= 2, "{err}");
    for line in &errors {
        assert!(line.starts_with(&prefix), "{line}");
    }
    assert!(
        err.trim_end()
            .ends_with(&format!("{} error(s) in `{}`", errors.len(), s(&policies))),
        "{err}"
    );
}

#[test]
fn a_duplicate_policy_id_shows_the_line_of_the_second_policy_even_after_comments() {
    let dir = tempfile::tempdir().unwrap();
    let policies = policies_with(
        dir.path(),
        "zz-duplicate.cedar",
        "// a comment\n// and another\n\n@id(\"email-requires-approval\")\npermit (principal, action, resource);\n",
    );
    let out = mandate(&["policy", "validate", s(&policies)]);
    let err = format!("{}{}", stdout(&out), stderr(&out));
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("duplicate policy id `email-requires-approval`"),
        "{err}"
    );
    assert!(err.contains("zz-duplicate.cedar:4:"), "{err}");
    assert!(
        err.contains("@id(\"email-requires-approval\")"),
        "the source line shown is not the policy's: {err}"
    );
    assert!(!err.contains("a comment"), "{err}");
}

#[test]
fn a_reviewer_command_that_does_not_exist_stops_the_run_before_the_agent_starts() {
    let dir = tempfile::tempdir().unwrap();
    let not_executable = dir.path().join("reviewer.sh");
    std::fs::write(&not_executable, "#!/bin/sh\n").unwrap();
    for program in [
        "/nonexistent/reviewer".to_string(),
        not_executable.display().to_string(),
        "no-such-reviewer-on-path".to_string(),
    ] {
        let out = mandate(&[
            "run",
            "--agent",
            s(&dir.path().join("agent.wasm")),
            "--policies",
            s(&policies_dir()),
            "--session",
            s(&example_session()),
            "--audit",
            s(&dir.path().join("audit")),
            "--approver",
            &format!("cmd:{program}"),
            "task",
        ]);
        let err = failure(&out, 2);
        assert!(
            err.contains(&format!("reviewer command `{program}`")),
            "{err}"
        );
        assert!(!dir.path().join("audit").exists());
    }
}
