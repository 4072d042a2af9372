-- The approvals queue every host of the fleet holds calls in and every
-- reviewer decides from. A host's identity is its login role
-- (session_user), a reviewer's too: a decision is authenticated by the
-- database login that made it, never by a name the client sends.
--
-- A host inserts its own held calls (only the id, the call and the
-- deadline: everything else is set here) and reads only its own; reviewers
-- read all. Nobody updates or deletes a row directly: deciding goes through
-- mandate_decide (reviewers), and the host's own steps (closing a call at
-- its deadline, taking a decision, reopening one its policy refused)
-- through the functions after it (hosts, on their own rows only). Each
-- locks the row, so that of two decisions on one call exactly one lands.
CREATE TABLE approvals (
    approval_id text PRIMARY KEY,
    -- The host that holds the call: its login role, never chosen by it.
    host_id text NOT NULL DEFAULT session_user,
    -- The pending approval as the host submitted it (JSON, kept byte for
    -- byte); the columns below are derived from it, so they cannot differ.
    pending text NOT NULL CHECK (octet_length(pending) <= 1048576),
    session_id text GENERATED ALWAYS AS (pending::jsonb ->> 'session_id') STORED,
    call_id text GENERATED ALWAYS AS (pending::jsonb ->> 'call_id') STORED,
    tool text GENERATED ALWAYS AS (pending::jsonb ->> 'tool') STORED,
    resource text GENERATED ALWAYS AS (pending::jsonb ->> 'resource') STORED,
    deadline timestamptz NOT NULL,
    submitted_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'approved', 'denied', 'expired')),
    -- When it was decided, or closed at the deadline.
    decided_at timestamptz,
    -- The reviewer the decision is in the name of (a login role), and the
    -- login that made it (the same role, or one granted membership in it).
    reviewer text,
    decided_by text,
    reason text CHECK (char_length(reason) <= 4000),
    scope text CHECK (scope IN ('once', 'session')),
    -- When the host took the decision as final (policy accepted the reviewer).
    taken_at timestamptz,
    -- Decisions the host refused (policy does not accept their reviewer),
    -- oldest first; each put the approval back to pending.
    refused jsonb NOT NULL DEFAULT '[]',
    CHECK (pending::jsonb ->> 'approval_id' = approval_id),
    CHECK ((status IN ('approved', 'denied'))
        = (reviewer IS NOT NULL AND decided_by IS NOT NULL AND scope IS NOT NULL)),
    CHECK ((status = 'pending') = (decided_at IS NULL)),
    CHECK (taken_at IS NULL OR status IN ('approved', 'denied'))
);

CREATE INDEX approvals_waiting ON approvals (submitted_at) WHERE status = 'pending';
CREATE INDEX approvals_recent ON approvals (submitted_at DESC);
CREATE INDEX approvals_by_host ON approvals (host_id, submitted_at);

-- What identifies a held call never changes once it is in the queue, not
-- even through the functions below or by the owner's mistake.
CREATE FUNCTION mandate_approvals_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.approval_id IS DISTINCT FROM OLD.approval_id
        OR NEW.host_id IS DISTINCT FROM OLD.host_id
        OR NEW.pending IS DISTINCT FROM OLD.pending
        OR NEW.deadline IS DISTINCT FROM OLD.deadline
        OR NEW.submitted_at IS DISTINCT FROM OLD.submitted_at THEN
        RAISE EXCEPTION 'approval %: the held call, its host and its deadline cannot be changed',
            OLD.approval_id;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER approvals_fixed BEFORE UPDATE ON approvals
    FOR EACH ROW EXECUTE FUNCTION mandate_approvals_fixed();

ALTER TABLE approvals ENABLE ROW LEVEL SECURITY;
CREATE POLICY hosts_submit_their_own ON approvals FOR INSERT TO mandate_host
    WITH CHECK (host_id = session_user AND status = 'pending');
CREATE POLICY hosts_read_their_own ON approvals FOR SELECT TO mandate_host
    USING (host_id = session_user);
CREATE POLICY reviewers_read_all ON approvals FOR SELECT TO mandate_reviewer
    USING (true);

GRANT SELECT ON approvals TO mandate_host, mandate_reviewer;
GRANT INSERT (approval_id, pending, deadline) ON approvals TO mandate_host;

-- The functions below run as the table's owner (SECURITY DEFINER), with a
-- fixed search_path, and may be executed only by the roles granted below.
-- Each refuses with its own SQLSTATE, which the client maps:
--   MD001 no such approval (for a host: none of its own)
--   MD002 already decided        MD003 past its deadline
--   MD004 the request is invalid MD005 this login may not decide so

-- A reviewer's decision, in the name of the database login (or of a role
-- the login is a member of, `p_reviewer`: a review page logged in as a
-- role granted each of its reviewers). Sends a notification on
-- `mandate_approvals` whose payload is the SHA-256 of the approval id, so
-- that the waiting host wakes at once and other listeners learn nothing of
-- the call.
CREATE FUNCTION mandate_decide(
    p_approval_id text, p_verdict text, p_reason text, p_scope text, p_reviewer text DEFAULT NULL
) RETURNS approvals
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    login text := session_user;
    who text := coalesce(p_reviewer, session_user);
    held approvals;
BEGIN
    IF NOT pg_has_role(login, 'mandate_reviewer', 'MEMBER') THEN
        RAISE EXCEPTION 'the database login `%` is not a reviewer', login
            USING ERRCODE = 'MD005',
                  HINT = format('the database owner can run `GRANT mandate_reviewer TO %I`', login);
    END IF;
    IF who <> login THEN
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = who) THEN
            RAISE EXCEPTION 'the database login `%` may not decide as `%`: there is no such role', login, who
                USING ERRCODE = 'MD005',
                      HINT = format('give your own login role `%s` as the reviewer', login);
        END IF;
        IF NOT (pg_has_role(login, who, 'MEMBER') AND pg_has_role(who, 'mandate_reviewer', 'MEMBER')) THEN
            RAISE EXCEPTION 'the database login `%` may not decide as `%`', login, who
                USING ERRCODE = 'MD005',
                      HINT = format('log in as `%s`, or give your own login role `%s` as the reviewer', who, login);
        END IF;
    END IF;
    IF p_verdict IS NULL OR p_verdict NOT IN ('approve', 'deny') THEN
        RAISE EXCEPTION 'the verdict must be `approve` or `deny`' USING ERRCODE = 'MD004';
    END IF;
    IF p_scope IS NULL OR p_scope NOT IN ('once', 'session') THEN
        RAISE EXCEPTION 'the scope must be `once` or `session`' USING ERRCODE = 'MD004';
    END IF;
    SELECT * INTO held FROM approvals WHERE approval_id = p_approval_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no approval `%` in the queue', p_approval_id USING ERRCODE = 'MD001';
    END IF;
    IF held.status = 'expired' OR (held.status = 'pending' AND held.deadline <= clock_timestamp()) THEN
        RAISE EXCEPTION 'approval `%` is past its deadline', p_approval_id
            USING ERRCODE = 'MD003',
                  DETAIL = json_build_object('deadline', held.deadline)::text;
    END IF;
    IF held.status <> 'pending' THEN
        RAISE EXCEPTION 'approval `%` was already %', p_approval_id, held.status
            USING ERRCODE = 'MD002',
                  DETAIL = json_build_object('status', held.status, 'reviewer', held.reviewer)::text;
    END IF;
    UPDATE approvals
       SET status = CASE p_verdict WHEN 'approve' THEN 'approved' ELSE 'denied' END,
           decided_at = clock_timestamp(), reviewer = who, decided_by = login,
           reason = p_reason, scope = p_scope
     WHERE approval_id = p_approval_id
    RETURNING * INTO held;
    PERFORM pg_notify('mandate_approvals',
        encode(sha256(convert_to(p_approval_id, 'UTF8')), 'hex'));
    RETURN held;
END
$$;

-- The host closes its own still-pending approval (its call stops waiting):
-- from then on decisions are refused. Returns the row as it now stands
-- (decided, if a decision landed first), or nothing if it is not the host's.
CREATE FUNCTION mandate_expire(p_approval_id text) RETURNS SETOF approvals
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    UPDATE approvals SET status = 'expired', decided_at = clock_timestamp()
     WHERE approval_id = p_approval_id AND host_id = session_user AND status = 'pending';
    RETURN QUERY SELECT * FROM approvals
                  WHERE approval_id = p_approval_id AND host_id = session_user;
END
$$;

-- The host took the decision on its own approval as final.
CREATE FUNCTION mandate_mark_taken(p_approval_id text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    UPDATE approvals SET taken_at = clock_timestamp()
     WHERE approval_id = p_approval_id AND host_id = session_user
       AND status IN ('approved', 'denied') AND taken_at IS NULL;
END
$$;

-- The host refused the decision `p_reviewer` made on its own approval
-- (policy does not accept that reviewer): the refusal is kept on the row
-- and the approval is pending again for the other reviewers, or expired if
-- its deadline has passed meanwhile.
CREATE FUNCTION mandate_reopen(p_approval_id text, p_reviewer text, p_why text) RETURNS approvals
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    held approvals;
    refusal jsonb;
BEGIN
    SELECT * INTO held FROM approvals
     WHERE approval_id = p_approval_id AND host_id = session_user FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no approval `%` in the queue', p_approval_id USING ERRCODE = 'MD001';
    END IF;
    IF held.status NOT IN ('approved', 'denied') THEN
        RAISE EXCEPTION 'cannot reopen it: it is %, not decided by `%`', held.status, p_reviewer
            USING ERRCODE = 'MD004';
    END IF;
    IF held.reviewer IS DISTINCT FROM p_reviewer THEN
        RAISE EXCEPTION 'cannot reopen it: it was decided by `%`, not by `%`', held.reviewer, p_reviewer
            USING ERRCODE = 'MD004';
    END IF;
    refusal := jsonb_strip_nulls(jsonb_build_object(
        'reviewer', held.reviewer,
        'verdict', CASE held.status WHEN 'approved' THEN 'approve' ELSE 'deny' END,
        'decided_at', held.decided_at,
        'reason', held.reason,
        'refused_at', clock_timestamp(),
        'why', coalesce(p_why, '')));
    UPDATE approvals
       SET status = CASE WHEN deadline <= clock_timestamp() THEN 'expired' ELSE 'pending' END,
           decided_at = CASE WHEN deadline <= clock_timestamp() THEN clock_timestamp() END,
           reviewer = NULL, decided_by = NULL, reason = NULL, scope = NULL, taken_at = NULL,
           refused = refused || jsonb_build_array(refusal)
     WHERE approval_id = p_approval_id
    RETURNING * INTO held;
    RETURN held;
END
$$;

REVOKE ALL ON FUNCTION mandate_approvals_fixed() FROM PUBLIC;
REVOKE ALL ON FUNCTION mandate_decide(text, text, text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION mandate_expire(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION mandate_mark_taken(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION mandate_reopen(text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mandate_decide(text, text, text, text, text) TO mandate_reviewer;
GRANT EXECUTE ON FUNCTION mandate_expire(text) TO mandate_host;
GRANT EXECUTE ON FUNCTION mandate_mark_taken(text) TO mandate_host;
GRANT EXECUTE ON FUNCTION mandate_reopen(text, text, text) TO mandate_host;
