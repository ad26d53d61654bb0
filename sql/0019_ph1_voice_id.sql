-- 0019: PH1.VOICE.ID (seed 000 row 9), voice enrollment (docs/DB_WIRING/PH1_VOICE_ID.md): the ledger
-- voice_enrollment_samples and the current tables voice_enrollment_sessions, voice_profiles and
-- voice_profile_bindings, with the sheet's names. Upstream has no tenant_id; here every table has it, leading
-- every key, with row-level security. Times are timestamptz and reason codes text names (project rules).
--
-- The commands are PH1.VOICE.ID rows of os_core.audit_events; the writer appends each accepted sample here
-- and projects the current tables from those rows. No foreign key from the samples to the sessions: a
-- ledger row outlives a rebuild of the current tables, which replaces their rows.

CREATE TABLE os_core.voice_enrollment_samples (
  sample_id                    bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  event_uuid                   uuid        NOT NULL,
  tenant_id                    text        NOT NULL CHECK (length(tenant_id) BETWEEN 1 AND 64),
  engine_id                    text        NOT NULL CHECK (length(engine_id) BETWEEN 1 AND 64),
  event_type                   text        NOT NULL CHECK (length(event_type) BETWEEN 1 AND 64),
  schema_version               integer     NOT NULL CHECK (schema_version >= 1),
  correlation_id               text        NOT NULL CHECK (length(correlation_id) BETWEEN 1 AND 128),
  turn_id                      text        CHECK (length(turn_id) BETWEEN 1 AND 128),
  idempotency_key              text        CHECK (length(idempotency_key) BETWEEN 1 AND 128),
  voice_enrollment_session_id  text        NOT NULL CHECK (length(voice_enrollment_session_id) BETWEEN 1 AND 64),
  sample_seq                   integer     NOT NULL CHECK (sample_seq BETWEEN 1 AND 32767),
  attempt_index                integer     NOT NULL CHECK (attempt_index BETWEEN 1 AND 32767),
  audio_sample_ref             text        NOT NULL CHECK (length(audio_sample_ref) BETWEEN 1 AND 256
                                                           AND btrim(audio_sample_ref) <> ''),
  result                       text        NOT NULL CHECK (result IN ('PASS', 'FAIL')),
  reason_code                  text        CHECK (length(reason_code) BETWEEN 1 AND 96),
  occurred_at                  timestamptz NOT NULL,
  recorded_at                  timestamptz NOT NULL DEFAULT now(),
  payload                      jsonb       NOT NULL CHECK (octet_length(payload::text) <= 16384),
  content_sha256               bytea       NOT NULL CHECK (length(content_sha256) = 32),
  source_topic                 text        NOT NULL,
  source_partition             integer     NOT NULL,
  source_offset                bigint      NOT NULL,
  CONSTRAINT ux_voice_enrollment_samples_tenant_event_uuid UNIQUE (tenant_id, event_uuid),
  CONSTRAINT ck_voice_enrollment_samples_fail_reason CHECK (result = 'PASS' OR reason_code IS NOT NULL)
);
CREATE UNIQUE INDEX ux_voice_enrollment_samples_session_idempotency
  ON os_core.voice_enrollment_samples (tenant_id, voice_enrollment_session_id, idempotency_key);
CREATE INDEX ix_voice_enrollment_samples_session_seq
  ON os_core.voice_enrollment_samples (tenant_id, voice_enrollment_session_id, sample_seq);

CREATE TABLE os_core.voice_enrollment_sessions (
  tenant_id                      text        NOT NULL CHECK (length(tenant_id) BETWEEN 1 AND 64),
  voice_enrollment_session_id    text        NOT NULL CHECK (length(voice_enrollment_session_id) BETWEEN 1 AND 64),
  onboarding_session_id          text        NOT NULL CHECK (length(onboarding_session_id) BETWEEN 1 AND 128),
  device_id                      text        NOT NULL,
  voice_profile_id               text        CHECK (length(voice_profile_id) BETWEEN 1 AND 64),
  voice_enroll_status            text        NOT NULL CHECK (voice_enroll_status IN (
                                   'IN_PROGRESS', 'LOCKED', 'PENDING', 'DECLINED')),
  lock_after_consecutive_passes  smallint    NOT NULL CHECK (lock_after_consecutive_passes BETWEEN 2 AND 5),
  consecutive_passes             smallint    NOT NULL CHECK (consecutive_passes >= 0),
  attempt_count                  smallint    NOT NULL CHECK (attempt_count >= 0),
  max_total_attempts             smallint    NOT NULL CHECK (max_total_attempts BETWEEN 5 AND 20),
  max_session_enroll_time_ms     integer     NOT NULL CHECK (max_session_enroll_time_ms BETWEEN 60000 AND 300000),
  reason_code                    text        CHECK (length(reason_code) BETWEEN 1 AND 96),
  deferred_until                 timestamptz,
  created_at                     timestamptz NOT NULL,
  updated_at                     timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, voice_enrollment_session_id),
  CONSTRAINT fk_voice_enrollment_sessions_device FOREIGN KEY (tenant_id, device_id)
    REFERENCES os_core.devices (tenant_id, device_id) DEFERRABLE INITIALLY DEFERRED
);
CREATE UNIQUE INDEX ux_voice_enrollment_sessions_onb_device
  ON os_core.voice_enrollment_sessions (tenant_id, onboarding_session_id, device_id);
CREATE INDEX ix_voice_enrollment_sessions_device_status
  ON os_core.voice_enrollment_sessions (tenant_id, device_id, voice_enroll_status, updated_at);

CREATE TABLE os_core.voice_profiles (
  tenant_id              text        NOT NULL CHECK (length(tenant_id) BETWEEN 1 AND 64),
  onboarding_session_id  text        NOT NULL CHECK (length(onboarding_session_id) BETWEEN 1 AND 128),
  device_id              text        NOT NULL,
  voice_profile_id       text        NOT NULL CHECK (length(voice_profile_id) BETWEEN 1 AND 64),
  created_at             timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, voice_profile_id),
  CONSTRAINT fk_voice_profiles_device FOREIGN KEY (tenant_id, device_id)
    REFERENCES os_core.devices (tenant_id, device_id) DEFERRABLE INITIALLY DEFERRED
);
CREATE UNIQUE INDEX ux_voice_profiles_onb_device ON os_core.voice_profiles (tenant_id, onboarding_session_id, device_id);

CREATE TABLE os_core.voice_profile_bindings (
  tenant_id              text        NOT NULL CHECK (length(tenant_id) BETWEEN 1 AND 64),
  onboarding_session_id  text        NOT NULL CHECK (length(onboarding_session_id) BETWEEN 1 AND 128),
  device_id              text        NOT NULL,
  voice_profile_id       text        NOT NULL,
  created_at             timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, onboarding_session_id, device_id),
  CONSTRAINT fk_voice_profile_bindings_device FOREIGN KEY (tenant_id, device_id)
    REFERENCES os_core.devices (tenant_id, device_id) DEFERRABLE INITIALLY DEFERRED,
  CONSTRAINT fk_voice_profile_bindings_profile FOREIGN KEY (tenant_id, voice_profile_id)
    REFERENCES os_core.voice_profiles (tenant_id, voice_profile_id) DEFERRABLE INITIALLY DEFERRED
);

SELECT selene_ops.enable_tenant_rls('os_core.voice_enrollment_samples');
SELECT selene_ops.make_append_only('os_core.voice_enrollment_samples', 'VID_APPEND_ONLY_VIOLATION');
SELECT selene_ops.enable_tenant_rls('os_core.voice_enrollment_sessions');
SELECT selene_ops.make_projection('os_core.voice_enrollment_sessions');
SELECT selene_ops.make_shadow('os_core.voice_enrollment_sessions');
SELECT selene_ops.enable_tenant_rls('os_core.voice_profiles');
SELECT selene_ops.make_projection('os_core.voice_profiles');
SELECT selene_ops.make_shadow('os_core.voice_profiles');
SELECT selene_ops.enable_tenant_rls('os_core.voice_profile_bindings');
SELECT selene_ops.make_projection('os_core.voice_profile_bindings');
SELECT selene_ops.make_shadow('os_core.voice_profile_bindings');
