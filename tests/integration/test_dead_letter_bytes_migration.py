"""sql/0009 on dead letters stored before it: headers copied to ``raw_headers`` exactly, text escaped as the
writer now escapes it, and no tenant for a record that proved none (issues 13.4 and 14.5)."""

from __future__ import annotations

import base64
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from consumers.db import connect
from consumers.pipeline import headers_from_bytes
from contracts.codec import escape_key, visible_text
from contracts.settings import ROLE_PASSWORDS, Settings, role_url
from sql.migrate import MIGRATIONS_DIR, migrate

pytestmark = pytest.mark.integration

INSERT_LEGACY = """
INSERT INTO selene_ops.dead_letters (source_topic, source_partition, source_offset, raw_key, raw_value, headers,
  tenant_id, aggregate_key, event_uuid, reason_code, error_detail, blocks, status)
VALUES ('legacy', 0, $1, $2, 'v', $3, $4, $5, $6, 'EVENT_UNDECODABLE', $7, true, 'OPEN')
"""
# key, aggregate key, tenant, event id (set when the record had decoded), headers, detail
LEGACY = [
    (b"t1/a\\b", "t1/a\\b", "t1", None, [("k\x01", b"v\x00"), ("x", b"")], "bad \x1b[31m detail \x85"),
    (b"t2/c", "t2/c", "t2", uuid.UUID(int=1), [("selene-tenant", b"t2")], "plain"),
    (b"\xff", None, "t3", None, [("h", b"\xff\x00")], "x"),
    (b"t4/\x7f", "t4/\x7f", "t4", None, [], "no headers"),
]


@pytest.fixture
async def db_before_0009(migrated: Settings, tmp_path: Path) -> AsyncIterator[tuple[str, str, str]]:
    """A scratch database migrated up to 0008: its owner, writer and superuser URLs; dropped afterwards."""
    if not migrated.database_admin_url:
        pytest.skip("needs SELENE_DATABASE_ADMIN_URL to create a scratch database")
    name = f"mig9_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(migrated.database_admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" OWNER selene_owner')
        await admin.execute(f'GRANT CONNECT ON DATABASE "{name}" TO selene_writer, selene_reader, selene_operator')
        base = migrated.database_owner_url.rsplit("/", 1)[0]
        owner = role_url(f"{base}/{name}", "selene_owner", ROLE_PASSWORDS["selene_owner"])
        before = tmp_path / "sql"
        before.mkdir()
        for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
            if int(path.name[:4]) < 9:
                shutil.copy(path, before)
        await migrate(owner, before)
        superuser = migrated.database_admin_url.rsplit("/", 1)[0] + f"/{name}"
        yield owner, role_url(f"{base}/{name}", "selene_writer", ROLE_PASSWORDS["selene_writer"]), superuser
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_0009_upgrades_dead_letters_stored_before_it(db_before_0009: tuple[str, str, str]) -> None:
    owner, writer_url, superuser = db_before_0009
    writer = await connect(writer_url)
    try:
        for offset, (key, agg, tenant, eid, headers, detail) in enumerate(LEGACY):
            # What headers_json wrote before 0009: keys as text, values in base64.
            legacy_headers = [{"key": k, "value_b64": base64.b64encode(v).decode()} for k, v in headers]
            await writer.execute(INSERT_LEGACY, offset, key, legacy_headers, tenant, agg, eid, detail)
        await migrate(owner)
        rows = await writer.fetch("SELECT * FROM selene_ops.dead_letters ORDER BY source_offset")
        assert len(rows) == len(LEGACY)
        for (key, agg, tenant, eid, headers, detail), row in zip(LEGACY, rows, strict=True):
            assert row["raw_key"] == key
            assert headers_from_bytes(row["raw_headers"]) == tuple(headers), key
            assert row["aggregate_key"] == (None if agg is None else escape_key(agg)), key
            assert row["error_detail"] == visible_text(detail), key
            assert row["tenant_id"] == (tenant if eid is not None else None), key
        admin = await connect(superuser)
        try:
            flags = await admin.fetchrow(
                "SELECT c.relrowsecurity, c.relforcerowsecurity, t.tgenabled FROM pg_class c "
                "JOIN pg_trigger t ON t.tgrelid = c.oid AND t.tgname = 'guard_dead_letter' "
                "WHERE c.oid = 'selene_ops.dead_letters'::regclass"
            )
            assert flags is not None
            assert (flags["relrowsecurity"], flags["relforcerowsecurity"], flags["tgenabled"]) == (True, True, b"A")
            # The raw headers are evidence like the raw key and value: the guard refuses even the superuser.
            with pytest.raises(asyncpg.PostgresError) as refused:
                await admin.execute("UPDATE selene_ops.dead_letters SET raw_headers = '\\x00'::bytea")
            assert refused.value.sqlstate == "SLA01"
        finally:
            await admin.close()
    finally:
        await writer.close()
