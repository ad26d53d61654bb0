"""Append-only, as a matrix over every ledger x every way to change or remove a row x every role (issue 8).

Ledgers are discovered from the catalog (tables carrying the ``append_only_row`` trigger), so a slice's
ledger is covered as soon as its migration calls ``selene_ops.make_append_only``. One row is seeded into each
ledger (by the superuser, INSERT only), then UPDATE, DELETE, TRUNCATE and TRUNCATE ... CASCADE (a table that
foreign keys reference can only be truncated with CASCADE, which is what reaches its trigger) are tried:

* by the application roles: refused for lack of privilege (SQLSTATE 42501);
* by the owner, the superuser and the superuser with ``session_replication_role = replica`` (which skips
  ordinary triggers): refused by the guard, SQLSTATE SLA01, with the ledger's own reason code in DETAIL.

Every attempt runs in a transaction that is rolled back whatever happens, and the seeded row must be there,
unchanged, at the end.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

from consumers.db import connect
from contracts.registry import LEDGERS
from contracts.settings import Settings
from sql.tenant_scope import SET_TENANT_SCOPE
from tests.integration.catalogrows import APP_ROLES, Seed, seed, tenant_tables

pytestmark = pytest.mark.integration

APPEND_ONLY_TRIGGERS = """
SELECT t.tgrelid::regclass::text AS tbl, t.tgname, t.tgargs, t.tgenabled,
       EXISTS (SELECT 1 FROM pg_constraint f WHERE f.contype = 'f' AND f.confrelid = t.tgrelid) AS referenced
FROM pg_trigger t WHERE t.tgname IN ('append_only_row', 'append_only_truncate') ORDER BY 1, 2
"""


@dataclass(frozen=True)
class Ledger:
    table: str
    reason_code: str
    referenced: bool


def _first_arg(tgargs: bytes) -> str:
    return bytes(tgargs).split(b"\x00", 1)[0].decode()


async def discover(conn: asyncpg.Connection) -> list[Ledger]:
    rows = await conn.fetch(APPEND_ONLY_TRIGGERS)
    return [
        Ledger(r["tbl"], _first_arg(r["tgargs"]), r["referenced"]) for r in rows if r["tgname"] == "append_only_row"
    ]


@dataclass
class World:
    seed: Seed
    tenant: str
    ledgers: list[Ledger]
    conns: dict[str, asyncpg.Connection]


@pytest.fixture(scope="module")
async def world(migrated: Settings) -> AsyncIterator[World]:
    if not migrated.database_admin_url:
        pytest.skip("no SELENE_DATABASE_ADMIN_URL: the superuser cases need it")
    tenant = f"ao-{uuid.uuid4().hex[:8]}"
    urls = {
        "selene_writer": migrated.database_url,
        "selene_reader": migrated.database_reader_url,
        "selene_operator": migrated.database_operator_url,
        "selene_owner": migrated.database_owner_url,
        "admin": migrated.database_admin_url,
    }
    conns = {role: await connect(url) for role, url in urls.items()}
    try:
        admin = conns["admin"]
        ledgers = await discover(admin)
        tables = sorted({*await tenant_tables(admin), *(ledger.table for ledger in ledgers)})
        yield World(await seed(admin, (tenant,), tables), tenant, ledgers, conns)
    finally:
        for c in conns.values():
            await c.close()


def _statements(world: World, ledger: Ledger) -> list[tuple[str, list[Any]]]:
    spec = world.seed.tables[ledger.table]
    row = world.seed.rows[ledger.table][world.tenant]
    key = spec.primary_key or tuple(c.name for c in spec.insertable)
    where = " AND ".join(f"{c} = ${i}" for i, c in enumerate(key, start=1))
    args = [row[c] for c in key]
    column = next(c.name for c in spec.insertable)
    return [
        (f"UPDATE {ledger.table} SET {column} = {column} WHERE {where}", args),
        (f"DELETE FROM {ledger.table} WHERE {where}", args),
        (f"TRUNCATE {ledger.table}", []),
        (f"TRUNCATE {ledger.table} CASCADE", []),
    ]


async def _attempt(conn: asyncpg.Connection, tenant: str, sql: str, args: list[Any], *, replica: bool) -> str:
    """Run ``sql`` in a transaction that is always rolled back; the SQLSTATE it failed with, or 'ok'."""
    tx = conn.transaction()
    await tx.start()
    try:
        if replica:
            await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute(SET_TENANT_SCOPE, tenant)
        await conn.execute(sql, *args)
        return "ok"
    except asyncpg.PostgresError as exc:
        return f"{exc.sqlstate} {getattr(exc, 'detail', None)}"
    finally:
        await tx.rollback()


def test_ledgers_are_discovered(world: World) -> None:
    tables = {ledger.table for ledger in world.ledgers}
    assert {"os_core.audit_events", "conversation.conversation_ledger"} <= tables
    # Every ledger the contracts register whose table exists carries the guard with the contract's code.
    codes = {ledger.table: ledger.reason_code for ledger in world.ledgers}
    for spec in LEDGERS.values():
        if spec.table in world.seed.tables:
            assert codes.get(spec.table) == str(spec.append_only_violation), spec.table


@pytest.mark.parametrize("role", APP_ROLES)
async def test_application_roles_lack_the_privilege(world: World, role: str) -> None:
    conn = world.conns[role]
    problems = []
    for ledger in world.ledgers:
        for sql, args in _statements(world, ledger):
            outcome = await _attempt(conn, world.tenant, sql, args, replica=False)
            if not outcome.startswith("42501"):
                problems.append(f"{role}: {sql} -> {outcome}")
    assert problems == []


@pytest.mark.parametrize(("role", "replica"), [("selene_owner", False), ("admin", False), ("admin", True)])
async def test_owner_and_superuser_hit_the_guard_with_the_ledgers_reason(
    world: World, role: str, replica: bool
) -> None:
    conn = world.conns[role]
    problems = []
    for ledger in world.ledgers:
        # The owner is subject to row-level security (FORCE): the row must be visible for a row trigger to fire.
        spec = world.seed.tables[ledger.table]
        pk = spec.primary_key[0]
        async with conn.transaction():
            await conn.execute(SET_TENANT_SCOPE, world.tenant)
            visible = await conn.fetchval(
                f"SELECT count(*) FROM {ledger.table} WHERE {pk} = $1", world.seed.rows[ledger.table][world.tenant][pk]
            )
        assert visible == 1, ledger.table
        for sql, args in _statements(world, ledger):
            outcome = await _attempt(conn, world.tenant, sql, args, replica=replica)
            expected = f"SLA01 {ledger.reason_code}"
            if ledger.referenced and sql == f"TRUNCATE {ledger.table}":
                expected = "0A000"  # refused before any trigger: referenced by foreign keys (CASCADE is tried next)
            if not (outcome == expected if expected.startswith("SLA01") else outcome.startswith(expected)):
                problems.append(f"{role} (replica={replica}): {sql} -> {outcome}, expected {expected}")
    assert problems == []


async def test_seeded_rows_survive_unchanged(world: World) -> None:
    admin = world.conns["admin"]
    for ledger in world.ledgers:
        spec = world.seed.tables[ledger.table]
        seeded = world.seed.rows[ledger.table][world.tenant]
        where = " AND ".join(f"{c} = ${i}" for i, c in enumerate(spec.primary_key, start=1))
        row = await admin.fetchrow(
            f"SELECT * FROM {ledger.table} WHERE {where}", *[seeded[c] for c in spec.primary_key]
        )
        assert row is not None and dict(row) == seeded, ledger.table
