-- 0028: the end of a writer batch as one round trip (issue 18).
--
-- Every batch transaction of the writer ended with three statements before COMMIT, each a round trip: the
-- deferred foreign keys checked (consumers/pipeline.py, CHECK_DEFERRED_CONSTRAINTS: so that a violation
-- surfaces while the batch can still be written again event by event, not at COMMIT), the batch's dead
-- letters inserted (INSERT_DEAD_LETTERS) and its partitions' offsets advanced under their fencing epochs
-- (consumers/offsets.py, ADVANCE). This function runs the same three, in the same order, in one call, as the
-- writer (SECURITY INVOKER, the default): a foreign key violation raises here with its SQLSTATE, as before.

CREATE FUNCTION selene_ops.writer_end_batch(
  consumer_group text, topics text[], partitions int[], next_offsets bigint[], fence_epochs bigint[],
  dl_topics text[], dl_partitions int[], dl_offsets bigint[], dl_timestamps timestamptz[], dl_keys bytea[],
  dl_values bytea[], dl_headers text[], dl_ledgers text[], dl_tenants text[], dl_aggregate_keys text[],
  dl_event_uuids uuid[], dl_reasons text[], dl_details text[], dl_blocks boolean[], dl_statuses text[],
  dl_raw_headers bytea[])
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  SET CONSTRAINTS ALL IMMEDIATE;
  SET CONSTRAINTS ALL DEFERRED;
  IF cardinality(dl_topics) > 0 THEN
    INSERT INTO selene_ops.dead_letters (
      source_topic, source_partition, source_offset, kafka_timestamp, raw_key, raw_value, headers,
      ledger, tenant_id, aggregate_key, event_uuid, reason_code, error_detail, blocks, status, raw_headers)
    SELECT u.topic, u.part, u.off, u.ts, u.k, u.v, u.hdr::jsonb, u.ledger, u.tenant, u.agg, u.eid, u.reason,
           u.detail, u.blocks, u.status, u.rh
    FROM unnest(dl_topics, dl_partitions, dl_offsets, dl_timestamps, dl_keys, dl_values, dl_headers, dl_ledgers,
                dl_tenants, dl_aggregate_keys, dl_event_uuids, dl_reasons, dl_details, dl_blocks, dl_statuses,
                dl_raw_headers)
      AS u(topic, part, off, ts, k, v, hdr, ledger, tenant, agg, eid, reason, detail, blocks, status, rh)
    ON CONFLICT (source_topic, source_partition, source_offset) DO NOTHING;
  END IF;
  UPDATE selene_ops.consumer_offsets o SET next_offset = u.next_offset, updated_at = now()
  FROM unnest(topics, partitions, next_offsets, fence_epochs) AS u(topic, partition, next_offset, fence_epoch)
  WHERE o.consumer_group = writer_end_batch.consumer_group AND o.topic = u.topic AND o.partition = u.partition
    AND o.fence_epoch = u.fence_epoch AND o.next_offset <= u.next_offset;
END
$$;

REVOKE ALL ON FUNCTION selene_ops.writer_end_batch(text, text[], int[], bigint[], bigint[], text[], int[], bigint[],
  timestamptz[], bytea[], bytea[], text[], text[], text[], text[], uuid[], text[], text[], boolean[], text[], bytea[])
  FROM PUBLIC;
GRANT EXECUTE ON FUNCTION selene_ops.writer_end_batch(text, text[], int[], bigint[], bigint[], text[], int[],
  bigint[], timestamptz[], bytea[], bytea[], text[], text[], text[], text[], uuid[], text[], text[], boolean[], text[],
  bytea[]) TO selene_writer;
