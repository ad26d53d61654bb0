-- 0010: how often the writer had to retry a batch, per partition, for `selene-ledger status`.
--
-- A failed batch is retried: after an outage without limit; after a failure its data may cause, until the same
-- failure has come back SELENE_WRITER_MAX_BATCH_RETRIES times, and then event by event (isolated). The writer
-- counts each failed attempt and each isolation on the offset rows of the batch's partitions, outside the batch's
-- transaction (a failed batch has none left) and only when something failed: a writer stuck on one batch shows
-- in `status`, with the last reason, without anyone reading its log.
ALTER TABLE selene_ops.consumer_offsets
  ADD COLUMN batch_retries      bigint      NOT NULL DEFAULT 0 CHECK (batch_retries >= 0),
  ADD COLUMN batch_isolations   bigint      NOT NULL DEFAULT 0 CHECK (batch_isolations >= 0),
  ADD COLUMN last_retry_at      timestamptz,
  ADD COLUMN last_retry_reason  text        CHECK (length(last_retry_reason) <= 200);
