"""A lint of the live catalog: the rules hold for every table, including tables added later."""

from __future__ import annotations

import asyncpg
import pytest

pytestmark = pytest.mark.integration
APP_ROLES = ("selene_writer", "selene_reader", "selene_operator")
SCHEMAS = ("os_core", "conversation", "os_process", "selene_ops", "selene_shadow")

TENANT_TABLES = """
SELECT c.oid::regclass::text AS tbl, c.relrowsecurity AS enabled, c.relforcerowsecurity AS forced
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY($1::text[])
"""


async def test_every_tenant_table_has_rls_enabled_and_forced(operator_db: asyncpg.Connection) -> None:
    rows = await operator_db.fetch(TENANT_TABLES, list(SCHEMAS))
    assert len(rows) >= 8  # ledgers, projections, shadows, dead letters
    bad = [r["tbl"] for r in rows if not (r["enabled"] and r["forced"])]
    assert bad == []


async def test_application_roles_own_nothing_and_cannot_bypass(operator_db: asyncpg.Connection) -> None:
    roles = await operator_db.fetch(
        "SELECT rolname, rolsuper, rolbypassrls, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = ANY($1)",
        [*APP_ROLES, "selene_owner"],
    )
    assert {r["rolname"] for r in roles} == {*APP_ROLES, "selene_owner"}
    for r in roles:
        assert not (r["rolsuper"] or r["rolbypassrls"] or r["rolcreaterole"] or r["rolcreatedb"]), r["rolname"]
    owned = await operator_db.fetch(
        "SELECT c.oid::regclass::text AS tbl, pg_get_userbyid(c.relowner) AS owner FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ANY($1::text[]) "
        "AND pg_get_userbyid(c.relowner) = ANY($2::text[])",
        list(SCHEMAS),
        list(APP_ROLES),
    )
    assert owned == []


async def test_ledgers_grant_no_update_delete_truncate(operator_db: asyncpg.Connection) -> None:
    ledgers = await operator_db.fetch(
        "SELECT DISTINCT tgrelid::regclass::text AS tbl FROM pg_trigger WHERE tgname = 'append_only_row'"
    )
    assert {r["tbl"] for r in ledgers} >= {"os_core.audit_events", "conversation.conversation_ledger"}
    for r in ledgers:
        for role in APP_ROLES:
            for priv in ("UPDATE", "DELETE", "TRUNCATE"):
                assert not await operator_db.fetchval("SELECT has_table_privilege($1, $2, $3)", role, r["tbl"], priv)
    # ENABLE ALWAYS: tgenabled = 'A' for every append-only trigger.
    modes = await operator_db.fetch(
        "SELECT tgrelid::regclass::text AS tbl, tgname, tgenabled FROM pg_trigger WHERE tgname LIKE 'append_only_%'"
    )
    assert modes and all(m["tgenabled"] in ("A", b"A") for m in modes)


async def test_every_ledger_has_both_append_only_triggers_with_one_reason(operator_db: asyncpg.Connection) -> None:
    """A ledger guarded against UPDATE/DELETE but not TRUNCATE (or the reverse) is half append-only."""
    rows = await operator_db.fetch(
        "SELECT tgrelid::regclass::text AS tbl, tgname, tgargs FROM pg_trigger "
        "WHERE tgname IN ('append_only_row', 'append_only_truncate')"
    )
    reasons: dict[str, dict[str, str]] = {}
    for r in rows:
        reasons.setdefault(r["tbl"], {})[r["tgname"]] = bytes(r["tgargs"]).split(b"\x00", 1)[0].decode()
    assert len(reasons) >= 2
    for table, by_trigger in reasons.items():
        assert set(by_trigger) == {"append_only_row", "append_only_truncate"}, table
        assert len(set(by_trigger.values())) == 1, (table, by_trigger)
        assert next(iter(by_trigger.values())).endswith("APPEND_ONLY_VIOLATION"), (table, by_trigger)


INDEX_DEFINITION = """
SELECT i.indexrelid::regclass::text AS name, i.indrelid::regclass::text AS tbl, i.indisunique AS is_unique,
       array(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY AS k(n, o)
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o) AS columns
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'os_core' AND c.relname = ANY($1::text[])
"""
# The indices seed 001 names (section 3), and the idempotency index (section 5) under the name saying what it is.
SEED_001_INDEXES = {
    "os_core.ux_work_order_ledger_tenant_work_order_event": (
        "os_core.work_order_ledger",
        ["tenant_id", "work_order_id", "work_order_event_id"],
    ),
    "os_core.ux_work_order_ledger_tenant_work_order_idempotency": (
        "os_core.work_order_ledger",
        ["tenant_id", "work_order_id", "idempotency_key"],
    ),
    "os_core.ux_work_orders_current_tenant_work_order": (
        "os_core.work_orders_current",
        ["tenant_id", "work_order_id"],
    ),
    "os_core.ux_work_orders_current_tenant_correlation": (
        "os_core.work_orders_current",
        ["tenant_id", "correlation_id"],
    ),
}


async def test_seed_001_indexes_have_the_seeds_names_and_columns(operator_db: asyncpg.Connection) -> None:
    """Seed 001's event-replay index is on the event id, not on the idempotency key (sql/0011)."""
    rows = await operator_db.fetch(INDEX_DEFINITION, [n.split(".", 1)[1] for n in SEED_001_INDEXES])
    found = {r["name"]: (r["tbl"], list(r["columns"])) for r in rows if r["is_unique"]}
    assert found == SEED_001_INDEXES
