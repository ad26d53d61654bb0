-- 0018: PH1.LEARN / PH1.KNOW (seed 000 row 25) write on the artifacts ledger of row 7 under event types of their
-- own (docs/DB_WIRING/PH1_LEARN_FEEDBACK_KNOW.md): its event-type CHECK takes them. PH1.FEEDBACK writes audit
-- rows, whose event types are open. No table of their own.
ALTER TABLE os_process.artifacts_ledger DROP CONSTRAINT artifacts_ledger_event_type_check;
ALTER TABLE os_process.artifacts_ledger ADD CONSTRAINT artifacts_ledger_event_type_check
  CHECK (event_type IN ('ARTIFACT_RECORDED', 'LEARN_ARTIFACT_COMMIT', 'KNOW_DICTIONARY_PACK_COMMIT'));
