-- 0025: PH1.K (seed 000 row 11), voice runtime I/O: the ledger audio_runtime_events and its rebuildable
-- projection audio_runtime_current (docs/DB_WIRING/PH1_K.md), upstream's names, in os_core as upstream has them.
--
-- Upstream's created_at (BIGINT ns) is occurred_at; its reason code (BIGINT) a text name; its session id
-- (BIGINT) this project's text session id. Timings arrive in thousandths as integers (*_milli), the
-- quantisation upstream's current row applies to its doubles. The device's tenant is PH1.F's: the current
-- row's foreign keys carry it to devices and sessions, and the writer refuses another tenant's device first.

CREATE TABLE os_core.audio_runtime_events (
  event_id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  event_uuid             uuid        NOT NULL,
  tenant_id              text        NOT NULL CHECK (length(tenant_id) BETWEEN 1 AND 64),
  engine_id              text        NOT NULL CHECK (length(engine_id) BETWEEN 1 AND 64),
  event_type             text        NOT NULL CHECK (event_type IN ('K_RUNTIME_EVENT_COMMIT')),
  schema_version         integer     NOT NULL CHECK (schema_version >= 1),
  correlation_id         text        NOT NULL CHECK (length(correlation_id) BETWEEN 1 AND 128),
  turn_id                text        CHECK (length(turn_id) BETWEEN 1 AND 128),
  idempotency_key        text        CHECK (length(idempotency_key) BETWEEN 1 AND 128),
  device_id              text        NOT NULL CHECK (length(device_id) BETWEEN 1 AND 128),
  session_id             text        CHECK (length(session_id) BETWEEN 1 AND 128),
  event_kind             text        NOT NULL CHECK (event_kind IN ('STREAM_REFS', 'VAD_EVENT', 'DEVICE_STATE',
                           'TIMING_STATS', 'INTERRUPT_CANDIDATE', 'DEGRADATION_FLAGS', 'TTS_PLAYBACK_ACTIVE')),
  processed_stream_id    text        CHECK (length(processed_stream_id) BETWEEN 1 AND 128),
  raw_stream_id          text        CHECK (length(raw_stream_id) BETWEEN 1 AND 128),
  pre_roll_buffer_id     integer     CHECK (pre_roll_buffer_id >= 0),
  selected_mic           text        CHECK (length(selected_mic) BETWEEN 1 AND 128),
  selected_speaker       text        CHECK (length(selected_speaker) BETWEEN 1 AND 128),
  device_health          text        CHECK (device_health IN ('HEALTHY', 'DEGRADED', 'FAILED')),
  jitter_ms_milli        integer     CHECK (jitter_ms_milli >= 0),
  drift_ppm_milli        integer     CHECK (drift_ppm_milli >= 0),
  buffer_depth_ms_milli  integer     CHECK (buffer_depth_ms_milli >= 0),
  underruns              integer     CHECK (underruns >= 0),
  overruns               integer     CHECK (overruns >= 0),
  phrase_id              integer     CHECK (phrase_id >= 0),
  phrase_text            text        CHECK (length(phrase_text) BETWEEN 1 AND 128),
  reason_code            text        CHECK (length(reason_code) BETWEEN 1 AND 96),
  tts_playback_active    boolean,
  capture_degraded       boolean,
  aec_unstable           boolean,
  device_changed         boolean,
  stream_gap_detected    boolean,
  occurred_at            timestamptz NOT NULL,
  recorded_at            timestamptz NOT NULL DEFAULT now(),
  payload                jsonb       NOT NULL CHECK (octet_length(payload::text) <= 16384),
  content_sha256         bytea       NOT NULL CHECK (length(content_sha256) = 32),
  source_topic           text        NOT NULL,
  source_partition       integer     NOT NULL,
  source_offset          bigint      NOT NULL,
  CONSTRAINT ux_audio_runtime_events_tenant_event_uuid UNIQUE (tenant_id, event_uuid)
);
-- Upstream's dedupe; NULL keys are never deduplicated (upstream: NOT NULL; see the doc).
CREATE UNIQUE INDEX ux_audio_runtime_events_dedupe
  ON os_core.audio_runtime_events (tenant_id, device_id, event_kind, idempotency_key)
  WHERE idempotency_key IS NOT NULL;
CREATE INDEX ix_audio_runtime_events_tenant_device_time
  ON os_core.audio_runtime_events (tenant_id, device_id, occurred_at);

CREATE TABLE os_core.audio_runtime_current (
  tenant_id                   text        NOT NULL CHECK (length(tenant_id) BETWEEN 1 AND 64),
  device_id                   text        NOT NULL CHECK (length(device_id) BETWEEN 1 AND 128),
  session_id                  text        CHECK (length(session_id) BETWEEN 1 AND 128),
  last_event_id               bigint      NOT NULL,
  processed_stream_id         text        CHECK (length(processed_stream_id) BETWEEN 1 AND 128),
  raw_stream_id               text        CHECK (length(raw_stream_id) BETWEEN 1 AND 128),
  pre_roll_buffer_id          bigint      CHECK (pre_roll_buffer_id >= 0),
  selected_mic                text        CHECK (length(selected_mic) BETWEEN 1 AND 128),
  selected_speaker            text        CHECK (length(selected_speaker) BETWEEN 1 AND 128),
  device_health               text        CHECK (device_health IN ('HEALTHY', 'DEGRADED', 'FAILED')),
  jitter_ms_milli             bigint      CHECK (jitter_ms_milli >= 0),
  drift_ppm_milli             bigint      CHECK (drift_ppm_milli >= 0),
  buffer_depth_ms_milli       bigint      CHECK (buffer_depth_ms_milli >= 0),
  underruns                   bigint      CHECK (underruns >= 0),
  overruns                    bigint      CHECK (overruns >= 0),
  tts_playback_active         boolean     NOT NULL DEFAULT false,
  capture_degraded            boolean     NOT NULL DEFAULT false,
  aec_unstable                boolean     NOT NULL DEFAULT false,
  device_changed              boolean     NOT NULL DEFAULT false,
  stream_gap_detected         boolean     NOT NULL DEFAULT false,
  last_interrupt_phrase       text        CHECK (length(last_interrupt_phrase) BETWEEN 1 AND 128),
  last_interrupt_reason_code  text        CHECK (length(last_interrupt_reason_code) BETWEEN 1 AND 96),
  updated_at                  timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, device_id),
  -- Upstream's device and session FKs, carrying the tenant; last_event_id -> the ledger, as upstream.
  CONSTRAINT fk_audio_runtime_current_device FOREIGN KEY (tenant_id, device_id)
    REFERENCES os_core.devices (tenant_id, device_id) DEFERRABLE INITIALLY DEFERRED,
  CONSTRAINT fk_audio_runtime_current_session FOREIGN KEY (tenant_id, session_id)
    REFERENCES os_core.sessions (tenant_id, session_id) DEFERRABLE INITIALLY DEFERRED,
  CONSTRAINT fk_audio_runtime_current_last_event FOREIGN KEY (last_event_id)
    REFERENCES os_core.audio_runtime_events (event_id) DEFERRABLE INITIALLY DEFERRED
);

SELECT selene_ops.enable_tenant_rls('os_core.audio_runtime_events');
SELECT selene_ops.make_append_only('os_core.audio_runtime_events', 'K_APPEND_ONLY_VIOLATION');
SELECT selene_ops.enable_tenant_rls('os_core.audio_runtime_current');
SELECT selene_ops.make_projection('os_core.audio_runtime_current');
SELECT selene_ops.make_shadow('os_core.audio_runtime_current');
