-- Simulation catalog (seed 000 row 5): the ledger os_process.simulation_catalog and its current projection
-- simulation_catalog_current (docs/DB_WIRING/SIMULATION_CATALOG_TABLES.md). Upstream's created_at is the
-- envelope's occurred_at; its BIGINT reason code is a text name; its enums, contract-only upstream, are CHECKs.

CREATE TABLE os_process.simulation_catalog (
  simulation_catalog_event_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  event_uuid              uuid        NOT NULL,
  tenant_id               text        NOT NULL CHECK (length(tenant_id) BETWEEN 1 AND 64),
  engine_id               text        NOT NULL CHECK (length(engine_id) BETWEEN 1 AND 64),
  event_type              text        NOT NULL CHECK (event_type IN ('SIMULATION_CATALOG_EVENT')),
  schema_version          integer     NOT NULL CHECK (schema_version >= 1),
  correlation_id          text        NOT NULL CHECK (length(correlation_id) BETWEEN 1 AND 128),
  turn_id                 text        CHECK (length(turn_id) BETWEEN 1 AND 128),
  idempotency_key         text        CHECK (length(idempotency_key) BETWEEN 1 AND 128),
  simulation_id           text        NOT NULL CHECK (length(simulation_id) BETWEEN 1 AND 96),
  simulation_version      integer     NOT NULL CHECK (simulation_version >= 1),
  simulation_type         text        NOT NULL CHECK (simulation_type IN ('DRAFT', 'COMMIT', 'REVOKE')),
  status                  text        NOT NULL CHECK (status IN ('DRAFT', 'ACTIVE', 'DEPRECATED', 'DISABLED')),
  owning_domain           text        NOT NULL CHECK (length(owning_domain) BETWEEN 1 AND 64),
  reads_tables_hash       text        NOT NULL CHECK (length(reads_tables_hash) BETWEEN 1 AND 128),
  writes_tables_hash      text        NOT NULL CHECK (length(writes_tables_hash) BETWEEN 1 AND 128),
  reason_code             text        NOT NULL CHECK (length(reason_code) BETWEEN 1 AND 96),
  occurred_at             timestamptz NOT NULL,
  recorded_at             timestamptz NOT NULL DEFAULT now(),
  payload                 jsonb       NOT NULL CHECK (octet_length(payload::text) <= 16384),
  content_sha256          bytea       NOT NULL CHECK (length(content_sha256) = 32),
  source_topic            text        NOT NULL,
  source_partition        integer     NOT NULL,
  source_offset           bigint      NOT NULL,
  CONSTRAINT ux_simulation_catalog_tenant_event_uuid UNIQUE (tenant_id, event_uuid)
);
-- Scoped idempotency; NULL keys are never deduplicated.
CREATE UNIQUE INDEX ux_simulation_catalog_idempotency
  ON os_process.simulation_catalog (tenant_id, simulation_id, simulation_version, idempotency_key)
  WHERE idempotency_key IS NOT NULL;
-- One simulation's replay path in append order. Unique (the id alone already is) so that the current table's
-- foreign key can carry the key: a current row points only at an event of its own tenant and simulation.
CREATE UNIQUE INDEX ix_simulation_catalog_tenant_simulation_event
  ON os_process.simulation_catalog (tenant_id, simulation_id, simulation_catalog_event_id);

-- One row per (tenant, simulation): the highest version seen, as its latest event left it.
CREATE TABLE os_process.simulation_catalog_current (
  tenant_id               text        NOT NULL CHECK (length(tenant_id) BETWEEN 1 AND 64),
  simulation_id           text        NOT NULL CHECK (length(simulation_id) BETWEEN 1 AND 96),
  simulation_version      integer     NOT NULL CHECK (simulation_version >= 1),
  simulation_type         text        NOT NULL CHECK (simulation_type IN ('DRAFT', 'COMMIT', 'REVOKE')),
  status                  text        NOT NULL CHECK (status IN ('DRAFT', 'ACTIVE', 'DEPRECATED', 'DISABLED')),
  owning_domain           text        NOT NULL CHECK (length(owning_domain) BETWEEN 1 AND 64),
  publisher_engine_id     text        NOT NULL CHECK (length(publisher_engine_id) BETWEEN 1 AND 64),
  updated_at              timestamptz NOT NULL,
  source_event_id         bigint      NOT NULL,
  PRIMARY KEY (tenant_id, simulation_id),
  CONSTRAINT fk_simulation_catalog_current_source_event
    FOREIGN KEY (tenant_id, simulation_id, source_event_id)
    REFERENCES os_process.simulation_catalog (tenant_id, simulation_id, simulation_catalog_event_id)
    DEFERRABLE INITIALLY DEFERRED
);
-- Named by the upstream doc as required, though the primary key already makes it unique.
CREATE UNIQUE INDEX ux_simulation_catalog_current_tenant_simulation_version
  ON os_process.simulation_catalog_current (tenant_id, simulation_id, simulation_version);

SELECT selene_ops.enable_tenant_rls('os_process.simulation_catalog');
SELECT selene_ops.make_append_only('os_process.simulation_catalog', 'SIMCAT_APPEND_ONLY_VIOLATION');
SELECT selene_ops.enable_tenant_rls('os_process.simulation_catalog_current');
SELECT selene_ops.make_projection('os_process.simulation_catalog_current');
SELECT selene_ops.make_shadow('os_process.simulation_catalog_current');
