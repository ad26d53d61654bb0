-- 0015: PH1.POSITION (seed 000 row 22): the ledger position_lifecycle_events, its current table positions,
-- and PH1.ONB.BIZ's tenant_companies, which positions need first (docs/DB_WIRING/PH1_POSITION.md).
-- Upstream has no DDL for any of them: the columns are its runtime records', the index names are ours, and
-- the tables are PH1.F runtime state, so os_core. tenant_companies is the projection of the
-- TENANT_COMPANY_UPSERTED audit rows (an upsert upstream).

CREATE TABLE os_core.tenant_companies (
  tenant_id        text        NOT NULL CHECK (length(tenant_id) BETWEEN 1 AND 64),
  company_id       text        NOT NULL CHECK (length(company_id) BETWEEN 1 AND 64),
  legal_name       text        NOT NULL CHECK (length(legal_name) BETWEEN 1 AND 128),
  jurisdiction     text        NOT NULL CHECK (length(jurisdiction) BETWEEN 1 AND 64),
  lifecycle_state  text        NOT NULL CHECK (lifecycle_state IN ('DRAFT', 'ACTIVE', 'SUSPENDED', 'RETIRED')),
  created_at       timestamptz NOT NULL,
  updated_at       timestamptz NOT NULL CHECK (updated_at >= created_at),
  CONSTRAINT pk_tenant_companies PRIMARY KEY (tenant_id, company_id)
);

CREATE TABLE os_core.position_lifecycle_events (
  event_id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  event_uuid        uuid        NOT NULL,
  tenant_id         text        NOT NULL CHECK (length(tenant_id) BETWEEN 1 AND 64),
  engine_id         text        NOT NULL CHECK (length(engine_id) BETWEEN 1 AND 64),
  event_type        text        NOT NULL CHECK (event_type IN ('POSITION_SIM_001_CREATE_DRAFT',
                      'POSITION_SIM_004_ACTIVATE_COMMIT', 'POSITION_SIM_005_RETIRE_OR_SUSPEND_COMMIT')),
  schema_version    integer     NOT NULL CHECK (schema_version >= 1),
  correlation_id    text        NOT NULL CHECK (length(correlation_id) BETWEEN 1 AND 128),
  turn_id           text        CHECK (length(turn_id) BETWEEN 1 AND 128),
  idempotency_key   text        CHECK (length(idempotency_key) BETWEEN 1 AND 128),
  position_id       text        NOT NULL CHECK (length(position_id) BETWEEN 1 AND 64),
  action            text        NOT NULL CHECK (action IN ('CREATE_DRAFT', 'ACTIVATE', 'SUSPEND', 'RETIRE', 'POLICY_OVERRIDE')),
  from_state        text        NOT NULL CHECK (from_state IN ('DRAFT', 'ACTIVE', 'SUSPENDED', 'RETIRED')),
  to_state          text        NOT NULL CHECK (to_state IN ('DRAFT', 'ACTIVE', 'SUSPENDED', 'RETIRED')),
  reason_code       text        NOT NULL CHECK (length(reason_code) BETWEEN 1 AND 96),
  simulation_id     text        NOT NULL CHECK (length(simulation_id) BETWEEN 1 AND 96),
  actor_user_id     text        NOT NULL CHECK (length(actor_user_id) BETWEEN 1 AND 128),
  occurred_at       timestamptz NOT NULL,
  recorded_at       timestamptz NOT NULL DEFAULT now(),
  payload           jsonb       NOT NULL CHECK (octet_length(payload::text) <= 16384),
  content_sha256    bytea       NOT NULL CHECK (length(content_sha256) = 32),
  source_topic      text        NOT NULL,
  source_partition  integer     NOT NULL,
  source_offset     bigint      NOT NULL,
  CONSTRAINT ux_position_lifecycle_events_tenant_event_uuid UNIQUE (tenant_id, event_uuid)
);
-- Scoped idempotency: (tenant, position, state entered, key). The state entered separates the sheet's
-- per-commit scopes (create: DRAFT, activate: ACTIVE, retire or suspend: the requested state, as its doc says);
-- the create's natural key is the position id, derived from it. NULL keys are never deduplicated.
CREATE UNIQUE INDEX ux_position_lifecycle_events_idempotency
  ON os_core.position_lifecycle_events (tenant_id, position_id, to_state, idempotency_key)
  WHERE idempotency_key IS NOT NULL;
-- One position's lifecycle in append order.
CREATE INDEX ix_position_lifecycle_events_tenant_position_event
  ON os_core.position_lifecycle_events (tenant_id, position_id, event_id);

CREATE TABLE os_core.positions (
  tenant_id               text        NOT NULL CHECK (length(tenant_id) BETWEEN 1 AND 64),
  position_id             text        NOT NULL CHECK (length(position_id) BETWEEN 1 AND 64),
  company_id              text        NOT NULL CHECK (length(company_id) BETWEEN 1 AND 64),
  position_title          text        NOT NULL CHECK (length(position_title) BETWEEN 1 AND 128),
  department              text        NOT NULL CHECK (length(department) BETWEEN 1 AND 128),
  jurisdiction            text        NOT NULL CHECK (length(jurisdiction) BETWEEN 1 AND 64),
  schedule_type           text        NOT NULL CHECK (schedule_type IN ('FULL_TIME', 'PART_TIME', 'CONTRACT', 'SHIFT')),
  permission_profile_ref  text        NOT NULL CHECK (length(permission_profile_ref) BETWEEN 1 AND 128),
  compensation_band_ref   text        NOT NULL CHECK (length(compensation_band_ref) BETWEEN 1 AND 128),
  lifecycle_state         text        NOT NULL CHECK (lifecycle_state IN ('DRAFT', 'ACTIVE', 'SUSPENDED', 'RETIRED')),
  created_at              timestamptz NOT NULL,
  updated_at              timestamptz NOT NULL CHECK (updated_at >= created_at),
  CONSTRAINT pk_positions PRIMARY KEY (tenant_id, position_id)
);
-- The natural key: one position per (tenant, company, title, department, jurisdiction).
CREATE UNIQUE INDEX ux_positions_tenant_company_title_department_jurisdiction
  ON os_core.positions (tenant_id, company_id, position_title, department, jurisdiction);
-- A company's positions.
CREATE INDEX ix_positions_tenant_company ON os_core.positions (tenant_id, company_id);

SELECT selene_ops.enable_tenant_rls('os_core.tenant_companies');
SELECT selene_ops.make_projection('os_core.tenant_companies');
SELECT selene_ops.make_shadow('os_core.tenant_companies');
SELECT selene_ops.enable_tenant_rls('os_core.position_lifecycle_events');
SELECT selene_ops.make_append_only('os_core.position_lifecycle_events', 'POSITION_APPEND_ONLY_VIOLATION');
SELECT selene_ops.enable_tenant_rls('os_core.positions');
SELECT selene_ops.make_projection('os_core.positions');
SELECT selene_ops.make_shadow('os_core.positions');
