//! The docs are tested like code: every command of the README's tour is run
//! exactly as written, and every Rust block in `README.md` and `docs/` is a
//! marked region of a source file that the workspace compiles, so neither can
//! drift from what Mandate does.

use std::path::{Component, Path, PathBuf};
use std::process::{Command, Output};

/// The README section whose `sh` blocks are the tour.
const TOUR_HEADING: &str = "## A five-minute tour";

/// Set to rewrite every included block from its region instead of failing.
const BLESS_VAR: &str = "MANDATE_BLESS_DOCS";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The `mandate` binary of this workspace's build, beside this test
/// executable's directory (`target/<profile>/deps/..`), where `cargo test
/// --workspace` and `cargo build --workspace --bins` put it.
fn mandate_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let binary = exe.parent().unwrap().parent().unwrap().join("mandate");
    assert!(
        binary.is_file(),
        "no `mandate` binary at `{}`: build it with `cargo build --workspace --bins`",
        binary.display()
    );
    binary
}

// ---------------------------------------------------------------------------
// Markdown: fences and sections

/// A fenced block: its info string (`sh`, `rust`, ...), the 1-based line of
/// its opening fence, its fence lines as written, and the lines between.
struct Block {
    info: String,
    line: usize,
    open: String,
    close: String,
    body: Vec<String>,
}

/// Splits markdown into the lines outside fences (with their 1-based line
/// numbers) and the fenced blocks, in document order.
enum Piece {
    Line(usize, String),
    Block(Block),
}

fn pieces(markdown: &str) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    for (i, line) in markdown.lines().enumerate() {
        let number = i + 1;
        match open.take() {
            Some(mut block) => {
                if line.trim() == "```" {
                    block.close = line.to_string();
                    out.push(Piece::Block(block));
                } else {
                    block.body.push(line.to_string());
                    open = Some(block);
                }
            }
            None => {
                // Fences may be indented (inside a list item).
                if let Some(info) = line.trim_start().strip_prefix("```") {
                    open = Some(Block {
                        info: info.trim().to_string(),
                        line: number,
                        open: line.to_string(),
                        close: String::new(),
                        body: Vec::new(),
                    });
                } else {
                    out.push(Piece::Line(number, line.to_string()));
                }
            }
        }
    }
    match open {
        Some(block) => Err(format!(
            "line {}: the fence opened here is never closed",
            block.line
        )),
        None => Ok(out),
    }
}

/// The `sh` blocks of the section under `heading` (up to the next heading of
/// the same or a higher level), joined in order into one script.
fn section_script(markdown: &str, heading: &str) -> Result<String, String> {
    let level = heading.chars().take_while(|&c| c == '#').count();
    let mut inside = false;
    let mut found = false;
    let mut blocks = Vec::new();
    for piece in pieces(markdown)? {
        match piece {
            Piece::Line(_, line) => {
                let hashes = line.chars().take_while(|&c| c == '#').count();
                let is_heading = hashes > 0 && line[hashes..].starts_with(' ');
                if line.trim_end() == heading {
                    inside = true;
                    found = true;
                } else if is_heading && hashes <= level {
                    inside = false;
                }
            }
            Piece::Block(block) if inside && block.info == "sh" => {
                blocks.push(block.body.join("\n"))
            }
            Piece::Block(_) => {}
        }
    }
    if !found {
        return Err(format!("no section `{heading}`"));
    }
    if blocks.is_empty() {
        return Err(format!("section `{heading}` has no ```sh block"));
    }
    Ok(blocks.join("\n"))
}

/// Runs `script` with bash in `dir`, stopping at the first command that fails
/// (`set -euo pipefail`). An error carries what the script printed.
fn run_script(script: &str, dir: &Path) -> Result<Output, String> {
    let output = Command::new("bash")
        .arg("-c")
        .arg(format!("set -euo pipefail\n{script}"))
        .current_dir(dir)
        .output()
        .map_err(|e| format!("cannot run bash: {e}"))?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(format!(
            "the tour failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

// ---------------------------------------------------------------------------
// Includes: `<!-- include: path#name -->` before a ```rust block

/// The lines between `// ANCHOR: name` and `// ANCHOR_END: name` in `source`,
/// without other anchor lines and with their common indentation removed.
fn region(source: &str, name: &str) -> Result<String, String> {
    let start = format!("// ANCHOR: {name}");
    let end = format!("// ANCHOR_END: {name}");
    let lines: Vec<&str> = source.lines().collect();
    let find = |marker: &str| {
        let at: Vec<usize> = (0..lines.len())
            .filter(|&i| lines[i].trim() == marker)
            .collect();
        match at.as_slice() {
            [one] => Ok(*one),
            [] => Err(format!("no `{marker}` line")),
            _ => Err(format!("`{marker}` appears {} times", at.len())),
        }
    };
    let (from, to) = (find(&start)?, find(&end)?);
    if to <= from {
        return Err(format!("`{end}` comes before `{start}`"));
    }
    let kept: Vec<&str> = lines[from + 1..to]
        .iter()
        .copied()
        .filter(|l| {
            let t = l.trim_start();
            !t.starts_with("// ANCHOR: ") && !t.starts_with("// ANCHOR_END: ")
        })
        .collect();
    let indent = kept
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    Ok(kept
        .iter()
        .map(|l| l.get(indent..).unwrap_or("").trim_end())
        .collect::<Vec<_>>()
        .join("\n"))
}

/// `path#name` from an include line, if `line` is one.
fn include_target(line: &str) -> Option<&str> {
    line.trim()
        .strip_prefix("<!-- include: ")?
        .strip_suffix(" -->")
        .map(str::trim)
}

/// What checking one markdown file found.
#[derive(Default)]
struct Expanded {
    /// The file with every included block replaced by its region.
    text: String,
    /// Blocks that differ from their region, as `line N: path#name`.
    drifted: Vec<String>,
    /// Rust blocks without an include line, includes without a block,
    /// regions that cannot be read.
    problems: Vec<String>,
    includes: usize,
}

/// Checks `markdown`'s includes, reading a source file (relative to the
/// workspace) with `read`.
fn expand(markdown: &str, read: &dyn Fn(&str) -> Result<String, String>) -> Expanded {
    let mut out = Expanded::default();
    let pieces = match pieces(markdown) {
        Ok(p) => p,
        Err(e) => {
            out.problems.push(e);
            return out;
        }
    };
    let mut text: Vec<String> = Vec::new();
    // The include line waiting for its block: (line number, target).
    let mut pending: Option<(usize, String)> = None;
    for piece in pieces {
        match piece {
            Piece::Line(number, line) => {
                if let Some((at, target)) = pending.take() {
                    if line.trim().is_empty() {
                        pending = Some((at, target));
                    } else {
                        out.problems.push(format!(
                            "line {at}: `include: {target}` is not followed by a ```rust block"
                        ));
                    }
                }
                if let Some(target) = include_target(&line) {
                    pending = Some((number, target.to_string()));
                }
                text.push(line);
            }
            Piece::Block(block) => {
                let is_rust = block.info == "rust" || block.info.starts_with("rust,");
                let mut body = block.body.join("\n");
                match (pending.take(), is_rust) {
                    (Some((_, target)), true) => {
                        out.includes += 1;
                        match resolve(&target, read) {
                            Ok(expected) => {
                                if expected != body {
                                    out.drifted.push(format!("line {}: {target}", block.line));
                                    body = expected;
                                }
                            }
                            Err(e) => out
                                .problems
                                .push(format!("line {}: `{target}`: {e}", block.line)),
                        }
                    }
                    (None, true) => out.problems.push(format!(
                        "line {}: a ```rust block without an `<!-- include: <file>#<anchor> -->` \
                         line before it; put the code between `// ANCHOR: <name>` and \
                         `// ANCHOR_END: <name>` in a file that compiles and include it",
                        block.line
                    )),
                    (Some((at, target)), false) => out.problems.push(format!(
                        "line {at}: `include: {target}` is followed by a ```{} block, not ```rust",
                        block.info
                    )),
                    (None, false) => {}
                }
                text.push(block.open);
                if !body.is_empty() {
                    text.push(body);
                }
                text.push(block.close);
            }
        }
    }
    if let Some((at, target)) = pending {
        out.problems.push(format!(
            "line {at}: `include: {target}` is not followed by a ```rust block"
        ));
    }
    out.text = text.join("\n");
    if markdown.ends_with('\n') {
        out.text.push('\n');
    }
    out
}

/// The region `path#name` names, read with `read`.
fn resolve(target: &str, read: &dyn Fn(&str) -> Result<String, String>) -> Result<String, String> {
    let (path, name) = target
        .split_once('#')
        .ok_or("an include names `<file>#<anchor>`")?;
    let relative = Path::new(path);
    let inside = relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)));
    if !inside || !path.ends_with(".rs") {
        return Err(format!(
            "`{path}` is not a `.rs` file inside the workspace (a relative path without `..`)"
        ));
    }
    region(&read(path)?, name)
}

fn read_in_repo(path: &str) -> Result<String, String> {
    std::fs::read_to_string(repo().join(path)).map_err(|e| format!("cannot read `{path}`: {e}"))
}

/// `README.md` and every markdown file directly in `docs/`.
fn doc_files() -> Vec<PathBuf> {
    let mut files = vec![repo().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

// ---------------------------------------------------------------------------
// The tests

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let dest = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &dest);
        } else {
            std::fs::copy(&path, &dest).unwrap();
        }
    }
}

#[test]
fn every_command_of_the_readme_tour_runs_as_written() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let script = section_script(&readme, TOUR_HEADING).unwrap();

    // What the tour needs, laid out as `scripts/demo` leaves the repository,
    // with the binary and the agent already built (nothing is built here).
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&repo().join("policies"), &dir.path().join("policies"));
    copy_dir(&repo().join("examples"), &dir.path().join("examples"));
    let debug = dir.path().join("target/debug");
    let release = dir.path().join("target/wasm32-wasip2/release");
    std::fs::create_dir_all(&debug).unwrap();
    std::fs::create_dir_all(&release).unwrap();
    std::os::unix::fs::symlink(mandate_binary(), debug.join("mandate")).unwrap();
    std::os::unix::fs::symlink(
        mandate_tests::DOCUMENT_SUMMARIZER,
        release.join("document_summarizer.wasm"),
    )
    .unwrap();

    let output = run_script(&script, dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    // The tour shows what it promises: passing policy tests, a run whose email
    // carol approved, a log that verifies with its key, and the explanation.
    for expected in [
        "cases passed",
        "policies valid",
        "allow send_email Tool::\"send_email\": scope-email-send [approval approved by carol]",
        "chain intact",
        "signatures verified with key",
        "approved by carol",
        "approver-must-be-reviewer",
        "effect: deny",
    ] {
        assert!(
            stdout.contains(expected),
            "the tour's output lacks `{expected}`:\n{stdout}"
        );
    }
}

#[test]
fn a_failing_command_fails_the_tour_and_stops_it() {
    let markdown = "# T\n\n## Before\n\n```sh\ntouch before\n```\n\n## Tour\n\n```sh\ntouch first\n```\n\n```text\nnot run\n```\n\n```sh\nfalse\n```\n\n```sh\ntouch after\n```\n\n## After\n\n```sh\ntouch later\n```\n";
    let script = section_script(markdown, "## Tour").unwrap();
    assert_eq!(script, "touch first\nfalse\ntouch after");
    let dir = tempfile::tempdir().unwrap();
    let error = run_script(&script, dir.path()).unwrap_err();
    assert!(error.contains("the tour failed"), "{error}");
    assert!(dir.path().join("first").exists());
    assert!(!dir.path().join("after").exists());

    // A failure inside a pipeline fails it too.
    assert!(run_script("false | true", dir.path()).is_err());
    assert!(run_script("true | true", dir.path()).is_ok());
    assert!(section_script(markdown, "## Missing").is_err());
    assert!(section_script("## Tour\n\ntext\n", "## Tour").is_err());
}

#[test]
fn every_rust_block_in_the_docs_is_a_region_of_a_file_that_compiles() {
    let bless = std::env::var_os(BLESS_VAR).is_some();
    let mut failures = Vec::new();
    let mut includes = 0;
    for file in doc_files() {
        let name = file
            .strip_prefix(repo())
            .unwrap_or(&file)
            .display()
            .to_string();
        let text = std::fs::read_to_string(&file).unwrap();
        let expanded = expand(&text, &read_in_repo);
        includes += expanded.includes;
        for problem in &expanded.problems {
            failures.push(format!("{name}: {problem}"));
        }
        if expanded.drifted.is_empty() {
            continue;
        }
        if bless {
            std::fs::write(&file, &expanded.text).unwrap();
        } else {
            for drift in &expanded.drifted {
                failures.push(format!(
                    "{name}: {drift}: the block differs from its region; run with \
                     {BLESS_VAR}=1 to copy the regions in"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(includes >= 3, "only {includes} included blocks found");
}

#[test]
fn the_embedding_example_in_the_docs_closes_the_audit_log() {
    // The README's hand-written copy once lacked this line, which writes the
    // final checkpoint; the docs now include the example itself.
    let embedding = std::fs::read_to_string(repo().join("docs/embedding.md")).unwrap();
    let expanded = expand(&embedding, &read_in_repo);
    assert!(expanded.problems.is_empty(), "{:?}", expanded.problems);
    assert!(embedding.contains("<!-- include: host/examples/embed.rs#main -->"));
    assert!(embedding.contains("guard.audit().shutdown()?;"));
}

#[test]
fn a_docs_block_that_differs_from_its_region_is_reported_and_blessed() {
    let source = "fn main() {\n    // ANCHOR: body\n    let x = 1;\n    // ANCHOR: inner\n    println!(\"{x}\");\n    // ANCHOR_END: inner\n    // ANCHOR_END: body\n}\n";
    let read = |path: &str| {
        if path == "host/examples/x.rs" {
            Ok(source.to_string())
        } else {
            Err(format!("cannot read `{path}`"))
        }
    };
    let good = "text\n<!-- include: host/examples/x.rs#body -->\n```rust\nlet x = 1;\nprintln!(\"{x}\");\n```\n";
    let expanded = expand(good, &read);
    assert!(expanded.problems.is_empty(), "{:?}", expanded.problems);
    assert!(expanded.drifted.is_empty());
    assert_eq!(expanded.text, good);

    let drifted = good.replace("let x = 1;", "let x = 2;");
    let expanded = expand(&drifted, &read);
    assert_eq!(expanded.drifted, ["line 3: host/examples/x.rs#body"]);
    assert_eq!(expanded.text, good);

    let inner = "<!-- include: host/examples/x.rs#inner -->\n\n```rust\nprintln!(\"{x}\");\n```\n";
    assert!(expand(inner, &read).drifted.is_empty());
}

#[test]
fn a_rust_block_without_a_valid_include_is_reported() {
    let read = |_: &str| Ok("// ANCHOR: a\nfn a() {}\n// ANCHOR_END: a\n".to_string());
    let cases = [
        ("```rust\nfn a() {}\n```\n", "without an `<!-- include"),
        ("<!-- include: x.rs#a -->\n```sh\nls\n```\n", "not ```rust"),
        (
            "<!-- include: x.rs#a -->\ntext\n",
            "not followed by a ```rust block",
        ),
        (
            "<!-- include: x.rs#b -->\n```rust\n```\n",
            "no `// ANCHOR: b` line",
        ),
        (
            "<!-- include: ../x.rs#a -->\n```rust\n```\n",
            "inside the workspace",
        ),
        (
            "<!-- include: x.md#a -->\n```rust\n```\n",
            "inside the workspace",
        ),
        ("<!-- include: x.rs -->\n```rust\n```\n", "<file>#<anchor>"),
        ("```rust\nfn a() {}\n", "never closed"),
    ];
    for (markdown, problem) in cases {
        let expanded = expand(markdown, &read);
        assert!(
            expanded.problems.iter().any(|p| p.contains(problem)),
            "{markdown:?}: expected a problem containing `{problem}`, got {:?}",
            expanded.problems
        );
    }
}

// ---------------------------------------------------------------------------
// Links between the docs

/// GitHub's anchor for a heading: lowercase, punctuation dropped, spaces as
/// dashes.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of `markdown`'s headings (outside fences).
fn anchors(markdown: &str) -> Vec<String> {
    pieces(markdown)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|piece| match piece {
            Piece::Line(_, line) => {
                let hashes = line.chars().take_while(|&c| c == '#').count();
                (hashes > 0 && line[hashes..].starts_with(' ')).then(|| slug(&line[hashes..]))
            }
            Piece::Block(_) => None,
        })
        .collect()
}

/// The targets of the inline links `[text](target)` on the lines of
/// `markdown` outside fences, with their line numbers.
fn links(markdown: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for piece in pieces(markdown).unwrap_or_default() {
        if let Piece::Line(number, line) = piece {
            let mut rest = line.as_str();
            while let Some(at) = rest.find("](") {
                rest = &rest[at + 2..];
                if let Some(end) = rest.find(')') {
                    out.push((number, rest[..end].to_string()));
                    rest = &rest[end..];
                }
            }
        }
    }
    out
}

#[test]
fn every_link_between_the_docs_reaches_a_file_and_heading_that_exist() {
    let mut broken = Vec::new();
    for file in doc_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let name = file
            .strip_prefix(repo())
            .unwrap_or(&file)
            .display()
            .to_string();
        for (line, target) in links(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (path, anchor) = match target.split_once('#') {
                Some((path, anchor)) => (path, Some(anchor)),
                None => (target.as_str(), None),
            };
            let linked = if path.is_empty() {
                file.clone()
            } else {
                file.parent().unwrap().join(path)
            };
            if !linked.exists() {
                broken.push(format!("{name}:{line}: `{target}`: no such file"));
                continue;
            }
            if let Some(anchor) = anchor {
                let headings = std::fs::read_to_string(&linked)
                    .map(|t| anchors(&t))
                    .unwrap_or_default();
                if !headings.iter().any(|h| h == anchor) {
                    broken.push(format!("{name}:{line}: `{target}`: no such heading"));
                }
            }
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

#[test]
fn heading_anchors_are_made_as_github_makes_them() {
    assert_eq!(
        slug(" On disk: segments, durability and crash repair"),
        "on-disk-segments-durability-and-crash-repair"
    );
    assert_eq!(
        slug(" Getting the `mandate` binary"),
        "getting-the-mandate-binary"
    );
    assert_eq!(
        links("see [a](b.md#c) and [d](#e)\n```\n[x](y)\n```\n"),
        [(1, "b.md#c".to_string()), (1, "#e".to_string())]
    );
}

/// `docs/tools.md`'s guide, every command as written, against the reference
/// filesystem server that scripts/install-mcp-servers installed, with
/// `mandate` and the server on `PATH` and the scripted agent as `agent.wasm`.
#[test]
fn the_mcp_guide_runs_as_written() {
    let guide = std::fs::read_to_string(repo().join("docs/tools.md")).unwrap();
    let script = section_script(&guide, "## Guard an MCP server in five minutes").unwrap();
    let servers = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| repo().join("target"), |dir| repo().join(dir))
        .join("mcp-servers/node_modules/.bin");
    assert!(
        servers.join("mcp-server-filesystem").exists(),
        "no MCP filesystem server in `{}`: run scripts/install-mcp-servers",
        servers.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(mandate_binary(), bin.join("mandate")).unwrap();
    let work = dir.path().join("guide");
    std::fs::create_dir_all(&work).unwrap();
    std::os::unix::fs::symlink(mandate_tests::SCRIPTED_AGENT, work.join("agent.wasm")).unwrap();
    let path = format!(
        "{}:{}:{}",
        bin.display(),
        servers.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = Command::new("bash")
        .arg("-c")
        .arg(format!("set -euo pipefail\n{script}"))
        .current_dir(&work)
        .env("PATH", path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the guide failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    for expected in [
        "files.read_text_file",
        "pinned: 3 tools of 1 servers pinned in mandate.lock",
        "policies valid",
        "ok: 3 cases passed",
        "allow files.read_text_file",
        "allow files.write_file",
        "approved by alice",
        "chain intact",
    ] {
        assert!(
            stdout.contains(expected),
            "the guide's output lacks `{expected}`:\n{stdout}\n--- stderr\n{stderr}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(work.join("shared/out.txt")).unwrap(),
        "noted"
    );
}
