"""The fair peer: the same Debezium JDBC sink (same Connect, same settings where they apply) writing into a real
ledger table, as the writer role, under the ledger's forced row-level security.

What it writes: the rows of the ledger that carries most of the stream's events, exactly as the writer would
append them (``LedgerTable.row``: every column the writer inserts, the payload's canonical JSON, the content
digest as ``bytea``, the hash-chain link), into that ledger's table with all its indexes, checks, foreign keys
(if any), generated columns and append-only triggers. The connector connects as ``selene_writer`` with the
tenant scope set at connect time (JDBC ``options=-c selene.tenant_ids=...``: the only session hook the
connector has), so every row passes the same ``tenant_scope`` policy check as the writer's rows; scoping to
the run's tenants is what the writer does per batch, and no role that bypasses RLS is used.

What stays unequal, all in the peer's favour (the report says so): the connector can neither dedupe (the
writer's role may not UPDATE a ledger, so no upsert; a duplicate would fail the task) nor link a hash chain
nor derive rows from events, so the stream it reads has no re-sends and each record carries the finished row,
its chain link computed before the clock starts (heads stored, as L0 and L1 do); the identities, devices and
sessions its foreign keys reference are written first by the writer, untimed (as drain has them); it writes
one ledger and no projections, offsets or dead letters. Debezium's UNNEST insert cannot bind ``bytea`` arrays,
so it uses its batched JDBC inserts, with the driver's ``reWriteBatchedInserts`` (multi-row INSERTs).
"""

from __future__ import annotations

import base64
import collections
import datetime as dt
import json
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import asyncpg

from bench.modes_db import InMemoryWriter
from bench.peer import PeerRun, resolve_jars, time_sink
from bench.publish import Item, produce
from bench.stream import StreamRecord, as_records
from consumers.chain import stamp
from consumers.db import create_pool
from consumers.ledger import LedgerRow, LedgerTable
from consumers.pipeline import Pipeline

#: Connect schema of each PostgreSQL column type the ledgers use (Debezium's logical names where they exist).
CONNECT_TYPES: dict[str, tuple[str, str | None]] = {
    "text": ("string", None),
    "integer": ("int32", None),
    "bigint": ("int64", None),
    "double precision": ("float64", None),
    "boolean": ("boolean", None),
    "bytea": ("bytes", None),
    "uuid": ("string", "io.debezium.data.Uuid"),
    "timestamptz": ("string", "io.debezium.time.ZonedTimestamp"),
    "jsonb": ("string", "io.debezium.data.Json"),
}


def row_schema(table: LedgerTable) -> dict[str, Any]:
    """The JSON-with-schema struct of ``table``'s inserted columns (all optional: the table's NOT NULLs judge)."""
    fields = []
    for name, pg_type in table.columns:
        kind, logical = CONNECT_TYPES[pg_type]
        field: dict[str, Any] = {"field": name, "type": kind, "optional": True}
        if logical:
            field["name"] = logical
        fields.append(field)
    return {"type": "struct", "name": f"selene.bench.{table.spec.name}", "optional": False, "fields": fields}


def _json_value(value: Any, pg_type: str) -> Any:
    if value is None:
        return None
    if pg_type == "bytea":
        return base64.b64encode(bytes(value)).decode()
    if pg_type == "jsonb":
        return value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


def row_record(table: LedgerTable, schema: dict[str, Any], row: LedgerRow) -> bytes:
    """The finished ledger row as Connect's JsonConverter expects it (``schemas.enable=true``)."""
    payload = {name: _json_value(row.values.get(name), pg_type) for name, pg_type in table.columns}
    return json.dumps({"schema": schema, "payload": payload}, separators=(",", ":")).encode()


def busiest_ledger(rows: Sequence[LedgerRow]) -> str:
    """The ledger most of the rows land in (the fair peer's table)."""
    return collections.Counter(r.event.ledger for r in rows).most_common(1)[0][0]


@dataclass(frozen=True)
class FairRows:
    table: LedgerTable
    rows: list[LedgerRow]
    tenants: list[str]


async def prepare(run: PeerRun, stream: Sequence[StreamRecord]) -> FairRows:
    """Untimed: the foundation records through the writer (the foreign keys' targets), then the body's rows of
    the busiest ledger, re-sends left out, linked into their chains (heads stored) by the bench's admin role."""
    settings = run.settings
    pipeline = Pipeline(settings)
    pool = await create_pool(settings.database_url, max_size=2)
    try:
        writer = InMemoryWriter(settings, pool)
        await writer.write_all(writer.records([r for r in stream if r.foundation]))
    finally:
        await pool.close()
    body = [r for r in stream if not r.foundation and not r.duplicate]
    decoded = pipeline.decode(as_records(body, settings.topic_prefix, settings.topic_partitions))
    rows = [i.row for i in decoded if i.row is not None]
    ledger = busiest_ledger(rows)
    table = pipeline.ledger_tables[ledger]
    rows = [r for r in rows if r.event.ledger == ledger]
    admin_url = settings.database_admin_url or settings.database_owner_url
    admin = await asyncpg.connect(admin_url)
    try:
        async with admin.transaction():
            await stamp(admin, table.spec.table, table.column_names, [r.values for r in rows])
    finally:
        await admin.close()
    tenants = sorted({r.event.tenant_id for r in rows})
    return FairRows(table, rows, tenants)


def fair_items(fair: FairRows, topic: str) -> Iterator[Item]:
    schema = row_schema(fair.table)
    return ((topic, r.event.kafka_key, row_record(fair.table, schema, r), ()) for r in fair.rows)


def fair_run(run: PeerRun, fair: FairRows) -> PeerRun:
    """``run`` retargeted: the writer role, the tenant scope at connect time, plain inserts into the ledger."""
    scope = quote(f"-c selene.tenant_ids={','.join(fair.tenants)}", safe="")
    overrides = {
        "insert.mode": "insert",
        "primary.key.mode": "none",
        "primary.key.fields": "",
        "collection.name.format": fair.table.spec.table,
        "use.reduction.buffer": "false",
        "dialect.postgres.unnest.insert.enabled": "false",
    }
    return PeerRun(
        home=run.home,
        settings=run.settings,
        topic=run.topic,
        name=run.name,
        database_url=run.settings.database_url,
        jdbc_params=f"options={scope}&reWriteBatchedInserts=true",
        overrides=tuple(overrides.items()),
    )


async def run_fair_peer(
    run: PeerRun, stream: Sequence[StreamRecord], *, max_seconds: float, startup_timeout: float = 180.0
) -> dict[str, Any]:
    """Prepare the rows, produce them, start Connect and time it until every row is in the ledger (counted by
    the admin role, which RLS does not filter) or the time cap."""
    resolve_jars(run.lib)
    fair = await prepare(run, stream)
    await produce(run.settings, fair_items(fair, run.topic))
    target = fair_run(run, fair)
    admin = await asyncpg.connect(run.settings.database_admin_url or run.settings.database_owner_url)
    try:

        async def count() -> int:
            sql = f"SELECT count(*) FROM {fair.table.spec.table} WHERE tenant_id = ANY($1::text[])"
            return int(await admin.fetchval(sql, fair.tenants))

        result = await time_sink(target, count, len(fair.rows), len(fair.rows), max_seconds, startup_timeout)
    finally:
        await admin.close()
    role = urlsplit(run.settings.database_url).username
    return {**result, "ledger_table": fair.table.spec.table, "role": role, "tenants": len(fair.tenants)}
