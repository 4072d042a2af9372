// Mandate's guard for JavaScript agents: tool calls with objects in and out,
// and one error class per way a call can be refused.
//
// componentize-js exposes the `agent` world of `wit/mandate.wit` as the
// modules `mandate:guard/tools` and `mandate:guard/session`, whose `call`
// takes and returns JSON as strings and throws an error whose `payload` is the
// `tool-error` variant (`{ tag: 'denied', val: { policies, reasons } }`). This
// module is what an agent author uses instead:
//
//     import { call, Denied, ToolError } from './mandate-guard.js';
//
//     try {
//       const document = call('read_document', { document_id: 'doc_88pk3r' });
//     } catch (error) {
//       if (error instanceof Denied) console.log('refused by', error.policies);
//       else if (error instanceof ToolError) console.log('no result:', error.message);
//       else throw error;
//     }
//
// Every subclass of `ToolError` but `ToolFailed` means the tool did not run;
// `error.message` says why in a sentence fit for a report. `run` gives up by
// throwing a `RunError`.

import * as tools from 'mandate:guard/tools@0.1.0';
import * as session from 'mandate:guard/session@0.1.0';

/** A tool call that returned no result: the base of the errors below. */
export class ToolError extends Error {
  constructor(message) {
    super(message);
    this.name = new.target.name;
  }
}

/** The policies deny the call; `policies` and `reasons` are empty on default deny. */
export class Denied extends ToolError {
  constructor(policies, reasons) {
    const named = policies.map((policy, index) =>
      reasons[index] ? `${policy}: ${reasons[index]}` : policy,
    );
    super(
      named.length === 0
        ? 'denied: no policy permits this call'
        : `denied by policy ${named.join('; ')}`,
    );
    this.policies = [...policies];
    this.reasons = [...reasons];
  }
}

/** A human reviewer refused the call; `reason` is empty when none was given. */
export class ApprovalDenied extends ToolError {
  constructor(reason) {
    super(reason ? `approval denied: ${reason}` : 'approval denied');
    this.reason = reason;
  }
}

/** No reviewer decided before the approval deadline. */
export class ApprovalTimedOut extends ToolError {
  constructor() {
    super('approval timed out: no reviewer decided in time');
  }
}

/** The session is past its expiry: no further call will be allowed. */
export class SessionExpired extends ToolError {
  constructor() {
    super('session expired');
  }
}

/** No tool named `toolName` is registered on this host. */
export class UnknownTool extends ToolError {
  constructor(toolName) {
    super(`unknown tool: ${toolName}`);
    // Not `name`, which every Error has: the class name.
    this.toolName = toolName;
  }
}

/** The arguments do not fit the tool's schema; the message says which field and why. */
export class InvalidArguments extends ToolError {
  constructor(detail) {
    super(`invalid arguments: ${detail}`);
    this.detail = detail;
  }
}

/** The call was allowed and the tool ran, but failed with `detail`. */
export class ToolFailed extends ToolError {
  constructor(detail) {
    super(`the tool ran and failed: ${detail}`);
    this.detail = detail;
  }
}

/** The audit log cannot be written, so nothing runs. */
export class AuditUnavailable extends ToolError {
  constructor(detail) {
    super(`audit log unavailable: ${detail}`);
    this.detail = detail;
  }
}

/**
 * Thrown from `run` to give up: the bindings return an error's own `payload`
 * property, here `message`, as `run`'s `err` value. Any other error thrown
 * from `run` traps, and the host records a guest fault.
 */
export class RunError extends Error {
  constructor(message) {
    super(message);
    this.name = 'RunError';
    this.payload = message;
  }
}

/** The error for a `tool-error` value of the WIT interface. */
function toolError({ tag, val }) {
  switch (tag) {
    case 'denied':
      return new Denied(val.policies, val.reasons);
    case 'approval-denied':
      return new ApprovalDenied(val);
    case 'approval-timed-out':
      return new ApprovalTimedOut();
    case 'session-expired':
      return new SessionExpired();
    case 'unknown-tool':
      return new UnknownTool(val);
    case 'invalid-arguments':
      return new InvalidArguments(val);
    case 'tool-failed':
      return new ToolFailed(val);
    case 'audit-unavailable':
      return new AuditUnavailable(val);
    default:
      // Only a WIT package newer than this module can get here.
      throw new TypeError(`unexpected tool-error variant ${JSON.stringify(tag)}`);
  }
}

/**
 * Calls tool `name` with `args` and returns its result, parsed from JSON.
 * Throws a `ToolError` subclass when the call returns no result.
 */
export function call(name, args) {
  let result;
  try {
    result = tools.call(name, JSON.stringify(args));
  } catch (error) {
    // The bindings throw an error carrying the variant as `payload`.
    if (error !== null && typeof error === 'object' && 'payload' in error) {
      throw toolError(error.payload);
    }
    throw error;
  }
  return JSON.parse(result);
}

/** The tools registered on this host, with each argument schema parsed. */
export function listTools() {
  return tools.listTools().map((info) => ({
    name: info.name,
    description: info.description,
    argumentSchema: JSON.parse(info.argumentSchema),
    scope: info.scope,
  }));
}

/** The id of this session, as written in every audit record. */
export const sessionId = () => session.sessionId();
/** The human whose account authorized the session. */
export const userId = () => session.userId();
/** The agent's own identity. */
export const agentId = () => session.agentId();
/** The scopes granted to the session, e.g. `documents:read`. */
export const scopes = () => [...session.scopes()];
/** When the session expires, RFC 3339 (e.g. `2099-01-01T00:00:00Z`). */
export const expiresAt = () => session.expiresAt();
