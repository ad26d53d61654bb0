-- 0014: PH1.CAPREQ (seed 000 row 26), capability requests: the ledger capreq_ledger and its current
-- projection capreq_current (docs/DB_WIRING/PH1_CAPREQ.md). Upstream names no schema; the requests are
-- process governance, next to the engine capability maps, so os_process.
--
-- Upstream's BIGINT times are the envelope's occurred_at (timestamptz) and its BIGINT reason codes text
-- names, as everywhere in this project. The writer enforces the status machine before appending; the CHECK
-- below holds each row's action and status together (the status is the one its action leads to).

CREATE TABLE os_process.capreq_ledger (
  capreq_event_id     bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  event_uuid          uuid        NOT NULL,
  tenant_id           text        NOT NULL CHECK (length(tenant_id) BETWEEN 1 AND 64),
  engine_id           text        NOT NULL CHECK (length(engine_id) BETWEEN 1 AND 64),
  event_type          text        NOT NULL CHECK (event_type IN (
                        'CAPREQ_CREATE_DRAFT', 'CAPREQ_SUBMIT_FOR_APPROVAL_COMMIT', 'CAPREQ_APPROVE_COMMIT',
                        'CAPREQ_REJECT_COMMIT', 'CAPREQ_FULFILL_COMMIT', 'CAPREQ_CANCEL_REVOKE')),
  schema_version      integer     NOT NULL CHECK (schema_version >= 1),
  correlation_id      text        NOT NULL CHECK (length(correlation_id) BETWEEN 1 AND 128),
  turn_id             text        CHECK (length(turn_id) BETWEEN 1 AND 128),
  idempotency_key     text        CHECK (length(idempotency_key) BETWEEN 1 AND 128),
  capreq_id           text        NOT NULL CHECK (length(capreq_id) BETWEEN 1 AND 128),
  requester_user_id   text        NOT NULL CHECK (length(requester_user_id) BETWEEN 1 AND 128),
  action              text        NOT NULL,
  status              text        NOT NULL,
  reason_code         text        NOT NULL CHECK (length(reason_code) BETWEEN 1 AND 96),
  payload_hash        text        NOT NULL CHECK (length(payload_hash) BETWEEN 1 AND 128),
  occurred_at         timestamptz NOT NULL,
  recorded_at         timestamptz NOT NULL DEFAULT now(),
  payload             jsonb       NOT NULL CHECK (octet_length(payload::text) <= 16384),
  content_sha256      bytea       NOT NULL CHECK (length(content_sha256) = 32),
  source_topic        text        NOT NULL,
  source_partition    integer     NOT NULL,
  source_offset       bigint      NOT NULL,
  CONSTRAINT ux_capreq_ledger_tenant_event_uuid UNIQUE (tenant_id, event_uuid),
  CONSTRAINT ck_capreq_ledger_action_status CHECK ((action, status) IN (
    ('CREATE_DRAFT', 'DRAFT'), ('SUBMIT_FOR_APPROVAL', 'PENDING_APPROVAL'), ('APPROVE', 'APPROVED'),
    ('REJECT', 'REJECTED'), ('FULFILL', 'FULFILLED'), ('CANCEL', 'CANCELED')))
);
-- Scoped idempotency (upstream's dedupe scope); NULL keys are never deduplicated.
CREATE UNIQUE INDEX ux_capreq_ledger_idempotency
  ON os_process.capreq_ledger (tenant_id, capreq_id, idempotency_key)
  WHERE idempotency_key IS NOT NULL;
-- One request's events in append order (its replay path). Unique (the id alone already is) so that the
-- current table's foreign key can carry the key: a current row only points at an event of its own request.
CREATE UNIQUE INDEX ix_capreq_ledger_tenant_capreq_event
  ON os_process.capreq_ledger (tenant_id, capreq_id, capreq_event_id);

CREATE TABLE os_process.capreq_current (
  tenant_id           text        NOT NULL CHECK (length(tenant_id) BETWEEN 1 AND 64),
  capreq_id           text        NOT NULL CHECK (length(capreq_id) BETWEEN 1 AND 128),
  requester_user_id   text        NOT NULL CHECK (length(requester_user_id) BETWEEN 1 AND 128),
  status              text        NOT NULL CHECK (status IN (
                        'DRAFT', 'PENDING_APPROVAL', 'APPROVED', 'REJECTED', 'FULFILLED', 'CANCELED')),
  last_action         text        NOT NULL CHECK (last_action IN (
                        'CREATE_DRAFT', 'SUBMIT_FOR_APPROVAL', 'APPROVE', 'REJECT', 'FULFILL', 'CANCEL')),
  payload_hash        text        NOT NULL CHECK (length(payload_hash) BETWEEN 1 AND 128),
  source_event_id     bigint      NOT NULL,
  updated_at          timestamptz NOT NULL,
  last_reason_code    text        NOT NULL CHECK (length(last_reason_code) BETWEEN 1 AND 96),
  PRIMARY KEY (tenant_id, capreq_id),
  -- Upstream's source_event_id -> capreq_ledger.capreq_event_id, carrying the key (see the index above).
  CONSTRAINT fk_capreq_current_source_event
    FOREIGN KEY (tenant_id, capreq_id, source_event_id)
    REFERENCES os_process.capreq_ledger (tenant_id, capreq_id, capreq_event_id)
    DEFERRABLE INITIALLY DEFERRED
);
CREATE UNIQUE INDEX ux_capreq_current_tenant_capreq_source_event
  ON os_process.capreq_current (tenant_id, capreq_id, source_event_id);

SELECT selene_ops.enable_tenant_rls('os_process.capreq_ledger');
SELECT selene_ops.make_append_only('os_process.capreq_ledger', 'CAPREQ_APPEND_ONLY_VIOLATION');
SELECT selene_ops.enable_tenant_rls('os_process.capreq_current');
SELECT selene_ops.make_projection('os_process.capreq_current');
SELECT selene_ops.make_shadow('os_process.capreq_current');
