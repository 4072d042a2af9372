"""Mandate's guard for Python agents: tool calls with dicts in and out, and
one exception per way a call can be refused.

componentize-py turns the `agent` world of `wit/mandate.wit` into the modules
`wit_world.imports.tools` and `wit_world.imports.session`, which take and
return JSON as strings and raise `componentize_py_types.Err` wrapping a
`ToolError_*` value. This module is what an agent author uses instead::

    import mandate_guard

    try:
        document = mandate_guard.call("read_document", {"document_id": "doc_88pk3r"})
    except mandate_guard.Denied as denied:
        print("refused by", denied.policies)
    except mandate_guard.ToolError as error:
        print("no result:", error)

Every subclass of `ToolError` but `ToolFailed` means the tool did not run;
`str(error)` says why in a sentence fit for a report.
"""

import json
from dataclasses import dataclass
from typing import Any, Mapping

from componentize_py_types import Err
from wit_world.imports import session as _session
from wit_world.imports import tools as _tools

__all__ = [
    "call",
    "list_tools",
    "Tool",
    "ToolError",
    "Denied",
    "ApprovalDenied",
    "ApprovalTimedOut",
    "SessionExpired",
    "UnknownTool",
    "InvalidArguments",
    "ToolFailed",
    "AuditUnavailable",
    "session_id",
    "user_id",
    "agent_id",
    "scopes",
    "expires_at",
]


class ToolError(Exception):
    """A tool call that returned no result: the base of the errors below."""


class Denied(ToolError):
    """The policies deny the call.

    `policies` are the ids of the policies that decided it, `reasons` their
    `@reason` annotations in the same order; both are empty when no policy
    permits the call (default deny).
    """

    def __init__(self, policies: list[str], reasons: list[str]):
        self.policies = list(policies)
        self.reasons = list(reasons)
        if not self.policies:
            message = "denied: no policy permits this call"
        else:
            named = []
            for index, policy in enumerate(self.policies):
                reason = self.reasons[index] if index < len(self.reasons) else ""
                named.append(f"{policy}: {reason}" if reason else policy)
            message = "denied by policy " + "; ".join(named)
        super().__init__(message)


class ApprovalDenied(ToolError):
    """A human reviewer refused the call; `reason` is empty when none was given."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(f"approval denied: {reason}" if reason else "approval denied")


class ApprovalTimedOut(ToolError):
    """No reviewer decided before the approval deadline."""

    def __init__(self):
        super().__init__("approval timed out: no reviewer decided in time")


class SessionExpired(ToolError):
    """The session is past its expiry: no further call will be allowed."""

    def __init__(self):
        super().__init__("session expired")


class UnknownTool(ToolError):
    """No tool named `name` is registered on this host."""

    def __init__(self, name: str):
        self.name = name
        super().__init__(f"unknown tool: {name}")


class InvalidArguments(ToolError):
    """The arguments do not fit the tool's schema; `message` says which field and why."""

    def __init__(self, message: str):
        self.message = message
        super().__init__(f"invalid arguments: {message}")


class ToolFailed(ToolError):
    """The call was allowed and the tool ran, but failed with `message`."""

    def __init__(self, message: str):
        self.message = message
        super().__init__(f"the tool ran and failed: {message}")


class AuditUnavailable(ToolError):
    """The audit log cannot be written, so nothing runs; `message` says why."""

    def __init__(self, message: str):
        self.message = message
        super().__init__(f"audit log unavailable: {message}")


def _tool_error(error: _tools.ToolError) -> ToolError:
    """The exception for a `tool-error` value of the WIT interface."""
    if isinstance(error, _tools.ToolError_Denied):
        return Denied(error.value.policies, error.value.reasons)
    if isinstance(error, _tools.ToolError_ApprovalDenied):
        return ApprovalDenied(error.value)
    if isinstance(error, _tools.ToolError_ApprovalTimedOut):
        return ApprovalTimedOut()
    if isinstance(error, _tools.ToolError_SessionExpired):
        return SessionExpired()
    if isinstance(error, _tools.ToolError_UnknownTool):
        return UnknownTool(error.value)
    if isinstance(error, _tools.ToolError_InvalidArguments):
        return InvalidArguments(error.value)
    if isinstance(error, _tools.ToolError_ToolFailed):
        return ToolFailed(error.value)
    if isinstance(error, _tools.ToolError_AuditUnavailable):
        return AuditUnavailable(error.value)
    # Only a WIT package newer than this module can get here.
    raise TypeError(f"unexpected tool-error value {error!r}")


def call(name: str, arguments: Mapping[str, Any]) -> Any:
    """Calls tool `name` with `arguments` and returns its result, parsed from JSON.

    Raises a `ToolError` subclass when the call returns no result, and
    `TypeError` when `arguments` cannot be written as JSON.
    """
    try:
        result = _tools.call(name, json.dumps(arguments))
    except Err as error:
        # The WIT wrapper says nothing the typed exception does not.
        raise _tool_error(error.value) from None
    return json.loads(result)


@dataclass(frozen=True)
class Tool:
    """A tool registered on this host."""

    #: The name to pass to `call`, e.g. `read_document`.
    name: str
    #: What the tool does, for the agent's planner.
    description: str
    #: The JSON Schema of the tool's arguments, parsed.
    argument_schema: Any
    #: The scope a session needs for this tool, e.g. `documents:read`.
    scope: str


def list_tools() -> list[Tool]:
    """The tools registered on this host."""
    return [
        Tool(info.name, info.description, json.loads(info.argument_schema), info.scope)
        for info in _tools.list_tools()
    ]


def session_id() -> str:
    """The id of this session, as written in every audit record."""
    return _session.session_id()


def user_id() -> str:
    """The human whose account authorized the session."""
    return _session.user_id()


def agent_id() -> str:
    """The agent's own identity."""
    return _session.agent_id()


def scopes() -> list[str]:
    """The scopes granted to the session, e.g. `documents:read`."""
    return list(_session.scopes())


def expires_at() -> str:
    """When the session expires, RFC 3339 (e.g. `2099-01-01T00:00:00Z`)."""
    return _session.expires_at()
