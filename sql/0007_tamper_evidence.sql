-- 0007: tamper evidence. Every ledger row carries a link of a SHA-256 hash chain:
--   row_hash(n) = SHA-256(row_hash(n-1) || canonical(row n))
-- One chain per (ledger, source topic, source partition): a partition has exactly one writer at a time
-- (fenced offsets), and the chain head row below is locked by whoever appends to it (the writer's batch, a
-- re-drive), so every chain is a single sequence without forks. `selene-ledger verify` recomputes every
-- chain, names the first broken link, and checks the heads against an exported digest (truncated tails).

CREATE TABLE selene_ops.ledger_chains (
  ledger_table      text    NOT NULL,
  source_topic      text    NOT NULL,
  source_partition  integer NOT NULL,
  seq               bigint  NOT NULL CHECK (seq >= 0),
  head_hash         bytea   NOT NULL CHECK (length(head_hash) = 32),
  updated_at        timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (ledger_table, source_topic, source_partition)
);
GRANT SELECT, INSERT, UPDATE ON selene_ops.ledger_chains TO selene_writer;
GRANT SELECT ON selene_ops.ledger_chains TO selene_operator;

CREATE FUNCTION selene_ops.chain_ledger(tbl regclass) RETURNS void
  LANGUAGE plpgsql AS $$
DECLARE
  name text := replace(tbl::text, '.', '_');
BEGIN
  EXECUTE format('ALTER TABLE %s ADD COLUMN chain_seq bigint, ADD COLUMN row_hash bytea', tbl);
  EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I CHECK (chain_seq IS NOT NULL AND chain_seq >= 1 '
                 'AND row_hash IS NOT NULL AND length(row_hash) = 32) NOT VALID', tbl, 'ck_' || name || '_chained');
  EXECUTE format('CREATE UNIQUE INDEX %I ON %s (source_topic, source_partition, chain_seq)',
                 'ux_' || name || '_chain', tbl);
END $$;
REVOKE ALL ON FUNCTION selene_ops.chain_ledger(regclass) FROM PUBLIC;

DO $$
DECLARE
  t regclass;
BEGIN
  FOR t IN SELECT DISTINCT tgrelid::regclass FROM pg_trigger WHERE tgname = 'append_only_row' LOOP
    IF t::text <> 'selene_ops.dead_letters' THEN
      PERFORM selene_ops.chain_ledger(t);
    END IF;
  END LOOP;
END $$;

-- Ledgers created by later migrations get their chain from the same helper that makes them append-only.
CREATE OR REPLACE FUNCTION selene_ops.make_append_only(tbl regclass, reason_code text) RETURNS void
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
  PERFORM selene_ops.chain_ledger(tbl);
END $$;
