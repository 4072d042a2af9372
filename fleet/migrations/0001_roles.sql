-- The group roles the fleet's processes log in under (created without
-- login; the operator creates login roles IN ROLE these). Roles belong to
-- the whole cluster, so an existing one is kept.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'mandate_host') THEN
        CREATE ROLE mandate_host NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'mandate_reviewer') THEN
        CREATE ROLE mandate_reviewer NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'mandate_auditor') THEN
        CREATE ROLE mandate_auditor NOLOGIN;
    END IF;
END
$$;

-- Nobody but the owner creates objects in the schema the fleet uses.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO mandate_host, mandate_reviewer, mandate_auditor;
GRANT SELECT ON mandate_migrations TO mandate_host, mandate_reviewer, mandate_auditor;
