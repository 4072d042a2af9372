//! `mandate run` to success: the built binary runs the example agent (the
//! document-summarizer guest) under the example policies, with the example
//! `cmd:` reviewer approving its email, and the log it leaves verifies.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{kinds, read_records};

/// The `mandate` binary of this workspace's build. Cargo hands
/// `CARGO_BIN_EXE_mandate` only to the CLI crate's own tests, and the guests
/// are built only here, so the binary is found beside this test executable
/// (`target/<profile>/deps/..`), where `cargo test --workspace` puts it.
fn mandate_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let binary = exe.parent().unwrap().parent().unwrap().join("mandate");
    assert!(
        binary.is_file(),
        "no `mandate` binary at `{}`: build it with `cargo test --workspace`",
        binary.display()
    );
    binary
}

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

#[test]
fn mandate_run_summarizes_a_document_and_sends_the_approved_email_and_its_log_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let workspace = dir.path().join("workspace");
    let audit = dir.path().join("audit");
    let reviewer = format!("cmd:{}", repo().join("examples/reviewer.sh").display());

    let output = run_example(
        dir.path(),
        &["--approver", &reviewer],
        "summarize doc_88pk3r and share it with bob@example.com",
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );

    // What the operator sees: each decision, then the agent's own report.
    for line in [
        "allow read_document Document::\"doc_88pk3r\": scope-documents-read",
        "allow write_summary Document::\"doc_88pk3r\": scope-documents-write",
        "allow send_email Tool::\"send_email\": scope-email-send [approval approved by carol]",
        "read_document doc_88pk3r: allowed",
        "summary of \"Q3 planning notes\": 36 of 81 words",
        "write_summary doc_88pk3r: allowed",
        "send_email bob@example.com: allowed",
        "done: 3 of 3 tool calls allowed",
    ] {
        assert!(stdout.contains(line), "missing `{line}` in:\n{stdout}");
    }

    // The tools really ran: the summary was written and the email sent.
    let summaries = std::fs::read_dir(workspace.join("summaries"))
        .unwrap()
        .count();
    assert_eq!(summaries, 1);
    let outbox = std::fs::read_to_string(workspace.join("outbox.jsonl")).unwrap();
    let emails: Vec<serde_json::Value> = outbox
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(emails.len(), 1, "{outbox}");
    assert_eq!(emails[0]["to"], "bob@example.com");
    assert!(
        emails[0]["body"]
            .as_str()
            .unwrap()
            .contains("Q3 planning notes"),
        "{outbox}"
    );

    // The log says the same and verifies, by the binary and by the library.
    let records = read_records(&audit);
    let kinds = kinds(&records);
    assert_eq!(kinds.first().map(String::as_str), Some("log_start"));
    assert_eq!(kinds.last().map(String::as_str), Some("session_end"));
    let decisions: Vec<_> = records.iter().filter(|r| r["kind"] == "decision").collect();
    assert_eq!(decisions.len(), 3, "{kinds:?}");
    assert!(
        decisions.iter().all(|d| d["decision"]["effect"] == "allow"),
        "{decisions:?}"
    );
    assert_eq!(decisions[2]["approval"]["reviewer"], "carol");
    let outcomes: Vec<_> = records.iter().filter(|r| r["kind"] == "outcome").collect();
    assert_eq!(outcomes.len(), 3, "{kinds:?}");
    assert!(
        outcomes.iter().all(|o| o["outcome"]["status"] == "ok"),
        "{outcomes:?}"
    );
    let verify = Command::new(mandate_binary())
        .args(["audit", "verify"])
        .arg(&audit)
        .output()
        .unwrap();
    let verified = String::from_utf8_lossy(&verify.stdout);
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{verified}\n{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(
        verified.starts_with(&format!("ok: {} records", records.len())),
        "{verified}"
    );
    let report = mandate::audit::verify_file(&audit).unwrap();
    assert_eq!(report.head_seq, records.len() as u64);
}

/// `mandate run` of the example agent on `task`, in a scratch workspace
/// (`<dir>/workspace`) with its log in `<dir>/audit` and `extra` arguments;
/// its output.
fn run_example(dir: &Path, extra: &[&str], task: &str) -> std::process::Output {
    let workspace = dir.join("workspace");
    std::fs::create_dir_all(workspace.join("documents")).unwrap();
    std::fs::copy(
        common::example_workspace().join("documents/doc_88pk3r.md"),
        workspace.join("documents/doc_88pk3r.md"),
    )
    .unwrap();
    Command::new(mandate_binary())
        .arg("run")
        .arg("--agent")
        .arg(mandate_tests::DOCUMENT_SUMMARIZER)
        .arg("--policies")
        .arg(common::policies_dir())
        .arg("--session")
        .arg(common::policies_dir().join("session.json"))
        .arg("--audit")
        .arg(dir.join("audit"))
        .arg("--workspace")
        .arg(&workspace)
        .args(extra)
        .arg(task)
        .output()
        .unwrap()
}

/// Files under `dir`, recursively.
fn files_under(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .map(|e| e.unwrap().path())
            .map(|p| if p.is_dir() { files_under(&p) } else { 1 })
            .sum()
    })
}

#[test]
fn the_agent_is_compiled_once_into_a_private_cache_and_loaded_from_it_after() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache/compiled");
    let cache_arg = cache.to_str().unwrap();

    let first = run_example(
        &dir.path().join("one"),
        &["--compile-cache", cache_arg],
        "summarize doc_88pk3r",
    );
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    let cached = files_under(&cache);
    assert!(cached >= 1, "nothing cached in {}", cache.display());

    let second = run_example(
        &dir.path().join("two"),
        &["--compile-cache", cache_arg],
        "summarize doc_88pk3r",
    );
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(0), "{stderr}");
    // Loaded in milliseconds: no notice that it is compiling.
    assert!(!stderr.contains("compiling agent"), "{stderr}");
    assert_eq!(files_under(&cache), cached, "the second run compiled again");
}

#[test]
fn a_compile_cache_other_users_can_write_is_refused_before_anything_runs() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("shared-cache");
    std::fs::create_dir(&cache).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();

    let output = run_example(
        dir.path(),
        &["--compile-cache", cache.to_str().unwrap()],
        "summarize doc_88pk3r",
    );

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "compile cache `{}` cannot be trusted: it is writable by other users (mode 0777); \
             make it private (`chmod 700`, owned by you) or choose another directory",
            cache.canonicalize().unwrap().display()
        )),
        "{stderr}"
    );
    assert!(!dir.path().join("audit").exists(), "the log was touched");
}
