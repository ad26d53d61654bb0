-- 0003: PH1.J audit ledger (os_core.audit_events), as seeds 002 and 004 use it.

-- PH1.J: the audit ledger. event_id is the monotonic append id; event_uuid is the envelope's event id.
CREATE TABLE os_core.audit_events (
  event_id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  event_uuid        uuid        NOT NULL,
  tenant_id         text        NOT NULL CHECK (length(tenant_id) BETWEEN 1 AND 64),
  engine_id         text        NOT NULL CHECK (length(engine_id) BETWEEN 1 AND 64),
  event_type        text        NOT NULL CHECK (length(event_type) BETWEEN 1 AND 64),
  reason_code       text        NOT NULL CHECK (length(reason_code) BETWEEN 1 AND 96),
  schema_version    integer     NOT NULL CHECK (schema_version >= 1),
  correlation_id    text        NOT NULL CHECK (length(correlation_id) BETWEEN 1 AND 128),
  turn_id           text        CHECK (length(turn_id) BETWEEN 1 AND 128),
  idempotency_key   text        CHECK (length(idempotency_key) BETWEEN 1 AND 128),
  user_id           text,
  device_id         text,
  session_id        text,
  occurred_at       timestamptz NOT NULL,
  recorded_at       timestamptz NOT NULL DEFAULT now(),
  payload           jsonb       NOT NULL CHECK (octet_length(payload::text) <= 16384),
  content_sha256    bytea       NOT NULL CHECK (length(content_sha256) = 32),
  source_topic      text        NOT NULL,
  source_partition  integer     NOT NULL,
  source_offset     bigint      NOT NULL,
  CONSTRAINT ux_audit_events_tenant_event_uuid UNIQUE (tenant_id, event_uuid),
  CONSTRAINT fk_audit_events_identity FOREIGN KEY (tenant_id, user_id)
    REFERENCES os_core.identities (tenant_id, user_id) DEFERRABLE INITIALLY DEFERRED,
  CONSTRAINT fk_audit_events_device FOREIGN KEY (tenant_id, device_id)
    REFERENCES os_core.devices (tenant_id, device_id) DEFERRABLE INITIALLY DEFERRED,
  CONSTRAINT fk_audit_events_session FOREIGN KEY (tenant_id, session_id)
    REFERENCES os_core.sessions (tenant_id, session_id) DEFERRABLE INITIALLY DEFERRED
);
-- Scoped idempotency: a key is unique within (tenant, correlation); NULL keys are never deduplicated.
CREATE UNIQUE INDEX ux_audit_events_tenant_correlation_idempotency
  ON os_core.audit_events (tenant_id, correlation_id, idempotency_key);
CREATE INDEX ix_audit_events_tenant_correlation_event ON os_core.audit_events (tenant_id, correlation_id, event_id);

-- Projections reference the ledger row that last changed them.
ALTER TABLE os_core.identities ADD CONSTRAINT fk_identities_last_event
  FOREIGN KEY (last_event_id) REFERENCES os_core.audit_events (event_id) DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE os_core.devices ADD CONSTRAINT fk_devices_last_event
  FOREIGN KEY (last_event_id) REFERENCES os_core.audit_events (event_id) DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE os_core.sessions ADD CONSTRAINT fk_sessions_last_event
  FOREIGN KEY (last_event_id) REFERENCES os_core.audit_events (event_id) DEFERRABLE INITIALLY DEFERRED;

SELECT selene_ops.enable_tenant_rls('os_core.audit_events');
SELECT selene_ops.make_append_only('os_core.audit_events', 'PH1_J_AUDIT_APPEND_ONLY_VIOLATION');
