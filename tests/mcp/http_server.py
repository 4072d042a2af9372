#!/usr/bin/env python3
"""An MCP server over Streamable HTTP, built on the official Python SDK (the
`mcp` package from PyPI, installed by scripts/install-mcp-servers), for
Mandate's tests of HTTP servers. It listens on 127.0.0.1 at a port the
system picks, prints `port <n>` on stdout, and answers only requests that
carry `Authorization: Bearer <token>`, the token read from the file named by
its one argument.

Tools: `shout {text}` returns the text in capitals; `forget {key}` says it
forgot the key (annotated destructive).
"""

import socket
import sys

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

with open(sys.argv[1], encoding="utf-8") as f:
    TOKEN = f.read().strip()

server = MCPServer("http-test")


@server.tool(annotations=ToolAnnotations(readOnlyHint=True, openWorldHint=False))
def shout(text: str) -> str:
    """Returns the text in capitals."""
    return text.upper()


@server.tool(annotations=ToolAnnotations(destructiveHint=True))
def forget(key: str) -> str:
    """Forgets what is stored under a key."""
    return f"forgot {key}"


def require_token(app):
    expected = f"Bearer {TOKEN}".encode()

    async def guarded(scope, receive, send):
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            if headers.get(b"authorization") != expected:
                await send({"type": "http.response.start", "status": 401, "headers": []})
                await send({"type": "http.response.body", "body": b"unauthorized"})
                return
        await app(scope, receive, send)

    return guarded


def main():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    # Listening before the port is announced: a client that connects at
    # once waits in the backlog until the server accepts.
    sock.listen(64)
    print(f"port {sock.getsockname()[1]}", flush=True)
    app = require_token(server.streamable_http_app())
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
