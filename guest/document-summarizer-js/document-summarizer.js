// The example Mandate agent in JavaScript: reads a document, writes an
// extractive summary of it, and emails the summary, reporting which actions
// the guard allowed and which it refused.
//
// It does what the Rust agent in `guest/document-summarizer` does, with the
// same report for the same task and tool results. The task is free text: the
// first token that starts with `doc_` names the document and the first token
// that looks like an email address names the recipient, e.g. `summarize
// doc_88pk3r and share it with bob@example.com`. Without them the agent works
// on `DEFAULT_DOCUMENT` and mails `DEFAULT_RECIPIENT`.

import { call as guardCall, RunError, ToolError, ToolFailed } from './mandate-guard.js';

/** The document summarized when the task names none. */
export const DEFAULT_DOCUMENT = 'doc_88pk3r';
/** The recipient of the summary when the task names none. */
export const DEFAULT_RECIPIENT = 'team@example.com';
/** At most this many sentences go into a summary. */
const SUMMARY_SENTENCES = 2;
/** At most this many words go into a summary. */
const SUMMARY_WORDS = 50;

// Rust's `split_whitespace` (the Unicode White_Space property). JavaScript's
// `\s` also matches U+FEFF, which would count words differently from the Rust
// agent.
const WHITESPACE = /[\t\n\v\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/u;
// Characters that may wrap a token in running text without being part of it.
const WRAPPING = /^[,.;:!?"'`()[\]{}<>]+|[,.;:!?"'`()[\]{}<>]+$/gu;
const DOCUMENT_ID = /^doc_[A-Za-z0-9_-]+$/u;
// A sentence's final punctuation, maybe followed by closing quotes or brackets.
const SENTENCE_END = /[.!?]["')\]\u201d\u2019]*$/u;

/** The `run` export of the `agent` world. */
export function run(task) {
  // Shows in the session's captured output (`RunReport::output`).
  console.log(`document-summarizer-js: task: ${task}`);
  return summarize(task, guardCall);
}

/**
 * The agent's work, with the tool call passed in so it can be read (and
 * tested) apart from the bindings.
 */
export function summarize(task, call) {
  const documentId = findDocumentId(task) ?? DEFAULT_DOCUMENT;
  const recipient = findEmail(task) ?? DEFAULT_RECIPIENT;
  const report = [];

  // 1. Read the document. Without it there is nothing to summarize.
  const readLabel = `read_document ${documentId}`;
  let document;
  try {
    document = call('read_document', { document_id: documentId });
  } catch (error) {
    if (error instanceof ToolError) {
      throw new RunError(`cannot summarize: ${readLabel}: ${describeError(error)}`);
    }
    if (error instanceof SyntaxError) {
      throw new RunError(
        `cannot summarize: read_document ${documentId} returned invalid JSON: ${error.message}`,
      );
    }
    throw error;
  }
  report.push(`${readLabel}: allowed`);
  const content = isObject(document) ? document.content : undefined;
  if (typeof content !== 'string') {
    throw new RunError(
      `cannot summarize: read_document ${documentId} returned no "content" string`,
    );
  }
  const title = typeof document.title === 'string' ? document.title : documentId;

  // 2. Summarize, deterministically: the leading sentences, bounded in words.
  const summary = summaryOf(content);
  report.push(
    `summary of "${title}": ${summary.summaryWords} of ${summary.documentWords} words`,
  );

  // 3. Store the summary next to the document.
  report.push(
    describeOutcome(`write_summary ${documentId}`, () =>
      call('write_summary', { document_id: documentId, summary: summary.text }),
    ),
  );

  // 4. Mail it. This is independent of whether storing it was allowed.
  report.push(
    describeOutcome(`send_email ${recipient}`, () =>
      call('send_email', {
        to: recipient,
        subject: `Summary of ${title}`,
        body: summary.text,
      }),
    ),
  );

  const allowed = report.filter((line) => line.endsWith(': allowed')).length;
  report.push(`done: ${allowed} of 3 tool calls allowed`, '', summary.text);
  return report.join('\n');
}

/**
 * Makes one call and says how it went: `label: allowed`, `label: refused
 * (...)` or `label: failed (...)`.
 */
function describeOutcome(label, makeCall) {
  try {
    makeCall();
  } catch (error) {
    if (error instanceof ToolError) return `${label}: ${describeError(error)}`;
    // The call was allowed and ran; the agent does not use its result.
    if (!(error instanceof SyntaxError)) throw error;
  }
  return `${label}: allowed`;
}

/**
 * The call was refused for every error but `ToolFailed`, where it was
 * allowed and ran, but failed.
 */
function describeError(error) {
  return `${error instanceof ToolFailed ? 'failed' : 'refused'} (${error.message})`;
}

function isObject(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function words(text) {
  return text.split(WHITESPACE).filter((word) => word !== '');
}

/** The task's words with surrounding punctuation removed. */
function tokens(task) {
  return words(task)
    .map((word) => word.replace(WRAPPING, ''))
    .filter((token) => token !== '');
}

/** The first token of the form `doc_<letters, digits, '_' or '-'>`. */
export function findDocumentId(task) {
  return tokens(task).find((token) => DOCUMENT_ID.test(token));
}

/** The first token that looks like `local@domain.tld`. */
export function findEmail(task) {
  return tokens(task).find((token) => {
    const at = token.indexOf('@');
    if (at < 0) return false;
    const local = token.slice(0, at);
    const domain = token.slice(at + 1);
    return (
      local !== '' &&
      !domain.includes('@') &&
      domain.includes('.') &&
      !domain.startsWith('.') &&
      !domain.endsWith('.') &&
      !domain.includes('..')
    );
  });
}

/**
 * An extractive summary: the document's first sentences, at most
 * `SUMMARY_SENTENCES` of them and at most `SUMMARY_WORDS` words, followed by
 * the document's word count.
 */
export function summaryOf(content) {
  const document = words(content);
  const taken = [];
  let sentences = 0;
  for (const word of document) {
    if (taken.length === SUMMARY_WORDS || sentences === SUMMARY_SENTENCES) break;
    taken.push(word);
    if (SENTENCE_END.test(word)) sentences += 1;
  }
  let text;
  if (taken.length === 0) {
    text = '(The document is empty.)';
  } else {
    let extract = taken.join(' ');
    if (taken.length < document.length && sentences < SUMMARY_SENTENCES) {
      // Cut mid-sentence by the word limit.
      extract += ' ...';
    }
    text = `${extract} (${document.length} words in the full document.)`;
  }
  return { text, summaryWords: taken.length, documentWords: document.length };
}
