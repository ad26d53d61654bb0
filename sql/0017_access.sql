-- 0017: PH1.ACCESS.001 + PH2.ACCESS.002 (seed 000 row 10): the current table access_instances (the projection of
-- ACCESS_INSTANCE_UPSERT_COMMIT audit rows), the ledger access_overrides, and access_active_scopes, the writer's
-- read model of each instance's ACTIVE override per scope (docs/DB_WIRING/PH1_ACCESS_001_PH2_ACCESS_002.md).
-- Upstream's BIGINT times are timestamptz (created_at/updated_at of an override: its occurred_at) and its
-- BIGINT reason codes text names. Foreign keys to identities and between these tables are checked by the
-- writer instead (see the doc): projections are rebuilt and swapped one by one, which a key across them would
-- forbid.

CREATE TABLE os_core.access_instances (
  access_instance_id         text        NOT NULL CHECK (length(access_instance_id) BETWEEN 1 AND 64),
  tenant_id                  text        NOT NULL CHECK (length(tenant_id) BETWEEN 1 AND 64),
  user_id                    text        NOT NULL CHECK (length(user_id) BETWEEN 1 AND 128),
  role_template_id           text        NOT NULL CHECK (length(role_template_id) BETWEEN 1 AND 96),
  effective_access_mode      text        NOT NULL CHECK (effective_access_mode IN ('R', 'W', 'A', 'X')),
  baseline_permissions_json  jsonb       NOT NULL CHECK (length(baseline_permissions_json::text) BETWEEN 1 AND 4096),
  identity_verified          boolean     NOT NULL,
  verification_level         text        NOT NULL CHECK (verification_level IN ('NONE', 'PASSCODE_TIME', 'BIOMETRIC', 'STEP_UP')),
  device_trust_level         text        NOT NULL CHECK (device_trust_level IN ('DTL1', 'DTL2', 'DTL3', 'DTL4')),
  lifecycle_state            text        NOT NULL CHECK (lifecycle_state IN ('RESTRICTED', 'ACTIVE', 'SUSPENDED')),
  policy_snapshot_ref        text        NOT NULL CHECK (length(policy_snapshot_ref) BETWEEN 1 AND 128),
  created_at                 timestamptz NOT NULL,
  updated_at                 timestamptz NOT NULL CHECK (updated_at >= created_at),
  idempotency_key            text        CHECK (length(idempotency_key) BETWEEN 1 AND 128),
  CONSTRAINT pk_access_instances PRIMARY KEY (access_instance_id)
);
CREATE UNIQUE INDEX ux_access_instances_tenant_user ON os_core.access_instances (tenant_id, user_id);
CREATE UNIQUE INDEX ux_access_instances_tenant_instance ON os_core.access_instances (tenant_id, access_instance_id);
CREATE UNIQUE INDEX ux_access_instances_tenant_user_idempotency
  ON os_core.access_instances (tenant_id, user_id, idempotency_key) WHERE idempotency_key IS NOT NULL;

CREATE TABLE os_core.access_overrides (
  access_override_event_id    bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  event_uuid                  uuid        NOT NULL,
  tenant_id                   text        NOT NULL CHECK (length(tenant_id) BETWEEN 1 AND 64),
  engine_id                   text        NOT NULL CHECK (length(engine_id) BETWEEN 1 AND 64),
  event_type                  text        NOT NULL CHECK (event_type IN ('ACCESS_OVERRIDE_TEMP_GRANT_COMMIT',
                                'ACCESS_OVERRIDE_PERM_GRANT_COMMIT', 'ACCESS_OVERRIDE_REVOKE_COMMIT')),
  schema_version              integer     NOT NULL CHECK (schema_version >= 1),
  correlation_id              text        NOT NULL CHECK (length(correlation_id) BETWEEN 1 AND 128),
  turn_id                     text        CHECK (length(turn_id) BETWEEN 1 AND 128),
  -- Required by the writer (the override id derives from it); NULL-able like every ledger's envelope key.
  idempotency_key             text        CHECK (length(idempotency_key) BETWEEN 1 AND 128),
  occurred_at                 timestamptz NOT NULL,
  override_id                 text        NOT NULL CHECK (length(override_id) BETWEEN 1 AND 64),
  access_instance_id          text        NOT NULL CHECK (length(access_instance_id) BETWEEN 1 AND 64),
  override_type               text        NOT NULL CHECK (override_type IN ('ONE_SHOT', 'TEMPORARY', 'PERMANENT', 'REVOKE')),
  scope_json                  jsonb       NOT NULL CHECK (length(scope_json::text) BETWEEN 1 AND 4096),
  status                      text        NOT NULL CHECK (status IN ('ACTIVE', 'EXPIRED', 'REVOKED')),
  approved_by_user_id         text        NOT NULL CHECK (length(approved_by_user_id) BETWEEN 1 AND 128),
  approved_via_simulation_id  text        NOT NULL CHECK (length(approved_via_simulation_id) BETWEEN 1 AND 96),
  reason_code                 text        NOT NULL CHECK (length(reason_code) BETWEEN 1 AND 96),
  starts_at                   timestamptz NOT NULL,
  expires_at                  timestamptz CHECK (expires_at IS NULL OR expires_at > starts_at),
  recorded_at                 timestamptz NOT NULL DEFAULT now(),
  payload                     jsonb       NOT NULL CHECK (octet_length(payload::text) <= 16384),
  content_sha256              bytea       NOT NULL CHECK (length(content_sha256) = 32),
  source_topic                text        NOT NULL,
  source_partition            integer     NOT NULL,
  source_offset               bigint      NOT NULL,
  CONSTRAINT ux_access_overrides_tenant_event_uuid UNIQUE (tenant_id, event_uuid),
  CONSTRAINT ck_access_overrides_revoke_status CHECK ((override_type = 'REVOKE') = (status = 'REVOKED'))
);
CREATE UNIQUE INDEX ux_access_overrides_tenant_override ON os_core.access_overrides (tenant_id, override_id);
-- Scoped idempotency (the sheet's dedupe scope); NULL keys are never deduplicated.
CREATE UNIQUE INDEX ux_access_overrides_tenant_instance_idempotency
  ON os_core.access_overrides (tenant_id, access_instance_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX ix_access_overrides_instance_status_window
  ON os_core.access_overrides (access_instance_id, status, starts_at, expires_at);
-- Stricter than upstream's overlap rule (kept, as the sheet says): one ACTIVE row per (instance, scope), ever.
CREATE UNIQUE INDEX ux_access_overrides_active_scope
  ON os_core.access_overrides (access_instance_id, scope_json) WHERE status = 'ACTIVE';

CREATE TABLE os_core.access_active_scopes (
  tenant_id           text        NOT NULL CHECK (length(tenant_id) BETWEEN 1 AND 64),
  access_instance_id  text        NOT NULL CHECK (length(access_instance_id) BETWEEN 1 AND 64),
  scope_hash          text        NOT NULL CHECK (length(scope_hash) BETWEEN 1 AND 64),
  override_id         text        NOT NULL CHECK (length(override_id) BETWEEN 1 AND 64),
  starts_at           timestamptz NOT NULL,
  expires_at          timestamptz CHECK (expires_at IS NULL OR expires_at > starts_at),
  source_event_id     bigint      NOT NULL,
  CONSTRAINT pk_access_active_scopes PRIMARY KEY (tenant_id, access_instance_id, scope_hash)
);

SELECT selene_ops.enable_tenant_rls('os_core.access_instances');
SELECT selene_ops.make_projection('os_core.access_instances');
SELECT selene_ops.make_shadow('os_core.access_instances');
SELECT selene_ops.enable_tenant_rls('os_core.access_overrides');
SELECT selene_ops.make_append_only('os_core.access_overrides', 'ACCESS_APPEND_ONLY_VIOLATION');
SELECT selene_ops.enable_tenant_rls('os_core.access_active_scopes');
SELECT selene_ops.make_projection('os_core.access_active_scopes');
SELECT selene_ops.make_shadow('os_core.access_active_scopes');
