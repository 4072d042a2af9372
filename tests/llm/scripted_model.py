#!/usr/bin/env python3
"""A scripted OpenAI-compatible chat-completions server for Mandate's tests
of agents that plan with a language model. Python 3.11, standard library only.

    python3 tests/llm/scripted_model.py --script replies.json \\
        [--key-file key.txt] [--log requests.jsonl]

It listens on 127.0.0.1 at a port the system picks and prints `port <n>` on
stdout once it listens. `POST /v1/chat/completions` answers the script's
replies in order, one per request, whatever the request asks; the script is
a JSON list whose items are either

    {"tool_calls": [{"name": "read_document", "arguments": {"document_id": "doc_88pk3r"}}]}
    {"content": "The document is about ..."}

and each becomes a full chat-completion object (ids, `finish_reason`
`tool_calls` or `stop`, `usage`). Past the end of the script it answers 500.
`GET /v1/models` lists the one model, `scripted`.

With `--key-file`, a request whose `Authorization` is not exactly
`Bearer <key>` (the file's content, stripped) gets 401 and uses up no reply:
that is how a test sees that the host, not the agent, added the key. With
`--log`, every request is appended to the file as one JSON line: method,
path, header names (never values), whether the authorization matched, the
JSON body and the status answered.

It never redirects, and as a server it follows nothing.
"""

import argparse
import hmac
import itertools
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL = "scripted"
# A request body larger than this is refused: a test's requests are small.
MAX_BODY_BYTES = 16 * 1024 * 1024


def load_script(path):
    """The script's replies, or exits with why the file is not a script."""
    try:
        with open(path, encoding="utf-8") as f:
            script = json.load(f)
    except (OSError, ValueError) as e:
        sys.exit(f"scripted_model: cannot read the script {path}: {e}")
    if not isinstance(script, list):
        sys.exit(f"scripted_model: the script {path} is not a json list")
    for index, reply in enumerate(script):
        problem = reply_problem(reply)
        if problem:
            sys.exit(f"scripted_model: the script's reply {index} {problem}")
    return script


def reply_problem(reply):
    """Why `reply` is not a scripted reply, or None."""
    if not isinstance(reply, dict) or len(reply) != 1:
        return 'is not an object with exactly one of "tool_calls" and "content"'
    if "content" in reply:
        if isinstance(reply["content"], str):
            return None
        return 'has a "content" that is not a string'
    calls = reply.get("tool_calls")
    if not isinstance(calls, list) or not calls:
        return 'has no "content" string and no non-empty "tool_calls" list'
    for call in calls:
        if (
            not isinstance(call, dict)
            or not isinstance(call.get("name"), str)
            or not isinstance(call.get("arguments", {}), dict)
        ):
            return 'has a tool call without a "name" string and an "arguments" object'
    return None


def read_key(path):
    """The key in `path`, stripped, or exits with why there is none."""
    try:
        with open(path, encoding="utf-8") as f:
            key = f.read().strip()
    except OSError as e:
        sys.exit(f"scripted_model: cannot read the key file: {e.strerror}")
    if not key:
        sys.exit("scripted_model: the key file is empty")
    return key


class Model:
    """The script and where the server is in it; shared by the handler threads."""

    def __init__(self, script, key, log_path):
        self.script = script
        self.key = key
        self.log_path = log_path
        self.lock = threading.Lock()
        self.next_reply = 0
        # Unique across requests, so that a test can tell the answers apart.
        self.ids = itertools.count(1)

    def take_reply(self):
        """The next scripted reply and its number, or None past the end."""
        with self.lock:
            if self.next_reply >= len(self.script):
                return None
            number = self.next_reply
            self.next_reply += 1
        return number, self.script[number]

    def authorized(self, header):
        """Whether `header` is `Bearer <key>`; None when no key is required."""
        if self.key is None:
            return None
        expected = f"Bearer {self.key}".encode()
        # Constant time, as a real endpoint would compare.
        return header is not None and hmac.compare_digest(header.encode(), expected)

    def log(self, entry):
        if self.log_path is None:
            return
        line = json.dumps(entry, sort_keys=True) + "\n"
        # One write per line under the lock: concurrent requests do not
        # interleave their lines.
        with self.lock, open(self.log_path, "a", encoding="utf-8") as f:
            f.write(line)


def completion(model, number, reply, request_id, prompt_bytes):
    """The chat-completion object for a scripted reply."""
    if "content" in reply:
        message = {"role": "assistant", "content": reply["content"], "refusal": None}
        finish = "stop"
        completion_text = reply["content"]
    else:
        calls = [
            {
                "id": f"call_{number}_{index}",
                "type": "function",
                "function": {
                    "name": call["name"],
                    # OpenAI sends the arguments as a JSON string.
                    "arguments": json.dumps(call.get("arguments", {})),
                },
            }
            for index, call in enumerate(reply["tool_calls"])
        ]
        message = {"role": "assistant", "content": None, "tool_calls": calls, "refusal": None}
        finish = "tool_calls"
        completion_text = json.dumps(calls)
    # Rough counts (four bytes a token), enough for a client that reads them.
    prompt_tokens = max(1, prompt_bytes // 4)
    completion_tokens = max(1, len(completion_text.encode()) // 4)
    return {
        "id": f"chatcmpl-scripted-{request_id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
        "system_fingerprint": "scripted",
    }


def error_body(message, kind, code):
    """An error in OpenAI's shape, which API clients already print."""
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


class Handler(BaseHTTPRequestHandler):
    # Keep-alive with a Content-Length on every answer, as clients expect.
    protocol_version = "HTTP/1.1"
    server_version = "scripted-model"
    model: Model  # set on the subclass made in main()

    def do_GET(self):
        self.handle_request()

    def do_POST(self):
        self.handle_request()

    def do_PUT(self):
        self.handle_request()

    def do_DELETE(self):
        self.handle_request()

    def handle_request(self):
        path = self.path.split("?", 1)[0]
        body_bytes, body, problem = self.read_body()
        authorized = self.model.authorized(self.headers.get("authorization"))
        status, answer = self.answer(path, body_bytes, body, problem, authorized)
        self.model.log(
            {
                "method": self.command,
                "path": self.path,
                # Names only: values hold keys.
                "header_names": sorted({name.lower() for name in self.headers.keys()}),
                "authorization_matched": authorized,
                "body": body,
                "status": status,
            }
        )
        self.send_json(status, answer)

    def answer(self, path, body_bytes, body, problem, authorized):
        """The status and JSON body for a request."""
        if authorized is False:
            # What was received is not repeated: it may be someone's key.
            return 401, error_body(
                "incorrect api key provided", "invalid_request_error", "invalid_api_key"
            )
        if problem:
            return problem
        if path == "/v1/models":
            if self.command != "GET":
                return 405, error_body("use GET on /v1/models", "invalid_request_error", None)
            return 200, {
                "object": "list",
                "data": [
                    {"id": MODEL, "object": "model", "created": 0, "owned_by": "mandate-tests"}
                ],
            }
        if path != "/v1/chat/completions":
            return 404, error_body(f"no route {path}", "invalid_request_error", "not_found")
        if self.command != "POST":
            return 405, error_body(
                "use POST on /v1/chat/completions", "invalid_request_error", None
            )
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return 400, error_body(
                'the body is not a json object with a "messages" list',
                "invalid_request_error",
                None,
            )
        taken = self.model.take_reply()
        if taken is None:
            return 500, error_body("the script has no more replies", "server_error", None)
        number, reply = taken
        model = body.get("model") if isinstance(body.get("model"), str) else MODEL
        return 200, completion(model, number, reply, next(self.model.ids), body_bytes)

    def read_body(self):
        """(bytes read, parsed JSON or None, (status, error) or None)."""
        try:
            raw = self.read_raw_body()
        except ValueError as e:
            self.close_connection = True
            return 0, None, (400, error_body(str(e), "invalid_request_error", None))
        if raw is None:
            self.close_connection = True
            return 0, None, (
                413,
                error_body("the body is too large", "invalid_request_error", None),
            )
        if not raw:
            return 0, None, None
        try:
            return len(raw), json.loads(raw), None
        except ValueError:
            return len(raw), None, (
                400,
                error_body("the body is not json", "invalid_request_error", None),
            )

    def read_raw_body(self):
        """The request body, None when over the limit; ValueError when malformed."""
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            # Python's server does not decode chunked bodies itself.
            chunks, total = [], 0
            while True:
                size_line = self.rfile.readline(1024)
                try:
                    size = int(size_line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise ValueError("malformed chunked body") from None
                if size == 0:
                    # Trailers, if any, end at an empty line.
                    while self.rfile.readline(1024).strip():
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY_BYTES:
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)
        try:
            length = int(self.headers.get("content-length") or 0)
        except ValueError:
            raise ValueError("malformed content-length") from None
        if length < 0:
            raise ValueError("malformed content-length")
        if length > MAX_BODY_BYTES:
            return None
        return self.rfile.read(length)

    def send_json(self, status, value):
        data = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        if self.close_connection:
            self.send_header("connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):
        # Quiet: the test reads stdout for the port, and --log records requests.
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--script", required=True, help="json list of replies")
    parser.add_argument("--key-file", help="require `Authorization: Bearer <its content>`")
    parser.add_argument("--log", help="append each request to this file as a json line")
    args = parser.parse_args()

    model = Model(
        load_script(args.script),
        read_key(args.key_file) if args.key_file else None,
        args.log,
    )
    handler = type("ScriptedHandler", (Handler,), {"model": model})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    # Handler threads do not keep the process alive once it is told to stop.
    server.daemon_threads = True
    # The socket listens before the port is announced: a client that
    # connects at once waits in the backlog.
    print(f"port {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
