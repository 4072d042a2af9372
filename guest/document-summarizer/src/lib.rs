//! The example Mandate agent: reads a document, writes an extractive summary
//! of it, and emails the summary, reporting which actions the guard allowed
//! and which it refused.
//!
//! The task is free text. The first token that starts with `doc_` names the
//! document and the first token that looks like an email address names the
//! recipient, e.g. `summarize doc_88pk3r and share it with bob@example.com`.
//! Without them the agent works on [`DEFAULT_DOCUMENT`] and mails
//! [`DEFAULT_RECIPIENT`].

wit_bindgen::generate!({
    path: "../../wit",
    world: "agent",
});

use mandate::guard::tools::{self, ToolError};
use serde_json::{Value, json};

/// The document summarized when the task names none.
pub const DEFAULT_DOCUMENT: &str = "doc_88pk3r";
/// The recipient of the summary when the task names none.
pub const DEFAULT_RECIPIENT: &str = "team@example.com";
/// At most this many sentences go into a summary.
const SUMMARY_SENTENCES: usize = 2;
/// At most this many words go into a summary.
const SUMMARY_WORDS: usize = 50;

struct DocumentSummarizer;

impl Guest for DocumentSummarizer {
    fn run(task: String) -> Result<String, String> {
        summarize(&task, &mut |name, arguments| tools::call(name, arguments))
    }
}

export!(DocumentSummarizer);

/// The agent's work, with the tool call passed in so it can be read (and
/// tested) apart from the generated bindings.
fn summarize(
    task: &str,
    call: &mut dyn FnMut(&str, &str) -> Result<String, ToolError>,
) -> Result<String, String> {
    let document_id = find_document_id(task).unwrap_or(DEFAULT_DOCUMENT);
    let recipient = find_email(task).unwrap_or(DEFAULT_RECIPIENT);
    let mut report = Vec::new();

    // 1. Read the document. Without it there is nothing to summarize.
    let read_label = format!("read_document {document_id}");
    let document = match call(
        "read_document",
        &json!({ "document_id": document_id }).to_string(),
    ) {
        Ok(document) => document,
        Err(error) => {
            return Err(format!(
                "cannot summarize: {read_label}: {}",
                describe_error(&error)
            ));
        }
    };
    report.push(format!("{read_label}: allowed"));
    let document: Value = serde_json::from_str(&document).map_err(|error| {
        format!("cannot summarize: read_document {document_id} returned invalid JSON: {error}")
    })?;
    let Some(content) = document.get("content").and_then(Value::as_str) else {
        return Err(format!(
            "cannot summarize: read_document {document_id} returned no \"content\" string"
        ));
    };
    let title = document
        .get("title")
        .and_then(Value::as_str)
        .unwrap_or(document_id);

    // 2. Summarize, deterministically: the leading sentences, bounded in words.
    let summary = Summary::of(content);
    report.push(format!(
        "summary of \"{title}\": {} of {} words",
        summary.summary_words, summary.document_words
    ));
    let summary_text = summary.text;

    // 3. Store the summary next to the document.
    let write_label = format!("write_summary {document_id}");
    let outcome = call(
        "write_summary",
        &json!({ "document_id": document_id, "summary": summary_text }).to_string(),
    );
    report.push(describe_outcome(&write_label, &outcome));

    // 4. Mail it. This is independent of whether storing it was allowed.
    let send_label = format!("send_email {recipient}");
    let outcome = call(
        "send_email",
        &json!({
            "to": recipient,
            "subject": format!("Summary of {title}"),
            "body": summary_text,
        })
        .to_string(),
    );
    report.push(describe_outcome(&send_label, &outcome));

    let allowed = report
        .iter()
        .filter(|line| line.ends_with(": allowed"))
        .count();
    report.push(format!("done: {allowed} of 3 tool calls allowed"));
    report.push(String::new());
    report.push(summary_text);
    Ok(report.join("\n"))
}

/// One report line for a tool call: `label: allowed`, `label: refused (...)`
/// or `label: failed (...)`.
fn describe_outcome(label: &str, outcome: &Result<String, ToolError>) -> String {
    match outcome {
        Ok(_) => format!("{label}: allowed"),
        Err(error) => format!("{label}: {}", describe_error(error)),
    }
}

/// Says readably what a tool error means. The call was refused for every
/// variant except `tool-failed`, where it was allowed and ran, but failed.
fn describe_error(error: &ToolError) -> String {
    match error {
        ToolError::Denied(denial) => {
            if denial.policies.is_empty() {
                "refused (denied: no policy permits this call)".to_string()
            } else {
                let policies: Vec<String> = denial
                    .policies
                    .iter()
                    .enumerate()
                    .map(|(index, policy)| match denial.reasons.get(index) {
                        Some(reason) if !reason.is_empty() => format!("{policy}: {reason}"),
                        _ => policy.clone(),
                    })
                    .collect();
                format!("refused (denied by policy {})", policies.join("; "))
            }
        }
        ToolError::ApprovalDenied(reason) if reason.is_empty() => {
            "refused (approval denied)".to_string()
        }
        ToolError::ApprovalDenied(reason) => format!("refused (approval denied: {reason})"),
        ToolError::ApprovalTimedOut => {
            "refused (approval timed out: no reviewer decided in time)".to_string()
        }
        ToolError::SessionExpired => "refused (session expired)".to_string(),
        ToolError::UnknownTool(name) => format!("refused (unknown tool: {name})"),
        ToolError::InvalidArguments(message) => format!("refused (invalid arguments: {message})"),
        ToolError::ToolFailed(message) => format!("failed (the tool ran and failed: {message})"),
        ToolError::AuditUnavailable(message) => {
            format!("refused (audit log unavailable: {message})")
        }
    }
}

/// Characters that may wrap a token in running text without being part of it.
fn is_wrapping(c: char) -> bool {
    matches!(
        c,
        ',' | '.'
            | ';'
            | ':'
            | '!'
            | '?'
            | '"'
            | '\''
            | '`'
            | '('
            | ')'
            | '['
            | ']'
            | '{'
            | '}'
            | '<'
            | '>'
    )
}

/// The task's words with surrounding punctuation removed.
fn tokens(task: &str) -> impl Iterator<Item = &str> {
    task.split_whitespace()
        .map(|token| token.trim_matches(is_wrapping))
        .filter(|token| !token.is_empty())
}

/// The first token of the form `doc_<letters, digits, '_' or '-'>`.
fn find_document_id(task: &str) -> Option<&str> {
    tokens(task).find(|token| {
        token.strip_prefix("doc_").is_some_and(|rest| {
            !rest.is_empty()
                && rest
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
    })
}

/// The first token that looks like `local@domain.tld`.
fn find_email(task: &str) -> Option<&str> {
    tokens(task).find(|token| {
        let Some((local, domain)) = token.split_once('@') else {
            return false;
        };
        !local.is_empty()
            && !domain.contains('@')
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
    })
}

/// An extractive summary: the document's first sentences, at most
/// [`SUMMARY_SENTENCES`] of them and at most [`SUMMARY_WORDS`] words, followed
/// by the document's word count.
struct Summary {
    text: String,
    summary_words: usize,
    document_words: usize,
}

impl Summary {
    fn of(content: &str) -> Summary {
        let words: Vec<&str> = content.split_whitespace().collect();
        let mut taken = Vec::new();
        let mut sentences = 0;
        for word in &words {
            if taken.len() == SUMMARY_WORDS || sentences == SUMMARY_SENTENCES {
                break;
            }
            taken.push(*word);
            if ends_sentence(word) {
                sentences += 1;
            }
        }
        let document_words = words.len();
        let summary_words = taken.len();
        let text = if taken.is_empty() {
            "(The document is empty.)".to_string()
        } else {
            let mut extract = taken.join(" ");
            if summary_words < document_words && sentences < SUMMARY_SENTENCES {
                // Cut mid-sentence by the word limit.
                extract.push_str(" ...");
            }
            format!("{extract} ({document_words} words in the full document.)")
        };
        Summary {
            text,
            summary_words,
            document_words,
        }
    }
}

/// Whether a word ends a sentence: its last character that is not a closing
/// quote or bracket is `.`, `!` or `?`.
fn ends_sentence(word: &str) -> bool {
    word.trim_end_matches(['"', '\'', ')', ']', '\u{201d}', '\u{2019}'])
        .ends_with(['.', '!', '?'])
}

#[cfg(test)]
mod tests {
    use super::*;
    use mandate::guard::tools::Denial;

    #[test]
    fn finds_document_and_recipient() {
        let task = "summarize doc_88pk3r and share it with bob@example.com.";
        assert_eq!(find_document_id(task), Some("doc_88pk3r"));
        assert_eq!(find_email(task), Some("bob@example.com"));
        assert_eq!(find_document_id("summarize the thing"), None);
        assert_eq!(find_email("mail it to @example or bob@x"), None);
        assert_eq!(find_document_id("(doc_a-1_b), please"), Some("doc_a-1_b"));
    }

    #[test]
    fn summary_takes_leading_sentences() {
        let summary = Summary::of("One two.  Three four!\nFive six? Seven.");
        assert_eq!(
            summary.text,
            "One two. Three four! (7 words in the full document.)"
        );
        assert_eq!(summary.summary_words, 4);
        assert_eq!(summary.document_words, 7);
        let long = "word ".repeat(80);
        let summary = Summary::of(&long);
        assert_eq!(summary.summary_words, SUMMARY_WORDS);
        assert!(summary.text.contains(" ... (80 words"));
        assert_eq!(Summary::of(" ").text, "(The document is empty.)");
    }

    #[test]
    fn reports_each_call() {
        let mut calls = Vec::new();
        let report = summarize(
            "summarize doc_1 for a@b.io",
            &mut |name: &str, arguments: &str| {
                calls.push((name.to_string(), arguments.to_string()));
                match name {
                    "read_document" => Ok(r#"{"title":"Plan","content":"Ship it. Now."}"#.into()),
                    "write_summary" => Err(ToolError::Denied(Denial {
                        policies: vec!["no-writes".into()],
                        reasons: vec!["read only".into()],
                    })),
                    _ => Err(ToolError::ApprovalDenied("not today".into())),
                }
            },
        );
        let report = report.unwrap_or_default();
        assert!(report.contains("read_document doc_1: allowed"), "{report}");
        assert!(
            report.contains("write_summary doc_1: refused (denied by policy no-writes: read only)"),
            "{report}"
        );
        assert!(
            report.contains("send_email a@b.io: refused (approval denied: not today)"),
            "{report}"
        );
        assert_eq!(calls.len(), 3);
        let email: Value = serde_json::from_str(&calls[2].1).unwrap_or_default();
        assert_eq!(email["subject"], "Summary of Plan");
        assert_eq!(email["to"], "a@b.io");
    }

    #[test]
    fn refused_read_is_an_error() {
        let result = summarize("summarize", &mut |_: &str, _: &str| {
            Err(ToolError::Denied(Denial {
                policies: vec![],
                reasons: vec![],
            }))
        });
        assert_eq!(
            result,
            Err(
                "cannot summarize: read_document doc_88pk3r: refused (denied: no policy permits this call)"
                    .to_string()
            )
        );
    }
}
