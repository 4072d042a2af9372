-- Every host's records, the exact bytes of each line, keyed by the host
-- (its login role) and the record's seq. Append-only for everyone: grants
-- give no role UPDATE or DELETE, and a trigger refuses them (and TRUNCATE)
-- even for the owner, so a mistaken maintenance statement cannot rewrite
-- history either.
CREATE TABLE audit_records (
    host_id text NOT NULL,
    seq bigint NOT NULL CHECK (seq >= 1),
    hash text NOT NULL,
    line bytea NOT NULL,
    shipped_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (host_id, seq)
);

CREATE FUNCTION mandate_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit records are append-only: % on % is refused', TG_OP, TG_TABLE_NAME;
END
$$;

CREATE TRIGGER audit_records_append_only BEFORE UPDATE OR DELETE ON audit_records
    FOR EACH ROW EXECUTE FUNCTION mandate_append_only();
CREATE TRIGGER audit_records_no_truncate BEFORE TRUNCATE ON audit_records
    FOR EACH STATEMENT EXECUTE FUNCTION mandate_append_only();

-- A host writes and reads only its own records: its login role is its
-- identity, so one host cannot ship records in another's name.
ALTER TABLE audit_records ENABLE ROW LEVEL SECURITY;
CREATE POLICY hosts_insert_their_own ON audit_records FOR INSERT TO mandate_host
    WITH CHECK (host_id = current_user);
CREATE POLICY hosts_read_their_own ON audit_records FOR SELECT TO mandate_host
    USING (host_id = current_user);
CREATE POLICY auditors_read_all ON audit_records FOR SELECT TO mandate_auditor
    USING (true);

GRANT SELECT, INSERT ON audit_records TO mandate_host;
GRANT SELECT ON audit_records TO mandate_auditor;
