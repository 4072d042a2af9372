//! `mandate policy explain` and `mandate policy test` run as the real
//! binary: what they print for allowed, denied and held calls, their errors
//! on bad input, and the example policy tests, which must pass and must name
//! every example policy.

// Tests may unwrap; clippy counts only `#[test]` functions as tests, not
// the helpers of an integration test file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{policies_dir, s, stderr, stdout, success};

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mandate::policy::Policies;
use mandate::testing::TestPolicies;
use serde_json::Value;

/// The repository root: commands run there so that paths print as
/// `policies/...`.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `mandate` with `args` in `dir`.
fn mandate_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mandate"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

/// `mandate policy explain` on the example policies and session, from the
/// repository root.
fn explain(tool: &str, arguments: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "policy",
        "explain",
        "--policies",
        "policies",
        "--session",
        "policies/session.json",
        "--tool",
        tool,
        "--args",
        arguments,
    ];
    args.extend_from_slice(extra);
    mandate_in(&repo(), &args)
}

/// `policies/file.cedar:line` of a policy, read from the policies, so that
/// reformatting them does not break these tests.
fn position(id: &str) -> String {
    let policies = Policies::load_dir(&policies_dir()).unwrap();
    let info = policies.info(&cedar_policy::PolicyId::new(id)).unwrap();
    let file = info.pos.file.file_name().unwrap().to_str().unwrap();
    format!("policies/{file}:{}", info.pos.line)
}

/// `id (policies/file.cedar:line): reason`, as explain prints a policy.
fn shown(id: &str) -> String {
    let policies = Policies::load_dir(&policies_dir()).unwrap();
    let info = policies.info(&cedar_policy::PolicyId::new(id)).unwrap();
    format!(
        "  {id} ({}): {}",
        position(id),
        info.reason.as_deref().unwrap()
    )
}

const EMAIL: &str = r#"{"to": "bob@example.com", "subject": "Q3 notes", "body": "see attached"}"#;

/// The error of a run that failed with exit code 2.
fn error(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(2), "stdout: {}", stdout(out));
    assert!(stdout(out).is_empty(), "{}", stdout(out));
    stderr(out)
}

#[test]
fn explain_an_allowed_call_names_the_permit_and_its_reason() {
    let out = success(&explain(
        "read_document",
        r#"{"document_id": "doc_88pk3r"}"#,
        &[],
    ));
    assert_eq!(
        out,
        format!(
            "call: read_document on Document::\"doc_88pk3r\" (Action::\"read_document\")\n\
             decision: allow\n{}\n\
             approval: not required\n\
             effect: allow\n",
            shown("scope-documents-read")
        )
    );
}

#[test]
fn explain_a_denied_call_names_the_forbid_and_its_reason() {
    let out = success(&explain(
        "read_document",
        r#"{"document_id": "doc_4hq2zt"}"#,
        &[],
    ));
    assert_eq!(
        out,
        format!(
            "call: read_document on Document::\"doc_4hq2zt\" (Action::\"read_document\")\n\
             decision: deny\n{}\n\
             approval: not required\n\
             effect: deny\n",
            shown("forbid-document-not-owned")
        )
    );
}

#[test]
fn explain_a_held_call_says_approval_is_required_and_by_which_policy() {
    let out = success(&explain("send_email", EMAIL, &[]));
    let held = shown("email-requires-approval");
    assert_eq!(
        out,
        format!(
            "call: send_email on Tool::\"send_email\" (Action::\"send_email\")\n\
             without approval: deny\n{held}\n\
             approval: required, demanded by\n{held}\n\
             effect: deny, unless a reviewer approves (check one with --reviewer <user id>)\n"
        )
    );
}

#[test]
fn explain_with_a_reviewer_shows_whether_policy_accepts_their_approval() {
    let out = success(&explain("send_email", EMAIL, &["--reviewer", "carol"]));
    assert!(
        out.ends_with(&format!(
            "approved by carol: allow\n{}\neffect: allow\n",
            shown("scope-email-send")
        )),
        "{out}"
    );
    let out = success(&explain("send_email", EMAIL, &["--reviewer", "bob"]));
    assert!(
        out.ends_with(&format!(
            "approved by bob: deny\n{}\neffect: deny\n",
            shown("approver-must-be-reviewer")
        )),
        "{out}"
    );
}

#[test]
fn explain_shows_an_evaluation_error_with_its_policy() {
    let out = success(&explain(
        "read_document",
        r#"{"document_id": "doc_unknown"}"#,
        &[],
    ));
    let at = position("forbid-document-not-owned");
    assert!(
        out.contains(&format!(
            "  error in forbid-document-not-owned ({at}): entity `Document::\"doc_unknown\"` does not exist; \
             a policy that fails to evaluate denies the call\n"
        )),
        "{out}"
    );
    assert!(out.ends_with("effect: deny\n"), "{out}");
}

#[test]
fn explain_as_json_has_every_evaluation_with_policy_positions() {
    let out = success(&explain(
        "send_email",
        EMAIL,
        &["--reviewer", "carol", "--format", "json"],
    ));
    let json: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["effect"], "allow");
    assert_eq!(json["approval_required"], true);
    assert_eq!(json["reviewer"], "carol");
    assert_eq!(json["resource"], "Tool::\"send_email\"");
    assert_eq!(json["first"]["effect"], "deny");
    let demanded = &json["approval_demanded_by"][0];
    assert_eq!(demanded["id"], "email-requires-approval");
    assert_eq!(demanded["file"], "policies/approval.cedar");
    assert!(demanded["line"].as_u64().unwrap() > 0);
    assert!(demanded["reason"].as_str().unwrap().contains("human"));
    assert_eq!(json["with_reviewer"], json["decision"]);
    assert_eq!(
        json["decision"]["determining_policies"][0]["id"],
        "scope-email-send"
    );
    assert_eq!(json["decision"]["errors"], serde_json::json!([]));
    assert_eq!(json["policy_digest"].as_str().unwrap().len(), 64);
}

#[test]
fn explain_an_unknown_tool_lists_the_known_ones() {
    let err = error(&explain("send_mail", EMAIL, &[]));
    assert_eq!(
        err,
        "error: unknown tool `send_mail`; known tools: http_request, read_document, send_email, write_summary\n"
    );
}

#[test]
fn explain_with_arguments_that_are_not_json_says_so() {
    let err = error(&explain("read_document", "{document_id: doc_88pk3r}", &[]));
    assert_eq!(
        err,
        "error: --args is not valid json: key must be a string at line 1 column 2\n"
    );
}

#[test]
fn explain_with_arguments_that_do_not_fit_the_tool_names_the_field() {
    let err = error(&explain(
        "read_document",
        r#"{"document": "doc_88pk3r"}"#,
        &[],
    ));
    assert_eq!(
        err,
        "error: tool `read_document`: invalid arguments: missing field `document_id`\n"
    );
    let err = error(&explain("send_email", r#"{"to": "bob@example.com"}"#, &[]));
    assert_eq!(
        err,
        "error: tool `send_email`: invalid arguments: missing field `subject`\n"
    );
}

#[test]
fn explain_after_the_session_expired_says_when() {
    let err = error(&explain(
        "read_document",
        r#"{"document_id": "doc_88pk3r"}"#,
        &["--now", "2099-01-02T00:00:00Z"],
    ));
    assert_eq!(
        err,
        "error: session `policies/session.json`: session expired at 2099-01-01T00:00:00Z, \
         before the call at 2099-01-02T00:00:00Z\n"
    );
}

#[test]
fn explain_with_a_bad_now_shows_the_expected_form() {
    let err = error(&explain(
        "read_document",
        r#"{"document_id": "doc_88pk3r"}"#,
        &["--now", "tomorrow"],
    ));
    assert!(
        err.starts_with(
            "error: --now `tomorrow` is not an rfc 3339 timestamp like 2026-12-01T10:00:00Z: "
        ),
        "{err}"
    );
}

/// The example policy tests, run as a user would from the repository root.
#[test]
fn the_example_policy_tests_pass() {
    let out = mandate_in(&repo(), &["policy", "test", "policies/tests"]);
    let text = success(&out);
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    assert!(text.contains("policies/tests/approval.json (policies `policies`)\n"));
    assert!(!text.contains("FAIL"), "{text}");
    let summary = text.lines().last().unwrap();
    assert!(
        summary.starts_with("ok: ") && summary.ends_with(" cases passed (5 files)"),
        "{summary}"
    );
}

/// The ids a test file's cases name in `determining_policies` or
/// `approval_demanded_by`.
fn named_policies(file: &Path) -> BTreeSet<String> {
    let json: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    let mut named = BTreeSet::new();
    for case in json["cases"].as_array().unwrap() {
        for field in ["determining_policies", "approval_demanded_by"] {
            if let Some(ids) = case["expect"][field].as_array() {
                named.extend(ids.iter().map(|id| id.as_str().unwrap().to_string()));
            }
        }
    }
    named
}

/// A new policy needs a test: every example policy is named by some case.
#[test]
fn every_example_policy_is_named_by_a_test_case() {
    let mut named = BTreeSet::new();
    for entry in std::fs::read_dir(policies_dir().join("tests")).unwrap() {
        named.extend(named_policies(&entry.unwrap().path()));
    }
    let ids = TestPolicies::load(&policies_dir()).unwrap().policy_ids();
    assert!(ids.len() >= 7, "{ids:?}");
    let untested: Vec<&String> = ids.iter().filter(|id| !named.contains(*id)).collect();
    assert!(
        untested.is_empty(),
        "policies no case in policies/tests names in `determining_policies` or \
         `approval_demanded_by`: {untested:?}"
    );
    // The command agrees, and holds it to that with --require-coverage.
    let out = mandate_in(
        &repo(),
        &[
            "policy",
            "test",
            "policies/tests",
            "--require-coverage",
            "--format",
            "json",
        ],
    );
    let json: Value = serde_json::from_str(&success(&out)).unwrap();
    assert_eq!(
        json["coverage"],
        serde_json::json!([{ "policies": "policies", "uncovered": [] }])
    );
}

/// A test file in `dir/tests` over the example policies.
fn test_file(dir: &Path, cases: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("tests")).unwrap();
    let file = dir.join("tests/t.json");
    let text = format!(
        r#"{{ "policies": {policies:?}, "session": {session:?}, "cases": [ {cases} ] }}"#,
        policies = s(&policies_dir()),
        session = s(&policies_dir().join("session.json")),
    );
    std::fs::write(&file, text).unwrap();
    file
}

const BOB_APPROVES: &str = r#"{
    "name": "bob approves an email",
    "tool": "send_email",
    "arguments": { "to": "bob@example.com", "subject": "Q3", "body": "x" },
    "reviewer": "bob",
    "expect": {
        "decision": "allow",
        "approval_required": true,
        "determining_policies": ["scope-email-send"]
    }
}"#;

#[test]
fn a_failing_case_shows_what_differs_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let file = test_file(dir.path(), BOB_APPROVES);
    let out = mandate_in(dir.path(), &["policy", "test", "tests"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!(
            "{} (policies `{}`)\n  \
             FAIL  bob approves an email\n        \
             decision: expected allow, got deny\n        \
             determining_policies: expected [scope-email-send], got [approver-must-be-reviewer] \
             (missing scope-email-send; unexpected approver-must-be-reviewer)\n        \
             got: deny, approval_required true, determining_policies [approver-must-be-reviewer], \
             approval_demanded_by [email-requires-approval]\n\
             FAILED: 1 of 1 cases failed, 0 passed (1 file)\n",
            "tests/t.json",
            s(&policies_dir()),
        )
    );
    // Policies no case names are pointed out, but pass without
    // --require-coverage.
    assert!(
        stderr(&out).contains("warning: policy `forbid-document-not-owned` (",),
        "{}",
        stderr(&out)
    );
    assert!(file.is_file());
}

#[test]
fn a_case_that_cannot_be_evaluated_fails_unless_it_expects_the_error() {
    let dir = tempfile::tempdir().unwrap();
    test_file(
        dir.path(),
        r#"{ "name": "typo", "tool": "send_mail", "arguments": {}, "expect": { "decision": "deny" } },
           { "name": "expected", "tool": "send_mail", "arguments": {}, "expect": { "error": "unknown tool" } }"#,
    );
    let out = mandate_in(dir.path(), &["policy", "test", "tests/t.json"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains(
            "  FAIL  typo\n        error: unknown tool `send_mail` \
             (expected a decision; the call could not be evaluated)\n  pass  expected\n"
        ),
        "{text}"
    );
}

#[test]
fn test_results_as_json_parse_and_carry_each_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let file = test_file(dir.path(), BOB_APPROVES);
    let out = mandate_in(
        dir.path(),
        &["policy", "test", s(&file), "--format", "json"],
    );
    assert_eq!(out.status.code(), Some(1));
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        (json["passed"].as_u64(), json["failed"].as_u64()),
        (Some(0), Some(1))
    );
    let case = &json["files"][0]["cases"][0];
    assert_eq!(case["name"], "bob approves an email");
    assert_eq!(case["passed"], false);
    assert_eq!(
        case["mismatches"][0],
        serde_json::json!({ "field": "decision", "expected": "allow", "actual": "deny" })
    );
    assert_eq!(case["actual"]["approval_required"], true);
    assert_eq!(case["error"], Value::Null);
}

#[test]
fn a_malformed_test_file_is_an_error_naming_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = test_file(
        dir.path(),
        "{ \"name\": \"x\", \"tool\": \"read_document\", \"arguments\": {},\n  \"expect\": { \"decison\": \"deny\" } }",
    );
    let err = error(&mandate_in(dir.path(), &["policy", "test", s(&file)]));
    assert!(
        err.starts_with(&format!("error: test file `{}` line 2 column ", s(&file))),
        "{err}"
    );
    assert!(
        err.contains("field `cases[0].expect.decison`: unknown field `decison`"),
        "{err}"
    );
}

#[test]
fn policy_test_on_a_directory_without_tests_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let err = error(&mandate_in(dir.path(), &["policy", "test", "."]));
    assert_eq!(err, "error: no test files (`*.json`) in `.`\n");
}
