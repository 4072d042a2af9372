//! Capability lockdown: the one place that says what an agent may import.
//!
//! An agent reaches the world only through `mandate:guard/tools`. Besides the
//! `agent` world the host links just the WASI interfaces the Rust standard
//! library for `wasm32-wasip2` imports by itself, each listed in
//! [`ALLOWED_IMPORTS`] together with the function that links it, so the
//! allow-list and the linker cannot drift apart. What is in the list was
//! measured by building guests and reading their imports:
//!
//! - every guest, even one that does nothing, imports `wasi:io/{error,poll,
//!   streams}` and `wasi:cli/{environment,exit,stdin,stdout,stderr}` and the
//!   five `wasi:cli/terminal-*` interfaces (the start-up code of wasi-libc);
//! - `HashMap` adds `wasi:random/insecure-seed`; `Instant`, `SystemTime` and
//!   `thread::sleep` add `wasi:clocks/{monotonic-clock,wall-clock}`; crates
//!   that draw random bytes (`getrandom`) add `wasi:random/random`;
//! - `std::fs` adds `wasi:filesystem/{types,preopens}` and `std::net` adds
//!   the `wasi:sockets` interfaces (and the filesystem ones): those are
//!   refused, as is `wasi:http` and anything else not listed here.
//!
//! Interfaces that are imported unconditionally but would grant something
//! are linked empty: the session's WASI context has no environment
//! variables, no arguments, no working directory and an empty stdin, and no
//! stream is a terminal. Stdout and stderr go to the session's captured
//! output, never to the host's.

use wasmtime::component::types::ComponentItem;
use wasmtime::component::{HasData, HasSelf, Linker, ResourceTable};
use wasmtime_wasi::WasiView;
use wasmtime_wasi::cli::{WasiCli, WasiCliView};
use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
use wasmtime_wasi::p2::bindings::{cli, clocks, io, random};
use wasmtime_wasi::random::{WasiRandom, WasiRandomView};

use super::SessionState;
use super::bindings::Agent;

/// Links one allowed interface into the host's linker.
type LinkFn = fn(&mut Linker<SessionState>) -> wasmtime::Result<()>;

/// An interface an agent may import, and what it grants.
#[derive(Debug, Clone, Copy)]
pub struct AllowedImport {
    /// The interface without its version, e.g. `wasi:cli/stdout`.
    pub interface: &'static str,
    /// The semver track the host links: an import of
    /// `wasi:cli/stdout@0.2.6` matches the track `0.2`.
    pub track: &'static str,
    /// What the agent gets through it.
    pub grants: &'static str,
    /// How it is linked.
    link: Link,
}

/// Where an allowed interface comes from.
#[derive(Debug, Clone, Copy)]
enum Link {
    /// From the `agent` world's bindings, linked together by
    /// [`add_to_linker`].
    AgentWorld,
    /// From wasmtime-wasi, one interface at a time.
    Wasi(LinkFn),
}

/// `HasData` for the interfaces that only need the resource table
/// (`wasi:io`): wasmtime-wasi's own is private.
struct Table;

impl HasData for Table {
    type Data<'a> = &'a mut ResourceTable;
}

const fn agent_world(interface: &'static str, grants: &'static str) -> AllowedImport {
    AllowedImport {
        interface,
        track: "0.1",
        grants,
        link: Link::AgentWorld,
    }
}

const fn wasi(interface: &'static str, grants: &'static str, link: LinkFn) -> AllowedImport {
    AllowedImport {
        interface,
        track: "0.2",
        grants,
        link: Link::Wasi(link),
    }
}

const STANDARD_STREAMS: &str = "streams and polling, for the standard streams";
const NOT_A_TERMINAL: &str = "linked but no stream is a terminal";

/// Everything an agent may import; anything else is refused at load.
pub const ALLOWED_IMPORTS: &[AllowedImport] = &[
    agent_world(
        "mandate:guard/tools",
        "the agent's one door to the world: every call authorized by policy, maybe approved by a human, and audited",
    ),
    agent_world(
        "mandate:guard/session",
        "read-only facts about the session: ids, scopes, expiry",
    ),
    wasi("wasi:io/error", STANDARD_STREAMS, |l| {
        io::error::add_to_linker::<SessionState, Table>(l, |s| s.ctx().table)
    }),
    wasi("wasi:io/poll", STANDARD_STREAMS, |l| {
        io::poll::add_to_linker::<SessionState, Table>(l, |s| s.ctx().table)
    }),
    wasi("wasi:io/streams", STANDARD_STREAMS, |l| {
        io::streams::add_to_linker::<SessionState, Table>(l, |s| s.ctx().table)
    }),
    wasi(
        "wasi:cli/environment",
        "linked but empty: no environment variables, no arguments, no working directory",
        |l| cli::environment::add_to_linker::<SessionState, WasiCli>(l, SessionState::cli),
    ),
    wasi(
        "wasi:cli/exit",
        "lets the agent stop itself; the host records how the session ended",
        |l| cli::exit::add_to_linker::<SessionState, WasiCli>(l, SessionState::cli),
    ),
    wasi(
        "wasi:cli/stdin",
        "linked but empty: reading ends at once",
        |l| cli::stdin::add_to_linker::<SessionState, WasiCli>(l, SessionState::cli),
    ),
    wasi(
        "wasi:cli/stdout",
        "captured into the session's output, never the host's",
        |l| cli::stdout::add_to_linker::<SessionState, WasiCli>(l, SessionState::cli),
    ),
    wasi(
        "wasi:cli/stderr",
        "captured into the session's output, never the host's",
        |l| cli::stderr::add_to_linker::<SessionState, WasiCli>(l, SessionState::cli),
    ),
    wasi("wasi:cli/terminal-input", NOT_A_TERMINAL, |l| {
        cli::terminal_input::add_to_linker::<SessionState, WasiCli>(l, SessionState::cli)
    }),
    wasi("wasi:cli/terminal-output", NOT_A_TERMINAL, |l| {
        cli::terminal_output::add_to_linker::<SessionState, WasiCli>(l, SessionState::cli)
    }),
    wasi("wasi:cli/terminal-stdin", NOT_A_TERMINAL, |l| {
        cli::terminal_stdin::add_to_linker::<SessionState, WasiCli>(l, SessionState::cli)
    }),
    wasi("wasi:cli/terminal-stdout", NOT_A_TERMINAL, |l| {
        cli::terminal_stdout::add_to_linker::<SessionState, WasiCli>(l, SessionState::cli)
    }),
    wasi("wasi:cli/terminal-stderr", NOT_A_TERMINAL, |l| {
        cli::terminal_stderr::add_to_linker::<SessionState, WasiCli>(l, SessionState::cli)
    }),
    wasi(
        "wasi:clocks/monotonic-clock",
        "elapsed time and timers; CPU time stays bounded by the session limits",
        |l| {
            clocks::monotonic_clock::add_to_linker::<SessionState, WasiClocks>(
                l,
                SessionState::clocks,
            )
        },
    ),
    wasi(
        "wasi:clocks/wall-clock",
        "the time of day, read-only",
        |l| clocks::wall_clock::add_to_linker::<SessionState, WasiClocks>(l, SessionState::clocks),
    ),
    wasi(
        "wasi:random/random",
        "random bytes, for crates such as getrandom",
        |l| random::random::add_to_linker::<SessionState, WasiRandom>(l, SessionState::random),
    ),
    wasi(
        "wasi:random/insecure-seed",
        "a seed for the hasher of std's HashMap",
        |l| {
            random::insecure_seed::add_to_linker::<SessionState, WasiRandom>(
                l,
                SessionState::random,
            )
        },
    ),
];

/// Links the `agent` world and the allowed WASI interfaces, and nothing else.
pub(super) fn add_to_linker(linker: &mut Linker<SessionState>) -> wasmtime::Result<()> {
    Agent::add_to_linker::<_, HasSelf<SessionState>>(linker, |s| s)?;
    for allowed in ALLOWED_IMPORTS {
        if let Link::Wasi(link) = allowed.link {
            link(linker)?;
        }
    }
    Ok(())
}

/// Whether one import may be linked, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Allowed; what it grants.
    Allowed(&'static str),
    /// Refused; why, with a hint.
    Refused(String),
}

/// Decides one import of a component by its full name
/// (`wasi:cli/stdout@0.2.6`) and kind (see [`item_kind`]).
pub(super) fn check_import(name: &str, kind: &str) -> Verdict {
    if kind != "instance" {
        return Verdict::Refused(format!(
            "a bare {kind} import; an agent imports only interfaces"
        ));
    }
    let (interface, version) = match name.split_once('@') {
        Some((interface, version)) => (interface, Some(version)),
        None => (name, None),
    };
    let Some(allowed) = ALLOWED_IMPORTS.iter().find(|a| a.interface == interface) else {
        return Verdict::Refused(refusal(interface).to_string());
    };
    let on_track = version.is_some_and(|v| {
        v.strip_prefix(allowed.track)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
    });
    if on_track {
        Verdict::Allowed(allowed.grants)
    } else {
        Verdict::Refused(format!(
            "mandate links `{interface}@{track}.x` only; build the agent against that version",
            track = allowed.track
        ))
    }
}

/// Appends the hint every refusal ends with.
macro_rules! refused {
    ($what:literal) => {
        concat!(
            $what,
            "; an agent may reach the world only through mandate:guard/tools"
        )
    };
}

/// Why an interface outside the allow-list is refused.
fn refusal(interface: &str) -> &'static str {
    if interface.starts_with("wasi:filesystem/") {
        refused!("filesystem access is not granted")
    } else if interface.starts_with("wasi:sockets/") {
        refused!("network access is not granted")
    } else if interface.starts_with("wasi:http/") {
        refused!("outgoing http is not granted")
    } else if interface.starts_with("wasi:") {
        refused!("not in mandate's minimal wasi (io, cli, clocks, random)")
    } else {
        refused!("not part of the agent world")
    }
}

/// A short name for the kind of an import or export.
pub(super) fn item_kind(item: &ComponentItem) -> &'static str {
    match item {
        ComponentItem::ComponentFunc(_) => "func",
        ComponentItem::CoreFunc(_) => "core func",
        ComponentItem::Module(_) => "core module",
        ComponentItem::Component(_) => "component",
        ComponentItem::ComponentInstance(_) => "instance",
        ComponentItem::Type(_) => "type",
        ComponentItem::Resource(_) => "resource",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allow_list_holds_no_filesystem_sockets_or_http() {
        for allowed in ALLOWED_IMPORTS {
            for family in ["wasi:filesystem/", "wasi:sockets/", "wasi:http/"] {
                assert!(
                    !allowed.interface.starts_with(family),
                    "{} is in the allow-list",
                    allowed.interface
                );
            }
        }
    }

    #[test]
    fn wasi_0_2_of_any_patch_release_is_allowed() {
        for name in [
            "wasi:cli/stdout@0.2.0",
            "wasi:cli/stdout@0.2.6",
            "wasi:io/poll@0.2.12",
        ] {
            assert!(
                matches!(check_import(name, "instance"), Verdict::Allowed(_)),
                "{name}"
            );
        }
        assert!(matches!(
            check_import("mandate:guard/tools@0.1.0", "instance"),
            Verdict::Allowed(_)
        ));
    }

    #[test]
    fn filesystem_sockets_and_http_are_refused_and_say_why() {
        for (name, why) in [
            ("wasi:filesystem/types@0.2.6", "filesystem access"),
            ("wasi:filesystem/preopens@0.2.6", "filesystem access"),
            ("wasi:sockets/tcp@0.2.6", "network access"),
            ("wasi:http/outgoing-handler@0.2.6", "outgoing http"),
            (
                "wasi:random/insecure@0.2.6",
                "not in mandate's minimal wasi",
            ),
            ("acme:db/query@1.0.0", "not part of the agent world"),
        ] {
            let Verdict::Refused(reason) = check_import(name, "instance") else {
                panic!("{name} is allowed");
            };
            assert!(reason.starts_with(why), "{name}: {reason}");
            assert!(
                reason.ends_with("only through mandate:guard/tools"),
                "{reason}"
            );
        }
    }

    #[test]
    fn another_version_track_of_an_allowed_interface_is_refused() {
        for name in [
            "wasi:cli/stdout",
            "wasi:cli/stdout@0.3.0",
            "wasi:cli/stdout@0.20.0",
            "mandate:guard/tools@0.2.0",
        ] {
            assert!(
                matches!(check_import(name, "instance"), Verdict::Refused(r) if r.contains(".x` only")),
                "{name}"
            );
        }
    }

    #[test]
    fn a_bare_function_import_is_refused() {
        assert_eq!(
            check_import("wasi:cli/stdout@0.2.6", "func"),
            Verdict::Refused("a bare func import; an agent imports only interfaces".into())
        );
    }

    #[test]
    fn the_allow_list_names_each_interface_once() {
        let mut names: Vec<_> = ALLOWED_IMPORTS.iter().map(|a| a.interface).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALLOWED_IMPORTS.len());
    }
}
