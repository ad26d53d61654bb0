-- 0005: SELENE_OS_CORE_TABLES, the work-order slice (seeds 001 and 002; docs/DB_WIRING/SELENE_OS_CORE_TABLES.md).
--
-- os_core.work_order_ledger is the only authoritative table of the slice. work_orders_current, and also
-- work_order_step_attempts and work_order_leases, are projections of it: the writer derives them from the
-- ledger's events (STEP_ATTEMPT_*, LEASE_*), so a rebuild from the ledger reproduces all three. Foreign keys
-- carry the tenant (a row can only point at a work order of its own tenant) and are DEFERRABLE, so that a
-- rebuild can replace a projection inside one transaction.

-- Bounded JSON maps: CHECK constraints cannot hold subqueries, so the key count is a function.
CREATE FUNCTION selene_ops.jsonb_key_count(j jsonb) RETURNS integer
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  AS $$ SELECT count(*)::integer FROM jsonb_object_keys(j) $$;
GRANT EXECUTE ON FUNCTION selene_ops.jsonb_key_count(jsonb) TO selene_writer, selene_reader, selene_operator;

-- The ledger. work_order_event_id is the monotonic append id (rebuild order); event_uuid is the envelope's id.
CREATE TABLE os_core.work_order_ledger (
  work_order_event_id bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  event_uuid          uuid        NOT NULL,
  tenant_id           text        NOT NULL CHECK (length(tenant_id) BETWEEN 1 AND 64),
  engine_id           text        NOT NULL CHECK (length(engine_id) BETWEEN 1 AND 64),
  event_type          text        NOT NULL CHECK (event_type IN (
                        'WORK_ORDER_CREATED', 'FIELDS_SET', 'PROMPT_ASKED', 'CLARIFICATION_RESOLVED',
                        'STATUS_CHANGED', 'WORK_ORDER_CANCELED', 'STEP_ATTEMPT_STARTED', 'STEP_ATTEMPT_FINISHED',
                        'LEASE_ACQUIRED', 'LEASE_RELEASED', 'EXTERNAL_APPROVAL_REQUESTED',
                        'EXTERNAL_APPROVAL_ANSWERED', 'EXTERNAL_APPROVAL_EXPIRED', 'WAIT_NOTICE_EMITTED')),
  schema_version      integer     NOT NULL CHECK (schema_version >= 1),
  correlation_id      text        NOT NULL CHECK (length(correlation_id) BETWEEN 1 AND 128),
  turn_id             text        CHECK (length(turn_id) BETWEEN 1 AND 128),
  idempotency_key     text        CHECK (length(idempotency_key) BETWEEN 1 AND 128),
  work_order_id       text        NOT NULL CHECK (length(work_order_id) BETWEEN 1 AND 128),
  reason_code         text        CHECK (length(reason_code) BETWEEN 1 AND 96),
  occurred_at         timestamptz NOT NULL,
  recorded_at         timestamptz NOT NULL DEFAULT now(),
  payload             jsonb       NOT NULL CHECK (octet_length(payload::text) <= 16384),
  content_sha256      bytea       NOT NULL CHECK (length(content_sha256) = 32),
  source_topic        text        NOT NULL,
  source_partition    integer     NOT NULL,
  source_offset       bigint      NOT NULL,
  CONSTRAINT ux_work_order_ledger_tenant_event_uuid UNIQUE (tenant_id, event_uuid),
  -- A cancel is an appended event with a reason, never an in-place change (seed 001, section 4).
  CONSTRAINT ck_work_order_ledger_cancel_reason CHECK (
    reason_code IS NOT NULL
    OR NOT (event_type = 'WORK_ORDER_CANCELED'
            OR (event_type = 'STATUS_CHANGED' AND payload ->> 'to_status' = 'CANCELED')))
);
-- Scoped idempotency (seed 001): a key is unique within (tenant, work order); NULL keys never collide.
CREATE UNIQUE INDEX ux_work_order_ledger_tenant_work_order_event
  ON os_core.work_order_ledger (tenant_id, work_order_id, idempotency_key);
-- OS_WORK_ORDER_LEDGER_READ: one work order's events in append order.
CREATE INDEX ix_work_order_ledger_tenant_work_order_event_id
  ON os_core.work_order_ledger (tenant_id, work_order_id, work_order_event_id);

CREATE TABLE os_core.work_orders_current (
  work_order_id                     text        PRIMARY KEY CHECK (length(work_order_id) BETWEEN 1 AND 128),
  tenant_id                         text        NOT NULL CHECK (length(tenant_id) BETWEEN 1 AND 64),
  correlation_id                    text        NOT NULL CHECK (length(correlation_id) BETWEEN 1 AND 128),
  requester_user_id                 text        NOT NULL CHECK (length(requester_user_id) BETWEEN 1 AND 128),
  intent_type                       text        NOT NULL CHECK (length(intent_type) BETWEEN 1 AND 64),
  status                            text        NOT NULL CHECK (status IN (
                                      'DRAFT', 'CLARIFY', 'CONFIRM', 'EXECUTING', 'DONE', 'FAILED', 'CANCELED')),
  status_reason_code                text        CHECK (length(status_reason_code) BETWEEN 1 AND 96),
  -- Bumped by every change a prompt could depend on (fields, resolutions, status, approval state); a repeated
  -- prompt_dedupe_key is suppressed while this has not moved since the key was used.
  state_version                     bigint      NOT NULL CHECK (state_version >= 0),
  fields_json                       jsonb       NOT NULL CHECK (
                                      jsonb_typeof(fields_json) = 'object'
                                      AND selene_ops.jsonb_key_count(fields_json) <= 64
                                      AND octet_length(fields_json::text) <= 32768),
  prefilled_json                    jsonb       NOT NULL CHECK (
                                      jsonb_typeof(prefilled_json) = 'object'
                                      AND selene_ops.jsonb_key_count(prefilled_json) <= 64
                                      AND octet_length(prefilled_json::text) <= 32768),
  -- field_key -> {"asked_at", "attempts", "kind"}
  asked_fields_json                 jsonb       NOT NULL CHECK (
                                      jsonb_typeof(asked_fields_json) = 'object'
                                      AND selene_ops.jsonb_key_count(asked_fields_json) <= 64
                                      AND octet_length(asked_fields_json::text) <= 32768),
  -- field_key -> {"value", "kind", "resolved_by", "resolved_at"}
  resolved_fields_json              jsonb       NOT NULL CHECK (
                                      jsonb_typeof(resolved_fields_json) = 'object'
                                      AND selene_ops.jsonb_key_count(resolved_fields_json) <= 64
                                      AND octet_length(resolved_fields_json::text) <= 32768),
  -- The set of used prompt dedupe keys, each with the state_version it was last used at.
  prompt_dedupe_keys_json           jsonb       NOT NULL CHECK (
                                      jsonb_typeof(prompt_dedupe_keys_json) = 'object'
                                      AND selene_ops.jsonb_key_count(prompt_dedupe_keys_json) <= 64
                                      AND octet_length(prompt_dedupe_keys_json::text) <= 32768),
  external_approval_pending         boolean     NOT NULL,
  external_approval_request_id      text        CHECK (length(external_approval_request_id) BETWEEN 1 AND 128),
  external_approval_target_user_id  text        CHECK (length(external_approval_target_user_id) BETWEEN 1 AND 128),
  external_approval_expires_at      timestamptz,
  -- The one wait notice of the pending request (seed 001: one wait message, then wait posture).
  external_approval_wait_notice_at  timestamptz,
  external_approval_outcome         text        CHECK (external_approval_outcome IN ('APPROVED', 'DENIED', 'EXPIRED')),
  created_at                        timestamptz NOT NULL,
  updated_at                        timestamptz NOT NULL,
  last_event_id                     bigint      NOT NULL,
  CONSTRAINT ux_work_orders_current_tenant_work_order UNIQUE (tenant_id, work_order_id),
  CONSTRAINT ux_work_orders_current_tenant_correlation UNIQUE (tenant_id, correlation_id),
  CONSTRAINT fk_work_orders_current_last_event FOREIGN KEY (last_event_id)
    REFERENCES os_core.work_order_ledger (work_order_event_id) DEFERRABLE INITIALLY DEFERRED,
  CONSTRAINT ck_work_orders_current_approval_pending CHECK (
    NOT external_approval_pending
    OR (external_approval_request_id IS NOT NULL AND external_approval_target_user_id IS NOT NULL
        AND external_approval_expires_at IS NOT NULL AND external_approval_outcome IS NULL)),
  CONSTRAINT ck_work_orders_current_canceled_reason CHECK (status <> 'CANCELED' OR status_reason_code IS NOT NULL)
);
-- WORKORDER_LIST_PENDING: a requester's pending work orders, most recent first.
CREATE INDEX ix_work_orders_current_tenant_requester_pending
  ON os_core.work_orders_current (tenant_id, requester_user_id, updated_at DESC, work_order_id DESC)
  WHERE status IN ('DRAFT', 'CLARIFY', 'CONFIRM');

-- Attempt history of a work order's steps (a projection of STEP_ATTEMPT_STARTED / STEP_ATTEMPT_FINISHED).
CREATE TABLE os_core.work_order_step_attempts (
  work_order_id        text        NOT NULL CHECK (length(work_order_id) BETWEEN 1 AND 128),
  step_id              text        NOT NULL CHECK (length(step_id) BETWEEN 1 AND 128),
  attempt_no           integer     NOT NULL CHECK (attempt_no BETWEEN 1 AND 1000),
  tenant_id            text        NOT NULL CHECK (length(tenant_id) BETWEEN 1 AND 64),
  status               text        NOT NULL CHECK (status IN ('STARTED', 'SUCCEEDED', 'FAILED')),
  lease_id             text        CHECK (length(lease_id) BETWEEN 1 AND 128),
  started_at           timestamptz NOT NULL,
  finished_at          timestamptz,
  outcome_reason_code  text        CHECK (length(outcome_reason_code) BETWEEN 1 AND 96),
  last_event_id        bigint      NOT NULL,
  PRIMARY KEY (work_order_id, step_id, attempt_no),
  CONSTRAINT fk_work_order_step_attempts_work_order FOREIGN KEY (tenant_id, work_order_id)
    REFERENCES os_core.work_orders_current (tenant_id, work_order_id) DEFERRABLE INITIALLY DEFERRED,
  CONSTRAINT fk_work_order_step_attempts_last_event FOREIGN KEY (last_event_id)
    REFERENCES os_core.work_order_ledger (work_order_event_id) DEFERRABLE INITIALLY DEFERRED,
  CONSTRAINT ck_work_order_step_attempts_finished CHECK ((status = 'STARTED') = (finished_at IS NULL))
);
CREATE INDEX ix_work_order_step_attempts_tenant_work_order
  ON os_core.work_order_step_attempts (tenant_id, work_order_id);

-- Who may execute a work order now (a projection of LEASE_ACQUIRED / LEASE_RELEASED): one lease per work order.
CREATE TABLE os_core.work_order_leases (
  work_order_id   text        PRIMARY KEY CHECK (length(work_order_id) BETWEEN 1 AND 128),
  tenant_id       text        NOT NULL CHECK (length(tenant_id) BETWEEN 1 AND 64),
  lease_id        text        NOT NULL CHECK (length(lease_id) BETWEEN 1 AND 128),
  holder_id       text        NOT NULL CHECK (length(holder_id) BETWEEN 1 AND 128),
  status          text        NOT NULL CHECK (status IN ('HELD', 'RELEASED')),
  acquired_at     timestamptz NOT NULL,
  expires_at      timestamptz NOT NULL,
  released_at     timestamptz,
  last_event_id   bigint      NOT NULL,
  CONSTRAINT fk_work_order_leases_work_order FOREIGN KEY (tenant_id, work_order_id)
    REFERENCES os_core.work_orders_current (tenant_id, work_order_id) DEFERRABLE INITIALLY DEFERRED,
  CONSTRAINT fk_work_order_leases_last_event FOREIGN KEY (last_event_id)
    REFERENCES os_core.work_order_ledger (work_order_event_id) DEFERRABLE INITIALLY DEFERRED,
  CONSTRAINT ck_work_order_leases_released CHECK ((status = 'RELEASED') = (released_at IS NOT NULL)),
  CONSTRAINT ck_work_order_leases_expiry CHECK (expires_at > acquired_at)
);
CREATE INDEX ix_work_order_leases_tenant_work_order ON os_core.work_order_leases (tenant_id, work_order_id);

SELECT selene_ops.enable_tenant_rls('os_core.work_order_ledger');
SELECT selene_ops.enable_tenant_rls('os_core.work_orders_current');
SELECT selene_ops.enable_tenant_rls('os_core.work_order_step_attempts');
SELECT selene_ops.enable_tenant_rls('os_core.work_order_leases');
SELECT selene_ops.make_append_only('os_core.work_order_ledger', 'OS_WORK_ORDER_APPEND_ONLY_VIOLATION');
SELECT selene_ops.make_projection('os_core.work_orders_current');
SELECT selene_ops.make_projection('os_core.work_order_step_attempts');
SELECT selene_ops.make_projection('os_core.work_order_leases');
SELECT selene_ops.make_shadow('os_core.work_orders_current');
SELECT selene_ops.make_shadow('os_core.work_order_step_attempts');
SELECT selene_ops.make_shadow('os_core.work_order_leases');

-- A work order id binds to one tenant for good: before creating one the writer must see whether another
-- tenant holds the id, so it may read (never write) work_orders_current across tenants, as it does the
-- PH1.F bindings (0002). Reads through the reader role stay confined to one tenant.
CREATE POLICY writer_binding_read ON os_core.work_orders_current FOR SELECT TO selene_writer USING (true);

-- Producers confirm an append (or learn why it was refused) by the envelope's event id.
CREATE INDEX ix_dead_letters_event_uuid ON selene_ops.dead_letters (event_uuid) WHERE event_uuid IS NOT NULL;
