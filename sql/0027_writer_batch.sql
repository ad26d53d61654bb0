-- 0027: the start of a writer batch as one round trip (issue 18).
--
-- Every batch transaction of the writer began with three statements, each a round trip: lock its partitions'
-- offset rows with the epochs it claimed (consumers/offsets.py, LOCK_FENCED), scope the transaction to the
-- batch's tenants (sql/tenant_scope.py), and look up which of its aggregates are blocked by an open or held
-- dead letter (consumers/pipeline.py, SELECT_BLOCKED). This function runs the same three, in the same order,
-- with the same locks, in one call. SECURITY INVOKER (the default): it runs as the writer, under the
-- writer's privileges and row-level security, exactly as the three statements did.
--
-- Returns one row per partition still ours (topic, partition, next_offset; aggregate_key NULL) and one per
-- blocked aggregate (source topic and aggregate key; partition and next_offset NULL).

CREATE FUNCTION selene_ops.writer_begin_batch(
  consumer_group text, topics text[], partitions int[], fence_epochs bigint[], tenant_scope text,
  keyed_topics text[], aggregate_keys text[])
RETURNS TABLE (topic text, "partition" int, next_offset bigint, aggregate_key text)
LANGUAGE plpgsql AS $$
BEGIN
  -- Fenced: a partition whose epoch moved on (claimed by another consumer since) is not locked nor returned.
  RETURN QUERY
    SELECT o.topic, o.partition, o.next_offset, NULL::text
    FROM selene_ops.consumer_offsets o
    JOIN unnest(topics, partitions, fence_epochs) AS u(topic, partition, fence_epoch)
      ON o.topic = u.topic AND o.partition = u.partition AND o.fence_epoch = u.fence_epoch
    WHERE o.consumer_group = writer_begin_batch.consumer_group
    FOR UPDATE OF o;
  -- Transaction-local, as sql/tenant_scope.py's SET_TENANT_SCOPE.
  PERFORM set_config('selene.tenant_ids', tenant_scope, true);
  RETURN QUERY
    SELECT d.source_topic, NULL::int, NULL::bigint, d.aggregate_key
    FROM selene_ops.dead_letters d
    JOIN unnest(keyed_topics, aggregate_keys) AS k(topic, aggregate_key)
      ON d.source_topic = k.topic AND d.aggregate_key = k.aggregate_key
    WHERE d.status IN ('OPEN', 'HELD')
    FOR SHARE OF d;
END
$$;

REVOKE ALL ON FUNCTION selene_ops.writer_begin_batch(text, text[], int[], bigint[], text, text[], text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION selene_ops.writer_begin_batch(text, text[], int[], bigint[], text, text[], text[])
  TO selene_writer;
