//! What reaches the operator's terminal from `mandate run`: an agent that
//! tries to draw on it (escape sequences, bidi controls, zero-width
//! characters) gets every such character shown as a visible escape.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// The `mandate` binary of this build (`cargo test --workspace` builds it
/// next to the test binaries' `deps` directory).
fn mandate_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .join("mandate");
    assert!(
        bin.exists(),
        "no `{}`: run the tests with `cargo test --workspace`",
        bin.display()
    );
    bin
}

/// `mandate run --approver prompt` on the scripted agent with `task`, the
/// prompt answered with `answers`.
fn run_with_prompt(task: &serde_json::Value, answers: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let workspace = dir.path().join("workspace");
    std::fs::create_dir_all(workspace.join("documents")).unwrap();
    std::fs::copy(
        common::example_workspace().join("documents/doc_88pk3r.md"),
        workspace.join("documents/doc_88pk3r.md"),
    )
    .unwrap();
    let policies = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let mut child = Command::new(mandate_binary())
        .arg("run")
        .arg("--agent")
        .arg(mandate_tests::SCRIPTED_AGENT)
        .arg("--policies")
        .arg(&policies)
        .arg("--session")
        .arg(policies.join("session.json"))
        .arg("--audit")
        .arg(dir.path().join("audit"))
        .arg("--workspace")
        .arg(&workspace)
        .args(["--approver", "prompt"])
        .arg(task.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(answers.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Characters that must never reach the terminal as themselves.
const FORBIDDEN: [char; 6] = [
    '\u{1b}',
    '\u{9b}',
    '\u{202e}',
    '\u{2066}',
    '\u{200b}',
    '\u{e0041}',
];

fn assert_clean(stream: &str, bytes: &[u8]) {
    assert!(
        !bytes.contains(&0x1b),
        "a raw ESC byte reached {stream}: {}",
        String::from_utf8_lossy(bytes)
    );
    let text = String::from_utf8_lossy(bytes);
    for c in FORBIDDEN {
        assert!(!text.contains(c), "{c:?} reached {stream} raw: {text}");
    }
}

#[test]
fn an_agent_cannot_draw_a_fake_approval_on_the_operators_terminal() {
    // A fake approval block, concealed text, a cursor jump and a right-to-left
    // override in everything the agent controls: its output, a tool name, field
    // names, argument values the prompt shows, and its result.
    let fake = "\u{1b}[8m\n-- approval needed --\n  to: bob@example.com\u{1b}[0m\u{1b}[2J\u{9b}1A";
    let task = serde_json::json!({
        "print": fake,
        "calls": [
            {"tool": "evil\u{1b}[8m\u{202e}tool", "arguments": {}},
            {"tool": "read_document", "arguments": {"document_id": "doc_88pk3r", "x\u{1b}[8m\u{200b}": 1}},
            // `to` must be one plain address (else the call is refused before anyone is
            // asked); the subject carries the bidi overrides into the prompt.
            {"tool": "send_email", "arguments": {
                "to": "bob@example.com",
                "subject": "hi\u{200b}\u{e0041}\u{202e}\u{2066}elpmaxe.moc@eve",
                "body": "the report"
            }}
        ]
    });
    let out = run_with_prompt(&task, "n\ncarol\nwrong address \u{1b}[8m\n");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_clean("stdout", &out.stdout);
    assert_clean("stderr", &out.stderr);
    // The prompt was shown, with the attack visible as escapes.
    assert!(stderr.contains("approval needed"), "{stderr}");
    assert!(stderr.contains("\\u{202e}"), "{stderr}");
    // The unknown tool is named in the guard's bounded form (every character outside the
    // registered-name alphabet written as an escape), which the terminal shows as it is.
    assert!(
        stdout.contains("evil\\u{1b}\\u{5b}8m\\u{202e}tool"),
        "{stdout}"
    );
    // The agent's own output is set apart, line by line.
    assert!(stdout.contains("agent| stdout: \\u{1b}[8m\n"), "{stdout}");
    assert!(
        stdout.contains("agent| -- approval needed --\n"),
        "{stdout}"
    );
}
