//! `mandate inspect`: exit status, text and JSON for components that Mandate
//! will not run, and the errors for files that are not components.
//!
//! The guest components are built by the `mandate-tests` crate, which cannot
//! run this binary (`CARGO_BIN_EXE_mandate` exists only in this package's
//! tests), so these tests inspect tiny components written byte by byte here,
//! and `tests/tests/lockdown.rs` checks the same report, through the library,
//! on the real guests, including the verdict of one Mandate will run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use common::{mandate, s, stderr, stdout};
use serde_json::Value;

/// A component that imports each of `interfaces` as an empty instance and
/// exports nothing.
fn component(interfaces: &[&str]) -> Vec<u8> {
    // Preamble: magic, component-model version 0x0d, layer 1.
    let mut wasm = b"\0asm\x0d\x00\x01\x00".to_vec();
    if interfaces.is_empty() {
        return wasm;
    }
    // Type section: one type, an instance type with no declarations.
    section(&mut wasm, 7, &[0x01, 0x42, 0x00]);
    // Import section: each name (0x00, length, bytes) with type instance 0.
    let mut imports = leb128(interfaces.len());
    for name in interfaces {
        imports.push(0x00);
        imports.extend(leb128(name.len()));
        imports.extend(name.as_bytes());
        imports.extend([0x05, 0x00]);
    }
    section(&mut wasm, 10, &imports);
    wasm
}

fn section(wasm: &mut Vec<u8>, id: u8, body: &[u8]) {
    wasm.push(id);
    wasm.extend(leb128(body.len()));
    wasm.extend(body);
}

fn leb128(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// An interface mandate does not link, one it links, one it links granting
/// nothing, and one outside WASI.
const FORBIDDEN: &[&str] = &[
    "wasi:keyvalue/store@0.2.0",
    "wasi:cli/stdout@0.2.6",
    "wasi:sockets/tcp@0.2.6",
    "acme:db/query@1.0.0",
];

#[test]
fn a_component_that_imports_what_mandate_does_not_link_is_refused_with_each_import() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = write(dir.path(), "sneaky.wasm", &component(FORBIDDEN));

    let output = mandate(&["inspect", s(&wasm)]);

    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], format!("component  {}", wasm.display()));
    assert!(lines[1].starts_with("sha256     "), "{text}");
    assert_eq!(lines[1].len(), "sha256     ".len() + 64, "{text}");
    assert_eq!(
        lines[2],
        "needs      0 core instances, 0 memories, 0 tables per session"
    );
    assert_eq!(lines[3], "imports    4");
    assert_eq!(
        lines[4],
        "  refused  wasi:keyvalue/store@0.2.0  not among the wasi 0.2 interfaces mandate links \
         (io, cli, clocks, random, filesystem and sockets granting nothing, and guarded outgoing http); \
         an agent may reach the world only through mandate:guard/tools and guarded outgoing http"
    );
    assert_eq!(
        lines[5],
        "  allowed  wasi:cli/stdout@0.2.6      captured into the session's output, never the host's"
    );
    assert_eq!(
        lines[6],
        "  allowed  wasi:sockets/tcp@0.2.6     linked, grants nothing: \
         every socket operation and name lookup is refused (access-denied)"
    );
    assert_eq!(
        lines[7],
        "  refused  acme:db/query@1.0.0        not part of the agent world; \
         an agent may reach the world only through mandate:guard/tools and guarded outgoing http"
    );
    assert_eq!(lines[8], "exports    0");
    assert_eq!(
        lines[9],
        "mandate will not run this agent: it imports what mandate does not provide: \
         `wasi:keyvalue/store@0.2.0`, `acme:db/query@1.0.0`; \
         it does not export `run`; an agent exports `run: func(task: string) -> result<string, string>`"
    );
    assert_eq!(lines.len(), 10, "{text}");
}

#[test]
fn json_output_has_every_import_with_its_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = write(dir.path(), "sneaky.wasm", &component(FORBIDDEN));

    let output = mandate(&["inspect", s(&wasm), "--format", "json"]);

    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let report: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(report["path"], s(&wasm));
    assert_eq!(report["runnable"], false);
    assert_eq!(report["digest"].as_str().unwrap().len(), 64);
    let imports: Vec<(&str, bool)> = report["imports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            assert_eq!(i["kind"], "instance");
            (i["name"].as_str().unwrap(), i["allowed"].as_bool().unwrap())
        })
        .collect();
    assert_eq!(
        imports,
        [
            ("wasi:keyvalue/store@0.2.0", false),
            ("wasi:cli/stdout@0.2.6", true),
            ("wasi:sockets/tcp@0.2.6", true),
            ("acme:db/query@1.0.0", false),
        ]
    );
    assert_eq!(report["exports"], serde_json::json!([]));
    assert_eq!(
        report["needs"],
        serde_json::json!({"core_instances": 0, "memories": 0, "tables": 0})
    );
    assert_eq!(report["problems"].as_array().unwrap().len(), 2);
}

#[test]
fn a_component_without_run_is_not_an_agent() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = write(dir.path(), "empty.wasm", &component(&[]));

    let output = mandate(&["inspect", s(&wasm)]);

    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains("per session\nimports    0\nexports    0\n"),
        "{text}"
    );
    assert!(
        text.ends_with(
            "mandate will not run this agent: it does not export `run`; \
             an agent exports `run: func(task: string) -> result<string, string>`\n"
        ),
        "{text}"
    );
}

#[test]
fn files_that_are_not_components_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let text = write(dir.path(), "notes.wasm", b"hello, not wasm");
    let core = write(dir.path(), "core.wasm", b"\0asm\x01\x00\x00\x00");
    let missing = dir.path().join("missing.wasm");

    for (path, message) in [
        (
            &text,
            "is not an agent component: it is not a webassembly file",
        ),
        (
            &core,
            "is not an agent component: it is a core wasm module, not a component; \
             build the agent for the wasm32-wasip2 target",
        ),
        (&missing, "cannot read"),
    ] {
        let output = mandate(&["inspect", s(path)]);
        assert_eq!(output.status.code(), Some(2), "{}", path.display());
        assert!(
            stderr(&output).starts_with("error: "),
            "{}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains(message),
            "{}: {}",
            path.display(),
            stderr(&output)
        );
        assert!(stdout(&output).is_empty());
    }
}
