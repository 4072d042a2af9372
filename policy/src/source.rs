//! Where a policy came from: file, line and column, so every error a policy
//! author sees points at their own text.

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A position in a policy file, 1-based.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcePos {
    /// The file the text came from.
    pub file: PathBuf,
    /// Line, starting at 1.
    pub line: usize,
    /// Column in characters, starting at 1.
    pub column: usize,
}

impl std::fmt::Display for SourcePos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// The text of one policy file, kept so that byte offsets reported by Cedar
/// can be turned into lines and columns.
#[derive(Debug, Clone)]
pub struct SourceFile {
    path: PathBuf,
    text: Arc<str>,
    /// Byte offset at which each line starts.
    line_starts: Vec<usize>,
}

impl SourceFile {
    /// Keeps `text` read from `path`.
    pub fn new(path: impl Into<PathBuf>, text: impl Into<Arc<str>>) -> Self {
        let text = text.into();
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        SourceFile {
            path: path.into(),
            text,
            line_starts,
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The line and column of byte `offset`.
    pub fn pos(&self, offset: usize) -> SourcePos {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset).max(1);
        let start = self.line_starts.get(line - 1).copied().unwrap_or(0);
        let column = self
            .text
            .get(start..offset)
            .map_or(1, |prefix| prefix.chars().count() + 1);
        SourcePos {
            file: self.path.clone(),
            line,
            column,
        }
    }

    /// The text of line `line` (1-based) without its newline.
    pub fn line_text(&self, line: usize) -> &str {
        let Some(&start) = self.line_starts.get(line.saturating_sub(1)) else {
            return "";
        };
        let end = self
            .line_starts
            .get(line)
            .map_or(self.text.len(), |&next| next - 1);
        self.text
            .get(start..end)
            .unwrap_or("")
            .trim_end_matches('\r')
    }

    /// How many characters the `len` bytes at `offset` cover on the line
    /// where they start (a span running past the line counts to its end);
    /// at least 1, so an empty span or one at the end still gets a caret.
    pub fn span_width(&self, offset: usize, len: usize) -> usize {
        let offset = offset.min(self.text.len());
        let line_end = self.text.get(offset..).map_or(offset, |rest| {
            offset + rest.find('\n').unwrap_or(rest.len())
        });
        let end = offset.saturating_add(len).min(line_end);
        self.text
            .get(offset..end)
            .map_or(1, |span| span.trim_end_matches('\r').chars().count().max(1))
    }

    /// Byte offset of the last character before `offset` that is neither
    /// whitespace nor inside a `//` comment, e.g. to tell whether the
    /// statement before an error was closed with `;`.
    pub fn last_significant_before(&self, offset: usize) -> Option<usize> {
        let bytes = self.text.as_bytes();
        let mut last = None;
        let mut i = 0;
        while i < offset {
            let Some(&b) = bytes.get(i) else { break };
            match b {
                b'/' if bytes.get(i + 1) == Some(&b'/') => {
                    while bytes.get(i).is_some_and(|&c| c != b'\n') {
                        i += 1;
                    }
                    continue;
                }
                b'"' => {
                    i += 1;
                    while let Some(&c) = bytes.get(i) {
                        if i >= offset {
                            break;
                        }
                        last = Some(i);
                        i += if c == b'\\' { 2 } else { 1 };
                        if c == b'"' {
                            break;
                        }
                    }
                    continue;
                }
                c if c.is_ascii_whitespace() => {}
                _ => last = Some(i),
            }
            i += 1;
        }
        last
    }

    /// Byte offsets where each top-level statement (policy) starts, in order.
    ///
    /// Cedar's public API does not expose where a parsed policy sits in its
    /// file, but it numbers policies in source order, so the n-th statement
    /// found here is the n-th policy Cedar parsed. Statements end at a `;`
    /// outside strings and `//` comments.
    pub fn statement_starts(&self) -> Vec<usize> {
        let bytes = self.text.as_bytes();
        let mut starts = Vec::new();
        let mut in_statement = false;
        let mut i = 0;
        while let Some(&b) = bytes.get(i) {
            match b {
                b'/' if bytes.get(i + 1) == Some(&b'/') => {
                    while bytes.get(i).is_some_and(|&c| c != b'\n') {
                        i += 1;
                    }
                    continue;
                }
                b'"' => {
                    if !in_statement {
                        starts.push(i);
                        in_statement = true;
                    }
                    i += 1;
                    while let Some(&c) = bytes.get(i) {
                        i += if c == b'\\' { 2 } else { 1 };
                        if c == b'"' {
                            break;
                        }
                    }
                    continue;
                }
                b';' => in_statement = false,
                c if c.is_ascii_whitespace() => {}
                _ if !in_statement => {
                    starts.push(i);
                    in_statement = true;
                }
                _ => {}
            }
            i += 1;
        }
        starts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_lines_and_columns() {
        let f = SourceFile::new("a.cedar", "ab\ncd\n");
        assert_eq!((f.pos(0).line, f.pos(0).column), (1, 1));
        assert_eq!((f.pos(4).line, f.pos(4).column), (2, 2));
        assert_eq!(f.line_text(2), "cd");
    }

    #[test]
    fn spans_are_counted_in_characters_up_to_the_end_of_their_line() {
        let f = SourceFile::new("a.cedar", "é == \"x\"\nnext\n");
        assert_eq!(f.span_width(0, 2), 1);
        assert_eq!(f.span_width(0, 100), 8);
        assert_eq!(f.span_width(f.text().len(), 0), 1);
    }

    #[test]
    fn the_last_significant_character_skips_comments_and_blanks() {
        let text = "permit(principal, action, resource) // no ;\n\n@id(\"x\")";
        let f = SourceFile::new("p.cedar", text);
        let at = text.find('@').unwrap();
        assert_eq!(f.last_significant_before(at), Some(text.find(')').unwrap()));
        assert_eq!(f.last_significant_before(0), None);
        assert_eq!(f.last_significant_before(text.len()), Some(text.len() - 1));
    }

    #[test]
    fn statements_skip_comments_and_semicolons_in_strings() {
        let text = "// a; comment\n@id(\"x;y\")\npermit(principal, action, resource);\n\nforbid(principal, action, resource) when { \"a;\" == \"b\" };\n";
        let f = SourceFile::new("p.cedar", text);
        let starts = f.statement_starts();
        assert_eq!(starts.len(), 2);
        assert_eq!(f.pos(starts[0]).line, 2);
        assert_eq!(f.pos(starts[1]).line, 5);
    }
}
