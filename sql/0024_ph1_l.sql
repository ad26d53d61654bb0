-- 0024: PH1.L session lifecycle on os_core.sessions (PH1_L.md; docs/DB_WIRING/PH1_L.md). The table stays
-- PH1.F's (one reducer per table: consumers/projections/foundation.py); PH1.L adds upstream's five states,
-- last_activity_at and its indexes. The same change goes to the shadow twin that replay and rebuild fill.
DO $$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['os_core.sessions', 'selene_shadow.os_core__sessions'] LOOP
    EXECUTE format('ALTER TABLE %s RENAME COLUMN status TO session_state', t);
    EXECUTE format('ALTER TABLE %s DROP CONSTRAINT sessions_status_check', t);
    EXECUTE format('ALTER TABLE %s ADD CONSTRAINT ck_sessions_session_state CHECK (session_state IN '
                   '(''OPEN'', ''ACTIVE'', ''SOFT_CLOSED'', ''CLOSED'', ''SUSPENDED''))', t);
    -- A session from before this migration last saw activity when it was opened, or closed.
    EXECUTE format('ALTER TABLE %s ADD COLUMN last_activity_at timestamptz', t);
    EXECUTE format('UPDATE %s SET last_activity_at = greatest(opened_at, closed_at)', t);
    EXECUTE format('ALTER TABLE %s ALTER COLUMN last_activity_at SET NOT NULL', t);
    EXECUTE format('ALTER TABLE %s ADD CONSTRAINT ck_sessions_last_activity CHECK (last_activity_at >= opened_at)', t);
    -- closed_at is set exactly while CLOSED (0002's projection kept that already). Its bound by opened_at is
    -- upstream's and holds for what the projection writes from now on; rows from before are not re-judged.
    EXECUTE format('ALTER TABLE %s ADD CONSTRAINT ck_sessions_closed_at CHECK '
                   '((session_state = ''CLOSED'') = (closed_at IS NOT NULL))', t);
    EXECUTE format('ALTER TABLE %s ADD CONSTRAINT ck_sessions_closed_after_open CHECK (closed_at >= opened_at) '
                   'NOT VALID', t);
  END LOOP;
END $$;

-- Upstream's 0007 indexes, with their names, each led by tenant_id: every read names its tenant (row-level
-- security confines it to one), so the tenant leads as in every index of this project.
CREATE INDEX ix_sessions_user_state_last_activity
  ON os_core.sessions (tenant_id, user_id, session_state, last_activity_at DESC);
CREATE INDEX ix_sessions_device_state_last_activity
  ON os_core.sessions (tenant_id, device_id, session_state, last_activity_at DESC);
CREATE INDEX ix_sessions_state_last_activity
  ON os_core.sessions (tenant_id, session_state, last_activity_at DESC);
