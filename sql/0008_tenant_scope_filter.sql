-- 0008: the tenant-scope policy as a filter the planner cannot turn into an access path.
--
-- Until now every tenant_scope policy read `tenant_id = ANY (selene_ops.tenant_scope())`: an inlinable,
-- indexable expression. For a tenant the statistics do not know yet (a new tenant, or one that grew since
-- the last ANALYZE) the planner estimates one row and answers a batch look-up (dedupe keys, projection
-- rows, blocked aggregates: `JOIN unnest($1...)`) by reading *every row of the batch's tenants* through the
-- policy's index condition and hash-joining them: the cost grows with the tenant's history, not with the
-- batch (measured on the latency benchmark: the dedupe look-up took 24 ms per batch of ~50 keys instead of
-- ~1 ms). A non-inlinable function keeps the policy's meaning exactly (same scope, fail closed when unset or
-- empty) but is evaluated as a per-row filter, so access paths come from the statement's own keys. Reads
-- that name their tenant (`WHERE tenant_id = $1`) still use the tenant indexes: the equality is the query's.

CREATE FUNCTION selene_ops.in_tenant_scope(tenant text) RETURNS boolean
  LANGUAGE plpgsql STABLE PARALLEL SAFE
  AS $$ BEGIN RETURN tenant = ANY (selene_ops.tenant_scope()); END $$;

-- Every existing tenant_scope policy (ledgers, projections, shadows; the dead letters' reader-only one too).
DO $$
DECLARE
  p record;
BEGIN
  FOR p IN SELECT schemaname, tablename, with_check FROM pg_policies WHERE policyname = 'tenant_scope' LOOP
    IF p.with_check IS NULL THEN
      EXECUTE format('ALTER POLICY tenant_scope ON %I.%I USING (selene_ops.in_tenant_scope(tenant_id))',
                     p.schemaname, p.tablename);
    ELSE
      EXECUTE format('ALTER POLICY tenant_scope ON %I.%I USING (selene_ops.in_tenant_scope(tenant_id))'
                     ' WITH CHECK (selene_ops.in_tenant_scope(tenant_id))', p.schemaname, p.tablename);
    END IF;
  END LOOP;
END $$;

-- Tables created from now on get the same policy.
CREATE OR REPLACE FUNCTION selene_ops.enable_tenant_rls(tbl regclass) RETURNS void
  LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
  EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tbl);
  EXECUTE format('CREATE POLICY tenant_scope ON %s USING (selene_ops.in_tenant_scope(tenant_id))'
                 ' WITH CHECK (selene_ops.in_tenant_scope(tenant_id))', tbl);
  EXECUTE format('CREATE POLICY operator_read ON %s FOR SELECT TO selene_operator USING (true)', tbl);
END $$;
