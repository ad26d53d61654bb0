-- 0006: engine capability maps (seed 003): the ledger os_process.engine_capability_maps and its current
-- projection engine_capability_maps_current (docs/DB_WIRING/ENGINE_CAPABILITY_MAPS_TABLES.md).
--
-- engine_id is the seed's: the engine whose capability is mapped, part of every key. The envelope's
-- engine id (the engine that published the event, engine_id on every other ledger) is publisher_engine_id
-- here, so both are kept.

CREATE TABLE os_process.engine_capability_maps (
  engine_capability_map_event_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  event_uuid              uuid        NOT NULL,
  tenant_id               text        NOT NULL CHECK (length(tenant_id) BETWEEN 1 AND 64),
  publisher_engine_id     text        NOT NULL CHECK (length(publisher_engine_id) BETWEEN 1 AND 64),
  event_type              text        NOT NULL CHECK (event_type IN
                            ('CAPABILITY_MAP_PUBLISHED', 'CAPABILITY_MAP_ACTIVATED', 'CAPABILITY_MAP_DEPRECATED')),
  schema_version          integer     NOT NULL CHECK (schema_version >= 1),
  correlation_id          text        NOT NULL CHECK (length(correlation_id) BETWEEN 1 AND 128),
  turn_id                 text        CHECK (length(turn_id) BETWEEN 1 AND 128),
  idempotency_key         text        CHECK (length(idempotency_key) BETWEEN 1 AND 128),
  engine_id               text        NOT NULL CHECK (length(engine_id) BETWEEN 1 AND 64),
  capability_id           text        NOT NULL CHECK (length(capability_id) BETWEEN 1 AND 96),
  capability_map_version  integer     NOT NULL CHECK (capability_map_version >= 1),
  reason_code             text        NOT NULL CHECK (length(reason_code) BETWEEN 1 AND 96),
  capability_name         text        NOT NULL CHECK (length(capability_name) BETWEEN 1 AND 256),
  input_schema            text        NOT NULL CHECK (length(input_schema) BETWEEN 1 AND 256),
  output_schema           text        NOT NULL CHECK (length(output_schema) BETWEEN 1 AND 256),
  allowed_callers         text        NOT NULL CHECK (length(allowed_callers) BETWEEN 1 AND 64),
  side_effects            text        NOT NULL CHECK (length(side_effects) BETWEEN 1 AND 256),
  occurred_at             timestamptz NOT NULL,
  recorded_at             timestamptz NOT NULL DEFAULT now(),
  payload                 jsonb       NOT NULL CHECK (octet_length(payload::text) <= 16384),
  content_sha256          bytea       NOT NULL CHECK (length(content_sha256) = 32),
  source_topic            text        NOT NULL,
  source_partition        integer     NOT NULL,
  source_offset           bigint      NOT NULL,
  CONSTRAINT ux_engine_capability_maps_tenant_event_uuid UNIQUE (tenant_id, event_uuid)
);
-- Scoped idempotency (seed 003); NULL keys are never deduplicated.
CREATE UNIQUE INDEX ux_engine_capability_maps_idempotency
  ON os_process.engine_capability_maps (tenant_id, engine_id, capability_id, capability_map_version, idempotency_key)
  WHERE idempotency_key IS NOT NULL;
-- The replay path of one capability, in append order. Unique (the id alone already is) so that the current
-- table's foreign key can carry the key: a current row can only point at an event of its own tenant, engine
-- and capability.
CREATE UNIQUE INDEX ix_engine_capability_maps_tenant_engine_cap_event
  ON os_process.engine_capability_maps (tenant_id, engine_id, capability_id, engine_capability_map_event_id);

-- One current route per (tenant, engine, capability): the highest version seen, as its latest event left it.
CREATE TABLE os_process.engine_capability_maps_current (
  tenant_id               text        NOT NULL CHECK (length(tenant_id) BETWEEN 1 AND 64),
  engine_id               text        NOT NULL CHECK (length(engine_id) BETWEEN 1 AND 64),
  capability_id           text        NOT NULL CHECK (length(capability_id) BETWEEN 1 AND 96),
  capability_map_version  integer     NOT NULL CHECK (capability_map_version >= 1),
  status                  text        NOT NULL CHECK (status IN ('PUBLISHED', 'ACTIVE', 'DEPRECATED')),
  reason_code             text        NOT NULL CHECK (length(reason_code) BETWEEN 1 AND 96),
  capability_name         text        NOT NULL CHECK (length(capability_name) BETWEEN 1 AND 256),
  input_schema            text        NOT NULL CHECK (length(input_schema) BETWEEN 1 AND 256),
  output_schema           text        NOT NULL CHECK (length(output_schema) BETWEEN 1 AND 256),
  allowed_callers         text        NOT NULL CHECK (length(allowed_callers) BETWEEN 1 AND 64),
  side_effects            text        NOT NULL CHECK (length(side_effects) BETWEEN 1 AND 256),
  publisher_engine_id     text        NOT NULL CHECK (length(publisher_engine_id) BETWEEN 1 AND 64),
  updated_at              timestamptz NOT NULL,
  source_event_id         bigint      NOT NULL,
  PRIMARY KEY (tenant_id, engine_id, capability_id),
  -- The seed's source_event_id -> engine_capability_map_event_id, carrying the key (see the index above).
  CONSTRAINT fk_engine_capability_maps_current_source_event
    FOREIGN KEY (tenant_id, engine_id, capability_id, source_event_id)
    REFERENCES os_process.engine_capability_maps (tenant_id, engine_id, capability_id, engine_capability_map_event_id)
    DEFERRABLE INITIALLY DEFERRED
);
CREATE UNIQUE INDEX ux_engine_capability_maps_current_tenant_engine_cap_version
  ON os_process.engine_capability_maps_current (tenant_id, engine_id, capability_id, capability_map_version);

SELECT selene_ops.enable_tenant_rls('os_process.engine_capability_maps');
SELECT selene_ops.make_append_only('os_process.engine_capability_maps', 'ECM_APPEND_ONLY_VIOLATION');
SELECT selene_ops.enable_tenant_rls('os_process.engine_capability_maps_current');
SELECT selene_ops.make_projection('os_process.engine_capability_maps_current');
SELECT selene_ops.make_shadow('os_process.engine_capability_maps_current');
