-- 0002: PH1.F foundation: identities, devices, sessions and the conversation ledger.
--
-- Identities, devices and sessions are current tables. Their writes arrive as PH1.F/PH1.L events on the
-- audit ledger, so they are rebuildable from it like every other projection (docs/DB_WIRING/PH1_F.md).
-- Foreign keys carry the tenant, so a row can only reference rows of its own tenant, and they are
-- DEFERRABLE so that a rebuild can replace a projection inside one transaction.

CREATE TABLE os_core.identities (
  user_id        text        PRIMARY KEY CHECK (length(user_id) BETWEEN 1 AND 128),
  tenant_id      text        NOT NULL CHECK (length(tenant_id) BETWEEN 1 AND 64),
  display_name   text        CHECK (length(display_name) <= 256),
  status         text        NOT NULL CHECK (status IN ('ACTIVE', 'DISABLED')),
  created_at     timestamptz NOT NULL,
  updated_at     timestamptz NOT NULL,
  last_event_id  bigint      NOT NULL,
  CONSTRAINT ux_identities_tenant_user UNIQUE (tenant_id, user_id)
);

CREATE TABLE os_core.devices (
  device_id      text        PRIMARY KEY CHECK (length(device_id) BETWEEN 1 AND 128),
  tenant_id      text        NOT NULL CHECK (length(tenant_id) BETWEEN 1 AND 64),
  user_id        text        NOT NULL,
  device_type    text        NOT NULL CHECK (length(device_type) BETWEEN 1 AND 64),
  status         text        NOT NULL CHECK (status IN ('ACTIVE', 'REVOKED')),
  created_at     timestamptz NOT NULL,
  updated_at     timestamptz NOT NULL,
  last_event_id  bigint      NOT NULL,
  CONSTRAINT ux_devices_tenant_device UNIQUE (tenant_id, device_id),
  CONSTRAINT fk_devices_identity FOREIGN KEY (tenant_id, user_id)
    REFERENCES os_core.identities (tenant_id, user_id) DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX ix_devices_tenant_user ON os_core.devices (tenant_id, user_id);

CREATE TABLE os_core.sessions (
  session_id     text        PRIMARY KEY CHECK (length(session_id) BETWEEN 1 AND 128),
  tenant_id      text        NOT NULL CHECK (length(tenant_id) BETWEEN 1 AND 64),
  user_id        text        NOT NULL,
  device_id      text        NOT NULL,
  status         text        NOT NULL CHECK (status IN ('OPEN', 'CLOSED')),
  opened_at      timestamptz NOT NULL,
  closed_at      timestamptz,
  last_event_id  bigint      NOT NULL,
  CONSTRAINT ux_sessions_tenant_session UNIQUE (tenant_id, session_id),
  CONSTRAINT fk_sessions_identity FOREIGN KEY (tenant_id, user_id)
    REFERENCES os_core.identities (tenant_id, user_id) DEFERRABLE INITIALLY DEFERRED,
  CONSTRAINT fk_sessions_device FOREIGN KEY (tenant_id, device_id)
    REFERENCES os_core.devices (tenant_id, device_id) DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX ix_sessions_tenant_user_device ON os_core.sessions (tenant_id, user_id, device_id);

-- PH1.F conversation ledger: one row per conversation turn message.
CREATE TABLE conversation.conversation_ledger (
  conversation_turn_id bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  event_uuid           uuid        NOT NULL,
  tenant_id            text        NOT NULL CHECK (length(tenant_id) BETWEEN 1 AND 64),
  engine_id            text        NOT NULL CHECK (length(engine_id) BETWEEN 1 AND 64),
  event_type           text        NOT NULL CHECK (length(event_type) BETWEEN 1 AND 64),
  schema_version       integer     NOT NULL CHECK (schema_version >= 1),
  correlation_id       text        NOT NULL CHECK (length(correlation_id) BETWEEN 1 AND 128),
  turn_id              text        CHECK (length(turn_id) BETWEEN 1 AND 128),
  idempotency_key      text        CHECK (length(idempotency_key) BETWEEN 1 AND 128),
  user_id              text,
  device_id            text,
  session_id           text,
  speaker              text        NOT NULL CHECK (speaker IN ('USER', 'SELENE')),
  source               text        NOT NULL CHECK (source IN ('VOICE', 'TEXT', 'SYSTEM')),
  text_body            text        NOT NULL CHECK (length(text_body) <= 8192),
  occurred_at          timestamptz NOT NULL,
  recorded_at          timestamptz NOT NULL DEFAULT now(),
  payload              jsonb       NOT NULL CHECK (octet_length(payload::text) <= 16384),
  content_sha256       bytea       NOT NULL CHECK (length(content_sha256) = 32),
  source_topic         text        NOT NULL,
  source_partition     integer     NOT NULL,
  source_offset        bigint      NOT NULL,
  CONSTRAINT ux_conversation_ledger_tenant_event_uuid UNIQUE (tenant_id, event_uuid)
);
CREATE UNIQUE INDEX ux_conversation_ledger_tenant_correlation_idempotency
  ON conversation.conversation_ledger (tenant_id, correlation_id, idempotency_key);
CREATE INDEX ix_conversation_ledger_tenant_correlation_turn
  ON conversation.conversation_ledger (tenant_id, correlation_id, conversation_turn_id);

SELECT selene_ops.enable_tenant_rls('os_core.identities');
SELECT selene_ops.enable_tenant_rls('os_core.devices');
SELECT selene_ops.enable_tenant_rls('os_core.sessions');
SELECT selene_ops.enable_tenant_rls('conversation.conversation_ledger');
SELECT selene_ops.make_append_only('conversation.conversation_ledger', 'PH1_F_CONVERSATION_APPEND_ONLY_VIOLATION');
SELECT selene_ops.make_projection('os_core.identities');
SELECT selene_ops.make_projection('os_core.devices');
SELECT selene_ops.make_projection('os_core.sessions');

-- One deterministic tenant binding per user, device and session: before binding a key the writer must see
-- whether another tenant already holds it, so it may read (never write) these three tables across
-- tenants. Its writes stay confined to the tenants it declared (the tenant_scope policy's WITH CHECK).
CREATE POLICY writer_binding_read ON os_core.identities FOR SELECT TO selene_writer USING (true);
CREATE POLICY writer_binding_read ON os_core.devices FOR SELECT TO selene_writer USING (true);
CREATE POLICY writer_binding_read ON os_core.sessions FOR SELECT TO selene_writer USING (true);
