#!/bin/sh
# An external reviewer for `mandate run --approver cmd:examples/reviewer.sh`.
# Mandate writes the pending approval as JSON on stdin and reads the decision
# as JSON on stdout. This one approves email to example.com addresses as
# carol (a member of Group::"reviewers") and denies everything else.
to=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["arguments"].get("to", ""))') || to=""
case "$to" in
  *@example.com)
    echo '{"decision":"approve","reviewer":"carol","reason":"internal recipient"}' ;;
  *)
    echo '{"decision":"deny","reviewer":"carol","reason":"only example.com recipients are approved"}' ;;
esac
