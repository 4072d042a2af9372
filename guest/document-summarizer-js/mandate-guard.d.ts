// Types of `mandate-guard.js`: tool calls with objects in and out, and one
// error class per `tool-error` variant of `wit/mandate.wit`.

/** A JSON value, as tools take and return them. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/**
 * Thrown from `run` to give up: `message` becomes `run`'s `err` value. Any
 * other error thrown from `run` traps.
 */
export class RunError extends Error {
  constructor(message: string);
  readonly payload: string;
}

/** A tool call that returned no result: the base of the errors below. */
export class ToolError extends Error {}

/** The policies deny the call; `policies` and `reasons` are empty on default deny. */
export class Denied extends ToolError {
  constructor(policies: string[], reasons: string[]);
  /** Ids of the policies that decided the denial. */
  readonly policies: string[];
  /** Their `@reason` annotations, in the same order. */
  readonly reasons: string[];
}

/** A human reviewer refused the call. */
export class ApprovalDenied extends ToolError {
  constructor(reason: string);
  /** The reviewer's reason; empty when none was given. */
  readonly reason: string;
}

/** No reviewer decided before the approval deadline. */
export class ApprovalTimedOut extends ToolError {
  constructor();
}

/** The session is past its expiry. */
export class SessionExpired extends ToolError {
  constructor();
}

/** No tool of that name is registered on this host. */
export class UnknownTool extends ToolError {
  constructor(toolName: string);
  readonly toolName: string;
}

/** The arguments do not fit the tool's schema. */
export class InvalidArguments extends ToolError {
  constructor(detail: string);
  /** Which field and why. */
  readonly detail: string;
}

/** The call was allowed and the tool ran, but failed. */
export class ToolFailed extends ToolError {
  constructor(detail: string);
  /** The tool's error message. */
  readonly detail: string;
}

/** The audit log cannot be written, so nothing runs. */
export class AuditUnavailable extends ToolError {
  constructor(detail: string);
  readonly detail: string;
}

/**
 * Calls tool `name` with `args` and returns its result, parsed from JSON.
 * @throws {ToolError} a subclass, when the call returns no result
 */
export function call(name: string, args: { [key: string]: Json }): Json;

/** A tool registered on this host. */
export interface Tool {
  /** The name to pass to `call`, e.g. `read_document`. */
  name: string;
  /** What the tool does, for the agent's planner. */
  description: string;
  /** The JSON Schema of the tool's arguments, parsed. */
  argumentSchema: Json;
  /** The scope a session needs for this tool, e.g. `documents:read`. */
  scope: string;
}

/** The tools registered on this host. */
export function listTools(): Tool[];

/** The id of this session, as written in every audit record. */
export function sessionId(): string;
/** The human whose account authorized the session. */
export function userId(): string;
/** The agent's own identity. */
export function agentId(): string;
/** The scopes granted to the session, e.g. `documents:read`. */
export function scopes(): string[];
/** When the session expires, RFC 3339. */
export function expiresAt(): string;
