-- 0023: PH1.ONB.CORE / ORCH / BIZ (seed 000 row 21): onboarding_sessions (docs/DB_WIRING/PH1_ONB.md).
-- Upstream has no DDL (PH1.F runtime state): the columns are its runtime record's, the key and index names
-- ours. The session's commits are rows of PH1.LINK's os_core.onboarding_draft_write_dedupe (scope ONB), and
-- this table is their projection. tenant_companies, PH1.ONB.BIZ's table, was created with PH1.POSITION (0015).
-- Upstream's tenant_id is optional until the access instance; here it is the link's tenant, required at start.

CREATE TABLE os_core.onboarding_sessions (
  tenant_id                  text        NOT NULL CHECK (length(tenant_id) BETWEEN 1 AND 64),
  onboarding_session_id      text        NOT NULL CHECK (length(onboarding_session_id) BETWEEN 1 AND 128),
  link_id                    text        NOT NULL CHECK (length(link_id) BETWEEN 1 AND 128),
  invitee_type               text        NOT NULL CHECK (invitee_type IN ('HOUSEHOLD', 'EMPLOYEE', 'CONTRACTOR', 'REFERRAL')),
  prefilled_context_ref      text        CHECK (length(prefilled_context_ref) BETWEEN 1 AND 128),
  device_fingerprint_hash    text        NOT NULL CHECK (length(device_fingerprint_hash) BETWEEN 1 AND 128),
  status                     text        NOT NULL CHECK (status IN ('DRAFT_CREATED', 'TERMS_ACCEPTED', 'TERMS_DECLINED',
                               'VERIFICATION_PENDING', 'VERIFICATION_CONFIRMED', 'VERIFICATION_REJECTED',
                               'PRIMARY_DEVICE_CONFIRMED', 'ACCESS_INSTANCE_CREATED', 'COMPLETE')),
  created_at                 timestamptz NOT NULL,
  updated_at                 timestamptz NOT NULL CHECK (updated_at >= created_at),
  terms_version_id           text        CHECK (length(terms_version_id) BETWEEN 1 AND 128),
  terms_status               text        CHECK (terms_status IN ('ACCEPTED', 'DECLINED')),
  photo_blob_ref             text        CHECK (length(photo_blob_ref) BETWEEN 1 AND 128),
  photo_proof_ref            text        CHECK (length(photo_proof_ref) BETWEEN 1 AND 128),
  sender_user_id             text        CHECK (length(sender_user_id) BETWEEN 1 AND 128),
  verification_status        text        CHECK (verification_status IN ('PENDING', 'CONFIRMED', 'REJECTED')),
  primary_device_device_id   text        CHECK (length(primary_device_device_id) BETWEEN 1 AND 128),
  primary_device_proof_type  text        CHECK (primary_device_proof_type IN ('BIOMETRIC', 'PASSCODE')),
  primary_device_confirmed   boolean     NOT NULL DEFAULT false,
  access_engine_instance_id  text        CHECK (length(access_engine_instance_id) BETWEEN 1 AND 128),
  CONSTRAINT pk_onboarding_sessions PRIMARY KEY (tenant_id, onboarding_session_id)
);
-- One session per link (the session id is derived from it; the index says so to the database too).
CREATE UNIQUE INDEX ux_onboarding_sessions_tenant_link ON os_core.onboarding_sessions (tenant_id, link_id);
-- A tenant's sessions by status (onboarding dashboards, PH1.VOICE.ID and PH1.W reference checks by id).
CREATE INDEX ix_onboarding_sessions_tenant_status ON os_core.onboarding_sessions (tenant_id, status, updated_at);

SELECT selene_ops.enable_tenant_rls('os_core.onboarding_sessions');
SELECT selene_ops.make_projection('os_core.onboarding_sessions');
SELECT selene_ops.make_shadow('os_core.onboarding_sessions');
