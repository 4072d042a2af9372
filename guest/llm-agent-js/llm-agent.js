// An example Mandate agent in JavaScript that plans with a language model: it
// sends the task to an OpenAI-compatible chat-completions endpoint with the
// host's tools offered for tool calling, makes the calls the model asks for
// through `mandate-guard.js`, sends their results back, and repeats until the
// model answers in words.
//
// The task is JSON, every field but `task` optional:
//
//   {"task": "summarize doc_88pk3r", "endpoint": "https://api.openai.com/v1",
//    "model": "gpt-4o-mini", "max_turns": 8}
//
// A task that is not a JSON object is the task text itself, with the defaults.
// The report is JSON: the model's answer, how many requests it took and how
// each tool call went:
//
//   {"answer": "...", "turns": 2,
//    "tool_calls": [{"tool": "read_document", "ok": true},
//                   {"tool": "send_email", "ok": false, "error": "denied"}]}
//
// The agent holds no key and sets no `Authorization` header: its requests go
// out through `wasi:http`, the guard's second door, where the host decides and
// records each one and adds the key of a destination the operator declared.
// A request the guard refuses comes back as an HTTP error response (403 and a
// JSON body), which the agent reports by giving up with `RunError`.
//
// `run` is async: componentize-js runs the component's event loop until the
// promise `run` returns settles, and returns its value as the synchronous
// export's `ok`, or a rejection's `payload` (a `RunError`'s message) as its
// `err`. Any other rejection traps, like any other error thrown from a
// synchronous `run`.
//
// It is built beside the example agent and imports its `mandate-guard.js`.

import {
  call,
  listTools,
  userId,
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

/** The endpoint used when the task names none. */
export const DEFAULT_ENDPOINT = 'https://api.openai.com/v1';
/** The model used when the task names none. */
export const DEFAULT_MODEL = 'gpt-4o-mini';
/** At most this many chat-completion requests when the task says nothing. */
export const DEFAULT_MAX_TURNS = 8;
/** How much of an error response's body goes into the `RunError`. */
const ERROR_BODY_CHARS = 500;

// The WIT `tool-error` case of each error `call` throws: what the model and
// the report are told.
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
export async function run(task) {
  const settings = parseTask(task);
  console.log(
    `llm-agent-js: model ${settings.model} at ${settings.endpoint}, ` +
      `at most ${settings.maxTurns} turns`,
  );
  return converse(settings, { call, listTools, fetch, userId });
}

/**
 * The task's settings: `{task, endpoint, model, maxTurns}`. A task that is
 * not a JSON object is all task text.
 */
export function parseTask(text) {
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (!isObject(parsed)) {
    return {
      task: text,
      endpoint: DEFAULT_ENDPOINT,
      model: DEFAULT_MODEL,
      maxTurns: DEFAULT_MAX_TURNS,
    };
  }
  const field = (name, fallback) => {
    const value = parsed[name] ?? fallback;
    if (typeof value !== 'string' || value === '') {
      throw new RunError(`the task's "${name}" is not a non-empty string`);
    }
    return value;
  };
  const maxTurns = parsed.max_turns ?? DEFAULT_MAX_TURNS;
  if (!Number.isInteger(maxTurns) || maxTurns < 1) {
    throw new RunError(`the task's "max_turns" is not a positive whole number`);
  }
  return {
    task: field('task'),
    // `{endpoint}/chat/completions` must not hold `//`: a policy matches the
    // path exactly.
    endpoint: field('endpoint', DEFAULT_ENDPOINT).replace(/\/+$/u, ''),
    model: field('model', DEFAULT_MODEL),
    maxTurns,
  };
}

/**
 * The agent's work, with the guard and `fetch` passed in so it can be read
 * (and tested) apart from the bindings: `io` is `{call, listTools, fetch,
 * userId}`.
 */
export async function converse({ task, endpoint, model, maxTurns }, io) {
  // OpenAI's tool format; the schema is the host's, unchanged. Function
  // names may hold only `[A-Za-z0-9_-]` (64 at most) and a host's tool names
  // may not (`files.read_text_file`): the model sees a fitting name, mapped
  // back to the tool's own before the call.
  const byModelName = new Map();
  const tools = io.listTools().map((tool) => {
    let modelName = tool.name.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 64);
    while (byModelName.has(modelName)) modelName = `${modelName.slice(0, 60)}_${byModelName.size}`;
    byModelName.set(modelName, tool.name);
    return {
      type: 'function',
      function: {
        name: modelName,
        description: tool.description,
        parameters: tool.argumentSchema,
      },
    };
  });
  const messages = [
    {
      role: 'system',
      content:
        `You act for the user ${io.userId()} through the tools offered. ` +
        'Every tool call is checked against policy and recorded; a refused call ' +
        'returns {"error": ..., "message": ...} instead of a result. ' +
        'Do the task with the tools, then answer briefly in plain text.',
    },
    { role: 'user', content: task },
  ];
  const report = [];
  for (let turn = 1; turn <= maxTurns; turn++) {
    const message = await complete(io.fetch, endpoint, { model, messages, tools });
    const toolCalls = message.tool_calls ?? [];
    if (!Array.isArray(toolCalls)) {
      throw new RunError(`the model's reply has a "tool_calls" that is not a list`);
    }
    if (toolCalls.length === 0) {
      // `content` is null when the model refused; its reason is in `refusal`.
      const answer = message.content ?? message.refusal ?? '';
      return JSON.stringify({ answer, turns: turn, tool_calls: report });
    }
    if (turn === maxTurns) {
      // Their results could not be sent back, so the calls are not made.
      break;
    }
    // Only what the next request needs, not fields the endpoint added.
    messages.push({
      role: 'assistant',
      content: message.content ?? null,
      tool_calls: toolCalls,
    });
    console.log(`llm-agent-js: turn ${turn}: ${toolCalls.length} tool call(s)`);
    for (const [index, toolCall] of toolCalls.entries()) {
      const { id, name: asked, args, argsError } = readToolCall(toolCall, index);
      // A name the model made up goes to the guard as it is: unknown-tool.
      const name = byModelName.get(asked) ?? asked;
      const { content, outcome } = argsError
        ? // Not a call the guard saw: the model is told and may try again.
          failure('arguments-not-json', `the arguments are not json: ${argsError}`)
        : callTool(io.call, name, args);
      report.push({ tool: name, ...outcome });
      messages.push({ role: 'tool', tool_call_id: id, content });
    }
  }
  throw new RunError(
    `gave up: the model still asked for tools after ${maxTurns} turns ` +
      `(${report.length} tool calls made)`,
  );
}

/**
 * One chat-completions request: the reply's `choices[0].message`, or a
 * `RunError` saying why there is none.
 */
async function complete(fetchFn, endpoint, body) {
  const url = `${endpoint}/chat/completions`;
  let response;
  try {
    response = await fetchFn(url, {
      method: 'POST',
      // No `authorization`: the host adds the key, and refuses a request
      // that carries its own for a destination with a key.
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      // A redirect is a new request for the guard to decide: the agent
      // reports it as an error response rather than following it.
      redirect: 'manual',
    });
  } catch (error) {
    throw new RunError(`cannot reach the model at ${url}: ${messageOf(error)}`);
  }
  let text;
  try {
    text = await response.text();
  } catch (error) {
    throw new RunError(
      `the model at ${url} answered ${response.status} with an unreadable body: ` +
        messageOf(error),
    );
  }
  if (response.status < 200 || response.status > 299) {
    // The guard's refusals (403 and the like) land here with a JSON body
    // that says which policy refused, so the body is kept, if shortened.
    throw new RunError(
      `the model at ${url} answered ${response.status}: ${text.slice(0, ERROR_BODY_CHARS)}`,
    );
  }
  let reply;
  try {
    reply = JSON.parse(text);
  } catch (error) {
    throw new RunError(`the model's reply is not json: ${error.message}`);
  }
  const message =
    isObject(reply) && Array.isArray(reply.choices) ? reply.choices[0]?.message : undefined;
  if (!isObject(message)) {
    throw new RunError(`the model's reply has no "choices[0].message" object`);
  }
  return message;
}

/**
 * The id, name and parsed arguments of the model's `index`th tool call, or
 * why its arguments are not JSON (`argsError`).
 */
function readToolCall(toolCall, index) {
  const fn = isObject(toolCall) ? toolCall.function : undefined;
  if (
    typeof toolCall?.id !== 'string' ||
    !isObject(fn) ||
    typeof fn.name !== 'string' ||
    typeof fn.arguments !== 'string'
  ) {
    throw new RunError(
      `the model's tool call ${index} lacks an "id", "function.name" ` +
        `or "function.arguments" string`,
    );
  }
  try {
    return { id: toolCall.id, name: fn.name, args: JSON.parse(fn.arguments) };
  } catch (error) {
    return { id: toolCall.id, name: fn.name, argsError: error.message };
  }
}

/**
 * Makes one call: the tool message's content for the model, and the call's
 * entry in the report (`{ok: true}` or `{ok: false, error: <kind>}`).
 */
function callTool(callFn, name, args) {
  let result;
  try {
    result = callFn(name, args);
  } catch (error) {
    if (error instanceof ToolError) {
      return failure(KINDS.get(error.constructor) ?? 'unknown', error.message);
    }
    // `call` parses the result; the tool ran but returned something else.
    if (error instanceof SyntaxError) {
      return failure('not-json', `the tool's result is not json: ${error.message}`);
    }
    throw error;
  }
  return { content: JSON.stringify(result), outcome: { ok: true } };
}

function failure(kind, message) {
  return {
    content: JSON.stringify({ error: kind, message }),
    outcome: { ok: false, error: kind },
  };
}

function isObject(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function messageOf(error) {
  return error instanceof Error ? error.message : String(error);
}
