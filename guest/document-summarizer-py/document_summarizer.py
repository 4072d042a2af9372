"""The example Mandate agent in Python: reads a document, writes an
extractive summary of it, and emails the summary, reporting which actions the
guard allowed and which it refused.

It does what the Rust agent in `guest/document-summarizer` does, with the same
report for the same task and tool results. The task is free text: the first
token that starts with `doc_` names the document and the first token that
looks like an email address names the recipient, e.g. `summarize doc_88pk3r
and share it with bob@example.com`. Without them the agent works on
`DEFAULT_DOCUMENT` and mails `DEFAULT_RECIPIENT`.
"""

import re
from typing import Any, Callable, Mapping

import wit_world
from componentize_py_types import Err

import mandate_guard
from mandate_guard import ToolError, ToolFailed

#: The document summarized when the task names none.
DEFAULT_DOCUMENT = "doc_88pk3r"
#: The recipient of the summary when the task names none.
DEFAULT_RECIPIENT = "team@example.com"
#: At most this many sentences go into a summary.
SUMMARY_SENTENCES = 2
#: At most this many words go into a summary.
SUMMARY_WORDS = 50

# Rust's `split_whitespace` (the Unicode White_Space property). Python's own
# `str.split()` also splits on U+001C..U+001F, which would count words
# differently from the Rust agent.
_WHITESPACE = re.compile("[\t\n\v\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+")
# Characters that may wrap a token in running text without being part of it.
_WRAPPING = ",.;:!?\"'`()[]{}<>"
_DOCUMENT_ID = re.compile(r"doc_[A-Za-z0-9_-]+")
# Closing quotes and brackets that may follow a sentence's final punctuation.
_CLOSING = "\"')]\u201d\u2019"

Call = Callable[[str, Mapping[str, Any]], Any]


class WitWorld(wit_world.WitWorld):
    def run(self, task: str) -> str:
        # Shows in the session's captured output (`RunReport::output`).
        print(f"document-summarizer-py: task: {task}")
        try:
            return summarize(task, mandate_guard.call)
        except CannotSummarize as error:
            raise Err(str(error))


class CannotSummarize(Exception):
    """Why the agent gave up: its `run` returns this as the error."""


def summarize(task: str, call: Call) -> str:
    """The agent's work, with the tool call passed in so it can be read (and
    tested) apart from the bindings."""
    document_id = find_document_id(task) or DEFAULT_DOCUMENT
    recipient = find_email(task) or DEFAULT_RECIPIENT
    report = []

    # 1. Read the document. Without it there is nothing to summarize.
    read_label = f"read_document {document_id}"
    try:
        document = call("read_document", {"document_id": document_id})
    except ToolError as error:
        raise CannotSummarize(f"cannot summarize: {read_label}: {describe_error(error)}") from None
    except ValueError as error:
        raise CannotSummarize(
            f"cannot summarize: read_document {document_id} returned invalid JSON: {error}"
        ) from None
    report.append(f"{read_label}: allowed")
    content = document.get("content") if isinstance(document, dict) else None
    if not isinstance(content, str):
        raise CannotSummarize(
            f'cannot summarize: read_document {document_id} returned no "content" string'
        )
    title = document.get("title")
    if not isinstance(title, str):
        title = document_id

    # 2. Summarize, deterministically: the leading sentences, bounded in words.
    text, summary_words, document_words = summary_of(content)
    report.append(f'summary of "{title}": {summary_words} of {document_words} words')

    # 3. Store the summary next to the document.
    write_label = f"write_summary {document_id}"
    report.append(
        describe_outcome(
            write_label, call, "write_summary", {"document_id": document_id, "summary": text}
        )
    )

    # 4. Mail it. This is independent of whether storing it was allowed.
    send_label = f"send_email {recipient}"
    email = {"to": recipient, "subject": f"Summary of {title}", "body": text}
    report.append(describe_outcome(send_label, call, "send_email", email))

    allowed = sum(1 for line in report if line.endswith(": allowed"))
    report.append(f"done: {allowed} of 3 tool calls allowed")
    report.append("")
    report.append(text)
    return "\n".join(report)


def describe_outcome(label: str, call: Call, name: str, arguments: Mapping[str, Any]) -> str:
    """Makes one call and says how it went: `label: allowed`,
    `label: refused (...)` or `label: failed (...)`."""
    try:
        call(name, arguments)
    except ToolError as error:
        return f"{label}: {describe_error(error)}"
    except ValueError:
        # The call was allowed and ran; the agent does not use its result.
        pass
    return f"{label}: allowed"


def describe_error(error: ToolError) -> str:
    """The call was refused for every error but `ToolFailed`, where it was
    allowed and ran, but failed."""
    return f"{'failed' if isinstance(error, ToolFailed) else 'refused'} ({error})"


def tokens(task: str) -> list[str]:
    """The task's words with surrounding punctuation removed."""
    return [t for t in (word.strip(_WRAPPING) for word in words(task)) if t]


def words(text: str) -> list[str]:
    return [word for word in _WHITESPACE.split(text) if word]


def find_document_id(task: str) -> str | None:
    """The first token of the form `doc_<letters, digits, '_' or '-'>`."""
    return next((t for t in tokens(task) if _DOCUMENT_ID.fullmatch(t)), None)


def find_email(task: str) -> str | None:
    """The first token that looks like `local@domain.tld`."""
    for token in tokens(task):
        local, at, domain = token.partition("@")
        if (
            at
            and local
            and "@" not in domain
            and "." in domain
            and not domain.startswith(".")
            and not domain.endswith(".")
            and ".." not in domain
        ):
            return token
    return None


def summary_of(content: str) -> tuple[str, int, int]:
    """An extractive summary: the document's first sentences, at most
    `SUMMARY_SENTENCES` of them and at most `SUMMARY_WORDS` words, followed by
    the document's word count. Returns the text, the words taken and the
    document's words."""
    document = words(content)
    taken = []
    sentences = 0
    for word in document:
        if len(taken) == SUMMARY_WORDS or sentences == SUMMARY_SENTENCES:
            break
        taken.append(word)
        if ends_sentence(word):
            sentences += 1
    if not taken:
        return "(The document is empty.)", 0, len(document)
    extract = " ".join(taken)
    if len(taken) < len(document) and sentences < SUMMARY_SENTENCES:
        # Cut mid-sentence by the word limit.
        extract += " ..."
    return f"{extract} ({len(document)} words in the full document.)", len(taken), len(document)


def ends_sentence(word: str) -> bool:
    """Whether a word ends a sentence: its last character that is not a
    closing quote or bracket is `.`, `!` or `?`."""
    return word.rstrip(_CLOSING).endswith((".", "!", "?"))
