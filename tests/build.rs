//! Builds the guest components the end-to-end tests run.
//!
//! The guests are built by a nested `cargo build --target wasm32-wasip2` into
//! a target directory under `OUT_DIR`: a separate target directory keeps the
//! nested build off the outer build's lock (sharing it would deadlock), the
//! same approach as wasmtime's `crates/test-programs/artifacts/build.rs`.
//! The paths of the built components are passed to the crate as the
//! `GUEST_DOCUMENT_SUMMARIZER`, `GUEST_SCRIPTED_AGENT` and
//! `GUEST_FORBIDDEN_AGENT` environment variables.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, exit};

const TARGET: &str = "wasm32-wasip2";

/// (package, cdylib file stem, environment variable for its path)
const GUESTS: &[(&str, &str, &str)] = &[
    (
        "document-summarizer",
        "document_summarizer",
        "GUEST_DOCUMENT_SUMMARIZER",
    ),
    ("scripted-agent", "scripted_agent", "GUEST_SCRIPTED_AGENT"),
    (
        "forbidden-agent",
        "forbidden_agent",
        "GUEST_FORBIDDEN_AGENT",
    ),
];

/// Environment variables through which the outer build's configuration would
/// leak into the nested one: flags meant for the host target, the outer
/// target and build directories (their lock is held by the outer build),
/// clippy's wrapper when run under `cargo clippy`, and the outer crate's
/// own build-script variables.
const LEAKY_VARS: &[&str] = &[
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "RUSTDOCFLAGS",
    "CARGO_ENCODED_RUSTDOCFLAGS",
    "CARGO_BUILD_RUSTDOCFLAGS",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_BUILD_RUSTC_WORKSPACE_WRAPPER",
    "CLIPPY_ARGS",
    "CLIPPY_CONF_DIR",
    "OUT_DIR",
    "TARGET",
    "HOST",
    "PROFILE",
    "OPT_LEVEL",
    "DEBUG",
];

fn main() {
    if let Err(message) = build() {
        eprintln!("error: {message}");
        exit(1);
    }
}

fn build() -> Result<(), String> {
    let manifest_dir = PathBuf::from(var("CARGO_MANIFEST_DIR")?);
    let workspace = manifest_dir
        .parent()
        .ok_or("the tests crate has no parent directory")?
        .to_path_buf();
    let target_dir = PathBuf::from(var("OUT_DIR")?).join("guests");

    for watched in ["guest", "wit", "Cargo.toml", "Cargo.lock"] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }

    check_target_installed()?;

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .arg("build")
        .arg("--release")
        .arg("--target")
        .arg(TARGET)
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    for (package, _, _) in GUESTS {
        command.arg("-p").arg(package);
    }
    for var in LEAKY_VARS {
        command.env_remove(var);
    }
    // A build directory configured for the outer build would be shared, and
    // locked, too: keep the nested build's intermediates in its own target dir.
    command.env("CARGO_BUILD_BUILD_DIR", &target_dir);
    // Miri wraps rustc in its own sysroot, which cannot build for wasm.
    if env::var_os("CARGO_CFG_MIRI").is_some() {
        command.env_remove("RUSTC").env_remove("RUSTC_WRAPPER");
    }

    eprintln!("running: {command:?}");
    let status = command
        .status()
        .map_err(|error| format!("cannot run cargo to build the guests: {error}"))?;
    if !status.success() {
        return Err(format!(
            "building the guest components failed ({status}); see the output above"
        ));
    }

    let release = target_dir.join(TARGET).join("release");
    for (_, stem, env_var) in GUESTS {
        let wasm = release.join(format!("{stem}.wasm"));
        if !wasm.is_file() {
            return Err(format!(
                "the guest build succeeded but {} is missing",
                wasm.display()
            ));
        }
        println!("cargo:rustc-env={env_var}={}", absolute(&wasm).display());
    }
    Ok(())
}

/// Fails with instructions when the standard library for [`TARGET`] is not
/// installed (the nested build's own error would be far less clear).
fn check_target_installed() -> Result<(), String> {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = Command::new(rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output();
    let libdir = match output {
        Ok(output) if output.status.success() => {
            PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
        }
        // rustc could not answer; let the build itself report the problem.
        _ => return Ok(()),
    };
    if libdir.is_dir() {
        Ok(())
    } else {
        Err(format!(
            "the {TARGET} target is not installed: run `rustup target add {TARGET}`"
        ))
    }
}

fn var(name: &str) -> Result<String, String> {
    env::var(name).map_err(|error| format!("${name}: {error}"))
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}
