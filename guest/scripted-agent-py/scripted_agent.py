"""A test and benchmark agent in Python: its task is a JSON script of tool
calls to make through `mandate_guard`, and its report is a JSON record of
what each call returned.

It takes the part of `guest/scripted-agent`'s script (the Rust one) that
compares languages: the same task makes the same calls in Rust, Python and
JavaScript, so that a benchmark sees each language's cost of a call (its
bindings, its JSON, the WIT round trip) and nothing else::

    {"calls": [{"tool": "read_document", "arguments": {"document_id": "doc_88pk3r"}}],
     "repeat": 1, "tally": false}

The calls are made `repeat` times. With `tally`, their outcomes are only
counted (`{"tally": {"ok": n, "error": m}}`); without, each is listed as
`{"tool": ..., "ok": <result>}` or `{"tool": ..., "error": {"kind": ...,
"message": ...}}`, `kind` being the WIT `tool-error` case (or `not-json` for
a result that is not JSON).

It is built beside the example agent, with its `mandate_guard` module
(`componentize-py ... -p guest/document-summarizer-py -p guest/scripted-agent-py`).
"""

import json
from typing import Any

import wit_world
from componentize_py_types import Err

import mandate_guard
from mandate_guard import ToolError

# The WIT case of each exception `mandate_guard.call` raises.
_KINDS = {
    mandate_guard.Denied: "denied",
    mandate_guard.ApprovalDenied: "approval-denied",
    mandate_guard.ApprovalTimedOut: "approval-timed-out",
    mandate_guard.SessionExpired: "session-expired",
    mandate_guard.UnknownTool: "unknown-tool",
    mandate_guard.InvalidArguments: "invalid-arguments",
    mandate_guard.ToolFailed: "tool-failed",
    mandate_guard.AuditUnavailable: "audit-unavailable",
}


class WitWorld(wit_world.WitWorld):
    def run(self, task: str) -> str:
        try:
            script = json.loads(task)
        except ValueError as error:
            raise Err(f"the task is not a JSON script: {error}")
        if not isinstance(script, dict):
            raise Err("the task is not a JSON script: expected an object")
        listed = script.get("calls", [])
        if not isinstance(listed, list):
            raise Err('the task\'s "calls" is not a list')
        calls = []
        for index, entry in enumerate(listed):
            if not isinstance(entry, dict) or not isinstance(entry.get("tool"), str):
                raise Err(f'the task\'s calls[{index}] has no "tool" string')
            calls.append((entry["tool"], entry.get("arguments", {})))
        repeat = script.get("repeat", 1)
        if not isinstance(repeat, int) or repeat < 0:
            raise Err('the task\'s "repeat" is not a count')
        call = mandate_guard.call
        if script.get("tally"):
            ok = error = 0
            for _ in range(repeat):
                for tool, arguments in calls:
                    try:
                        call(tool, arguments)
                        ok += 1
                    except (ToolError, ValueError):
                        error += 1
            return _compact({"tally": {"ok": ok, "error": error}})
        results = []
        for _ in range(repeat):
            for tool, arguments in calls:
                try:
                    results.append({"tool": tool, "ok": call(tool, arguments)})
                except ToolError as failure:
                    kind = _KINDS.get(type(failure), "unknown")
                    results.append({"tool": tool, "error": {"kind": kind, "message": str(failure)}})
                except ValueError as failure:
                    # The call ran but its result is not JSON.
                    results.append({"tool": tool, "error": {"kind": "not-json", "message": str(failure)}})
        return _compact({"results": results})


def _compact(report: Any) -> str:
    """The report as JSON without spaces, as the Rust and JavaScript agents write it."""
    return json.dumps(report, separators=(",", ":"))
