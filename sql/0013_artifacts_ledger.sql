-- Artifacts ledger (seed 000 row 7): the ledger os_process.artifacts_ledger, its version guard
-- os_process.artifact_versions (a projection), and the tool cache os_core.tool_cache
-- (docs/DB_WIRING/ARTIFACTS_LEDGER_TABLES.md). Upstream has no tenant_id on either table: here both have it,
-- with row-level security, and it leads every key and index the sheet names. Upstream's created_at is the
-- envelope's occurred_at; its contract-only enums are CHECKs.

CREATE TABLE os_process.artifacts_ledger (
  artifact_id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  event_uuid              uuid        NOT NULL,
  tenant_id               text        NOT NULL CHECK (length(tenant_id) BETWEEN 1 AND 64),
  engine_id               text        NOT NULL CHECK (length(engine_id) BETWEEN 1 AND 64),
  event_type              text        NOT NULL CHECK (event_type IN ('ARTIFACT_RECORDED')),
  schema_version          integer     NOT NULL CHECK (schema_version >= 1),
  correlation_id          text        NOT NULL CHECK (length(correlation_id) BETWEEN 1 AND 128),
  turn_id                 text        CHECK (length(turn_id) BETWEEN 1 AND 128),
  idempotency_key         text        CHECK (length(idempotency_key) BETWEEN 1 AND 128),
  scope_type              text        NOT NULL CHECK (scope_type IN ('TENANT', 'USER', 'DEVICE')),
  scope_id                text        NOT NULL CHECK (length(scope_id) BETWEEN 1 AND 128),
  artifact_type           text        NOT NULL CHECK (artifact_type IN ('WAKE_PACK', 'STT_VOCAB_PACK',
                            'STT_ROUTING_POLICY_PACK', 'STT_ADAPTATION_PROFILE', 'TTS_PRONUNCIATION_PACK',
                            'TTS_ROUTING_POLICY_PACK')),
  artifact_version        integer     NOT NULL CHECK (artifact_version >= 1),
  package_hash            text        NOT NULL CHECK (length(package_hash) BETWEEN 1 AND 128),
  payload_ref             text        NOT NULL CHECK (length(payload_ref) BETWEEN 1 AND 256),
  created_by              text        NOT NULL CHECK (length(created_by) BETWEEN 1 AND 96),
  provenance_ref          text        NOT NULL CHECK (length(provenance_ref) BETWEEN 1 AND 128),
  status                  text        NOT NULL CHECK (status IN ('ACTIVE', 'ROLLED_BACK', 'DEPRECATED')),
  occurred_at             timestamptz NOT NULL,
  recorded_at             timestamptz NOT NULL DEFAULT now(),
  payload                 jsonb       NOT NULL CHECK (octet_length(payload::text) <= 16384),
  content_sha256          bytea       NOT NULL CHECK (length(content_sha256) = 32),
  source_topic            text        NOT NULL,
  source_partition        integer     NOT NULL,
  source_offset           bigint      NOT NULL,
  CONSTRAINT ux_artifacts_ledger_tenant_event_uuid UNIQUE (tenant_id, event_uuid)
);
-- One row per (scope, type, version); the writer refuses a second one before the append (artifact_versions),
-- this is the backstop.
CREATE UNIQUE INDEX ux_artifacts_ledger_scope_type_scope_id_type_version
  ON os_process.artifacts_ledger (tenant_id, scope_type, scope_id, artifact_type, artifact_version);
-- Scoped idempotency; NULL keys are never deduplicated.
CREATE UNIQUE INDEX ux_artifacts_ledger_idempotency
  ON os_process.artifacts_ledger (tenant_id, scope_type, scope_id, artifact_type, artifact_version, idempotency_key)
  WHERE idempotency_key IS NOT NULL;
-- An artifact's versions in append order. Unique (the id alone already is) so that artifact_versions' foreign
-- key can carry the artifact: a version row points only at an event of its own tenant, scope and type.
CREATE UNIQUE INDEX ix_artifacts_ledger_scope_type_scope_id_type_artifact_id
  ON os_process.artifacts_ledger (tenant_id, scope_type, scope_id, artifact_type, artifact_id);

-- Not in the sheet: the versions recorded, one row each (the writer's duplicate-version guard, rebuildable).
CREATE TABLE os_process.artifact_versions (
  tenant_id               text        NOT NULL CHECK (length(tenant_id) BETWEEN 1 AND 64),
  scope_type              text        NOT NULL CHECK (scope_type IN ('TENANT', 'USER', 'DEVICE')),
  scope_id                text        NOT NULL CHECK (length(scope_id) BETWEEN 1 AND 128),
  artifact_type           text        NOT NULL CHECK (length(artifact_type) BETWEEN 1 AND 64),
  artifact_version        integer     NOT NULL CHECK (artifact_version >= 1),
  status                  text        NOT NULL CHECK (status IN ('ACTIVE', 'ROLLED_BACK', 'DEPRECATED')),
  package_hash            text        NOT NULL CHECK (length(package_hash) BETWEEN 1 AND 128),
  updated_at              timestamptz NOT NULL,
  source_event_id         bigint      NOT NULL,
  PRIMARY KEY (tenant_id, scope_type, scope_id, artifact_type, artifact_version),
  CONSTRAINT fk_artifact_versions_source_event
    FOREIGN KEY (tenant_id, scope_type, scope_id, artifact_type, source_event_id)
    REFERENCES os_process.artifacts_ledger (tenant_id, scope_type, scope_id, artifact_type, artifact_id)
    DEFERRABLE INITIALLY DEFERRED
);

SELECT selene_ops.enable_tenant_rls('os_process.artifacts_ledger');
SELECT selene_ops.make_append_only('os_process.artifacts_ledger', 'ART_APPEND_ONLY_VIOLATION');
SELECT selene_ops.enable_tenant_rls('os_process.artifact_versions');
SELECT selene_ops.make_projection('os_process.artifact_versions');
SELECT selene_ops.make_shadow('os_process.artifact_versions');

-- The tool cache: non-authoritative and mutable (an upsert replaces payload and expiry, keeping cache_id).
-- Written and read directly by its repositories, not through Kafka: nothing here is a record of anything.
CREATE TABLE os_core.tool_cache (
  cache_id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tenant_id               text        NOT NULL CHECK (length(tenant_id) BETWEEN 1 AND 64),
  tool_name               text        NOT NULL CHECK (length(tool_name) BETWEEN 1 AND 64),
  query_hash              text        NOT NULL CHECK (length(query_hash) BETWEEN 1 AND 128),
  locale                  text        NOT NULL CHECK (length(locale) BETWEEN 1 AND 32),
  result_payload          jsonb       NOT NULL CHECK (jsonb_typeof(result_payload) = 'string'
                            AND length(result_payload #>> '{}') BETWEEN 1 AND 8192),
  expires_at              timestamptz NOT NULL
);
CREATE UNIQUE INDEX ux_tool_cache_tool_query_locale ON os_core.tool_cache (tenant_id, tool_name, query_hash, locale);
CREATE INDEX ix_tool_cache_expires_at ON os_core.tool_cache (expires_at);

SELECT selene_ops.enable_tenant_rls('os_core.tool_cache');
GRANT SELECT, INSERT, UPDATE, DELETE ON os_core.tool_cache TO selene_writer;
GRANT SELECT ON os_core.tool_cache TO selene_reader, selene_operator;
