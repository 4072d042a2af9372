// A test and benchmark agent in JavaScript: its task is a JSON script of tool
// calls to make through `mandate-guard.js`, and its report is a JSON record of
// what each call returned.
//
// It takes the part of `guest/scripted-agent`'s script (the Rust one) that
// compares languages: the same task makes the same calls in Rust, Python and
// JavaScript, so that a benchmark sees each language's cost of a call (its
// bindings, its JSON, the WIT round trip) and nothing else:
//
//   {"calls": [{"tool": "read_document", "arguments": {"document_id": "doc_88pk3r"}}],
//    "repeat": 1, "tally": false}
//
// The calls are made `repeat` times. With `tally`, their outcomes are only
// counted (`{"tally": {"ok": n, "error": m}}`); without, each is listed as
// `{"tool": ..., "ok": <result>}` or `{"tool": ..., "error": {"kind": ...,
// "message": ...}}`, `kind` being the WIT `tool-error` case (or `not-json` for
// a result that is not JSON).
//
// It is built beside the example agent and imports its `mandate-guard.js`.

import {
  call,
  RunError,
  ToolError,
  Denied,
  ApprovalDenied,
  ApprovalTimedOut,
  SessionExpired,
  UnknownTool,
  InvalidArguments,
  ToolFailed,
  AuditUnavailable,
} from '../document-summarizer-js/mandate-guard.js';

// The WIT case of each error `call` throws.
const KINDS = new Map([
  [Denied, 'denied'],
  [ApprovalDenied, 'approval-denied'],
  [ApprovalTimedOut, 'approval-timed-out'],
  [SessionExpired, 'session-expired'],
  [UnknownTool, 'unknown-tool'],
  [InvalidArguments, 'invalid-arguments'],
  [ToolFailed, 'tool-failed'],
  [AuditUnavailable, 'audit-unavailable'],
]);

/** The `run` export of the `agent` world. */
export function run(task) {
  let script;
  try {
    script = JSON.parse(task);
  } catch (error) {
    throw new RunError(`the task is not a JSON script: ${error.message}`);
  }
  if (script === null || typeof script !== 'object' || Array.isArray(script)) {
    throw new RunError('the task is not a JSON script: expected an object');
  }
  const listed = script.calls ?? [];
  if (!Array.isArray(listed)) {
    throw new RunError(`the task's "calls" is not a list`);
  }
  const calls = listed.map((entry, index) => {
    if (entry === null || typeof entry !== 'object' || typeof entry.tool !== 'string') {
      throw new RunError(`the task's calls[${index}] has no "tool" string`);
    }
    return [entry.tool, entry.arguments ?? {}];
  });
  const repeat = script.repeat ?? 1;
  if (!Number.isInteger(repeat) || repeat < 0) {
    throw new RunError(`the task's "repeat" is not a count`);
  }
  if (script.tally) {
    let ok = 0;
    let error = 0;
    for (let i = 0; i < repeat; i++) {
      for (const [tool, args] of calls) {
        try {
          call(tool, args);
          ok++;
        } catch (failure) {
          if (!(failure instanceof ToolError || failure instanceof SyntaxError)) throw failure;
          error++;
        }
      }
    }
    return JSON.stringify({ tally: { ok, error } });
  }
  const results = [];
  for (let i = 0; i < repeat; i++) {
    for (const [tool, args] of calls) {
      try {
        results.push({ tool, ok: call(tool, args) });
      } catch (failure) {
        if (failure instanceof ToolError) {
          const kind = KINDS.get(failure.constructor) ?? 'unknown';
          results.push({ tool, error: { kind, message: failure.message } });
        } else if (failure instanceof SyntaxError) {
          results.push({ tool, error: { kind: 'not-json', message: failure.message } });
        } else {
          throw failure;
        }
      }
    }
  }
  return JSON.stringify({ results });
}
