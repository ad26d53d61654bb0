-- PBS tables (seed 000 row 4): the ledger os_process.process_blueprints and its current projection
-- os_process.blueprint_registry (docs/DB_WIRING/PBS_TABLES.md). Upstream's created_at is the envelope's
-- occurred_at; its BIGINT reason code a text name; its contract-only status enum a CHECK.

CREATE TABLE os_process.process_blueprints (
  process_blueprint_event_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  event_uuid              uuid        NOT NULL,
  tenant_id               text        NOT NULL CHECK (length(tenant_id) BETWEEN 1 AND 64),
  engine_id               text        NOT NULL CHECK (length(engine_id) BETWEEN 1 AND 64),
  event_type              text        NOT NULL CHECK (event_type IN ('PROCESS_BLUEPRINT_RECORDED')),
  schema_version          integer     NOT NULL CHECK (schema_version >= 1),
  correlation_id          text        NOT NULL CHECK (length(correlation_id) BETWEEN 1 AND 128),
  turn_id                 text        CHECK (length(turn_id) BETWEEN 1 AND 128),
  idempotency_key         text        CHECK (length(idempotency_key) BETWEEN 1 AND 128),
  process_id              text        NOT NULL CHECK (length(process_id) BETWEEN 1 AND 96),
  blueprint_version       integer     NOT NULL CHECK (blueprint_version >= 1),
  intent_type             text        NOT NULL CHECK (length(intent_type) BETWEEN 1 AND 96),
  status                  text        NOT NULL CHECK (status IN ('DRAFT', 'ACTIVE', 'RETIRED')),
  ordered_step_count      integer     NOT NULL CHECK (ordered_step_count BETWEEN 1 AND 65535),
  confirmation_step_count integer     NOT NULL CHECK (confirmation_step_count BETWEEN 0 AND 65535),
  simulation_requirements_hash text   NOT NULL CHECK (length(simulation_requirements_hash) BETWEEN 1 AND 128),
  reason_code             text        NOT NULL CHECK (length(reason_code) BETWEEN 1 AND 96),
  occurred_at             timestamptz NOT NULL,
  recorded_at             timestamptz NOT NULL DEFAULT now(),
  payload                 jsonb       NOT NULL CHECK (octet_length(payload::text) <= 16384),
  content_sha256          bytea       NOT NULL CHECK (length(content_sha256) = 32),
  source_topic            text        NOT NULL,
  source_partition        integer     NOT NULL,
  source_offset           bigint      NOT NULL,
  CONSTRAINT ux_process_blueprints_tenant_event_uuid UNIQUE (tenant_id, event_uuid),
  CONSTRAINT ck_process_blueprints_confirmations CHECK (confirmation_step_count <= ordered_step_count)
);
-- Scoped idempotency; NULL keys are never deduplicated.
CREATE UNIQUE INDEX ux_process_blueprints_idempotency
  ON os_process.process_blueprints (tenant_id, process_id, blueprint_version, idempotency_key)
  WHERE idempotency_key IS NOT NULL;
-- An intent's blueprints in append order. Unique (the id alone already is) so that the registry's foreign
-- key can carry the intent: a registry row points only at an event of its own tenant and intent.
CREATE UNIQUE INDEX ix_process_blueprints_tenant_intent_event
  ON os_process.process_blueprints (tenant_id, intent_type, process_blueprint_event_id);

-- One row per (tenant, intent): the blueprint that serves it (upstream's status table,
-- consumers/projections/pbs.py).
CREATE TABLE os_process.blueprint_registry (
  tenant_id               text        NOT NULL CHECK (length(tenant_id) BETWEEN 1 AND 64),
  intent_type             text        NOT NULL CHECK (length(intent_type) BETWEEN 1 AND 96),
  process_id              text        NOT NULL CHECK (length(process_id) BETWEEN 1 AND 96),
  blueprint_version       integer     NOT NULL CHECK (blueprint_version >= 1),
  status                  text        NOT NULL CHECK (status IN ('DRAFT', 'ACTIVE', 'RETIRED')),
  source_event_id         bigint      NOT NULL CHECK (source_event_id > 0),
  updated_at              timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, intent_type),
  -- Checked at commit: within one batch an intent may leave a (process, version) that another then takes.
  CONSTRAINT ux_blueprint_registry_tenant_process_version UNIQUE (tenant_id, process_id, blueprint_version)
    DEFERRABLE INITIALLY DEFERRED,
  CONSTRAINT fk_blueprint_registry_source_event
    FOREIGN KEY (tenant_id, intent_type, source_event_id)
    REFERENCES os_process.process_blueprints (tenant_id, intent_type, process_blueprint_event_id)
    DEFERRABLE INITIALLY DEFERRED
);

SELECT selene_ops.enable_tenant_rls('os_process.process_blueprints');
SELECT selene_ops.make_append_only('os_process.process_blueprints', 'PBS_APPEND_ONLY_VIOLATION');
SELECT selene_ops.enable_tenant_rls('os_process.blueprint_registry');
SELECT selene_ops.make_projection('os_process.blueprint_registry');
SELECT selene_ops.make_shadow('os_process.blueprint_registry');
