-- What auditors ask across hosts ("what did agent X do for user Y"),
-- answered from indexed columns instead of reading every line: one row per
-- call, read from its decision record by the same code as the local query
-- index, and one row per outcome. They are derived: the shipping host
-- writes them with the records in one transaction, and `mandate audit
-- verify --database` reads every line again and refuses rows that do not
-- match them. Append-only like the records.
CREATE TABLE audit_calls (
    host_id text NOT NULL,
    decision_seq bigint NOT NULL,
    call_id text NOT NULL,
    decided_at timestamptz NOT NULL,
    session_id text,
    trace_id text,
    user_id text,
    agent_id text,
    tool text NOT NULL,
    resource text,
    effect text NOT NULL CHECK (effect IN ('allow', 'deny')),
    decided_by text,
    policies jsonb NOT NULL,
    message text,
    approval_required boolean NOT NULL,
    approval_outcome text,
    reviewer text,
    approved_by text,
    PRIMARY KEY (host_id, decision_seq),
    FOREIGN KEY (host_id, decision_seq) REFERENCES audit_records (host_id, seq)
);

CREATE TABLE audit_call_outcomes (
    host_id text NOT NULL,
    decision_seq bigint NOT NULL,
    outcome_seq bigint NOT NULL,
    status text,
    latency_us bigint,
    error text,
    PRIMARY KEY (host_id, decision_seq),
    FOREIGN KEY (host_id, outcome_seq) REFERENCES audit_records (host_id, seq)
);

-- One index per filter, each ending in the time so a time range narrows the
-- scan and rows come back in time order without a sort.
CREATE INDEX audit_calls_by_user ON audit_calls (user_id, decided_at);
CREATE INDEX audit_calls_by_agent ON audit_calls (agent_id, decided_at);
CREATE INDEX audit_calls_by_session ON audit_calls (session_id, decided_at);
CREATE INDEX audit_calls_by_tool ON audit_calls (tool, decided_at);
CREATE INDEX audit_calls_by_approver ON audit_calls (approved_by, decided_at);
CREATE INDEX audit_calls_by_time ON audit_calls (decided_at);

-- Each host's signed checkpoints (the lines of its checkpoints.jsonl, exact
-- bytes), held against its records by `mandate audit verify --database
-- --key`: a record rewritten with every hash recomputed, or records cut off
-- the end, no longer match what was signed.
CREATE TABLE audit_checkpoints (
    host_id text NOT NULL,
    line_no bigint NOT NULL CHECK (line_no >= 1),
    seq bigint NOT NULL,
    line bytea NOT NULL,
    shipped_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (host_id, line_no)
);

CREATE TRIGGER audit_calls_append_only BEFORE UPDATE OR DELETE ON audit_calls
    FOR EACH ROW EXECUTE FUNCTION mandate_append_only();
CREATE TRIGGER audit_calls_no_truncate BEFORE TRUNCATE ON audit_calls
    FOR EACH STATEMENT EXECUTE FUNCTION mandate_append_only();
CREATE TRIGGER audit_call_outcomes_append_only BEFORE UPDATE OR DELETE ON audit_call_outcomes
    FOR EACH ROW EXECUTE FUNCTION mandate_append_only();
CREATE TRIGGER audit_call_outcomes_no_truncate BEFORE TRUNCATE ON audit_call_outcomes
    FOR EACH STATEMENT EXECUTE FUNCTION mandate_append_only();
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION mandate_append_only();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION mandate_append_only();

ALTER TABLE audit_calls ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_call_outcomes ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_checkpoints ENABLE ROW LEVEL SECURITY;
CREATE POLICY hosts_insert_their_own ON audit_calls FOR INSERT TO mandate_host
    WITH CHECK (host_id = current_user);
CREATE POLICY hosts_read_their_own ON audit_calls FOR SELECT TO mandate_host
    USING (host_id = current_user);
CREATE POLICY auditors_read_all ON audit_calls FOR SELECT TO mandate_auditor
    USING (true);
CREATE POLICY hosts_insert_their_own ON audit_call_outcomes FOR INSERT TO mandate_host
    WITH CHECK (host_id = current_user);
CREATE POLICY hosts_read_their_own ON audit_call_outcomes FOR SELECT TO mandate_host
    USING (host_id = current_user);
CREATE POLICY auditors_read_all ON audit_call_outcomes FOR SELECT TO mandate_auditor
    USING (true);
CREATE POLICY hosts_insert_their_own ON audit_checkpoints FOR INSERT TO mandate_host
    WITH CHECK (host_id = current_user);
CREATE POLICY hosts_read_their_own ON audit_checkpoints FOR SELECT TO mandate_host
    USING (host_id = current_user);
CREATE POLICY auditors_read_all ON audit_checkpoints FOR SELECT TO mandate_auditor
    USING (true);

GRANT SELECT, INSERT ON audit_calls, audit_call_outcomes, audit_checkpoints TO mandate_host;
GRANT SELECT ON audit_calls, audit_call_outcomes, audit_checkpoints TO mandate_auditor;
