//! Capability lockdown on the real guests: an agent that reaches for files
//! and the network on its own loads (the interfaces its toolchain imports are
//! linked) and every reach fails; the example agents import only what
//! Mandate links and load; a component over a session limit is refused
//! naming the limit.
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

use mandate::limits::SessionLimits;
use mandate::runtime::{
    ALLOWED_IMPORTS, ComponentNeeds, GRANTS_NOTHING, Inspection, RunOutcome, Runtime,
};
use serde_json::Value;

/// What the forbidden agent imports for `std::fs` and `std::net`, in its
/// order, without versions: linked, granting nothing. `std::env::var`
/// brings nothing new: every guest imports `wasi:cli/environment`, which
/// Mandate links empty.
const GRANTING_NOTHING: &[&str] = &[
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

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_that_reaches_for_files_and_the_network_loads_and_every_reach_fails() {
    let agent = runtime()
        .load_agent(Path::new(mandate_tests::FORBIDDEN_AGENT))
        .unwrap();
    // A real file and a real listener on this machine: neither may be reached.
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), "the host's secret").unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let task = format!(
        "{} {}",
        secret.path().display(),
        listener.local_addr().unwrap()
    );
    let env = common::Env::example();

    let report = agent
        .run(&env.guard, common::session(), &task)
        .await
        .unwrap();

    let RunOutcome::Finished(Ok(text)) = &report.outcome else {
        panic!("the agent did not finish: {:?}", report.outcome);
    };
    let lines: Vec<&str> = text.lines().collect();
    let attempts: Vec<&str> = lines
        .iter()
        .map(|l| l.split_once(": ").unwrap().0)
        .collect();
    assert_eq!(
        attempts,
        [
            "read file",
            "list directory",
            "environment",
            "tcp connect",
            "udp bind",
            "name lookup"
        ]
    );
    for line in &lines {
        assert!(!line.contains("reached"), "{text}");
    }
    assert!(!text.contains("the host's secret"), "{text}");
    assert_eq!(
        listener.accept().unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock,
        "the agent connected to the host's listener"
    );
    // The session is recorded like any other: started, no calls, ended.
    assert_eq!(
        common::kinds(&env.records()),
        ["log_start", "session_start", "session_end"]
    );
    env.assert_verifies(3);
}

#[test]
fn a_component_that_needs_more_instances_than_a_session_may_have_is_refused_naming_the_limit() {
    let path = Path::new(mandate_tests::DOCUMENT_SUMMARIZER);
    let bytes = std::fs::read(path).unwrap();
    let needs = ComponentNeeds::of(&bytes).unwrap();
    assert!(needs.core_instances > 1, "{needs:?}");
    let limits = SessionLimits {
        instances: usize::try_from(needs.core_instances).unwrap() - 1,
        ..SessionLimits::default()
    };
    let runtime = Runtime::with_limits(limits.clone()).unwrap();

    let Err(error) = runtime.load_agent(path) else {
        panic!("the agent loaded over the limit");
    };

    assert_eq!(
        error.to_string(),
        format!(
            "agent `{}` needs {} core instances, over the limit of {}; raise it with \
             `--max-instances` (`SessionLimits::instances` when embedding)",
            path.display(),
            needs.core_instances,
            limits.instances
        )
    );
    let inspection = runtime.inspect(path, &bytes).unwrap();
    assert!(!inspection.runnable());
    assert_eq!(
        inspection.problems(),
        [format!(
            "it needs {} core instances, over the limit of {} (`--max-instances`)",
            needs.core_instances, limits.instances
        )]
    );
}

/// The count is wasmtime's own: a pool one short of it refuses the
/// component while compiling, a pool of exactly it accepts it, for every
/// guest (the polyglot agents' counts are checked the same way in
/// `polyglot_agents.rs` when they are built).
#[test]
fn the_counted_needs_are_what_wasmtime_s_pool_asks_for() {
    for path in [
        mandate_tests::DOCUMENT_SUMMARIZER,
        mandate_tests::SCRIPTED_AGENT,
        mandate_tests::FORBIDDEN_AGENT,
    ] {
        let bytes = std::fs::read(path).unwrap();
        common::needs::assert_matches_wasmtime(&bytes, path);
    }
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
    let needs = inspection.needs();
    assert_eq!(
        lines[2],
        format!(
            "needs      {} core instances, {} memories, {} tables per session",
            needs.core_instances, needs.memories, needs.tables
        )
    );
    assert_eq!(
        lines[3],
        format!("imports    {}", inspection.imports().len())
    );
    assert!(
        lines[4].starts_with("  allowed  mandate:guard/tools@0.1.0  "),
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
fn inspect_lists_the_filesystem_and_sockets_of_the_forbidden_agent_as_linked_granting_nothing() {
    let inspection = inspect(mandate_tests::FORBIDDEN_AGENT);
    assert!(inspection.runnable(), "{inspection}");
    assert_eq!(inspection.refused_imports().count(), 0, "{inspection}");

    let granting_nothing: Vec<&str> = inspection
        .imports()
        .iter()
        .filter(|i| i.reason.starts_with(GRANTS_NOTHING))
        .map(|i| unversioned(&i.name))
        .collect();
    assert_eq!(granting_nothing, GRANTING_NOTHING);
    let text = inspection.to_string();
    for import in inspection.imports() {
        if unversioned(&import.name).starts_with("wasi:filesystem/") {
            assert_eq!(
                import_line(&text, &import.name),
                (
                    "allowed",
                    "linked, grants nothing: no directory is preopened, so the agent sees no files"
                )
            );
        }
    }
    let environment = inspection
        .imports()
        .iter()
        .find(|i| unversioned(&i.name) == "wasi:cli/environment")
        .unwrap();
    assert!(environment.allowed);
    assert!(environment.reason.starts_with("linked but empty"));
    assert!(
        text.ends_with("mandate will run this agent"),
        "{inspection}"
    );
}

#[test]
fn inspect_as_json_carries_the_same_report() {
    let inspection = inspect(mandate_tests::FORBIDDEN_AGENT);
    let json: Value = serde_json::to_value(&inspection).unwrap();

    assert_eq!(json["path"], mandate_tests::FORBIDDEN_AGENT);
    assert_eq!(json["digest"], inspection.digest());
    assert_eq!(json["runnable"], true);
    assert_eq!(
        json["needs"]["core_instances"],
        inspection.needs().core_instances
    );
    assert_eq!(
        json["imports"].as_array().unwrap().len(),
        inspection.imports().len()
    );
    let filesystem = json["imports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| unversioned(i["name"].as_str().unwrap()) == "wasi:filesystem/types")
        .unwrap();
    assert_eq!(filesystem["allowed"], true);
    assert_eq!(filesystem["kind"], "instance");
    assert!(
        filesystem["reason"]
            .as_str()
            .unwrap()
            .starts_with(GRANTS_NOTHING)
    );
    assert_eq!(
        json["exports"],
        serde_json::json!([{"name": "run", "kind": "func"}])
    );
    assert_eq!(json["problems"], serde_json::json!([]));
}
