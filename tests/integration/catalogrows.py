"""Valid rows for every tenant table, built from the live catalog rather than from a list of tables.

``sqlrows.py`` writes rows by hand for the two foundation ledgers; the matrices (tenant isolation, append-only)
must cover every table a later slice adds without being edited, so this module reads the columns, types,
CHECK constraints and foreign keys from pg_catalog and makes a row that satisfies them:

* identity and generated columns are left to the database, so are NOT NULL columns with a default;
* a column that a required foreign key covers takes its value from the row seeded for the same tenant in the
  referenced table (tables are seeded in the order of that dependency graph);
* an enumerated CHECK (``col = ANY (ARRAY['A', 'B'])`` or ``col IN (...)``) and enum types give their first
  value; everything else gets a per-type value that carries a unique marker (so unique keys never collide);
* nullable columns are NULL, except ``tenant_id`` (always the row's tenant).

Where that is not enough (a CHECK this cannot read), ``OVERRIDES`` takes a table's fixed values; the error
raised when a row cannot be built says so. Rows are seeded by a superuser connection, which bypasses row-level
security, and only ever INSERTed (ledgers are append-only).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

TENANT_SCHEMAS = ("os_core", "conversation", "os_process", "selene_ops", "selene_shadow")
APP_ROLES = ("selene_writer", "selene_reader", "selene_operator")

TENANT_TABLES = """
SELECT c.oid::regclass::text AS tbl
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY($1::text[]) AND NOT c.relispartition
ORDER BY 1
"""
COLUMNS = """
SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null,
       a.atthasdef AS has_default, a.attidentity <> '' OR a.attgenerated <> '' AS generated,
       (SELECT e.enumlabel FROM pg_enum e WHERE e.enumtypid = a.atttypid ORDER BY e.enumsortorder LIMIT 1)
         AS first_enum_label
FROM pg_attribute a
WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""
FOREIGN_KEYS = """
SELECT c.conname AS name, c.confrelid::regclass::text AS ref_table,
       array(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY AS k(n, i)
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i) AS columns,
       array(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY AS k(n, i)
             JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.i) AS ref_columns
FROM pg_constraint c WHERE c.contype = 'f' AND c.conrelid = $1::regclass ORDER BY c.conname
"""
CHECKS = "SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE contype = 'c' AND conrelid = $1::regclass"
PRIMARY_KEY = """
SELECT array(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY AS k(n, i)
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i) AS columns
FROM pg_constraint c WHERE c.contype = 'p' AND c.conrelid = $1::regclass
"""

# Fixed values for columns the generic rules cannot satisfy, by table. A slice whose CHECK needs more adds its
# table here.
OVERRIDES: dict[str, dict[str, Callable[[str, int], Any]]] = {
    # A one-value IN list is stored as `event_type = '...'`, not as an ANY (ARRAY[...]).
    "os_process.simulation_catalog": {"event_type": lambda _t, _i: "SIMULATION_CATALOG_EVENT"},
    "os_process.artifacts_ledger": {"event_type": lambda _t, _i: "ARTIFACT_RECORDED"},
    "os_process.process_blueprints": {
        "event_type": lambda _t, _i: "PROCESS_BLUEPRINT_RECORDED",
        "confirmation_step_count": lambda _t, _i: 0,
    },
    "os_core.link_delivery_proofs": {"event_type": lambda _t, _i: "LINK_DELIVERY_PROOF_RECORDED"},
    "os_core.tool_cache": {"result_payload": lambda t, i: f'"result {t} {i}"'},
    # ck_capreq_ledger_action_status pairs two columns: an action with the status it leads to.
    "os_process.capreq_ledger": {"action": lambda _t, _i: "CREATE_DRAFT", "status": lambda _t, _i: "DRAFT"},
    # ck_memory_ledger_value: a STORED memory holds a value.
    "os_core.memory_ledger": {"verbatim": lambda t, i: f"value {t} {i}"},
    "os_core.audio_runtime_events": {"event_type": lambda _t, _i: "K_RUNTIME_EVENT_COMMIT"},
}
# BETWEEN bounds (the sheet's 2..5, 5..20, 60000..300000), in the live table and its shadow.
OVERRIDES["os_core.voice_enrollment_sessions"] = OVERRIDES["selene_shadow.os_core__voice_enrollment_sessions"] = {
    "lock_after_consecutive_passes": lambda _t, _i: 3,
    "max_total_attempts": lambda _t, _i: 8,
    "max_session_enroll_time_ms": lambda _t, _i: 120000,
}
# PH1.W: the sheet's bounds (attempts <= max), and a runtime event is accepted iff its reason says so.
OVERRIDES["os_core.wake_enrollment_sessions"] = OVERRIDES["selene_shadow.os_core__wake_enrollment_sessions"] = {
    "pass_target": lambda _t, _i: 3,
    "max_attempts": lambda _t, _i: 8,
    "enrollment_timeout_ms": lambda _t, _i: 300000,
    "attempt_count": lambda _t, _i: 1,
}
OVERRIDES["os_core.wake_enrollment_samples"] = {"sample_duration_ms": lambda _t, _i: 1000}
OVERRIDES["os_core.wake_runtime_events"] = {
    "accepted": lambda _t, _i: True,
    "reason_code": lambda _t, _i: "W_WAKE_ACCEPTED",
}

_ANY_ARRAY = re.compile(r"\(?\(?(\w+)\)?(?:::\w+)? = ANY \(+ARRAY\[(.*?)\]")
_LITERAL = re.compile(r"'((?:[^']|'')*)'")


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    not_null: bool
    has_default: bool
    generated: bool
    first_enum_label: str | None


@dataclass(frozen=True)
class ForeignKey:
    name: str
    ref_table: str
    columns: tuple[str, ...]
    ref_columns: tuple[str, ...]


@dataclass
class Table:
    """A table as the catalog describes it, with what building a row needs."""

    name: str
    columns: tuple[Column, ...]
    foreign_keys: tuple[ForeignKey, ...]
    primary_key: tuple[str, ...]
    enum_checks: dict[str, str] = field(default_factory=dict)

    @property
    def schema(self) -> str:
        return self.name.split(".", 1)[0]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    def required_fks(self) -> list[ForeignKey]:
        """Foreign keys a row must satisfy: every referencing column (tenant_id aside) is NOT NULL."""
        return [
            fk
            for fk in self.foreign_keys
            if all(self.column(c).not_null or c == "tenant_id" for c in fk.columns) and fk.ref_table != self.name
        ]

    @property
    def insertable(self) -> list[Column]:
        return [c for c in self.columns if not c.generated]


async def tenant_tables(conn: asyncpg.Connection, schemas: Sequence[str] = TENANT_SCHEMAS) -> list[str]:
    """Every table with a ``tenant_id`` column in ``schemas``, schema-qualified, sorted."""
    return [r["tbl"] for r in await conn.fetch(TENANT_TABLES, list(schemas))]


async def describe(conn: asyncpg.Connection, name: str) -> Table:
    columns = tuple(Column(**dict(r)) for r in await conn.fetch(COLUMNS, name))
    fks = tuple(
        ForeignKey(r["name"], r["ref_table"], tuple(r["columns"]), tuple(r["ref_columns"]))
        for r in await conn.fetch(FOREIGN_KEYS, name)
    )
    pk = await conn.fetchval(PRIMARY_KEY, name)
    table = Table(name, columns, fks, tuple(pk or ()))
    names = {c.name for c in columns}
    for r in await conn.fetch(CHECKS, name):
        for match in _ANY_ARRAY.finditer(r["def"]):
            column, literals = match.group(1), _LITERAL.findall(match.group(2))
            if column in names and literals:
                table.enum_checks.setdefault(column, literals[0].replace("''", "'"))
    return table


def seed_order(tables: Mapping[str, Table]) -> list[str]:
    """Tables in an order where every required foreign key points at a table seeded earlier."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order:
            return
        if name in visiting:
            raise AssertionError(f"required foreign keys form a cycle through {name}; add it to OVERRIDES")
        visiting.add(name)
        for fk in tables[name].required_fks():
            if fk.ref_table in tables:
                visit(fk.ref_table)
        visiting.discard(name)
        order.append(name)

    for name in sorted(tables):
        visit(name)
    return order


_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def _scalar(column: Column, position: int, marker: str, ordinal: int) -> Any:
    """A value of the column's type; text values carry ``marker`` so unique keys never collide. Times grow
    with the column's position, so checks such as ``expires_at > acquired_at`` hold."""
    t = column.type
    if t in ("text", "name") or t.startswith(("character varying", "character(", "citext")):
        width = re.search(r"\((\d+)\)", t)
        value = f"{column.name[:24]}-{marker}"
        return value[: int(width.group(1))] if width else value
    if t == "uuid":
        return uuid.uuid4()
    if t in ("bigint", "integer", "smallint"):
        return ordinal
    if t.startswith("numeric") or t in ("double precision", "real"):
        return Decimal(ordinal) if t.startswith("numeric") else float(ordinal)
    if t == "boolean":
        return False
    if t.startswith("timestamp"):
        at = _EPOCH + timedelta(minutes=position)
        return at if "with time zone" in t else at.replace(tzinfo=None)
    if t == "date":
        return (_EPOCH + timedelta(days=position)).date()
    if t in ("jsonb", "json"):
        return {}
    if t == "bytea":
        return hashlib.sha256(marker.encode()).digest()  # 32 bytes: what content hashes are checked for
    if t.endswith("[]"):
        return []
    raise AssertionError(f"no generic value for column {column.name} of type {t}; add an override")


def build_row(
    table: Table,
    tenant: str,
    marker: str,
    ordinal: int,
    seeded: Mapping[str, Mapping[str, Mapping[str, Any]]],
) -> dict[str, Any]:
    """A valid row of ``table`` for ``tenant``; ``seeded[table][tenant]`` holds rows it may reference."""
    row: dict[str, Any] = {}
    for fk in table.foreign_keys:
        target = seeded.get(fk.ref_table, {}).get(tenant)
        if target is None:
            continue  # an optional reference left NULL (required ones are seeded first, see seed_order)
        for col, ref in zip(fk.columns, fk.ref_columns, strict=True):
            row.setdefault(col, target[ref])
    overrides = OVERRIDES.get(table.name, {})
    for position, column in enumerate(table.insertable):
        if column.name in row:
            continue
        if column.name == "tenant_id":
            row["tenant_id"] = tenant
        elif column.name == "chain_seq":  # a ledger's hash-chain link (a forged one: seeds bypass the writer)
            row["chain_seq"] = ordinal
        elif column.name == "row_hash":
            row["row_hash"] = hashlib.sha256(marker.encode()).digest()
        elif column.name in overrides:
            row[column.name] = overrides[column.name](tenant, ordinal)
        elif not column.not_null or column.has_default:
            continue  # NULL or the column's default
        elif column.first_enum_label is not None:
            row[column.name] = column.first_enum_label
        elif column.name in table.enum_checks:
            row[column.name] = table.enum_checks[column.name]
        else:
            row[column.name] = _scalar(column, position, marker, ordinal)
    return row


def insert_sql(table: Table, columns: Iterable[str], returning: bool = True) -> str:
    types = {c.name: c.type for c in table.columns}
    cols = list(columns)
    values = ", ".join(f"${i}::{types[c]}" for i, c in enumerate(cols, start=1))
    sql = f"INSERT INTO {table.name} ({', '.join(cols)}) VALUES ({values})"
    return sql + " RETURNING *" if returning else sql


@dataclass
class Seed:
    """Rows seeded for each tenant in every tenant table: ``rows[table][tenant]``."""

    tenants: tuple[str, ...]
    tables: dict[str, Table]
    rows: dict[str, dict[str, dict[str, Any]]]
    order: list[str]

    def fresh_row(self, table: str, tenant: str, ordinal: int) -> dict[str, Any]:
        """Another valid row (not inserted), referencing the rows seeded for ``tenant``."""
        return build_row(self.tables[table], tenant, f"{tenant}-n{ordinal}", ordinal, self.rows)


async def seed(admin: asyncpg.Connection, tenants: Sequence[str], tables: Sequence[str] | None = None) -> Seed:
    """Insert one row per tenant into every tenant table (or ``tables``), as a superuser, in one transaction."""
    names = list(tables) if tables is not None else await tenant_tables(admin)
    described = {name: await describe(admin, name) for name in names}
    order = seed_order(described)
    rows: dict[str, dict[str, dict[str, Any]]] = {}
    async with admin.transaction():
        for name in order:
            table = described[name]
            for ordinal, tenant in enumerate(tenants, start=1):
                row = build_row(table, tenant, f"{tenant}-s{ordinal}", ordinal, rows)
                try:
                    record = await admin.fetchrow(insert_sql(table, row), *row.values())
                except asyncpg.PostgresError as exc:
                    raise AssertionError(
                        f"could not seed {name} generically ({exc.sqlstate}: {exc}); row {row!r}. "
                        "Add the columns it needs to OVERRIDES in tests/integration/catalogrows.py"
                    ) from exc
                assert record is not None
                rows.setdefault(name, {})[tenant] = dict(record)
    return Seed(tuple(tenants), described, rows, order)
