#!/usr/bin/env python3
"""A second verifier of Mandate audit logs, written from docs/audit-log-format.md alone.

Usage:
  mandate_verify.py [--key K.pub] [--checkpoints F] [--allow-unsigned-tail] [--format json] LOGDIR
  mandate_verify.py prove --salt-key F --call-id ID --path P --value JSON --commitment JSON

Standard library plus `cryptography` (Ed25519). Exit codes (spec section 9): 0 verified, 1 tampered or a
check failed, 2 the log cannot be read at all or bad usage.
"""

import argparse
import decimal
import hashlib
import hmac
import json
import math
import os
import re
import signal
import struct
import sys

MAX_RECORD_BYTES = 16 * 1024 * 1024
GENESIS = "0" * 64
SEGMENT_RE = re.compile(r"^segment-([0-9]{20})\.jsonl$")
HEX64 = re.compile(rb"^[0-9a-f]{64}$")
PREFIX_RE = re.compile(
    rb'^\{"seq":(0|[1-9][0-9]*),"prev_hash":"([0-9a-f]{64})",'
    rb'"timestamp":"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z",'
    rb'"kind":"([^"\\]*)"'
)
SUFFIX_LEN = len(b',"hash":"') + 64 + len(b'"}')
U64_MAX = 2**64 - 1


class Unreadable(Exception):
    """The log cannot be read at all: exit 2."""


def _no_constants(name):
    raise ValueError(f"`{name}` is not JSON")


def _pairs_no_duplicates(pairs):
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"duplicate key `{key}`")
        seen[key] = value
    return seen


def parse_json(data):
    """Strict RFC 8259 parse: no NaN/Infinity, no duplicate keys."""
    return json.loads(data, parse_constant=_no_constants, object_pairs_hook=_pairs_no_duplicates)


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def segment_name(first_seq):
    return f"segment-{first_seq:020d}.jsonl"


def read_key(path, prefix):
    try:
        with open(path, "r", encoding="utf-8") as f:
            text = f.read().strip()
    except OSError as e:
        raise Unreadable(f"cannot read key file `{path}`: {e.strerror}")
    if not text.startswith(prefix):
        raise Unreadable(f"`{path}` is not a mandate key: expected a line starting with `{prefix}`")
    try:
        raw = bytes.fromhex(text[len(prefix):])
    except ValueError:
        raise Unreadable(f"`{path}` is not a mandate key: the key is not hex")
    if len(raw) != 32:
        raise Unreadable(f"`{path}` is not a mandate key: the key is not 32 bytes")
    return raw


class PublicKey:
    def __init__(self, path):
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        raw = read_key(path, "mandate-ed25519-public:")
        try:
            self.key = Ed25519PublicKey.from_public_bytes(raw)
        except ValueError as e:
            raise Unreadable(f"`{path}` is not a mandate public key: {e}")
        self.key_id = hashlib.sha256(raw).hexdigest()[:16]

    def check(self, signed):
        """None when `signed` ({"checkpoint": {...}, "signature": hex}) verifies, else what is wrong."""
        from cryptography.exceptions import InvalidSignature

        cp = signed.get("checkpoint")
        sig = signed.get("signature")
        if not isinstance(cp, dict) or not isinstance(sig, str):
            return "the checkpoint has no `checkpoint` object or `signature` string"
        seq, head, time, key_id = (cp.get(k) for k in ("seq", "head_hash", "time", "key_id"))
        if not (isinstance(seq, int) and not isinstance(seq, bool) and 0 <= seq <= U64_MAX):
            return "`checkpoint.seq` is not a u64"
        if not all(isinstance(v, str) for v in (head, time, key_id)):
            return "`checkpoint` fields `head_hash`, `time`, `key_id` must be strings"
        if key_id != self.key_id:
            return f"checkpoint was signed by key `{key_id}`, not `{self.key_id}`"
        message = f"mandate-checkpoint/1\nseq {seq}\nhead_hash {head}\ntime {time}\nkey_id {key_id}\n"
        try:
            self.key.verify(bytes.fromhex(sig), message.encode("utf-8"))
        except (InvalidSignature, ValueError):
            return "invalid signature"
        return None


class Verifier:
    def __init__(self, logdir, key=None, checkpoints=None, allow_unsigned_tail=False):
        self.logdir = logdir
        self.key = key
        self.checkpoints_path = checkpoints
        self.allow_unsigned_tail = allow_unsigned_tail
        self.problems = []
        self.notes = []
        self.records = 0
        self.first_seq = None
        self.first_prev_hash = None
        self.head_seq = 0
        self.head_hash = GENESIS
        self.hashes = {}  # seq -> hash, for retention and the checkpoint file
        self.checkpoints = {}  # record seq -> (vouched seq, head_hash, signed object, valid)
        self.retentions = []  # (record seq, body)
        self.last_signed = None  # highest seq of a valid signed checkpoint record
        self.segment_ends = set()  # the last seq of every segment read

    def problem(self, seq, file, line, kind, message):
        self.problems.append(
            {"seq": seq, "file": file, "line": line, "kind": kind, "message": message}
        )

    # -- reading ------------------------------------------------------------------------------

    def segments(self):
        if not os.path.isdir(self.logdir):
            if os.path.exists(self.logdir):
                raise Unreadable(f"`{self.logdir}` is not a log directory")
            raise Unreadable(f"`{self.logdir}` does not exist")
        try:
            names = os.listdir(self.logdir)
        except OSError as e:
            raise Unreadable(f"cannot read `{self.logdir}`: {e.strerror}")
        found = []
        for name in names:
            m = SEGMENT_RE.match(name)
            if not m:
                continue
            first = int(m.group(1))
            if first > U64_MAX:
                continue
            path = os.path.join(self.logdir, name)
            if os.path.isfile(path) and not os.path.islink(path):
                found.append((first, name, path))
        found.sort()
        if not found:
            raise Unreadable(f"`{self.logdir}` holds no segment files: not a mandate audit log")
        return found

    def run(self):
        segments = self.segments()
        self.load_checkpoint_file()
        expected = None  # next seq
        prev = None  # previous record's hash
        resync = False
        previous_name = None
        for index, (named, name, path) in enumerate(segments):
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except OSError as e:
                raise Unreadable(f"cannot read `{path}`: {e.strerror}")
            if not data:
                if index == 0 and named == 1 and len(segments) == 1:
                    raise Unreadable(f"`{path}` is empty: not a mandate audit log")
                self.problem(expected if expected is not None else named, name, 0, "empty_segment",
                             f"segment `{name}` is empty")
                resync = True
                previous_name = name
                continue
            lines = data.split(b"\n")
            torn = lines.pop()  # b"" when the data ends with a newline
            entries = [(ln, True) for ln in lines]
            if torn:
                entries.append((torn, False))
            for number, (line, terminated) in enumerate(entries, start=1):
                at = expected if expected is not None else named
                seq, hash_, prev_hash, kind, body, what = self.parse_line(line, terminated)
                if what is not None:
                    if index == 0 and number == 1 and named == 1 and expected is None and seq is None:
                        raise Unreadable(f"`{path}` line 1 is not a mandate audit record: {what}")
                    # A line whose own hash does not verify: its seq is unproven, so the problem
                    # is named by the seq expected at that position (section 9).
                    self.problem(at, name, number, what[0], what[1])
                    resync = True
                    if expected is not None:
                        expected += 1
                    continue
                first_of_segment = number == 1
                problems_before = len(self.problems)
                if first_of_segment and expected is not None and not resync and seq != expected:
                    # A segment that does not continue the seqs: one was removed (or added) before it.
                    self.problem(expected, name, number, "seq_mismatch",
                                 f"expected seq {expected}, found seq {seq}: a segment was removed or replaced")
                    resync = True
                elif first_of_segment:
                    if index == 0 and named == 1:
                        if kind != "log_start" or seq != 1 or prev_hash != GENESIS:
                            if expected is None:
                                raise Unreadable(f"`{path}` does not start with a `log_start` record at seq 1")
                    else:
                        if kind != "segment_start":
                            self.problem(seq, name, number, "segment_start_missing",
                                         f"a segment other than the log's first must start with a `segment_start` record, found `{kind}`")
                            resync = True
                        elif seq != named:
                            self.problem(seq, name, number, "segment_seq_mismatch",
                                         f"segment `{name}` starts at seq {seq}, not the seq in its name")
                            resync = True
                        elif previous_name is not None and body.get("previous_segment") != previous_name:
                            self.problem(seq, name, number, "segment_missing",
                                         f"`previous_segment` is `{body.get('previous_segment')}` but the segment before it is `{previous_name}`: a segment was removed, renamed or replaced")
                            resync = True
                if expected is None:
                    # The first record of the log as it stands.
                    self.first_seq = seq
                    self.first_prev_hash = prev_hash
                    if seq == 1 and prev_hash != GENESIS:
                        self.problem(seq, name, number, "chain_broken", "seq 1 must have a `prev_hash` of 64 zeros")
                elif resync:
                    resync = False
                else:
                    if seq != expected:
                        self.problem(expected, name, number, "seq_mismatch",
                                     f"expected seq {expected}, found seq {seq}: a record was deleted, inserted or reordered")
                        if seq < expected:
                            # Not after the last good record: it does not become the head
                            # (section 9); the next line with a valid hash does.
                            resync = True
                            expected += 1
                            continue
                    elif prev_hash != prev:
                        self.problem(seq, name, number, "chain_broken",
                                     "`prev_hash` is not the previous record's hash: a record was changed, deleted or inserted")
                self.records += 1
                self.hashes[seq] = hash_
                # One problem per line (section 9): a line already found at fault is taken as
                # the new head, but what it says about other records is not believed.
                if len(self.problems) > problems_before:
                    pass
                elif kind == "checkpoint":
                    self.check_checkpoint(seq, prev, body, name, number)
                elif kind == "retention":
                    self.check_retention(seq, body, name, number)
                expected = seq + 1 if seq < U64_MAX else seq
                prev = hash_
                self.head_seq = seq
                self.head_hash = hash_
            previous_name = name
            if self.head_seq:
                self.segment_ends.add(self.head_seq)
        self.finish()

    def parse_line(self, line, terminated):
        """(seq, hash, prev_hash, kind, body, None) or (seq|None, .., (kind, message)) for a bad line."""
        seq = None
        m = re.match(rb'^\{"seq":(0|[1-9][0-9]{0,19}),', line)
        if m and int(m.group(1)) <= U64_MAX:
            seq = int(m.group(1))
        bad = lambda kind, message: (seq, None, None, None, None, (kind, message))
        if len(line) + 1 > MAX_RECORD_BYTES:
            return bad("too_long", f"the line is longer than the limit of {MAX_RECORD_BYTES} bytes")
        if not terminated:
            return bad("torn_tail", "the last line has no newline: a torn record")
        if b"\r" in line:
            return bad("malformed", "the line holds a carriage return")
        if len(line) < SUFFIX_LEN or not line.endswith(b'"}') or line[-SUFFIX_LEN:-SUFFIX_LEN + 9] != b',"hash":"':
            return bad("malformed", 'the line does not end with `,"hash":"<64 hex>"}`')
        written = line[-SUFFIX_LEN + 9:-2]
        if not HEX64.match(written):
            return bad("malformed", "the hash is not 64 lowercase hex digits")
        prefix = line[:-SUFFIX_LEN]
        written = written.decode("ascii")
        if sha256_hex(prefix) != written:
            return bad("hash_mismatch", "the record's hash does not match its bytes: the record was changed")
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            return bad("malformed", "the line is not UTF-8")
        try:
            body = parse_json(text)
        except ValueError as e:
            return bad("malformed", f"the line is not one JSON object: {e}")
        if not isinstance(body, dict):
            return bad("malformed", "the line is not a JSON object")
        p = PREFIX_RE.match(line)
        if not p or seq is None:
            return bad("malformed", "the line does not start with the fixed `seq`, `prev_hash`, `timestamp`, `kind` prefix")
        if seq == 0:
            return bad("malformed", "seq 0 is not a record")
        return seq, written, p.group(2).decode("ascii"), p.group(3).decode("utf-8"), body, None

    # -- records the log writes about itself ---------------------------------------------------

    def check_checkpoint(self, seq, prev, body, name, number):
        signed = {"checkpoint": body.get("checkpoint"), "signature": body.get("signature")}
        cp = signed["checkpoint"] if isinstance(signed["checkpoint"], dict) else {}
        if cp.get("seq") != seq - 1 or cp.get("head_hash") != prev:
            self.problem(seq, name, number, "checkpoint_mismatch",
                         "the checkpoint does not vouch for the record before it")
            self.checkpoints[seq] = (cp.get("seq"), cp.get("head_hash"), signed, False)
            return
        valid = False
        if self.key is not None:
            wrong = self.key.check(signed)
            if wrong is not None:
                self.problem(seq, name, number, "bad_checkpoint", f"checkpoint at seq {seq}: {wrong}")
            else:
                valid = True
                self.last_signed = seq
        self.checkpoints[seq] = (cp.get("seq"), cp.get("head_hash"), signed, valid)

    def check_retention(self, seq, body, name, number):
        through = body.get("removed_through_seq")
        claimed = body.get("removed_through_hash")
        removed = body.get("removed_segments")
        if not (isinstance(through, int) and not isinstance(through, bool) and 0 <= through < seq
                and isinstance(claimed, str) and isinstance(removed, list)
                and all(isinstance(n, str) for n in removed)):
            self.problem(seq, name, number, "bad_retention",
                         "retention record needs `removed_segments`, `removed_through_seq` below its own seq and `removed_through_hash`")
            return
        if self.first_seq is not None and through + 1 == self.first_seq:
            # The record that explains the missing start (section 7).
            if claimed != self.first_prev_hash:
                self.problem(seq, name, number, "bad_retention",
                             f"`removed_through_hash` is not the `prev_hash` of record {self.first_seq}")
                return
            wrong = self.removed_segments_problem(removed, through)
            if wrong is not None:
                self.problem(seq, name, number, "bad_retention", f"`removed_segments` {wrong}")
                return
        elif self.first_seq is not None and through >= self.first_seq:
            # Written before its segments were deleted: it must end one of them.
            if through not in self.segment_ends:
                self.problem(seq, name, number, "bad_retention",
                             f"`removed_through_seq` {through} does not end a segment")
                return
            if self.hashes.get(through) != claimed:
                self.problem(seq, name, number, "bad_retention",
                             f"`removed_through_hash` is not the hash of record {through}")
                return
        self.retentions.append((seq, body, name, number))

    def removed_segments_problem(self, removed, through):
        """What is wrong with `removed_segments` of the retention record explaining the start."""
        older = [b["removed_through_seq"] for _, b, _, _ in self.retentions
                 if b["removed_through_seq"] + 1 < self.first_seq]
        start = max(older) + 1 if older else 1
        if not removed:
            return "is empty"
        previous = None
        for n in removed:
            m = SEGMENT_RE.match(n)
            if not m:
                return f"holds `{n[:80]}`, which is not a segment file name"
            first = int(m.group(1))
            if (previous is None and first != start) or (previous is not None and first <= previous) \
                    or first > through:
                return f"holds `{n}` out of place"
            if os.path.lexists(os.path.join(self.logdir, n)):
                return f"holds `{n}`, which still exists"
            previous = first
        return None

    def explains_start(self, seq, body):
        # Its `removed_segments` and hash were checked when it was read (check_retention).
        return body["removed_through_seq"] + 1 == self.first_seq

    # -- the end of the walk ------------------------------------------------------------------

    def finish(self):
        if self.first_seq is None:
            return
        explained = self.first_seq == 1
        if not explained:
            for seq, body, name, number in self.retentions:
                if not self.explains_start(seq, body):
                    continue
                covered = self.last_signed is not None and self.last_signed >= seq
                if self.key is not None and not covered:
                    continue
                if self.key is None:
                    self.notes.append(
                        f"retention record at seq {seq} is not covered by a checked signature: verify with --key")
                explained = True
                break
        if not explained:
            older = [b["removed_through_seq"] for _, b, _, _ in self.retentions
                     if b["removed_through_seq"] + 1 < self.first_seq]
            first_missing = max(older) + 1 if older else 1
            self.problem(first_missing, None, None, "unexplained_start",
                         f"records {first_missing}..={self.first_seq - 1} are missing from the start of the log and no "
                         + ("retention record covered by a signed checkpoint" if self.key else "retention record")
                         + " explains it")
        if self.key is None:
            return
        self.check_checkpoint_file(explained)
        tail = self.head_seq - (self.last_signed if self.last_signed is not None else self.first_seq - 1)
        self.unsigned_tail = tail
        if tail > 0 and not self.allow_unsigned_tail:
            start = self.last_signed + 1 if self.last_signed is not None else self.first_seq
            self.problem(start, None, None, "unsigned_tail",
                         f"{tail} records (seq {start}..={self.head_seq}) are not covered by a signed checkpoint; "
                         "hint: --allow-unsigned-tail accepts them")

    def load_checkpoint_file(self):
        """Reads and checks every line of the checkpoint file before the walk (section 6): a file
        that cannot be read stops verification (exit 2); a line that is malformed or not signed by
        the key is a problem (exit 1)."""
        self.file_entries = []
        path = self.checkpoints_path
        if path is None:
            default = os.path.join(self.logdir, "checkpoints.jsonl")
            if self.key is None or not os.path.isfile(default):
                return
            path = default
        self.file_name = os.path.basename(path)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise Unreadable(f"cannot read checkpoint file `{path}`: {e.strerror}")
        lines = data.split(b"\n")
        torn = lines.pop()
        if torn:
            self.problem(None, self.file_name, len(lines) + 1, "checkpoint_file",
                         "the last line has no newline: the file was cut short mid-line")
        for number, line in enumerate(lines, start=1):
            try:
                entry = parse_json(line.decode("utf-8"))
                if not isinstance(entry, dict):
                    raise ValueError("not a JSON object")
            except ValueError as e:
                self.problem(None, self.file_name, number, "checkpoint_file", f"not a signed checkpoint: {e}")
                continue
            wrong = self.key.check(entry)
            if wrong is not None:
                self.problem(None, self.file_name, number, "checkpoint_file", wrong)
                continue
            self.file_entries.append((number, entry))

    def check_checkpoint_file(self, explained):
        base = getattr(self, "file_name", None)
        for number, entry in getattr(self, "file_entries", []):
            cp = entry["checkpoint"]
            vseq, vhash = cp["seq"], cp["head_hash"]
            if vseq > self.head_seq:
                self.problem(self.head_seq + 1, base, number, "cut_short",
                             f"the checkpoint file vouches for seq {vseq} but the log ends at seq {self.head_seq}: records were cut from the end")
                continue
            if vseq + 1 == self.first_seq:
                # The last removed record: its hash is the first record's `prev_hash`.
                if vhash != self.first_prev_hash:
                    self.problem(vseq, base, number, "rewritten",
                                 f"record {self.first_seq} does not follow the record {vseq} the checkpoint file vouches for: the log was rewritten")
                else:
                    self.confirm(vseq)
                continue
            if vseq < self.first_seq:
                # Accepted only with a retention record that explains the missing start; the
                # missing start itself is the problem otherwise (section 7).
                continue
            if vseq not in self.hashes:
                # A bad line, already reported.
                continue
            if self.hashes.get(vseq) != vhash:
                self.problem(vseq, base, number, "rewritten",
                             f"record {vseq} is not the one the checkpoint file vouches for: the log was rewritten")
                continue
            self.confirm(vseq)
            rseq = entry.get("record_seq")
            if isinstance(rseq, int) and self.first_seq <= rseq <= self.head_seq and rseq in self.hashes:
                held = self.checkpoints.get(rseq)
                if held is None or held[2] != {"checkpoint": cp, "signature": entry["signature"]}:
                    self.problem(rseq, base, number, "rewritten",
                                 f"record {rseq} is not the checkpoint the checkpoint file holds: the log was rewritten")
                else:
                    self.confirm(rseq)

    def confirm(self, seq):
        """A checkpoint of the file, signed with the key, matched the log at `seq`: seqs up to it
        are covered (section 6)."""
        if self.last_signed is None or seq > self.last_signed:
            self.last_signed = seq

    def report(self):
        signed = self.last_signed - 0 if self.last_signed is not None else None
        # Section 9's order: the checkpoint file's own lines, then along the chain by seq (a
        # checkpoint file contradicting a record counts as found at that record), then what
        # only the end of the walk shows.
        end = {"unexplained_start", "cut_short", "unsigned_tail"}

        def rank(p):
            if p["kind"] == "checkpoint_file":
                return (0, 0)
            if p["kind"] in end:
                return (2, 0)
            return (1, p["seq"] if p["seq"] is not None else 0)

        self.problems.sort(key=rank)
        first_bad = self.problems[0]["seq"] if self.problems else None
        return {
            "ok": not self.problems,
            "problems": self.problems,
            "first_bad_seq": first_bad,
            "records": self.records,
            "first_seq": self.first_seq or 0,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "signed_through_seq": signed,
            "unsigned_tail": getattr(self, "unsigned_tail", 0),
            "notes": self.notes,
        }


# -- RFC 8785 (JCS) ---------------------------------------------------------------------------


def jcs_number(x):
    """ECMAScript Number::toString for a finite double, as RFC 8785 section 3.2.2.3 requires."""
    if isinstance(x, bool):
        raise ValueError("not a number")
    if isinstance(x, int):
        x = float(x)  # JCS numbers are IEEE 754 doubles
    if not math.isfinite(x):
        raise ValueError("JCS has no NaN or Infinity")
    if x == 0:
        return "0"
    if x < 0:
        return "-" + jcs_number(-x)
    # repr gives the shortest digits that round-trip (what ECMAScript also requires); Decimal
    # takes them apart into digits and exponent without another rounding.
    sign_, digit_tuple, exponent = decimal.Decimal(repr(x)).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    k = len(digits)
    n = k + exponent  # value = digits * 10^(n-k), as in ECMA-262 Number::toString
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * (-n) + digits
    e = n - 1
    sign = "+" if e >= 0 else "-"
    if k == 1:
        return f"{digits}e{sign}{abs(e)}"
    return f"{digits[0]}.{digits[1:]}e{sign}{abs(e)}"


def jcs_string(s):
    out = ['"']
    for ch in s:
        c = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\b":
            out.append("\\b")
        elif ch == "\f":
            out.append("\\f")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif c < 0x20:
            out.append(f"\\u{c:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def jcs(value):
    """RFC 8785 canonical form of a parsed JSON value, as UTF-8 bytes."""
    return _jcs(value).encode("utf-8")


def _jcs(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        return jcs_number(v)
    if isinstance(v, str):
        return jcs_string(v)
    if isinstance(v, list):
        return "[" + ",".join(_jcs(i) for i in v) + "]"
    if isinstance(v, dict):
        keys = sorted(v, key=lambda k: k.encode("utf-16-be"))
        return "{" + ",".join(jcs_string(k) + ":" + _jcs(v[k]) for k in keys) + "}"
    raise ValueError(f"not JSON: {type(v).__name__}")


def _lp(data):
    return struct.pack(">Q", len(data)) + data


def commitment_v2(salt_key, nonce, call_id, path, value):
    salt = hmac.new(
        salt_key,
        b"mandate-redaction/2\x00" + _lp(nonce.encode()) + _lp(call_id.encode()) + _lp(path.encode()),
        hashlib.sha256,
    ).digest()
    return "sha256:" + hashlib.sha256(salt + jcs(value)).hexdigest()


def salt_key_id(salt_key):
    return hashlib.sha256(b"mandate-redaction-key-id/1" + salt_key).hexdigest()[:16]


def prove(argv):
    parser = argparse.ArgumentParser(prog="mandate_verify.py prove")
    parser.add_argument("--salt-key", required=True)
    parser.add_argument("--call-id", required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--value", required=True, help="the claimed value, as JSON")
    parser.add_argument("--commitment", required=True, help="the commitment object, as JSON")
    args = parser.parse_args(argv)
    try:
        key = read_key(args.salt_key, "mandate-redaction-key:")
        value = parse_json(args.value)
        commitment = parse_json(args.commitment)
    except (Unreadable, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not isinstance(commitment, dict) or "nonce" not in commitment:
        print("error: only v2 commitments (with `nonce`) are proven here", file=sys.stderr)
        return 2
    nonce = commitment["nonce"]
    if not (isinstance(nonce, str) and re.fullmatch(r"[0-9a-f]{32}", nonce)):
        # Section 8: a malformed nonce is refused, as the host refuses it.
        print("error: the commitment's `nonce` is not 32 lowercase hex", file=sys.stderr)
        return 2
    if commitment.get("key_id") != salt_key_id(key):
        print(f"not proven: the commitment names key `{commitment.get('key_id')}`, the salt key is `{salt_key_id(key)}`")
        return 1
    computed = commitment_v2(key, commitment["nonce"], args.call_id, args.path, value)
    if hmac.compare_digest(computed, str(commitment.get("redacted"))):
        print("proven: the value is what was committed")
        return 0
    print("not proven: the value does not match the commitment")
    return 1


def main(argv):
    if hasattr(signal, "SIGPIPE"):
        # `mandate_verify.py LOG | head` ends quietly, as a Unix tool does.
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    if argv[:1] == ["prove"]:
        return prove(argv[1:])
    parser = argparse.ArgumentParser(prog="mandate_verify.py")
    parser.add_argument("--key")
    parser.add_argument("--checkpoints")
    parser.add_argument("--allow-unsigned-tail", action="store_true")
    parser.add_argument("--format", choices=["text", "json"], default="text")
    parser.add_argument("logdir")
    args = parser.parse_args(argv)
    try:
        if args.checkpoints and not args.key:
            raise Unreadable("--checkpoints needs --key")
        key = PublicKey(args.key) if args.key else None
        verifier = Verifier(args.logdir, key, args.checkpoints, args.allow_unsigned_tail)
        verifier.run()
    except Unreadable as e:
        if args.format == "json":
            print(json.dumps({"ok": False, "error": str(e), "problems": [], "first_bad_seq": None}))
        else:
            print(f"error: {e}", file=sys.stderr)
        return 2
    report = verifier.report()
    if args.format == "json":
        print(json.dumps(report))
    else:
        for p in report["problems"]:
            where = f"{p['file']}:{p['line']}" if p["file"] else args.logdir
            print(f"tampered: seq {p['seq']} ({where}): {p['message']}")
        for note in report["notes"]:
            print(f"note: {note}")
        if report["ok"]:
            print(f"ok: seq {report['first_seq']}..={report['head_seq']}, {report['records']} records")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
