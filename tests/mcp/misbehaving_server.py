#!/usr/bin/env python3
"""A small MCP server over stdio (newline-delimited JSON-RPC 2.0) that
misbehaves on request, for Mandate's tests of MCP failures. Standard library
only.

Tools:
  echo {text}          returns the text
  crash {}             exits in the middle of the call (status 3), after a line on stderr
  hang {}              never answers
  big {bytes}          returns a text of that many bytes
  fail {message}       returns an error result (`isError: true`) with the message
  garbage {}           answers with a line that is not JSON, then goes on

`--description-file FILE`: the `echo` tool's description is read from FILE at
each start (default "Echoes a text."), so a test can change what a restarted
server says of its tool. `--count-file FILE`: each start appends a line to
FILE, so a test can count restarts.
"""

import json
import sys
import time

PROTOCOL = "2025-06-18"


def arguments():
    options = {}
    args = sys.argv[1:]
    while args:
        name = args.pop(0)
        if name in ("--description-file", "--count-file") and args:
            options[name] = args.pop(0)
        else:
            sys.exit(f"unknown argument {name}")
    return options


def tools(description):
    text = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
    return [
        {
            "name": "echo",
            "description": description,
            "inputSchema": text,
            "annotations": {"readOnlyHint": True, "openWorldHint": False},
        },
        {"name": "crash", "description": "Exits mid-call.", "inputSchema": {"type": "object"}},
        {"name": "hang", "description": "Never answers.", "inputSchema": {"type": "object"}},
        {
            "name": "big",
            "description": "Returns a large text.",
            "inputSchema": {
                "type": "object",
                "properties": {"bytes": {"type": "integer"}},
                "required": ["bytes"],
            },
        },
        {"name": "garbage", "description": "Answers garbage.", "inputSchema": {"type": "object"}},
        {
            "name": "fail",
            "description": "Returns an error result.",
            "inputSchema": {
                "type": "object",
                "properties": {"message": {"type": "string"}},
                "required": ["message"],
            },
        },
    ]


def send(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def text_result(text, error=False):
    result = {"content": [{"type": "text", "text": text}]}
    if error:
        result["isError"] = True
    return result


def main():
    options = arguments()
    description = "Echoes a text."
    if "--description-file" in options:
        try:
            with open(options["--description-file"], encoding="utf-8") as f:
                description = f.read().strip() or description
        except FileNotFoundError:
            pass
    if "--count-file" in options:
        with open(options["--count-file"], "a", encoding="utf-8") as f:
            f.write("started\n")
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        method = request.get("method")
        ident = request.get("id")
        if ident is None:
            continue  # a notification
        if method == "initialize":
            send({
                "jsonrpc": "2.0",
                "id": ident,
                "result": {
                    "protocolVersion": request["params"].get("protocolVersion", PROTOCOL),
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": "misbehaving", "version": "1.0.0"},
                },
            })
        elif method == "tools/list":
            send({"jsonrpc": "2.0", "id": ident, "result": {"tools": tools(description)}})
        elif method == "tools/call":
            name = request["params"]["name"]
            args = request["params"].get("arguments") or {}
            if name == "echo":
                result = text_result(args.get("text", ""))
            elif name == "crash":
                sys.stderr.write("misbehaving: crashing as asked\n")
                sys.stderr.flush()
                sys.exit(3)
            elif name == "hang":
                while True:
                    time.sleep(60)
            elif name == "big":
                result = text_result("x" * int(args.get("bytes", 0)))
            elif name == "garbage":
                sys.stdout.write("this is not json-rpc\n")
                sys.stdout.flush()
                continue
            elif name == "fail":
                result = text_result(args.get("message", "failed"), error=True)
            else:
                send({
                    "jsonrpc": "2.0",
                    "id": ident,
                    "error": {"code": -32602, "message": f"unknown tool {name}"},
                })
                continue
            send({"jsonrpc": "2.0", "id": ident, "result": result})
        elif method == "ping":
            send({"jsonrpc": "2.0", "id": ident, "result": {}})
        else:
            send({
                "jsonrpc": "2.0",
                "id": ident,
                "error": {"code": -32601, "message": f"no method {method}"},
            })


if __name__ == "__main__":
    main()
