//! `mandate policy fmt <dir> [--check]`: Cedar's own formatter over every
//! `*.cedar` file of a directory.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use cedar_policy::PolicySet;
use cedar_policy_formatter::{Config, policies_str_to_pretty};
use clap::Args;
use mandate::policy::{Problem, SourceFile};

#[derive(Args)]
pub struct FmtArgs {
    /// Directory whose *.cedar files are formatted in place.
    dir: PathBuf,
    /// Rewrite nothing: list each file that is not formatted, and exit 1 if any is not.
    #[arg(long)]
    check: bool,
}

/// What formatting one file came to.
enum Outcome {
    Formatted,
    Changed(String),
    Problems(Vec<Problem>),
}

pub fn run(args: FmtArgs) -> anyhow::Result<ExitCode> {
    let files = cedar_files(&args.dir)?;
    if files.is_empty() {
        bail!(
            "no policies in `{}`: expected one or more `*.cedar` files",
            args.dir.display()
        );
    }
    let mut unformatted = 0usize;
    let mut problems = 0usize;
    for path in &files {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read `{}`", path.display()))?;
        match format(path, &text) {
            Outcome::Formatted => {}
            Outcome::Changed(_) if args.check => {
                unformatted += 1;
                println!("{}", path.display());
            }
            Outcome::Changed(formatted) => {
                std::fs::write(path, formatted)
                    .with_context(|| format!("cannot write `{}`", path.display()))?;
                println!("formatted {}", path.display());
            }
            Outcome::Problems(found) => {
                problems += found.len();
                for p in found {
                    eprintln!("error: {p}\n");
                }
            }
        }
    }
    if problems > 0 {
        eprintln!(
            "{problems} error(s) in `{}`; files with errors were left as they are",
            args.dir.display()
        );
    }
    if unformatted > 0 {
        eprintln!(
            "{unformatted} file(s) not formatted; run `mandate policy fmt {}`",
            args.dir.display()
        );
    }
    Ok(if problems > 0 || unformatted > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn format(path: &Path, text: &str) -> Outcome {
    let file = SourceFile::new(path, text);
    // Cedar's parser first, for errors with positions and hints.
    if let Err(errors) = text.parse::<PolicySet>() {
        return Outcome::Problems(
            errors
                .iter()
                .map(|e| Problem::from_parse_error(&file, e))
                .collect(),
        );
    }
    let formatted = match policies_str_to_pretty(text, &Config::default()) {
        Ok(formatted) => formatted,
        Err(e) => {
            return Outcome::Problems(vec![Problem::in_file(
                path,
                format!("cannot format: {}", e.to_string().trim_end_matches('.')),
            )]);
        }
    };
    if comments(&formatted) != comments(text) {
        return Outcome::Problems(vec![
            Problem::in_file(path, "formatting would lose or change a comment")
                .with_hint(Some("move the comment onto its own line".into())),
        ]);
    }
    if formatted == text {
        Outcome::Formatted
    } else {
        Outcome::Changed(formatted)
    }
}

/// The `*.cedar` files of `dir`, in name order.
fn cedar_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot read `{}`", dir.display()))?;
    for entry in entries {
        let path = entry
            .with_context(|| format!("cannot read `{}`", dir.display()))?
            .path();
        if path.extension().is_some_and(|e| e == "cedar") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// The text of every `//` comment, in order: formatting may move comments
/// but must keep each one.
fn comments(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(['"', '/']) {
        let (Some(tail), Some(c)) = (rest.get(i..), rest.get(i..).and_then(|t| t.chars().next()))
        else {
            break;
        };
        if c == '"' {
            // Skip the string, honouring escapes.
            let mut chars = tail.char_indices().skip(1);
            let mut end = tail.len();
            while let Some((j, ch)) = chars.next() {
                match ch {
                    '\\' => {
                        chars.next();
                    }
                    '"' => {
                        end = j + 1;
                        break;
                    }
                    _ => {}
                }
            }
            rest = tail.get(end..).unwrap_or("");
        } else if tail.starts_with("//") {
            let end = tail.find('\n').unwrap_or(tail.len());
            out.push(tail.get(..end).unwrap_or("").trim_end());
            rest = tail.get(end..).unwrap_or("");
        } else {
            rest = tail.get(1..).unwrap_or("");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_are_found_outside_strings() {
        let text = "// a\n@id(\"x // not\") // b\npermit (principal, action, resource) when { \"\\\"//\" == \"x\" };\n";
        assert_eq!(comments(text), vec!["// a", "// b"]);
    }

    #[test]
    fn formatting_keeps_comments_and_is_stable() {
        let text = "// head\n@id(\"a\") // why\npermit(principal,action,resource) when { true } ;\n// tail\n";
        let Outcome::Changed(once) = format(Path::new("p.cedar"), text) else {
            panic!("expected a change");
        };
        assert_eq!(comments(&once), comments(text));
        assert!(matches!(
            format(Path::new("p.cedar"), &once),
            Outcome::Formatted
        ));
    }
}
