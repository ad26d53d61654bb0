-- 0004: what the pipeline itself needs: offsets stored with the rows they cover, the dead letters, and
-- shadow twins of every projection for replay and rebuild.

-- Kafka offsets of the ledger writer. A batch's transaction updates its partitions' rows together with the
-- ledger rows and projection changes, conditionally on fence_epoch: on assignment a consumer bumps the
-- epoch, so a zombie that lost the partition (and still holds the old epoch) updates no row and rolls back.
CREATE TABLE selene_ops.consumer_offsets (
  consumer_group  text        NOT NULL,
  topic           text        NOT NULL,
  partition       integer     NOT NULL CHECK (partition >= 0),
  next_offset     bigint      NOT NULL CHECK (next_offset >= 0),
  fence_epoch     bigint      NOT NULL DEFAULT 0,
  owner_id        text,
  updated_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer_group, topic, partition)
);
GRANT SELECT, INSERT, UPDATE ON selene_ops.consumer_offsets TO selene_writer;
GRANT SELECT ON selene_ops.consumer_offsets TO selene_operator;

-- Dead letters: bad input is kept whole (raw key, value, headers) with its provenance and reason code.
-- status: OPEN      blocks later events of its aggregate until fixed (redriven) or discarded;
--         HELD      a good-looking event held behind an earlier OPEN one of the same aggregate;
--         REJECTED  terminal and non-blocking (e.g. an idempotency conflict: the original row stands);
--         REDRIVEN  re-applied to its ledger by `dlq redrive`;
--         DISCARDED given up by an operator.
CREATE TABLE selene_ops.dead_letters (
  dead_letter_id    bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  source_topic      text        NOT NULL,
  source_partition  integer     NOT NULL,
  source_offset     bigint      NOT NULL,
  kafka_timestamp   timestamptz,
  raw_key           bytea,
  raw_value         bytea,
  headers           jsonb       NOT NULL DEFAULT '[]',  -- [{"key": text, "value_b64": base64}], exact
  ledger            text,
  tenant_id         text,
  aggregate_key     text,
  event_uuid        uuid,
  reason_code       text        NOT NULL,
  error_detail      text        NOT NULL CHECK (length(error_detail) <= 4096),
  blocks            boolean     NOT NULL,
  status            text        NOT NULL CHECK (status IN ('OPEN', 'HELD', 'REJECTED', 'REDRIVEN', 'DISCARDED')),
  created_at        timestamptz NOT NULL DEFAULT now(),
  resolved_at       timestamptz,
  resolution        text        CHECK (length(resolution) <= 1024),
  CONSTRAINT ux_dead_letters_source UNIQUE (source_topic, source_partition, source_offset)
);
-- The writer asks, per batch, which of its aggregates are blocked.
CREATE INDEX ix_dead_letters_blocking ON selene_ops.dead_letters (source_topic, aggregate_key)
  WHERE status IN ('OPEN', 'HELD');
CREATE INDEX ix_dead_letters_reason ON selene_ops.dead_letters (reason_code, status);

-- The raw message and its provenance are evidence: only the verdict (status, reason, resolution) may change,
-- e.g. when a re-drive finds that a held event fails for a reason of its own.
CREATE FUNCTION selene_ops.guard_dead_letter() RETURNS trigger
  LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' OR NEW.source_topic IS DISTINCT FROM OLD.source_topic
     OR NEW.source_partition IS DISTINCT FROM OLD.source_partition
     OR NEW.source_offset IS DISTINCT FROM OLD.source_offset
     OR NEW.raw_key IS DISTINCT FROM OLD.raw_key OR NEW.raw_value IS DISTINCT FROM OLD.raw_value
     OR NEW.headers IS DISTINCT FROM OLD.headers
     OR NEW.tenant_id IS DISTINCT FROM OLD.tenant_id OR NEW.created_at IS DISTINCT FROM OLD.created_at THEN
    RAISE EXCEPTION USING ERRCODE = 'SLA01',
      MESSAGE = 'selene_ops.dead_letters keeps the original message: only its verdict may change',
      DETAIL = 'DEAD_LETTER_APPEND_ONLY_VIOLATION';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER guard_dead_letter BEFORE UPDATE OR DELETE ON selene_ops.dead_letters
  FOR EACH ROW EXECUTE FUNCTION selene_ops.guard_dead_letter();
ALTER TABLE selene_ops.dead_letters ENABLE ALWAYS TRIGGER guard_dead_letter;
CREATE TRIGGER guard_dead_letter_truncate BEFORE TRUNCATE ON selene_ops.dead_letters
  FOR EACH STATEMENT EXECUTE FUNCTION selene_ops.refuse_ledger_mutation('DEAD_LETTER_APPEND_ONLY_VIOLATION');
ALTER TABLE selene_ops.dead_letters ENABLE ALWAYS TRIGGER guard_dead_letter_truncate;

-- Row-level security: the dead letters are a quarantine for input that by definition may carry a wrong or
-- missing tenant, so the writer (which must be able to keep anything) and the operator see every row; a
-- reader sees only its tenant's rows.
ALTER TABLE selene_ops.dead_letters ENABLE ROW LEVEL SECURITY;
ALTER TABLE selene_ops.dead_letters FORCE ROW LEVEL SECURITY;
CREATE POLICY writer_quarantine ON selene_ops.dead_letters TO selene_writer USING (true) WITH CHECK (true);
CREATE POLICY operator_read ON selene_ops.dead_letters FOR SELECT TO selene_operator USING (true);
CREATE POLICY tenant_scope ON selene_ops.dead_letters FOR SELECT TO selene_reader
  USING (tenant_id = ANY (selene_ops.tenant_scope()));
GRANT SELECT, INSERT, UPDATE (status, reason_code, error_detail, blocks, resolved_at, resolution) ON selene_ops.dead_letters TO selene_writer;
GRANT SELECT ON selene_ops.dead_letters TO selene_reader, selene_operator;

-- Shadow twins: replay and rebuild write projections here with the live code, then verify or swap them in.
CREATE SCHEMA selene_shadow;
GRANT USAGE ON SCHEMA selene_shadow TO selene_writer, selene_operator;

CREATE FUNCTION selene_ops.make_shadow(tbl regclass) RETURNS void
  LANGUAGE plpgsql AS $$
DECLARE
  shadow text;
BEGIN
  SELECT format('selene_shadow.%I', n.nspname || '__' || c.relname) INTO shadow
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = tbl;
  -- LIKE copies columns, checks, defaults and indexes but never foreign keys: a shadow stands alone.
  EXECUTE format('CREATE TABLE %s (LIKE %s INCLUDING ALL)', shadow, tbl);
  PERFORM selene_ops.enable_tenant_rls(shadow::regclass);
  -- Replay reads its own working state across tenants (binding checks); writes stay tenant-scoped.
  EXECUTE format('CREATE POLICY writer_read_all ON %s FOR SELECT TO selene_writer USING (true)', shadow);
  EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON %s TO selene_writer', shadow);
  EXECUTE format('GRANT SELECT ON %s TO selene_operator', shadow);
END $$;
REVOKE ALL ON FUNCTION selene_ops.make_shadow(regclass) FROM PUBLIC;

SELECT selene_ops.make_shadow('os_core.identities');
SELECT selene_ops.make_shadow('os_core.devices');
SELECT selene_ops.make_shadow('os_core.sessions');
