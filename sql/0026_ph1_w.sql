-- 0026: PH1.W (seed 000 row 12), wake enrollment and runtime (docs/DB_WIRING/PH1_W.md): the ledgers
-- wake_enrollment_samples and wake_runtime_events and the current tables wake_enrollment_sessions and
-- wake_profile_bindings, with the sheet's names. Upstream has no tenant_id; here every table has it, leading
-- every key, with row-level security. Times are timestamptz and reason codes text names (project rules).
--
-- The enrollment commands are PH1.W rows of os_core.audit_events; the writer appends each accepted sample
-- here and projects the current tables from those rows. Runtime events are published to their own ledger.
-- No foreign keys from the ledgers: a ledger row outlives a rebuild of the current tables; the writer's
-- PH1.F reference guard checks a runtime event's user, device and session before it is appended.
--
-- "One IN_PROGRESS session" and "one active binding" per (tenant, user, device) are exclusion constraints
-- with the sheet's index names, deferred to commit: a batch's one upsert may insert the new row before it
-- updates the old one, which a unique index would refuse row by row.

CREATE TABLE os_core.wake_enrollment_samples (
  sample_id                   bigint           GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  event_uuid                  uuid             NOT NULL,
  tenant_id                   text             NOT NULL CHECK (length(tenant_id) BETWEEN 1 AND 64),
  engine_id                   text             NOT NULL CHECK (length(engine_id) BETWEEN 1 AND 64),
  event_type                  text             NOT NULL CHECK (length(event_type) BETWEEN 1 AND 64),
  schema_version              integer          NOT NULL CHECK (schema_version >= 1),
  correlation_id              text             NOT NULL CHECK (length(correlation_id) BETWEEN 1 AND 128),
  turn_id                     text             CHECK (length(turn_id) BETWEEN 1 AND 128),
  idempotency_key             text             CHECK (length(idempotency_key) BETWEEN 1 AND 128
                                                                AND btrim(idempotency_key) <> ''),
  wake_enrollment_session_id  text             NOT NULL CHECK (length(wake_enrollment_session_id) BETWEEN 1 AND 64),
  sample_seq                  integer          NOT NULL CHECK (sample_seq BETWEEN 1 AND 32767),
  sample_duration_ms          integer          NOT NULL CHECK (sample_duration_ms BETWEEN 500 AND 2200),
  vad_coverage                double precision NOT NULL,
  snr_db                      double precision NOT NULL,
  clipping_pct                double precision NOT NULL,
  rms_dbfs                    double precision NOT NULL,
  noise_floor_dbfs            double precision NOT NULL,
  peak_dbfs                   double precision NOT NULL,
  overlap_ratio               double precision NOT NULL,
  result                      text             NOT NULL CHECK (result IN ('PASS', 'FAIL')),
  reason_code                 text             CHECK (length(reason_code) BETWEEN 1 AND 96),
  occurred_at                 timestamptz      NOT NULL,
  recorded_at                 timestamptz      NOT NULL DEFAULT now(),
  payload                     jsonb            NOT NULL CHECK (octet_length(payload::text) <= 16384),
  content_sha256              bytea            NOT NULL CHECK (length(content_sha256) = 32),
  source_topic                text             NOT NULL,
  source_partition            integer          NOT NULL,
  source_offset               bigint           NOT NULL,
  CONSTRAINT ux_wake_enrollment_samples_tenant_event_uuid UNIQUE (tenant_id, event_uuid),
  CONSTRAINT ck_wake_enrollment_samples_fail_reason CHECK ((result = 'FAIL') = (reason_code IS NOT NULL))
);
CREATE UNIQUE INDEX ux_wake_enrollment_samples_session_idempotency
  ON os_core.wake_enrollment_samples (tenant_id, wake_enrollment_session_id, idempotency_key);
CREATE UNIQUE INDEX ux_wake_enrollment_samples_session_seq
  ON os_core.wake_enrollment_samples (tenant_id, wake_enrollment_session_id, sample_seq);

CREATE TABLE os_core.wake_runtime_events (
  runtime_event_id                  bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  event_uuid                        uuid        NOT NULL,
  tenant_id                         text        NOT NULL CHECK (length(tenant_id) BETWEEN 1 AND 64),
  engine_id                         text        NOT NULL CHECK (length(engine_id) BETWEEN 1 AND 64),
  event_type                        text        NOT NULL CHECK (length(event_type) BETWEEN 1 AND 64),
  schema_version                    integer     NOT NULL CHECK (schema_version >= 1),
  correlation_id                    text        NOT NULL CHECK (length(correlation_id) BETWEEN 1 AND 128),
  turn_id                           text        CHECK (length(turn_id) BETWEEN 1 AND 128),
  idempotency_key                   text        CHECK (length(idempotency_key) BETWEEN 1 AND 128
                                                              AND btrim(idempotency_key) <> ''),
  wake_event_id                     text        NOT NULL CHECK (length(wake_event_id) BETWEEN 1 AND 128),
  session_id                        text        CHECK (length(session_id) BETWEEN 1 AND 128),
  user_id                           text        CHECK (length(user_id) BETWEEN 1 AND 128),
  device_id                         text        NOT NULL CHECK (length(device_id) BETWEEN 1 AND 128),
  accepted                          boolean     NOT NULL,
  reason_code                       text        NOT NULL CHECK (length(reason_code) BETWEEN 1 AND 96),
  wake_profile_id                   text        CHECK (length(wake_profile_id) BETWEEN 1 AND 64),
  tts_active_at_trigger             boolean     NOT NULL,
  media_playback_active_at_trigger  boolean     NOT NULL,
  suppression_reason_code           text        CHECK (length(suppression_reason_code) BETWEEN 1 AND 96),
  occurred_at                       timestamptz NOT NULL,
  recorded_at                       timestamptz NOT NULL DEFAULT now(),
  payload                           jsonb       NOT NULL CHECK (octet_length(payload::text) <= 16384),
  content_sha256                    bytea       NOT NULL CHECK (length(content_sha256) = 32),
  source_topic                      text        NOT NULL,
  source_partition                  integer     NOT NULL,
  source_offset                     bigint      NOT NULL,
  CONSTRAINT ux_wake_runtime_events_tenant_event_uuid UNIQUE (tenant_id, event_uuid),
  CONSTRAINT ck_wake_runtime_events_accepted CHECK (accepted = (reason_code = 'W_WAKE_ACCEPTED'))
);
CREATE UNIQUE INDEX ux_wake_runtime_events_device_idempotency
  ON os_core.wake_runtime_events (tenant_id, device_id, idempotency_key);
CREATE INDEX ix_wake_runtime_events_device_created
  ON os_core.wake_runtime_events (tenant_id, device_id, occurred_at);
CREATE INDEX ix_wake_runtime_events_wake_event
  ON os_core.wake_runtime_events (tenant_id, wake_event_id);

CREATE TABLE os_core.wake_enrollment_sessions (
  tenant_id                   text        NOT NULL CHECK (length(tenant_id) BETWEEN 1 AND 64),
  wake_enrollment_session_id  text        NOT NULL CHECK (length(wake_enrollment_session_id) BETWEEN 1 AND 64),
  user_id                     text        NOT NULL,
  device_id                   text        NOT NULL,
  onboarding_session_id       text        CHECK (length(onboarding_session_id) BETWEEN 1 AND 128),
  wake_enroll_status          text        NOT NULL CHECK (wake_enroll_status IN (
                                'IN_PROGRESS', 'PENDING', 'COMPLETE', 'DECLINED')),
  pass_target                 smallint    NOT NULL CHECK (pass_target BETWEEN 3 AND 8),
  pass_count                  smallint    NOT NULL CHECK (pass_count >= 0),
  attempt_count               smallint    NOT NULL CHECK (attempt_count >= 0),
  max_attempts                smallint    NOT NULL CHECK (max_attempts BETWEEN 8 AND 20),
  enrollment_timeout_ms       integer     NOT NULL CHECK (enrollment_timeout_ms BETWEEN 180000 AND 600000),
  reason_code                 text        CHECK (length(reason_code) BETWEEN 1 AND 96),
  wake_profile_id             text        CHECK (length(wake_profile_id) BETWEEN 1 AND 64),
  deferred_until              timestamptz,
  created_at                  timestamptz NOT NULL,
  updated_at                  timestamptz NOT NULL,
  completed_at                timestamptz,
  PRIMARY KEY (tenant_id, wake_enrollment_session_id),
  CONSTRAINT ck_wake_enrollment_sessions_attempts CHECK (attempt_count <= max_attempts),
  CONSTRAINT ux_wake_enrollment_sessions_active_user_device EXCLUDE USING btree
    (tenant_id WITH =, user_id WITH =, device_id WITH =) WHERE (wake_enroll_status = 'IN_PROGRESS')
    DEFERRABLE INITIALLY DEFERRED,
  CONSTRAINT fk_wake_enrollment_sessions_user FOREIGN KEY (tenant_id, user_id)
    REFERENCES os_core.identities (tenant_id, user_id) DEFERRABLE INITIALLY DEFERRED,
  CONSTRAINT fk_wake_enrollment_sessions_device FOREIGN KEY (tenant_id, device_id)
    REFERENCES os_core.devices (tenant_id, device_id) DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX ix_wake_enrollment_sessions_device_status_updated
  ON os_core.wake_enrollment_sessions (tenant_id, device_id, wake_enroll_status, updated_at);

CREATE TABLE os_core.wake_profile_bindings (
  tenant_id         text        NOT NULL CHECK (length(tenant_id) BETWEEN 1 AND 64),
  user_id           text        NOT NULL,
  device_id         text        NOT NULL,
  wake_profile_id   text        NOT NULL CHECK (length(wake_profile_id) BETWEEN 1 AND 64
                                                AND btrim(wake_profile_id) <> ''),
  artifact_version  text        NOT NULL CHECK (length(artifact_version) BETWEEN 1 AND 64
                                                AND btrim(artifact_version) <> ''),
  active            boolean     NOT NULL DEFAULT TRUE,
  created_at        timestamptz NOT NULL,
  updated_at        timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, user_id, device_id, wake_profile_id),
  CONSTRAINT ux_wake_profile_bindings_active_user_device EXCLUDE USING btree
    (tenant_id WITH =, user_id WITH =, device_id WITH =) WHERE (active) DEFERRABLE INITIALLY DEFERRED,
  CONSTRAINT fk_wake_profile_bindings_user FOREIGN KEY (tenant_id, user_id)
    REFERENCES os_core.identities (tenant_id, user_id) DEFERRABLE INITIALLY DEFERRED,
  CONSTRAINT fk_wake_profile_bindings_device FOREIGN KEY (tenant_id, device_id)
    REFERENCES os_core.devices (tenant_id, device_id) DEFERRABLE INITIALLY DEFERRED
);

SELECT selene_ops.enable_tenant_rls('os_core.wake_enrollment_samples');
SELECT selene_ops.make_append_only('os_core.wake_enrollment_samples', 'W_APPEND_ONLY_VIOLATION');
SELECT selene_ops.enable_tenant_rls('os_core.wake_runtime_events');
SELECT selene_ops.make_append_only('os_core.wake_runtime_events', 'W_APPEND_ONLY_VIOLATION');
SELECT selene_ops.enable_tenant_rls('os_core.wake_enrollment_sessions');
SELECT selene_ops.make_projection('os_core.wake_enrollment_sessions');
SELECT selene_ops.make_shadow('os_core.wake_enrollment_sessions');
SELECT selene_ops.enable_tenant_rls('os_core.wake_profile_bindings');
SELECT selene_ops.make_projection('os_core.wake_profile_bindings');
SELECT selene_ops.make_shadow('os_core.wake_profile_bindings');
