"""PH1.F and PH1.J at the SQL level: what the database enforces whatever client writes to it.

AT-*-DB-01 (tenant isolation), -02 (append-only) and -03 (idempotency dedupe) for the two foundation
ledgers, ``os_core.audit_events`` and ``conversation.conversation_ledger``.
"""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from sql.tenant_scope import SET_TENANT_SCOPE
from tests.integration.sqlrows import LEDGER_ROWS, count, insert

pytestmark = pytest.mark.integration
LEDGERS = sorted(LEDGER_ROWS)
# Unique keys a sheet asks for beyond the idempotency scope: there, two NULL-key rows of one scope collide too
# (the artifacts ledger records a (scope, type, version) once, whatever the key).
EXTRA_UNIQUE = {
    "os_process.artifacts_ledger": "ux_artifacts_ledger_scope_type_scope_id_type_version",
    # The override id derives from the key: a row with the key dropped still holds its override id.
    "os_core.access_overrides": "ux_access_overrides_tenant_override",
    # A session's sample_seq is unique: these rows are all the first sample of their correlation's session.
    "os_core.wake_enrollment_samples": "ux_wake_enrollment_samples_session_seq",
}


def tenants() -> tuple[str, str]:
    run = uuid.uuid4().hex[:8]
    return f"ta-{run}", f"tb-{run}"


@pytest.mark.parametrize("table", LEDGERS)
async def test_tenant_isolation_enforced(
    table: str, writer_db: asyncpg.Connection, reader_db: asyncpg.Connection
) -> None:
    a, b = tenants()
    make = LEDGER_ROWS[table]
    await insert(writer_db, table, make(a), a)
    await insert(writer_db, table, make(b), b)
    # Each tenant sees its own row only, for the writer and for the reader.
    for conn in (writer_db, reader_db):
        assert await count(conn, table, a, "tenant_id = ANY($1)", [a, b]) == 1
        assert await count(conn, table, b, "tenant_id = ANY($1)", [a, b]) == 1
        # Unset or empty scope fails closed: nothing is visible.
        assert await count(conn, table, None, "tenant_id = ANY($1)", [a, b]) == 0
        assert await count(conn, table, "", "tenant_id = ANY($1)", [a, b]) == 0
    # A row of another tenant cannot be inserted, nor can any row without a scope.
    for scope in (b, "", None):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await insert(writer_db, table, make(a, key=f"k-{scope}"), scope)


@pytest.mark.parametrize("table", LEDGERS)
async def test_append_only_enforced(
    table: str,
    writer_db: asyncpg.Connection,
    reader_db: asyncpg.Connection,
    owner_db: asyncpg.Connection,
    admin_db: asyncpg.Connection,
) -> None:
    a, _ = tenants()
    await insert(writer_db, table, LEDGER_ROWS[table](a), a)
    statements = [
        f"UPDATE {table} SET correlation_id = 'changed' WHERE tenant_id = $1",
        f"DELETE FROM {table} WHERE tenant_id = $1",
    ]
    # Application roles lack the privilege outright.
    for conn in (writer_db, reader_db):
        for sql in statements:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                async with conn.transaction():
                    await conn.execute(SET_TENANT_SCOPE, a)
                    await conn.execute(sql, a)
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(f"TRUNCATE {table}")
    # The owner and a superuser, even with replication role (which skips ordinary triggers), hit the guard.
    for conn, replica in ((owner_db, False), (admin_db, False), (admin_db, True)):
        for sql in [*statements, f"TRUNCATE {table} CASCADE"]:
            with pytest.raises(asyncpg.PostgresError) as info:
                async with conn.transaction():
                    if replica:
                        await conn.execute("SET LOCAL session_replication_role = replica")
                    await conn.execute(SET_TENANT_SCOPE, a)
                    if "$1" in sql:
                        await conn.execute(sql, a)
                    else:
                        await conn.execute(sql)
            assert info.value.sqlstate == "SLA01"
            assert (info.value.detail or "").endswith("APPEND_ONLY_VIOLATION")
    assert await count(writer_db, table, a, "correlation_id = 'c-1'") == 1


@pytest.mark.parametrize("table", LEDGERS)
async def test_idempotency_dedupe_works(table: str, writer_db: asyncpg.Connection) -> None:
    a, b = tenants()
    make = LEDGER_ROWS[table]
    await insert(writer_db, table, make(a, "corr", "same-key"), a)
    with pytest.raises(asyncpg.UniqueViolationError):
        await insert(writer_db, table, make(a, "corr", "same-key"), a)
    # The key is scoped: another correlation or another tenant may reuse it; NULL keys never collide.
    await insert(writer_db, table, make(a, "other-corr", "same-key"), a)
    await insert(writer_db, table, make(b, "corr", "same-key"), b)
    if table in EXTRA_UNIQUE:
        # A NULL key does not lift the other key: the rows above hold these two scopes already.
        for corr in ("corr", "other-corr"):
            with pytest.raises(asyncpg.UniqueViolationError) as info:
                await insert(writer_db, table, make(a, corr, None), a)
            assert info.value.constraint_name == EXTRA_UNIQUE[table]
        await insert(writer_db, table, make(a, "corr-null-1", None), a)
        await insert(writer_db, table, make(a, "corr-null-2", None), a)
    else:
        await insert(writer_db, table, make(a, "corr", None), a)
        await insert(writer_db, table, make(a, "corr", None), a)
    assert await count(writer_db, table, f"{a},{b}") == 5
    # The same event id twice in one tenant is refused too.
    row = make(a, "corr-2", "k-2")
    await insert(writer_db, table, row, a)
    with pytest.raises(asyncpg.UniqueViolationError):
        await insert(writer_db, table, {**row, "idempotency_key": "k-3"}, a)
