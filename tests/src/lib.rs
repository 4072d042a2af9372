//! End-to-end tests for Mandate: real guest components run through the real
//! host. The tests live in `tests/`; this library only tells them where the
//! guest components are. `build.rs` compiles the guests for `wasm32-wasip2`
//! before this crate is built.

/// Absolute path of the `document-summarizer` guest component (`.wasm`), the
/// example agent that reads, summarizes and emails a document.
pub const DOCUMENT_SUMMARIZER: &str = env!("GUEST_DOCUMENT_SUMMARIZER");

/// Absolute path of the `scripted-agent` guest component (`.wasm`), the test
/// agent whose task is a JSON script of tool calls to make.
pub const SCRIPTED_AGENT: &str = env!("GUEST_SCRIPTED_AGENT");

/// Absolute path of the `forbidden-agent` guest component (`.wasm`), the test
/// agent that uses `std::fs`, `std::env` and `std::net`: its component
/// imports `wasi:filesystem` and `wasi:sockets`, which Mandate links granting
/// nothing, so it loads and each of those reaches fails.
pub const FORBIDDEN_AGENT: &str = env!("GUEST_FORBIDDEN_AGENT");
