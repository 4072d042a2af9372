#!/bin/sh
# An external reviewer for `mandate run --approver cmd:examples/reviewer.sh`.
# Mandate writes the pending approval as JSON on stdin and reads the decision
# as JSON on stdout. This one approves email to example.com addresses as
# carol (a member of Group::"reviewers") and denies everything else.
# The whole address must be one internal address: a suffix test would also
# approve "eve@evil.example, bob@example.com".
if python3 -c '
import json, re, sys
to = json.load(sys.stdin).get("arguments", {}).get("to", "")
ok = isinstance(to, str) and re.fullmatch(r"[A-Za-z0-9.!#$%&*+/=?^_`{|}~-]+@example\.com", to)
sys.exit(0 if ok else 1)
'; then
  echo '{"decision":"approve","reviewer":"carol","reason":"internal recipient"}'
else
  echo '{"decision":"deny","reviewer":"carol","reason":"only a single example.com recipient is approved"}'
fi
