//! Capability lockdown: the one place that says what an agent may import.
//!
//! An agent reaches the world only through `mandate:guard/tools`. Besides the
//! `agent` world the host links the WASI 0.2 interfaces that the standard
//! toolchains import by default, each listed in [`ALLOWED_IMPORTS`] together
//! with the function that links it, so the allow-list and the linker cannot
//! drift apart. What is in the list was measured by building guests and
//! reading their imports:
//!
//! - every Rust guest, even one that does nothing, imports `wasi:io/{error,
//!   poll,streams}` and `wasi:cli/{environment,exit,stdin,stdout,stderr}` and
//!   the five `wasi:cli/terminal-*` interfaces (the start-up code of
//!   wasi-libc); `HashMap` adds `wasi:random/insecure-seed`, clocks add
//!   `wasi:clocks/*`, `getrandom` adds `wasi:random/random`;
//! - componentize-py always imports `wasi:filesystem/{types,preopens}` and
//!   the seven `wasi:sockets` interfaces, and componentize-js imports
//!   `wasi:filesystem` and `wasi:http/{types,outgoing-handler}` by default.
//!
//! The interfaces that would grant something are linked but grant nothing
//! ([`GRANTS_NOTHING`]): the session's WASI context has no preopened
//! directory (the agent sees no files), no environment variables, no
//! arguments and an empty stdin; every socket operation and name lookup is
//! refused with `access-denied`. Outgoing HTTP is the agent's second door
//! ([`GUARDED`]): every request is decided, recorded and sent by the guard
//! like a tool call (see the `http` module). Stdout and stderr go to the
//! session's captured output, never to the host's. Anything not listed is
//! refused at load.

use wasmtime::component::types::ComponentItem;
use wasmtime::component::{HasData, HasSelf, Linker, ResourceTable};
use wasmtime_wasi::WasiView;
use wasmtime_wasi::cli::{WasiCli, WasiCliView};
use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView};
use wasmtime_wasi::p2::bindings::{cli, clocks, filesystem, io, random, sockets};
use wasmtime_wasi::random::{WasiRandom, WasiRandomView};
use wasmtime_wasi::sockets::{WasiSockets, WasiSocketsView};
use wasmtime_wasi_http::p2::bindings::http;
use wasmtime_wasi_http::{WasiHttp, WasiHttpView};

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

/// How every interface that is linked only so that agents load begins what
/// it grants; `mandate inspect` shows it.
pub const GRANTS_NOTHING: &str = "linked, grants nothing";

const NO_FILES: &str =
    "linked, grants nothing: no directory is preopened, so the agent sees no files";
const NO_NETWORK: &str =
    "linked, grants nothing: every socket operation and name lookup is refused (access-denied)";
/// How every interface the guard mediates begins what it grants; `mandate
/// inspect` shows it.
pub const GUARDED: &str = "guarded";

const GUARDED_HTTP: &str = "guarded: each outgoing request is decided by policy (`Action::\"http_request\"`), may be held for approval, and is recorded before it is sent";

const STANDARD_STREAMS: &str = "streams and polling, for the standard streams";
const NOT_A_TERMINAL: &str = "linked but no stream is a terminal";

/// Everything an agent may import; anything else is refused at load.
pub const ALLOWED_IMPORTS: &[AllowedImport] = &[
    agent_world(
        "mandate:guard/tools",
        "the agent's door to its tools: every call authorized by policy, maybe approved by a human, and audited",
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
        "wasi:random/insecure",
        "pseudo-random bytes, not for secrets",
        |l| random::insecure::add_to_linker::<SessionState, WasiRandom>(l, SessionState::random),
    ),
    wasi("wasi:filesystem/types", NO_FILES, |l| {
        filesystem::types::add_to_linker::<SessionState, WasiFilesystem>(
            l,
            SessionState::filesystem,
        )
    }),
    wasi("wasi:filesystem/preopens", NO_FILES, |l| {
        filesystem::preopens::add_to_linker::<SessionState, WasiFilesystem>(
            l,
            SessionState::filesystem,
        )
    }),
    wasi("wasi:sockets/network", NO_NETWORK, |l| {
        sockets::network::add_to_linker::<SessionState, WasiSockets>(
            l,
            &sockets::network::LinkOptions::default(),
            SessionState::sockets,
        )
    }),
    wasi("wasi:sockets/instance-network", NO_NETWORK, |l| {
        sockets::instance_network::add_to_linker::<SessionState, WasiSockets>(
            l,
            SessionState::sockets,
        )
    }),
    wasi("wasi:sockets/tcp", NO_NETWORK, |l| {
        sockets::tcp::add_to_linker::<SessionState, WasiSockets>(l, SessionState::sockets)
    }),
    wasi("wasi:sockets/tcp-create-socket", NO_NETWORK, |l| {
        sockets::tcp_create_socket::add_to_linker::<SessionState, WasiSockets>(
            l,
            SessionState::sockets,
        )
    }),
    wasi("wasi:sockets/udp", NO_NETWORK, |l| {
        sockets::udp::add_to_linker::<SessionState, WasiSockets>(l, SessionState::sockets)
    }),
    wasi("wasi:sockets/udp-create-socket", NO_NETWORK, |l| {
        sockets::udp_create_socket::add_to_linker::<SessionState, WasiSockets>(
            l,
            SessionState::sockets,
        )
    }),
    wasi("wasi:sockets/ip-name-lookup", NO_NETWORK, |l| {
        sockets::ip_name_lookup::add_to_linker::<SessionState, WasiSockets>(
            l,
            SessionState::sockets,
        )
    }),
    wasi("wasi:http/types", GUARDED_HTTP, |l| {
        let options = wasmtime_wasi_http::p2::bindings::LinkOptions::default();
        http::types::add_to_linker::<SessionState, WasiHttp>(l, &options.into(), SessionState::http)
    }),
    wasi("wasi:http/outgoing-handler", GUARDED_HTTP, |l| {
        http::outgoing_handler::add_to_linker::<SessionState, WasiHttp>(l, SessionState::http)
    }),
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
            "; an agent may reach the world only through mandate:guard/tools and guarded outgoing http"
        )
    };
}

/// Why an interface outside the allow-list is refused.
fn refusal(interface: &str) -> &'static str {
    if interface.starts_with("wasi:http/") {
        refused!("only outgoing http is linked (and guarded)")
    } else if interface.starts_with("wasi:") {
        refused!(
            "not among the wasi 0.2 interfaces mandate links (io, cli, clocks, random, filesystem and sockets granting nothing, and guarded outgoing http)"
        )
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
    fn filesystem_and_sockets_grant_nothing_and_http_is_guarded() {
        let http: Vec<_> = ALLOWED_IMPORTS
            .iter()
            .filter(|a| a.interface.starts_with("wasi:http/"))
            .collect();
        assert_eq!(http.len(), 2);
        assert!(http.iter().all(|a| a.grants.starts_with(GUARDED)));
        let families = ["wasi:filesystem/", "wasi:sockets/"];
        let linked: Vec<_> = ALLOWED_IMPORTS
            .iter()
            .filter(|a| families.iter().any(|f| a.interface.starts_with(f)))
            .collect();
        // 2 filesystem, 7 sockets: what the toolchains import.
        assert_eq!(linked.len(), 9);
        for allowed in linked {
            assert!(
                allowed.grants.starts_with(GRANTS_NOTHING),
                "{} grants {}",
                allowed.interface,
                allowed.grants
            );
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
    fn what_is_not_linked_is_refused_and_says_why() {
        for (name, why) in [
            ("wasi:http/incoming-handler@0.2.6", "only outgoing http"),
            (
                "wasi:keyvalue/store@0.2.0",
                "not among the wasi 0.2 interfaces",
            ),
            ("acme:db/query@1.0.0", "not part of the agent world"),
        ] {
            let Verdict::Refused(reason) = check_import(name, "instance") else {
                panic!("{name} is allowed");
            };
            assert!(reason.starts_with(why), "{name}: {reason}");
            assert!(
                reason.ends_with("only through mandate:guard/tools and guarded outgoing http"),
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
