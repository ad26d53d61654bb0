-- 0020: PH1.M (seed 000 row 23), memory: the ledger memory_ledger and its rebuildable projection
-- memory_current (docs/DB_WIRING/PH1_M.md). Upstream creates both in its PH1.F migration, unqualified (its
-- PH1.F doc says schema memory); here in os_core beside the other PH1.F tables they reference.
--
-- Upstream's ledger row is (ledger_id, user_id, event JSONB, idempotency_key): the event is this ledger's
-- payload column, its fields columns of their own (memory_value as verbatim + normalized, provenance as
-- session_id + transcript_hash); t_event is occurred_at. use_policy and expires_at
-- are in the event, so a rebuild reproduces them. tenant_id is the user's tenant: memory_current's foreign
-- key to identities carries it, so a memory of a user another tenant holds (or nobody) is refused.

CREATE TABLE os_core.memory_ledger (
  ledger_id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  event_uuid        uuid        NOT NULL,
  tenant_id         text        NOT NULL CHECK (length(tenant_id) BETWEEN 1 AND 64),
  engine_id         text        NOT NULL CHECK (length(engine_id) BETWEEN 1 AND 64),
  event_type        text        NOT NULL CHECK (event_type IN ('MEMORY_STORED', 'MEMORY_FORGOTTEN')),
  schema_version    integer     NOT NULL CHECK (schema_version >= 1),
  correlation_id    text        NOT NULL CHECK (length(correlation_id) BETWEEN 1 AND 128),
  turn_id           text        CHECK (length(turn_id) BETWEEN 1 AND 128),
  idempotency_key   text        CHECK (length(idempotency_key) BETWEEN 1 AND 128),
  user_id           text        NOT NULL CHECK (length(user_id) BETWEEN 1 AND 128),
  memory_key        text        NOT NULL CHECK (length(memory_key) BETWEEN 1 AND 128),
  kind              text        NOT NULL CHECK (kind IN ('STORED', 'UPDATED', 'FORGOTTEN')),
  verbatim          text        CHECK (length(verbatim) BETWEEN 1 AND 256),
  normalized        text        CHECK (length(normalized) BETWEEN 1 AND 256),
  evidence_quote    text        CHECK (length(evidence_quote) BETWEEN 1 AND 256),
  session_id        text        CHECK (length(session_id) BETWEEN 1 AND 128),
  transcript_hash   text        CHECK (length(transcript_hash) BETWEEN 1 AND 128),
  layer             text        NOT NULL CHECK (layer IN ('WORKING', 'MICRO', 'LONG_TERM')),
  sensitivity_flag  text        NOT NULL CHECK (sensitivity_flag IN ('LOW', 'SENSITIVE')),
  confidence        text        NOT NULL CHECK (confidence IN ('HIGH', 'MED', 'LOW')),
  consent           text        NOT NULL CHECK (consent IN ('NOT_REQUESTED', 'EXPLICIT_REMEMBER', 'CONFIRMED', 'DENIED')),
  reason_code       text        NOT NULL CHECK (length(reason_code) BETWEEN 1 AND 96),
  use_policy        text        NOT NULL CHECK (use_policy IN (
                      'ALWAYS_USABLE', 'REPEATED_OR_CONFIRMED', 'CONTEXT_RELEVANT_ONLY', 'USER_REQUESTED_ONLY')),
  expires_at        timestamptz,
  occurred_at       timestamptz NOT NULL,
  recorded_at       timestamptz NOT NULL DEFAULT now(),
  payload           jsonb       NOT NULL CHECK (octet_length(payload::text) <= 16384),
  content_sha256    bytea       NOT NULL CHECK (length(content_sha256) = 32),
  source_topic      text        NOT NULL,
  source_partition  integer     NOT NULL,
  source_offset     bigint      NOT NULL,
  CONSTRAINT ux_memory_ledger_tenant_event_uuid UNIQUE (tenant_id, event_uuid),
  -- The event type fixes the kind; a store holds a value, a forget writes down no value and no expiry.
  CONSTRAINT ck_memory_ledger_kind_type CHECK ((event_type = 'MEMORY_FORGOTTEN') = (kind = 'FORGOTTEN')),
  CONSTRAINT ck_memory_ledger_value CHECK (CASE WHEN kind = 'FORGOTTEN'
    THEN verbatim IS NULL AND normalized IS NULL AND expires_at IS NULL ELSE verbatim IS NOT NULL END)
);
-- Upstream's user-scoped dedupe, with the tenant first; NULL keys are never deduplicated.
CREATE UNIQUE INDEX ux_memory_ledger_user_idempotency
  ON os_core.memory_ledger (tenant_id, user_id, idempotency_key)
  WHERE idempotency_key IS NOT NULL;
-- One memory's events in append order (its history, newest last).
CREATE INDEX ix_memory_ledger_tenant_user_key_ledger
  ON os_core.memory_ledger (tenant_id, user_id, memory_key, ledger_id);

CREATE TABLE os_core.memory_current (
  tenant_id         text        NOT NULL CHECK (length(tenant_id) BETWEEN 1 AND 64),
  user_id           text        NOT NULL CHECK (length(user_id) BETWEEN 1 AND 128),
  memory_key        text        NOT NULL CHECK (length(memory_key) BETWEEN 1 AND 128),
  memory_value      jsonb,
  confidence        text        NOT NULL CHECK (confidence IN ('HIGH', 'MED', 'LOW')),
  sensitivity_flag  text        NOT NULL CHECK (sensitivity_flag IN ('LOW', 'SENSITIVE')),
  last_seen_at      timestamptz NOT NULL,
  active            boolean     NOT NULL,
  use_policy        text        NOT NULL CHECK (use_policy IN (
                      'ALWAYS_USABLE', 'REPEATED_OR_CONFIRMED', 'CONTEXT_RELEVANT_ONLY', 'USER_REQUESTED_ONLY')),
  expires_at        timestamptz,
  provenance        jsonb       NOT NULL CHECK (jsonb_typeof(provenance) = 'object'),
  source_ledger_id  bigint      NOT NULL,
  -- Upstream's PK (user_id, memory_key), the tenant first.
  PRIMARY KEY (tenant_id, user_id, memory_key),
  -- A tombstone holds no value and no expiry; an active row holds a value.
  CONSTRAINT ck_memory_current_tombstone CHECK (
    (active AND memory_value IS NOT NULL) OR (NOT active AND memory_value IS NULL AND expires_at IS NULL)),
  -- Upstream's user_id -> identities, carrying the tenant (the user's tenant is the row's).
  CONSTRAINT fk_memory_current_identity FOREIGN KEY (tenant_id, user_id)
    REFERENCES os_core.identities (tenant_id, user_id) DEFERRABLE INITIALLY DEFERRED
);

SELECT selene_ops.enable_tenant_rls('os_core.memory_ledger');
SELECT selene_ops.make_append_only('os_core.memory_ledger', 'M_APPEND_ONLY_VIOLATION');
SELECT selene_ops.enable_tenant_rls('os_core.memory_current');
SELECT selene_ops.make_projection('os_core.memory_current');
SELECT selene_ops.make_shadow('os_core.memory_current');
