-- 0001: the schemas the seeds name, the tenant scope, and the two guards every table reuses.
--
-- Tenant scope: each transaction declares the tenants it works for with
--   SELECT set_config('selene.tenant_ids', 'tenant_a,tenant_b', true)   -- transaction-scoped
-- Row-level security admits only rows of those tenants. Unset or empty means no tenant at all, so a
-- connection that forgot to declare its scope sees nothing and can write nothing (fail closed). A repository
-- declares exactly one tenant; the ledger writer declares the tenants of the batch it is writing.

CREATE SCHEMA os_core;
CREATE SCHEMA conversation;
CREATE SCHEMA os_process;
CREATE SCHEMA selene_ops;

GRANT USAGE ON SCHEMA os_core, conversation, os_process, selene_ops
  TO selene_writer, selene_reader, selene_operator;

CREATE FUNCTION selene_ops.tenant_scope() RETURNS text[]
  LANGUAGE sql STABLE PARALLEL SAFE
  AS $$ SELECT coalesce(string_to_array(nullif(current_setting('selene.tenant_ids', true), ''), ','),
                        '{}'::text[]) $$;

-- Enables and forces RLS on a tenant table with the standard policies:
--   tenant_scope  : every role (owner included, because FORCE) sees and writes only in-scope tenants;
--   operator_read : the operator role (status, dead-letter and verify tooling) may read every tenant.
CREATE FUNCTION selene_ops.enable_tenant_rls(tbl regclass) RETURNS void
  LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
  EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tbl);
  EXECUTE format('CREATE POLICY tenant_scope ON %s USING (tenant_id = ANY (selene_ops.tenant_scope()))'
                 ' WITH CHECK (tenant_id = ANY (selene_ops.tenant_scope()))', tbl);
  EXECUTE format('CREATE POLICY operator_read ON %s FOR SELECT TO selene_operator USING (true)', tbl);
END $$;

-- The append-only guard. The reason code travels in the error's DETAIL and the SQLSTATE is SLA01, so
-- clients recognise it without parsing (localised) message text.
CREATE FUNCTION selene_ops.refuse_ledger_mutation() RETURNS trigger
  LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION USING
    ERRCODE = 'SLA01',
    MESSAGE = format('%s is append-only: %s refused', TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME, TG_OP),
    DETAIL = TG_ARGV[0];
END $$;

-- Makes a ledger append-only: row triggers for UPDATE/DELETE and a statement trigger for TRUNCATE, all
-- ENABLE ALWAYS so that session_replication_role = replica cannot skip them. Privileges do the rest:
-- no application role is ever granted UPDATE, DELETE or TRUNCATE on a ledger.
CREATE FUNCTION selene_ops.make_append_only(tbl regclass, reason_code text) RETURNS void
  LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('CREATE TRIGGER append_only_row BEFORE UPDATE OR DELETE ON %s FOR EACH ROW'
                 ' EXECUTE FUNCTION selene_ops.refuse_ledger_mutation(%L)', tbl, reason_code);
  EXECUTE format('CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON %s FOR EACH STATEMENT'
                 ' EXECUTE FUNCTION selene_ops.refuse_ledger_mutation(%L)', tbl, reason_code);
  EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER append_only_row', tbl);
  EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER append_only_truncate', tbl);
  EXECUTE format('REVOKE UPDATE, DELETE, TRUNCATE ON %s FROM PUBLIC', tbl);
  EXECUTE format('GRANT SELECT, INSERT ON %s TO selene_writer', tbl);
  EXECUTE format('GRANT SELECT ON %s TO selene_reader, selene_operator', tbl);
END $$;

-- A projection ("current") table: rebuildable from its ledger, so the writer may change it freely.
CREATE FUNCTION selene_ops.make_projection(tbl regclass) RETURNS void
  LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO selene_writer', tbl);
  EXECUTE format('GRANT SELECT ON %s TO selene_reader, selene_operator', tbl);
END $$;

REVOKE ALL ON FUNCTION selene_ops.enable_tenant_rls(regclass) FROM PUBLIC;
REVOKE ALL ON FUNCTION selene_ops.make_append_only(regclass, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION selene_ops.make_projection(regclass) FROM PUBLIC;
