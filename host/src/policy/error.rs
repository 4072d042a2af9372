//! Errors from loading policies, schema and entities.

use std::path::PathBuf;

use super::source::{SourceFile, SourcePos};

/// One thing wrong in a policy directory, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where, when the problem points at text.
    pub pos: Option<SourcePos>,
    /// The file, when there is no finer position.
    pub file: Option<PathBuf>,
    /// What is wrong, lowercase.
    pub message: String,
    /// The offending source line, when known.
    pub source_line: Option<String>,
    /// How to fix it, when there is something to say.
    pub hint: Option<String>,
}

impl Problem {
    /// A problem in `file` at byte `offset` of its text.
    pub fn at(file: &SourceFile, offset: usize, message: impl Into<String>) -> Self {
        let pos = file.pos(offset);
        Problem {
            source_line: Some(file.line_text(pos.line).to_string()),
            file: Some(file.path().to_path_buf()),
            pos: Some(pos),
            message: message.into(),
            hint: None,
        }
    }

    /// A problem with a whole file.
    pub fn in_file(file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Problem {
            pos: None,
            file: Some(file.into()),
            message: message.into(),
            source_line: None,
            hint: None,
        }
    }

    /// Adds a hint.
    pub fn with_hint(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }

    /// Builds problems from a Cedar diagnostic whose labels are byte offsets
    /// into `file`.
    pub fn from_diagnostic(file: &SourceFile, diag: &dyn miette::Diagnostic) -> Self {
        let message = lowercase_first(&diag.to_string());
        let hint = diag.help().map(|h| h.to_string());
        let offset = diag
            .labels()
            .and_then(|mut labels| labels.next())
            .map(|l| l.offset());
        match offset {
            Some(offset) => Problem::at(file, offset, message).with_hint(hint),
            None => Problem::in_file(file.path(), message).with_hint(hint),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.pos, &self.file) {
            (Some(pos), _) => write!(f, "{pos}: {}", self.message)?,
            (None, Some(file)) => write!(f, "{}: {}", file.display(), self.message)?,
            (None, None) => write!(f, "{}", self.message)?,
        }
        if let (Some(pos), Some(line)) = (&self.pos, &self.source_line) {
            let gutter = pos.line.to_string();
            let pad = " ".repeat(gutter.len());
            write!(f, "\n{pad} |\n{gutter} | {line}\n{pad} | ")?;
            write!(f, "{}^", " ".repeat(pos.column.saturating_sub(1)))?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  = help: {hint}")?;
        }
        Ok(())
    }
}

/// Why a policy directory could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyLoadError {
    /// A file or directory could not be read.
    #[error("cannot read `{path}`: {error}")]
    Io {
        /// What could not be read.
        path: PathBuf,
        /// The operating system's reason.
        error: std::io::Error,
    },
    /// The directory has no schema file.
    #[error("no schema in `{dir}`: expected `{dir}/schema.cedarschema`")]
    MissingSchema {
        /// The policy directory.
        dir: PathBuf,
    },
    /// The directory has no policy files.
    #[error("no policies in `{dir}`: expected one or more `*.cedar` files")]
    NoPolicies {
        /// The policy directory.
        dir: PathBuf,
    },
    /// The text of the schema, policies or entities is wrong.
    #[error("{}", render_problems(.0))]
    Problems(Vec<Problem>),
}

impl PolicyLoadError {
    /// The individual problems, for callers that print them one by one.
    pub fn problems(&self) -> Vec<Problem> {
        match self {
            PolicyLoadError::Problems(p) => p.clone(),
            other => vec![Problem {
                pos: None,
                file: None,
                message: other.to_string(),
                source_line: None,
                hint: None,
            }],
        }
    }
}

fn render_problems(problems: &[Problem]) -> String {
    let mut out = String::new();
    for (i, p) in problems.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&p.to_string());
    }
    out
}

/// Cedar's messages start with a lowercase word already, except for a few;
/// keep ours consistent.
fn lowercase_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_uppercase() && chars.clone().next().is_some_and(char::is_lowercase) => {
            c.to_lowercase().chain(chars).collect()
        }
        _ => s.to_string(),
    }
}
