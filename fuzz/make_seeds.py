#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into fuzz/corpus/<target>/.

Run from anywhere: `python3 fuzz/make_seeds.py`. The seeds are small, checked in, and only a
starting point: libFuzzer adds what it finds to the same directories when it runs.

The audit logs are framed exactly as `mandate::audit` writes them (see its module docs): the
hash is the SHA-256 of the line up to `,"hash":"`, and each record's `prev_hash` is the hash
of the one before. The demo log in fixtures/demo-log/ was written by the real guard.
"""

import datetime
import hashlib
import json
import os
import random
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
POLICIES = os.path.join(HERE, "..", "policies")
DEMO = os.path.join(HERE, "fixtures", "demo-log")
GENESIS = "0" * 64


def write(target, name, data):
    directory = os.path.join(CORPUS, target)
    os.makedirs(directory, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)


# --- json_to_cedar: tool arguments and sessions -------------------------------------------

ARGUMENTS = {
    "send_email": {"to": "bob@example.com", "subject": "Q3 planning", "body": "See attached."},
    "read_document": {"document_id": "doc_88pk3r"},
    "read_document_not_owned": {"document_id": "doc_4hq2zt"},
    "write_summary": {"document_id": "doc_88pk3r", "summary": "Revenue up; hiring paused."},
    "nested": {
        "to": "carol@example.com",
        "meta": {"labels": ["urgent", "q3"], "priority": 2, "flags": {"draft": False}},
        "attachments": [{"name": "a.pdf", "size": 1024}, {"name": "b.png", "size": 0}],
    },
    "arrays": {"recipients": ["a@x", "b@x", "a@x"], "empty": [], "mixed": [1, "1", True]},
    "null_field": {"to": "bob@example.com", "subject": None, "body": "x"},
    "null_in_array": {"ids": [1, None, 3]},
    "float": {"document_id": "doc_88pk3r", "ratio": 0.5},
    "negative_zero": {"n": -0.0},
    "huge_int": {"n": 18446744073709551615},
    "i64_edges": {"max": 9223372036854775807, "min": -9223372036854775808},
    "past_i64": {"n": 9223372036854775808},
    "unicode": {"to": "zoë@exämple.com", "subject": "über 🚀 \u202e", "body": "日本語\u0000tab\t"},
    "escapes": {"subject": "\"quoted\" \\ back\\slash", "body": "line\nbreak\r\n"},
    "empty_keys": {"": "", " ": {"": []}},
    "cedar_escapes": {"__entity": {"type": "User", "id": "alice"}, "__extn": {"fn": "ip", "arg": "10.0.0.1"}},
    "reviewer_carol": {"to": "bob@example.com", "subject": "s", "body": "b", "__reviewer": "carol"},
    "reviewer_odd": {"to": "bob@example.com", "__reviewer": "\"::\\\"weird\n"},
    "now_past_expiry": {"document_id": "doc_88pk3r", "__now": 4102444800},
    "now_extreme": {"document_id": "doc_88pk3r", "__now": -377705116800},
    "document_id_odd": {"document_id": "../../etc/passwd"},
    "document_id_long": {"document_id": "d" * 200},
    "document_id_number": {"document_id": 42},
    "unknown_field": {"document_id": "doc_88pk3r", "extra": 1},
}

RAW_JSON = {
    "deep_arrays": "[" * 100 + "]" * 100,
    "deep_objects": '{"a":' * 60 + "1" + "}" * 60,
    "duplicate_keys": '{"to":"a@x","to":"b@x","subject":"s","body":"b"}',
    "exponent": '{"n":1e400,"m":1E-400,"k":12.0e0}',
    "top_string": '"just a string"',
    "top_number": "42",
    "top_array": '[{"document_id":"doc_88pk3r"}]',
    "top_null": "null",
    "empty_object": "{}",
    "lone_surrogate": '{"s":"\\ud800"}',
}


def json_to_cedar():
    for name, value in ARGUMENTS.items():
        write("json_to_cedar", name + ".json", json.dumps(value, ensure_ascii=False))
    for name, text in RAW_JSON.items():
        write("json_to_cedar", name + ".json", text)
    for session in ["session.json", "session-autonomous.json"]:
        with open(os.path.join(POLICIES, session), "rb") as f:
            write("json_to_cedar", session, f.read())
    with open(os.path.join(POLICIES, "session.json")) as f:
        session = json.load(f)
    odd = dict(session)
    odd["user"] = {"id": "al\"ice::\u00e9", "email": "x"}
    odd["delegation_chain"] = [
        {"kind": "user", "id": odd["user"]["id"]},
        {"kind": "agent", "id": "sub-agent"},
        {"kind": "agent", "id": session["agent"]["id"]},
    ]
    write("json_to_cedar", "session-odd-ids.json", json.dumps(odd, ensure_ascii=False))
    expired = dict(session)
    expired["expires_at"] = "2000-01-01T00:00:00Z"
    write("json_to_cedar", "session-expired.json", json.dumps(expired))
    no_scopes = dict(session)
    no_scopes["scopes"] = []
    no_scopes["session_type"] = "autonomous"
    del no_scopes["approved_by"]
    write("json_to_cedar", "session-no-scopes.json", json.dumps(no_scopes))


# --- audit_verify: log segments ------------------------------------------------------------


class Log:
    """Frames records the way the writer does."""

    def __init__(self, start=1, prev=GENESIS):
        self.seq = start - 1
        self.prev = prev
        self.millis = 1_795_710_349_000

    def record(self, body):
        self.seq += 1
        self.millis += 7
        seconds, millis = divmod(self.millis, 1000)
        stamp = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
        timestamp = stamp.strftime("%Y-%m-%dT%H:%M:%S") + ".%03dZ" % millis
        prefix = '{"seq":%d,"prev_hash":"%s","timestamp":"%s"' % (self.seq, self.prev, timestamp)
        fields = json.dumps(body, separators=(",", ":"), ensure_ascii=False)[1:-1]
        if fields:
            prefix += "," + fields
        prefix = prefix.encode()
        digest = hashlib.sha256(prefix).hexdigest()
        self.prev = digest
        return prefix + b',"hash":"' + digest.encode() + b'"}\n'


def identity(n):
    return {
        "session_id": "s-%d" % n,
        "trace_id": "t-%d" % n,
        "user": {"id": "alice", "email": "alice@example.com"},
        "agent": {"id": "document-summarizer", "name": "Document Summarizer", "version": "0.1.0"},
    }


def calls(log, n, first_call=0):
    out = b""
    for i in range(n):
        call = "call-%d" % (first_call + i)
        decision_seq = log.seq + 1
        decision = dict(identity(1), kind="decision", call_id=call)
        decision["action"] = {"type": "tool_call", "tool": "read_document",
                              "arguments": {"document_id": "doc_88pk3r"},
                              "resource": 'Document::"doc_88pk3r"'}
        decision["decision"] = {"effect": "allow" if i % 3 else "deny",
                                "determining_policies": [{"id": "scope-documents-read"}],
                                "errors": [], "policy_digest": "ab" * 32}
        decision["approval"] = {"required": i % 2 == 1, "outcome": "approved" if i % 2 else None,
                                "reviewer": "carol" if i % 2 else None}
        out += log.record(decision)
        outcome = dict(identity(1), kind="outcome", call_id=call)
        outcome["outcome"] = {"decision_seq": decision_seq, "status": "ok", "latency_us": 1234 + i}
        out += log.record(outcome)
    return out


def audit_verify():
    with open(os.path.join(DEMO, "segment-00000000000000000001.jsonl"), "rb") as f:
        demo = f.read()
    write("audit_verify", "demo-log.jsonl", demo)
    demo_lines = demo.splitlines(keepends=True)
    write("audit_verify", "demo-log-first-3.jsonl", b"".join(demo_lines[:3]))
    write("audit_verify", "demo-log-torn.jsonl", demo[: len(demo) - 40])
    write("audit_verify", "demo-log-no-final-newline.jsonl", demo[:-1])
    swapped = demo_lines[:]
    swapped[3], swapped[4] = swapped[4], swapped[3]
    write("audit_verify", "demo-log-swapped.jsonl", b"".join(swapped))

    log = Log()
    start = log.record({"kind": "log_start", "format": "mandate-audit/1"})
    write("audit_verify", "log-start-only.jsonl", start)
    body = start + log.record(dict(identity(1), kind="session_start")) + calls(log, 3)
    write("audit_verify", "small-log.jsonl", body)

    # Three segments, separated by form feeds (the target's segment separator).
    log = Log()
    seg1 = log.record({"kind": "log_start", "format": "mandate-audit/1"}) + calls(log, 2)
    name1 = "segment-%020d.jsonl" % 1
    first2 = log.seq + 1
    seg2 = log.record({"kind": "segment_start", "previous_segment": name1}) + calls(log, 2, 2)
    name2 = "segment-%020d.jsonl" % first2
    seg3 = log.record({"kind": "segment_start", "previous_segment": name2}) + calls(log, 1, 4)
    write("audit_verify", "three-segments.bin", seg1 + b"\x0c" + seg2 + b"\x0c" + seg3)

    # Retention: the first segment is gone and a retention record accounts for it.
    through_seq = first2 - 1
    through_hash = json.loads(seg1.splitlines()[-1])["hash"]
    log2 = Log(start=log.seq + 1, prev=log.prev)
    tail = log2.record({"kind": "retention", "removed_segments": [name1],
                        "removed_through_seq": through_seq, "removed_through_hash": through_hash})
    write("audit_verify", "retention.bin", seg2 + b"\x0c" + seg3 + tail)

    # An unsigned-looking checkpoint record vouching for the record before it.
    log = Log()
    out = log.record({"kind": "log_start", "format": "mandate-audit/1"}) + calls(log, 1)
    out += log.record({"kind": "checkpoint",
                       "checkpoint": {"seq": log.seq, "head_hash": log.prev,
                                      "time": "2026-11-26T16:25:49.123Z", "key_id": "1cae664411c39f21"},
                       "signature": "00" * 64})
    write("audit_verify", "checkpoint-record.jsonl", out)

    # Things that are not logs, or barely.
    write("audit_verify", "empty.jsonl", b"")
    write("audit_verify", "not-a-log.txt", b"hello\nworld\n")
    write("audit_verify", "json-not-framed.jsonl", b'{"seq":1,"kind":"log_start"}\n')
    write("audit_verify", "crlf.jsonl", start.replace(b"\n", b"\r\n"))
    write("audit_verify", "only-newlines.jsonl", b"\n\n\n")
    write("audit_verify", "prefix-only.jsonl", b'{"seq":')


# --- audit_mutate: arbitrary-decoded edit lists ------------------------------------------------


def audit_mutate():
    rng = random.Random(1)
    for i in range(16):
        size = rng.choice([8, 16, 32, 64, 128])
        write("audit_mutate", "random-%02d.bin" % i, bytes(rng.randrange(256) for _ in range(size)))


if __name__ == "__main__":
    for target in ["json_to_cedar", "audit_verify", "audit_mutate"]:
        shutil.rmtree(os.path.join(CORPUS, target), ignore_errors=True)
    json_to_cedar()
    audit_verify()
    audit_mutate()
    for target in sorted(os.listdir(CORPUS)):
        files = os.listdir(os.path.join(CORPUS, target))
        size = sum(os.path.getsize(os.path.join(CORPUS, target, f)) for f in files)
        print(f"{target}: {len(files)} seeds, {size} bytes")
