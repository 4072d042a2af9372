//! Errors from loading policies, schema and entities.

mod hints;

use std::path::PathBuf;

use super::source::{SourceFile, SourcePos};

use hints::parse_problem;
pub(super) use hints::{Hints, merge_per_action};

/// One thing wrong in a policy directory, with where it is.
///
/// Displayed like a compiler error: the position, the message, the source
/// line with carets under what is wrong, and a hint when there is one:
///
/// ```text
/// policies/bad.cedar:3:35: for policy `x`, unexpected type: expected Long but saw String
///   |
/// 3 | when { context.delegation.depth > "2" };
///   |                                   ^^^
///   = help: `"2"` is a String; write `2` for a Long
/// ```
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
    /// How many characters of the source line, from `pos`, are underlined;
    /// at least 1.
    pub width: usize,
    /// How to fix it, when there is something to say; one line per hint.
    pub hint: Option<String>,
}

impl Problem {
    /// A problem in `file` at byte `offset` of its text.
    pub fn at(file: &SourceFile, offset: usize, message: impl Into<String>) -> Self {
        Problem::spanning(file, offset, 1, message)
    }

    /// A problem in `file` about the `len` bytes at `offset`. A span that
    /// runs past its first line is underlined to the end of that line.
    pub fn spanning(
        file: &SourceFile,
        offset: usize,
        len: usize,
        message: impl Into<String>,
    ) -> Self {
        let pos = file.pos(offset);
        Problem {
            source_line: Some(file.line_text(pos.line).to_string()),
            file: Some(file.path().to_path_buf()),
            width: file.span_width(offset, len),
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
            width: 1,
            hint: None,
        }
    }

    /// Adds a hint.
    pub fn with_hint(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }

    /// Builds a problem from a Cedar diagnostic whose first label is a byte
    /// span of `file`.
    pub fn from_diagnostic(file: &SourceFile, diag: &dyn miette::Diagnostic) -> Self {
        let message = tidy(&diag.to_string());
        let hint = diag.help().map(|h| tidy(&h.to_string()));
        let label = diag.labels().and_then(|mut labels| labels.next());
        match label {
            Some(l) => Problem::spanning(file, l.offset(), l.len(), message).with_hint(hint),
            None => Problem::in_file(file.path(), message).with_hint(hint),
        }
    }

    /// Builds a problem from a Cedar syntax error in `file`, with a hint
    /// when the cause is a common one (a policy not closed with `;`).
    pub fn from_parse_error(file: &SourceFile, diag: &dyn miette::Diagnostic) -> Self {
        parse_problem(file, diag)
    }

    /// The underlined text, when the problem points at some.
    pub fn underlined(&self) -> Option<&str> {
        let (pos, line) = (self.pos.as_ref()?, self.source_line.as_deref()?);
        let start = line
            .char_indices()
            .nth(pos.column.saturating_sub(1))
            .map_or(line.len(), |(i, _)| i);
        let end = line
            .char_indices()
            .nth(pos.column.saturating_sub(1) + self.width)
            .map_or(line.len(), |(i, _)| i);
        line.get(start..end)
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
            // Keep tabs so the carets line up under a tab-indented line.
            let indent: String = line
                .chars()
                .take(pos.column.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            write!(f, "{indent}{}", "^".repeat(self.width.max(1)))?;
        }
        if let Some(hint) = &self.hint {
            for line in hint.lines() {
                write!(f, "\n{} = help: {line}", " ".repeat(gutter_width(self)))?;
            }
        }
        Ok(())
    }
}

fn gutter_width(p: &Problem) -> usize {
    p.pos.as_ref().map_or(1, |pos| pos.line.to_string().len())
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
                width: 1,
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

/// Cedar's messages mostly follow the house style already (lowercase, no
/// final period); a few start with a capital or end in sentences. Words in
/// backticks are left alone.
pub(super) fn tidy(s: &str) -> String {
    let s = s.trim().trim_end_matches('.');
    let mut out = String::with_capacity(s.len());
    let mut in_code = false;
    let mut sentence_start = true;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '`' {
            in_code = !in_code;
        }
        let lower_next = chars.peek().is_some_and(|n| n.is_lowercase());
        if sentence_start && !in_code && c.is_uppercase() && lower_next {
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
        sentence_start = false;
        // ". Types must ..." becomes "; types must ...".
        if c == '.' && !in_code && chars.peek() == Some(&' ') {
            out.pop();
            out.push(';');
            sentence_start = true;
        }
        if c == ' ' && out.ends_with("; ") {
            sentence_start = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carets_underline_the_whole_span() {
        let f = SourceFile::new(
            "p.cedar",
            "permit (principal, action, resource)\nwhen { x };\n",
        );
        let p = Problem::spanning(&f, 44, 1, "bad").with_hint(Some("fix it".into()));
        assert_eq!(
            p.to_string(),
            "p.cedar:2:8: bad\n  |\n2 | when { x };\n  |        ^\n  = help: fix it"
        );
        let p = Problem::spanning(&f, 37, 100, "bad");
        assert_eq!(p.width, "when { x };".len());
        assert_eq!(p.underlined(), Some("when { x };"));
    }

    #[test]
    fn tabs_before_the_span_are_kept_under_it() {
        let f = SourceFile::new("p.cedar", "\twhen { x };\n");
        let p = Problem::spanning(&f, 8, 1, "bad");
        assert!(
            p.to_string().ends_with("1 | \twhen { x };\n  | \t       ^"),
            "{p}"
        );
    }

    #[test]
    fn cedar_sentences_become_house_style() {
        assert_eq!(
            tidy("both operands must have compatible types. Types must be exactly equal."),
            "both operands must have compatible types; types must be exactly equal"
        );
        assert_eq!(
            tidy("Cedar only supports `Foo`"),
            "cedar only supports `Foo`"
        );
        assert_eq!(tidy("did you mean `User`?"), "did you mean `User`?");
    }
}
