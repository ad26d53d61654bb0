-- 0009: a dead letter never fails on the record's content, and belongs to no tenant it does not prove.
--
-- Until now a record's headers went into `headers jsonb` with their keys as text, and the writer put the
-- record's key and parts of it (a field name, a correlation id) into text columns as they were. PostgreSQL
-- stores no U+0000 in text or jsonb: one such record made the dead-letter INSERT fail (SQLSTATE 22021 or
-- 22P05), the writer stopped, and every restart stopped on the same record (issue 13, item 4). From now on:
--   raw_key, raw_value, raw_headers  the record exactly, as bytes;
--   headers                          a view for people (keys escaped, values in base64);
--   aggregate_key, error_detail      text the writer made storable: control characters as visible escapes
--                                    (\x00 ... \x9f); in aggregate_key a backslash is doubled too, so that
--                                    two keys never escape alike (blocking compares escaped keys).
-- And a dead letter's tenant_id is the tenant its record proves (an event that decoded and whose key and
-- headers agreed with it); a record that never decoded, or whose key names another tenant than its envelope,
-- had the key's tenant, so that tenant's readers could read another tenant's raw payload (issue 14, item 5).
-- Such rows have no tenant now: the readers' tenant_scope policy shows them to nobody, the operator sees all.

-- raw_headers: per header, the key's length (int4, big-endian), its UTF-8, the value's length (int4; -1 for
-- a null value) and the value (consumers.pipeline.headers_bytes). Empty: no headers.
ALTER TABLE selene_ops.dead_letters ADD COLUMN raw_headers bytea NOT NULL DEFAULT '\x'::bytea;

-- The escaping of consumers.pipeline (contracts.codec.visible_text / escape_key), for the rows stored before.
CREATE FUNCTION selene_ops.escape_text_0009(s text, double_backslash boolean) RETURNS text
  LANGUAGE sql IMMUTABLE STRICT AS $$
  SELECT coalesce(string_agg(CASE
           WHEN t.c = E'\\' AND double_backslash THEN E'\\\\'
           WHEN ascii(t.c) < 32 OR ascii(t.c) BETWEEN 127 AND 159 THEN E'\\x' || lpad(to_hex(ascii(t.c)), 2, '0')
           ELSE t.c END, '' ORDER BY t.i), '')
  FROM regexp_split_to_table(s, '') WITH ORDINALITY AS t(c, i)
$$;

-- The rows stored before keep their evidence; only what this migration defines is filled in or corrected
-- (the owner too is subject to the table's row-level security, and its guard refuses any such change: both
-- are set aside for these statements only, inside this migration's transaction).
ALTER TABLE selene_ops.dead_letters NO FORCE ROW LEVEL SECURITY;
ALTER TABLE selene_ops.dead_letters DISABLE TRIGGER guard_dead_letter;
UPDATE selene_ops.dead_letters d
SET raw_headers = coalesce((
      SELECT string_agg(int4send(octet_length(convert_to(h.value->>'key', 'UTF8')))
                        || convert_to(h.value->>'key', 'UTF8')
                        || CASE WHEN h.value->>'value_b64' IS NULL THEN int4send(-1)
                                ELSE int4send(length(decode(h.value->>'value_b64', 'base64')))
                                     || decode(h.value->>'value_b64', 'base64') END,
                        ''::bytea ORDER BY h.i)
      FROM jsonb_array_elements(d.headers) WITH ORDINALITY AS h(value, i)), '\x'::bytea)
WHERE jsonb_array_length(d.headers) > 0;
UPDATE selene_ops.dead_letters
SET aggregate_key = selene_ops.escape_text_0009(aggregate_key, true)
WHERE aggregate_key ~ '[\\\x01-\x1f\x7f-\x9f]';
UPDATE selene_ops.dead_letters
SET error_detail = left(selene_ops.escape_text_0009(error_detail, false), 4000)
WHERE error_detail ~ '[\x01-\x1f\x7f-\x9f]';
UPDATE selene_ops.dead_letters SET tenant_id = NULL WHERE event_uuid IS NULL AND tenant_id IS NOT NULL;
ALTER TABLE selene_ops.dead_letters ENABLE ALWAYS TRIGGER guard_dead_letter;
ALTER TABLE selene_ops.dead_letters FORCE ROW LEVEL SECURITY;
DROP FUNCTION selene_ops.escape_text_0009(text, boolean);

-- The raw headers are evidence like the raw key and value: only the verdict may change.
CREATE OR REPLACE FUNCTION selene_ops.guard_dead_letter() RETURNS trigger
  LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' OR NEW.source_topic IS DISTINCT FROM OLD.source_topic
     OR NEW.source_partition IS DISTINCT FROM OLD.source_partition
     OR NEW.source_offset IS DISTINCT FROM OLD.source_offset
     OR NEW.raw_key IS DISTINCT FROM OLD.raw_key OR NEW.raw_value IS DISTINCT FROM OLD.raw_value
     OR NEW.headers IS DISTINCT FROM OLD.headers OR NEW.raw_headers IS DISTINCT FROM OLD.raw_headers
     OR NEW.tenant_id IS DISTINCT FROM OLD.tenant_id OR NEW.created_at IS DISTINCT FROM OLD.created_at THEN
    RAISE EXCEPTION USING ERRCODE = 'SLA01',
      MESSAGE = 'selene_ops.dead_letters keeps the original message: only its verdict may change',
      DETAIL = 'DEAD_LETTER_APPEND_ONLY_VIOLATION';
  END IF;
  RETURN NEW;
END $$;
