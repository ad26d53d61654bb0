-- 0017: the PH1.F and PH1.J columns upstream has and 0002/0003 lacked (PH1_F_J_GAPS.md sections 3-4).
--
-- Every new column is GENERATED from the stored payload: the ledgers already hold chained rows, and a column
-- outside the chain's row digest keeps them verifying, while a generated column can never disagree with the
-- payload its content hash covers (consumers/chain.py). Rows appended before this migration get the values
-- their payloads imply: a work order's audit rows their work_order_id, the audit-backed engines' rows their
-- severity, every other row the defaults. Events without the new fields keep landing as they did.

-- PH1.J (docs/DB_WIRING/PH1_J.md).
ALTER TABLE os_core.audit_events
  ADD COLUMN work_order_id text GENERATED ALWAYS AS (payload ->> 'work_order_id') STORED
    CONSTRAINT ck_audit_events_work_order_id CHECK (length(work_order_id) BETWEEN 1 AND 128),
  ADD COLUMN severity text GENERATED ALWAYS AS (coalesce(payload ->> 'severity', 'INFO')) STORED NOT NULL
    CONSTRAINT ck_audit_events_severity CHECK (severity IN ('INFO', 'WARN', 'ERROR')),
  ADD COLUMN evidence_ref jsonb GENERATED ALWAYS AS (nullif(payload -> 'evidence_ref', 'null'::jsonb)) STORED
    CONSTRAINT ck_audit_events_evidence_ref CHECK (
      jsonb_typeof(evidence_ref) = 'object'
      AND evidence_ref ?| ARRAY['transcript_hash', 'memory_ledger_id', 'conversation_turn_id']
    );

-- Dedupe: a row of a work order on (tenant, work order, key) alone, across correlations; any other row on
-- (tenant, correlation, key), as before. The legacy index becomes partial so that the two never overlap.
DROP INDEX os_core.ux_audit_events_tenant_correlation_idempotency;
CREATE UNIQUE INDEX ux_audit_events_tenant_correlation_idempotency
  ON os_core.audit_events (tenant_id, correlation_id, idempotency_key) WHERE work_order_id IS NULL;
CREATE UNIQUE INDEX ux_audit_tenant_work_order_idempotency
  ON os_core.audit_events (tenant_id, work_order_id, idempotency_key)
  WHERE tenant_id IS NOT NULL AND work_order_id IS NOT NULL AND idempotency_key IS NOT NULL;

-- PH1.F conversation ledger (docs/DB_WIRING/PH1_F.md).
ALTER TABLE conversation.conversation_ledger DROP CONSTRAINT conversation_ledger_source_check;
ALTER TABLE conversation.conversation_ledger
  ADD CONSTRAINT conversation_ledger_source_check CHECK (source IN ('VOICE', 'TEXT', 'SYSTEM', 'TOMBSTONE')),
  ADD COLUMN text_hash text GENERATED ALWAYS AS (payload ->> 'text_hash') STORED
    CONSTRAINT ck_conversation_ledger_text_hash CHECK (length(text_hash) BETWEEN 1 AND 128),
  ADD COLUMN privacy_scope text GENERATED ALWAYS AS (coalesce(payload ->> 'privacy_scope', 'PUBLIC_CHAT')) STORED
    NOT NULL CONSTRAINT ck_conversation_ledger_privacy_scope CHECK (privacy_scope IN ('PUBLIC_CHAT', 'PRIVATE_DELIVERY')),
  ADD COLUMN tombstone_of_conversation_turn_id bigint
    GENERATED ALWAYS AS ((payload ->> 'tombstone_of_conversation_turn_id')::bigint) STORED
    CONSTRAINT ck_conversation_ledger_tombstone_of CHECK (tombstone_of_conversation_turn_id > 0),
  ADD COLUMN tombstone_reason_code text GENERATED ALWAYS AS (payload ->> 'tombstone_reason_code') STORED
    CONSTRAINT ck_conversation_ledger_tombstone_reason CHECK (length(tombstone_reason_code) BETWEEN 1 AND 96),
  -- Upstream's tombstone rules: a TOMBSTONE row is Selene's [REDACTED] text naming both fields; no other row
  -- names either.
  ADD CONSTRAINT ck_conversation_ledger_tombstone CHECK (
    CASE WHEN source = 'TOMBSTONE'
      THEN speaker = 'SELENE' AND text_body = '[REDACTED]'
        AND tombstone_of_conversation_turn_id IS NOT NULL AND tombstone_reason_code IS NOT NULL
      ELSE tombstone_of_conversation_turn_id IS NULL AND tombstone_reason_code IS NULL
    END
  );

-- Upstream's UNIQUE (correlation_id, turn_id), in the tenant, for the turns in upstream's shape (a text_hash):
-- the original contract let a turn id repeat, and turns published that way keep landing.
CREATE UNIQUE INDEX ux_conversation_ledger_tenant_correlation_turn_id
  ON conversation.conversation_ledger (tenant_id, correlation_id, turn_id)
  WHERE turn_id IS NOT NULL AND text_hash IS NOT NULL;

-- PH1.F identities and devices (current tables, and their shadow twins for replay and rebuild): upstream's
-- speaker id and primary language, a device's audio profile and when it was last seen. A device seen
-- before this migration was last seen when its row last changed.
DO $$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['os_core.identities', 'selene_shadow.os_core__identities'] LOOP
    EXECUTE format('ALTER TABLE %s ADD COLUMN speaker_id text CHECK (length(speaker_id) BETWEEN 1 AND 128), '
                   'ADD COLUMN primary_language text CHECK (length(primary_language) BETWEEN 1 AND 32)', t);
  END LOOP;
  FOREACH t IN ARRAY ARRAY['os_core.devices', 'selene_shadow.os_core__devices'] LOOP
    EXECUTE format('ALTER TABLE %s ADD COLUMN last_seen_at timestamptz, '
                   'ADD COLUMN audio_profile_ref text CHECK (length(audio_profile_ref) BETWEEN 1 AND 128)', t);
    EXECUTE format('UPDATE %s SET last_seen_at = updated_at', t);
    EXECUTE format('ALTER TABLE %s ALTER COLUMN last_seen_at SET NOT NULL', t);
  END LOOP;
END $$;
