"""Drift between the slices' declarations and the migrated database, and between the registry and the tests.

Columns are declared once (payload fields, ``LatestPerKey``, a hand-written reducer's ``TableSpec``) and
written once more in SQL (the migrations); this holds the two together for every slice, including slices
added later: every declared column exists with the declared type, every ledger is append-only with its
slice's reason, its idempotency scope is a unique key, every current table's key is unique, and every
ledger of the registry is covered by the database-level matrices (tests/integration/sqlrows.py feeds the
isolation, append-only and schema tests; the tamper tests run over ``LEDGER_TABLES``).
"""

from __future__ import annotations

import re

import asyncpg
import pytest

from consumers.projections import LEDGER_TABLES, PROJECTIONS
from consumers.tables import TableSpec
from contracts.registry import REGISTRY
from tests.integration.sqlrows import LEDGER_ROWS

pytestmark = pytest.mark.integration

COLUMN_TYPES = """
SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, t.typtype AS kind
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
"""
# Unique keys, and the keys of partial ones (unique, or an exclusion of equal columns: PH1.W's one row per
# user and device WHERE a status or flag holds) with the columns their predicate fixes.
UNIQUE_KEYS = """
SELECT array_agg(a.attname ORDER BY k.i) AS columns, pg_get_expr(x.indpred, x.indrelid) AS predicate
FROM pg_index x CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(n, i)
JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.n
WHERE x.indrelid = $1::regclass AND (x.indisunique OR (x.indisexclusion AND NOT EXISTS (
  SELECT FROM pg_constraint c CROSS JOIN LATERAL unnest(c.conexclop) o
  WHERE c.conindid = x.indexrelid AND o::regoperator::text NOT LIKE '=(%')))
GROUP BY x.indexrelid
"""
APPEND_ONLY = """
SELECT tgrelid::regclass::text AS tbl, tgname, tgargs FROM pg_trigger
WHERE tgname IN ('append_only_row', 'append_only_truncate')
"""
# The declarations use PostgreSQL's short names; the catalog writes them out.
SHORT = {"timestamp with time zone": "timestamptz", "character varying": "text"}


def _tables() -> list[tuple[str, TableSpec]]:
    seen: dict[str, tuple[str, TableSpec]] = {}
    for p in PROJECTIONS:
        for t in (*p.writes, *p.indexes):
            seen.setdefault(f"{t.name}:{t.key}", (type(p).__name__, t))
    return list(seen.values())


async def _columns(conn: asyncpg.Connection, table: str) -> dict[str, str]:
    rows = await conn.fetch(COLUMN_TYPES, table)
    # An enum column takes the declared text (the writer casts it; the enum's CHECK is the database's rule).
    return {r["name"]: "text" if r["kind"] == b"e" else SHORT.get(r["type"], r["type"]) for r in rows}


@pytest.mark.parametrize("ledger", sorted(LEDGER_TABLES))
async def test_every_declared_ledger_column_exists_with_its_type(operator_db: asyncpg.Connection, ledger: str) -> None:
    table = LEDGER_TABLES[ledger]
    actual = await _columns(operator_db, table.spec.table)
    declared = dict(table.columns)
    wrong = {c: (t, actual.get(c)) for c, t in declared.items() if actual.get(c) != t}
    assert wrong == {}, f"{table.spec.table}: declared type vs catalog"


@pytest.mark.parametrize(("projection", "table"), _tables(), ids=lambda v: getattr(v, "name", v))
async def test_every_projection_column_exists_with_its_type_and_its_key_is_unique(
    operator_db: asyncpg.Connection, projection: str, table: TableSpec
) -> None:
    actual = await _columns(operator_db, table.name)
    wrong = {c: (t, actual.get(c)) for c, t in table.columns if actual.get(c) != t}
    assert wrong == {}, f"{projection} -> {table.name}: declared type vs catalog"
    unique = [
        (*r["columns"], *(c for c in actual if r["predicate"] and re.search(rf"\b{c}\b", r["predicate"])))
        for r in await operator_db.fetch(UNIQUE_KEYS, table.name)
    ]
    assert any(set(k) == set(table.key) for k in unique), (table.key, unique)


@pytest.mark.parametrize("ledger", sorted(LEDGER_TABLES))
async def test_every_ledger_is_append_only_with_its_slice_reason_and_scoped_unique(
    operator_db: asyncpg.Connection, ledger: str
) -> None:
    spec = LEDGER_TABLES[ledger].spec
    reasons = {
        r["tgname"]: bytes(r["tgargs"]).split(b"\x00", 1)[0].decode()
        for r in await operator_db.fetch(APPEND_ONLY)
        if r["tbl"] == spec.table
    }
    assert reasons == {
        "append_only_row": spec.append_only_violation,
        "append_only_truncate": spec.append_only_violation,
    }
    unique = {tuple(r["columns"]) for r in await operator_db.fetch(UNIQUE_KEYS, spec.table)}
    assert any(set(k) == set(spec.idempotency_scope) for k in unique), (spec.idempotency_scope, unique)
    assert any(set(k) == {"tenant_id", "event_uuid"} for k in unique), unique


async def test_the_registry_and_the_database_name_the_same_ledgers(operator_db: asyncpg.Connection) -> None:
    """A ledger in SQL that no slice declares is never written; one declared but not migrated fails."""
    guarded = {r["tbl"] for r in await operator_db.fetch(APPEND_ONLY)} - {"selene_ops.dead_letters"}
    assert guarded == {spec.table for spec in REGISTRY.ledgers.values()}


def test_every_ledger_of_the_registry_has_test_rows() -> None:
    """The isolation, append-only and schema matrices take their ledgers from ``LEDGER_ROWS``: a ledger
    missing there would go untested."""
    assert set(LEDGER_ROWS) == {spec.table for spec in REGISTRY.ledgers.values()}
    assert set(LEDGER_TABLES) == set(REGISTRY.ledgers)
