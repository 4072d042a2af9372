//! The one `bindgen!` for the `agent` world. Every import is async: a tool
//! call may wait minutes for a human reviewer without blocking a thread.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "agent",
    // `call` can stop the guest (a broken session limit); the rest cannot.
    imports: {
        "mandate:guard/tools.call": async | trappable,
        default: async,
    },
    exports: { default: async },
});

pub use self::mandate::guard::tools::{Denial, ToolError, ToolInfo};
