-- 0022: PH1.LINK (seed 000 row 20): upstream's three SQL tables (onboarding_drafts, onboarding_link_tokens,
-- the append-only onboarding_draft_write_dedupe) and its runtime's link_delivery_proofs ledger
-- (docs/DB_WIRING/PH1_LINK.md). Upstream names no schema: onboarding is PH1.F runtime state, so os_core.
-- A link is a token of a draft (token_id = link id). Upstream has no tenant_id on the write-dedupe ledger, and
-- global draft and token ids: here tenant_id is on every table with row-level security and leads every key.
-- Upstream's BIGINT times are timestamptz (created_at of a ledger row is the envelope's occurred_at).

CREATE TABLE os_core.onboarding_draft_write_dedupe (
  dedupe_id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  event_uuid        uuid        NOT NULL,
  tenant_id         text        NOT NULL CHECK (length(tenant_id) BETWEEN 1 AND 64),
  engine_id         text        NOT NULL CHECK (length(engine_id) BETWEEN 1 AND 64),
  event_type        text        NOT NULL CHECK (length(event_type) BETWEEN 1 AND 96),
  schema_version    integer     NOT NULL CHECK (schema_version >= 1),
  correlation_id    text        NOT NULL CHECK (length(correlation_id) BETWEEN 1 AND 128),
  turn_id           text        CHECK (length(turn_id) BETWEEN 1 AND 128),
  idempotency_key   text        CHECK (length(idempotency_key) BETWEEN 1 AND 128),
  scope_type        text        NOT NULL CHECK (scope_type IN ('LINK', 'ONB')),
  scope_id          text        NOT NULL CHECK (length(scope_id) BETWEEN 1 AND 128),
  write_hash        text        NOT NULL CHECK (length(write_hash) BETWEEN 1 AND 128),
  occurred_at       timestamptz NOT NULL,
  recorded_at       timestamptz NOT NULL DEFAULT now(),
  payload           jsonb       NOT NULL CHECK (octet_length(payload::text) <= 16384),
  content_sha256    bytea       NOT NULL CHECK (length(content_sha256) = 32),
  source_topic      text        NOT NULL,
  source_partition  integer     NOT NULL,
  source_offset     bigint      NOT NULL,
  CONSTRAINT ux_onboarding_draft_write_dedupe_tenant_event_uuid UNIQUE (tenant_id, event_uuid)
);
-- Upstream's (scope_type, scope_id, idempotency_key), within the tenant: the scoped idempotency key. Upstream's
-- key is NOT NULL; here, as on every ledger, a commit without a key is appended without dedupe.
CREATE UNIQUE INDEX ux_onboarding_draft_write_dedupe_scope_key
  ON os_core.onboarding_draft_write_dedupe (tenant_id, scope_type, scope_id, idempotency_key)
  WHERE idempotency_key IS NOT NULL;

CREATE TABLE os_core.link_delivery_proofs (
  proof_id                bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  event_uuid              uuid        NOT NULL,
  tenant_id               text        NOT NULL CHECK (length(tenant_id) BETWEEN 1 AND 64),
  engine_id               text        NOT NULL CHECK (length(engine_id) BETWEEN 1 AND 64),
  event_type              text        NOT NULL CHECK (event_type IN ('LINK_DELIVERY_PROOF_RECORDED')),
  schema_version          integer     NOT NULL CHECK (schema_version >= 1),
  correlation_id          text        NOT NULL CHECK (length(correlation_id) BETWEEN 1 AND 128),
  turn_id                 text        CHECK (length(turn_id) BETWEEN 1 AND 128),
  idempotency_key         text        CHECK (length(idempotency_key) BETWEEN 1 AND 128),
  delivery_proof_ref      text        NOT NULL CHECK (length(delivery_proof_ref) BETWEEN 1 AND 128),
  link_id                 text        NOT NULL CHECK (length(link_id) BETWEEN 1 AND 128),
  delivery_method         text        NOT NULL CHECK (delivery_method IN ('SMS', 'EMAIL', 'WHATSAPP', 'WECHAT', 'QR', 'COPY_LINK')),
  recipient_contact_hash  text        NOT NULL CHECK (length(recipient_contact_hash) BETWEEN 1 AND 128),
  delivery_status         text        NOT NULL CHECK (delivery_status IN ('QUEUED', 'SENT', 'FAIL')),
  occurred_at             timestamptz NOT NULL,
  recorded_at             timestamptz NOT NULL DEFAULT now(),
  payload                 jsonb       NOT NULL CHECK (octet_length(payload::text) <= 16384),
  content_sha256          bytea       NOT NULL CHECK (length(content_sha256) = 32),
  source_topic            text        NOT NULL,
  source_partition        integer     NOT NULL,
  source_offset           bigint      NOT NULL,
  CONSTRAINT ux_link_delivery_proofs_tenant_event_uuid UNIQUE (tenant_id, event_uuid)
);
-- The send's dedupe (link, method, recipient, key); NULL keys are never deduplicated.
CREATE UNIQUE INDEX ux_link_delivery_proofs_idempotency
  ON os_core.link_delivery_proofs (tenant_id, link_id, delivery_method, recipient_contact_hash, idempotency_key)
  WHERE idempotency_key IS NOT NULL;
-- The runtime's key: a proof reference names one proof.
CREATE UNIQUE INDEX ux_link_delivery_proofs_tenant_ref ON os_core.link_delivery_proofs (tenant_id, delivery_proof_ref);
-- A link's proofs in append order.
CREATE INDEX ix_link_delivery_proofs_tenant_link ON os_core.link_delivery_proofs (tenant_id, link_id, proof_id);

CREATE TABLE os_core.onboarding_drafts (
  tenant_id                     text        NOT NULL CHECK (length(tenant_id) BETWEEN 1 AND 64),
  draft_id                      text        NOT NULL CHECK (length(draft_id) BETWEEN 1 AND 128),
  invitee_type                  text        NOT NULL CHECK (invitee_type IN ('HOUSEHOLD', 'EMPLOYEE', 'CONTRACTOR', 'REFERRAL')),
  schema_version_id             text        CHECK (length(schema_version_id) BETWEEN 1 AND 128),
  creator_user_id               text        NOT NULL CHECK (length(creator_user_id) BETWEEN 1 AND 128),
  draft_payload_json            jsonb       NOT NULL,
  missing_required_fields_json  jsonb       NOT NULL,
  status                        text        NOT NULL CHECK (status IN ('DRAFT_CREATED', 'READY_TO_SEND', 'COMMITTED', 'REVOKED', 'EXPIRED')),
  created_at                    timestamptz NOT NULL,
  updated_at                    timestamptz NOT NULL CHECK (updated_at >= created_at),
  committed_entity_id           text        CHECK (length(committed_entity_id) BETWEEN 1 AND 128),
  idempotency_key               text        CHECK (length(idempotency_key) BETWEEN 1 AND 128),
  CONSTRAINT ux_onboarding_drafts_tenant_draft PRIMARY KEY (tenant_id, draft_id),
  CONSTRAINT ck_onboarding_drafts_employee_schema CHECK (invitee_type <> 'EMPLOYEE' OR schema_version_id IS NOT NULL)
);
CREATE UNIQUE INDEX ux_onboarding_drafts_idempotency
  ON os_core.onboarding_drafts (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL;

CREATE TABLE os_core.onboarding_link_tokens (
  token_id                       text        NOT NULL CHECK (length(token_id) BETWEEN 1 AND 128),
  draft_id                       text        NOT NULL CHECK (length(draft_id) BETWEEN 1 AND 128),
  tenant_id                      text        NOT NULL CHECK (length(tenant_id) BETWEEN 1 AND 64),
  token_signature                text        NOT NULL CHECK (length(token_signature) BETWEEN 1 AND 128),
  expires_at                     timestamptz NOT NULL,
  status                         text        NOT NULL CHECK (status IN ('DRAFT_CREATED', 'SENT', 'OPENED', 'ACTIVATED', 'CONSUMED', 'REVOKED', 'EXPIRED', 'BLOCKED')),
  bound_device_fingerprint_hash  text        CHECK (length(bound_device_fingerprint_hash) BETWEEN 1 AND 128),
  created_at                     timestamptz NOT NULL,
  updated_at                     timestamptz NOT NULL CHECK (updated_at >= created_at),
  consumed_at                    timestamptz,
  revoked_at                     timestamptz,
  CONSTRAINT ux_onboarding_link_tokens_token_tenant PRIMARY KEY (token_id, tenant_id),
  -- Upstream's draft_id -> onboarding_drafts, carrying the tenant.
  CONSTRAINT fk_onboarding_link_tokens_draft FOREIGN KEY (tenant_id, draft_id)
    REFERENCES os_core.onboarding_drafts (tenant_id, draft_id) DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX ix_onboarding_link_tokens_draft_status ON os_core.onboarding_link_tokens (draft_id, status);

SELECT selene_ops.enable_tenant_rls('os_core.onboarding_draft_write_dedupe');
SELECT selene_ops.make_append_only('os_core.onboarding_draft_write_dedupe', 'LINK_APPEND_ONLY_VIOLATION');
SELECT selene_ops.enable_tenant_rls('os_core.link_delivery_proofs');
SELECT selene_ops.make_append_only('os_core.link_delivery_proofs', 'LINK_APPEND_ONLY_VIOLATION');
SELECT selene_ops.enable_tenant_rls('os_core.onboarding_drafts');
SELECT selene_ops.make_projection('os_core.onboarding_drafts');
SELECT selene_ops.make_shadow('os_core.onboarding_drafts');
SELECT selene_ops.enable_tenant_rls('os_core.onboarding_link_tokens');
SELECT selene_ops.make_projection('os_core.onboarding_link_tokens');
SELECT selene_ops.make_shadow('os_core.onboarding_link_tokens');
