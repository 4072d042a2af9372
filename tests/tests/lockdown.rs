//! Capability lockdown on the real guests: an agent that uses the filesystem
//! and the network is refused at load, naming each import it may not have;
//! the example agents import only what Mandate links and load.
//!
//! `mandate inspect` prints [`Inspection`]'s `Display` (text) or its JSON;
//! the report is checked here through the library on the real guests, and
//! the binary's exit status and wiring in `cli/tests/cli_inspect.rs` on
//! components written byte by byte (only the `mandate-cli` package's own tests
//! can run the binary, and only this crate has the guests).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::sync::OnceLock;

use mandate::runtime::{ALLOWED_IMPORTS, Inspection, Runtime, RuntimeError};
use serde_json::Value;

/// What the forbidden agent imports that Mandate refuses, in its order,
/// without versions: `std::fs` brings the filesystem, `std::net` the sockets
/// (and the filesystem too). `std::env::var` brings nothing new: every guest
/// imports `wasi:cli/environment`, which Mandate links empty.
const FORBIDDEN: &[&str] = &[
    "wasi:filesystem/types",
    "wasi:filesystem/preopens",
    "wasi:sockets/network",
    "wasi:sockets/instance-network",
    "wasi:sockets/udp",
    "wasi:sockets/udp-create-socket",
    "wasi:sockets/tcp",
    "wasi:sockets/tcp-create-socket",
    "wasi:sockets/ip-name-lookup",
];

fn unversioned(name: &str) -> &str {
    name.split_once('@')
        .map_or(name, |(interface, _)| interface)
}

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| Runtime::new().unwrap())
}

fn inspect(path: &str) -> Inspection {
    let bytes = std::fs::read(path).unwrap();
    runtime().inspect(Path::new(path), &bytes).unwrap()
}

/// The verdict and reason printed for import `name` in an inspection's text.
fn import_line<'t>(text: &'t str, name: &str) -> (&'t str, &'t str) {
    text.lines()
        .find_map(|line| {
            let (verdict, rest) = line.trim_start().split_once("  ")?;
            let (listed, reason) = rest.split_once(' ')?;
            (listed == name).then(|| (verdict, reason.trim_start()))
        })
        .unwrap_or_else(|| panic!("no line for {name} in\n{text}"))
}

#[test]
fn an_agent_that_uses_the_filesystem_and_network_is_refused_at_load_naming_each_import() {
    let path = Path::new(mandate_tests::FORBIDDEN_AGENT);

    let Err(error) = runtime().load_agent(path) else {
        panic!("the forbidden agent loaded");
    };

    let message = error.to_string();
    let RuntimeError::ForbiddenImports { path: at, imports } = error else {
        panic!("refused for another reason: {message}");
    };
    assert_eq!(at, path);
    let interfaces: Vec<&str> = imports.iter().map(|i| unversioned(i)).collect();
    assert_eq!(interfaces, FORBIDDEN);
    for import in &imports {
        assert!(import.contains("@0.2."), "{import}");
    }
    let listed = imports
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ");
    assert_eq!(
        message,
        format!(
            "agent `{}` imports what mandate does not provide: {listed}; an agent may reach \
             the world only through mandate:guard/tools, so it gets no filesystem, network or \
             environment: remove the code that uses them (`std::fs`, `std::net`, ...) and see \
             `mandate inspect` for every import",
            path.display()
        )
    );
}

#[test]
fn the_example_agents_import_only_what_mandate_links_and_load() {
    for path in [
        mandate_tests::DOCUMENT_SUMMARIZER,
        mandate_tests::SCRIPTED_AGENT,
    ] {
        runtime().load_agent(Path::new(path)).unwrap();

        let inspection = inspect(path);
        assert!(inspection.runnable(), "{inspection}");
        assert!(inspection.problems().is_empty());
        assert_eq!(inspection.refused_imports().count(), 0, "{inspection}");
        for import in inspection.imports() {
            assert_eq!(import.kind, "instance");
            assert!(
                ALLOWED_IMPORTS
                    .iter()
                    .any(|a| a.interface == unversioned(&import.name)),
                "{}",
                import.name
            );
        }
        let exports: Vec<(&str, &str)> = inspection
            .exports()
            .iter()
            .map(|e| (e.name.as_str(), e.kind))
            .collect();
        assert_eq!(exports, [("run", "func")]);
    }
}

#[test]
fn inspect_says_mandate_will_run_the_example_agent_and_why_each_import_is_allowed() {
    let inspection = inspect(mandate_tests::DOCUMENT_SUMMARIZER);
    let text = inspection.to_string();
    let lines: Vec<&str> = text.lines().collect();

    assert_eq!(
        lines[0],
        format!("component  {}", mandate_tests::DOCUMENT_SUMMARIZER)
    );
    assert_eq!(lines[1], format!("sha256     {}", inspection.digest()));
    assert_eq!(
        lines[2],
        format!("imports    {}", inspection.imports().len())
    );
    assert!(
        lines[3].starts_with("  allowed  mandate:guard/tools@0.1.0  "),
        "{text}"
    );
    assert_eq!(
        import_line(&text, "wasi:cli/stdout@0.2.6"),
        (
            "allowed",
            "captured into the session's output, never the host's"
        )
    );
    assert_eq!(
        import_line(&text, "wasi:cli/environment@0.2.6"),
        (
            "allowed",
            "linked but empty: no environment variables, no arguments, no working directory"
        )
    );
    assert!(!text.contains("refused"), "{text}");
    assert!(
        text.ends_with("exports    1\n  run (func)\nmandate will run this agent"),
        "{text}"
    );
    if let Some(sum) = common::sha256sum(mandate_tests::DOCUMENT_SUMMARIZER) {
        assert_eq!(inspection.digest(), sum);
    }
}

#[test]
fn inspect_lists_every_import_of_the_forbidden_agent_and_why_it_will_not_run() {
    let inspection = inspect(mandate_tests::FORBIDDEN_AGENT);
    assert!(!inspection.runnable());

    let refused: Vec<&str> = inspection
        .refused_imports()
        .map(|i| unversioned(&i.name))
        .collect();
    assert_eq!(refused, FORBIDDEN);
    for import in inspection.refused_imports() {
        let family = if import.name.starts_with("wasi:filesystem/") {
            "filesystem access is not granted"
        } else {
            "network access is not granted"
        };
        assert_eq!(
            import.reason,
            format!("{family}; an agent may reach the world only through mandate:guard/tools")
        );
    }
    let environment = inspection
        .imports()
        .iter()
        .find(|i| unversioned(&i.name) == "wasi:cli/environment")
        .unwrap();
    assert!(environment.allowed);
    assert!(environment.reason.starts_with("linked but empty"));

    let full_names: Vec<String> = inspection
        .refused_imports()
        .map(|i| format!("`{}`", i.name))
        .collect();
    assert_eq!(
        inspection.problems(),
        [format!(
            "it imports what mandate does not provide: {}",
            full_names.join(", ")
        )]
    );
    assert!(
        inspection.to_string().ends_with(&format!(
            "mandate will not run this agent: it imports what mandate does not provide: {}",
            full_names.join(", ")
        )),
        "{inspection}"
    );
}

#[test]
fn inspect_as_json_carries_the_same_report() {
    let inspection = inspect(mandate_tests::FORBIDDEN_AGENT);
    let json: Value = serde_json::to_value(&inspection).unwrap();

    assert_eq!(json["path"], mandate_tests::FORBIDDEN_AGENT);
    assert_eq!(json["digest"], inspection.digest());
    assert_eq!(json["runnable"], false);
    assert_eq!(
        json["imports"].as_array().unwrap().len(),
        inspection.imports().len()
    );
    let first_refused = json["imports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["allowed"] == false)
        .unwrap();
    assert_eq!(
        unversioned(first_refused["name"].as_str().unwrap()),
        "wasi:filesystem/types"
    );
    assert_eq!(first_refused["kind"], "instance");
    assert_eq!(
        json["exports"],
        serde_json::json!([{"name": "run", "kind": "func"}])
    );
    assert_eq!(json["problems"].as_array().unwrap().len(), 1);
}
