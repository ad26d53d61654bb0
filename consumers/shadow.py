"""Shadow projections: build them with the live projection code, compare them with live, swap them in.

Replay (from Kafka) and rebuild (from the PostgreSQL ledgers) both feed events to ``ShadowBuilder``, which
drives the very projections the writer uses (``Pipeline.projections``, same load/apply/save) against the
``selene_shadow`` twins. ``compare`` then checks shadow against live table by table: row count, an
order-independent digest, and the first differing keys.

Only one shadow run at a time (``shadow_run``): both fill the same shadow tables, so a rebuild truncating them
while a replay swaps them in would apply a half-built state. The lock is a session advisory lock held by a
connection of its own for the whole run; a second run is refused with who holds it.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from consumers.db import connect
from consumers.pipeline import SET_TENANT_SCOPE, Pipeline
from consumers.projections.base import Rejection, RowView
from consumers.tables import TableSpec
from contracts.envelope import LedgerEvent
from contracts.reasons import SeleneError

DIGEST = """
SELECT count(*) AS n, coalesce(sum(('x' || substr(md5(t::text), 1, 15))::bit(60)::bigint), 0)::text AS digest
FROM {table} t WHERE ($1::text IS NULL OR t.tenant_id = $1)
"""
FIRST_DIFFERENCES = """
SELECT {keys} FROM (SELECT * FROM {live} WHERE ($1::text IS NULL OR tenant_id = $1)) l
FULL JOIN (SELECT * FROM {shadow} WHERE ($1::text IS NULL OR tenant_id = $1)) s USING ({keys})
WHERE l::text IS DISTINCT FROM s::text ORDER BY {keys} LIMIT 5
"""
CLEAR_SHADOW = "DELETE FROM {shadow} WHERE ($1::text IS NULL OR tenant_id = $1)"
TRUNCATE_SHADOW = "TRUNCATE {shadow}"
# The two-key form (objsubid 2 in pg_locks) cannot collide with the one-key locks of migrate and provision.
SHADOW_LOCK = (0x5E1E, 0x5AD0)
TRY_SHADOW_LOCK = "SELECT pg_try_advisory_lock($1, $2)"
SET_APPLICATION_NAME = "SELECT set_config('application_name', $1, false)"
SHADOW_LOCK_HOLDER = """
SELECT a.pid, a.application_name, host(a.client_addr) AS client_addr, a.usename, a.backend_start
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1 AND l.objid = $2 AND l.objsubid = 2
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


# Re-drives append beside a paused writer: they pass this gate (shared, for their transaction) and a shadow
# run's final phase closes it (exclusive, for its pause), so no re-drive lands between the shadow's last
# catch-up and its compare or swap (a swap would otherwise drop the re-drive's projection change from live).
REDRIVE_GATE = (0x5E1E, 0x5AD1)
PASS_REDRIVE_GATE = "SELECT pg_advisory_xact_lock_shared($1, $2)"
CLOSE_REDRIVE_GATE = "SELECT pg_advisory_xact_lock($1, $2)"


async def admit_redrive(conn: asyncpg.Connection) -> None:
    """First in a re-drive's transaction: wait while a shadow run's final phase holds the gate closed."""
    await conn.execute(PASS_REDRIVE_GATE, *REDRIVE_GATE)


async def pause_redrives(conn: asyncpg.Connection) -> None:
    """In a shadow run's pause transaction (after pausing the writers): wait for re-drives in flight, keep
    new ones waiting until the transaction ends."""
    await conn.execute(CLOSE_REDRIVE_GATE, *REDRIVE_GATE)


class ShadowRunBusy(SeleneError):
    """Another replay or rebuild is running on this database: the shadow tables are its."""


@asynccontextmanager
async def shadow_run(url: str, what: str) -> AsyncIterator[None]:
    """Hold the one shadow-run lock for the block (see the module docstring), or raise ``ShadowRunBusy``
    naming the holder. ``what`` names this run for the next one (``application_name``, with pid and host)."""
    conn = await connect(url)
    try:
        name = f"selene-ledger {what} pid {os.getpid()} on {socket.gethostname()}"[:63]
        await conn.execute(SET_APPLICATION_NAME, name)
        if not await conn.fetchval(TRY_SHADOW_LOCK, *SHADOW_LOCK):
            holder = await conn.fetchrow(SHADOW_LOCK_HOLDER, *SHADOW_LOCK)
            who = (
                f"{holder['application_name'] or 'a session'} (backend pid {holder['pid']}, user {holder['usename']}, "
                f"from {holder['client_addr'] or 'a local socket'}, since {holder['backend_start']:%H:%M:%S %Z})"
                if holder is not None
                else "a session that has just ended (try again)"
            )
            raise ShadowRunBusy(f"another shadow run holds the lock: {who}; {what} refused")
        yield
    finally:
        await conn.close()  # also releases the session lock


@dataclass
class TableComparison:
    table: str
    live_rows: int
    shadow_rows: int
    live_digest: str
    shadow_digest: str
    first_differences: list[dict[str, Any]] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        return self.live_rows == self.shadow_rows and self.live_digest == self.shadow_digest


@dataclass
class ShadowStats:
    events: int = 0
    refused: int = 0
    per_ledger: dict[str, int] = field(default_factory=dict)


def projection_tables(pipeline: Pipeline) -> list[TableSpec]:
    tables: list[TableSpec] = []
    for p in pipeline.projections:
        tables += [t for t in p.writes if t not in tables]
    return tables


class ShadowBuilder:
    """Applies events, page by page, to the shadow tables with the live projections."""

    def __init__(self, pipeline: Pipeline, tenant: str | None = None) -> None:
        self.pipeline = pipeline
        self.tenant = tenant
        self.projections = [p for p in pipeline.projections if not p.live_only]
        self.tables = projection_tables(pipeline)
        self.stats = ShadowStats()

    async def reset(self, conn: asyncpg.Connection) -> None:
        if self.tenant is not None:
            # Row-level security: a DELETE reaches only the rows of declared tenants (TRUNCATE is not subject
            # to it). Without this, one tenant's shadow kept its rows and the rebuild applied on top of them.
            await conn.execute(SET_TENANT_SCOPE, self.tenant)
        for t in self.tables:
            if self.tenant is None:
                await conn.execute(TRUNCATE_SHADOW.format(shadow=t.shadow))
            else:
                await conn.execute(CLEAR_SHADOW.format(shadow=t.shadow), self.tenant)

    async def apply(self, conn: asyncpg.Connection, events: Sequence[tuple[LedgerEvent, int]]) -> None:
        """Apply ``(event, ledger id)`` pairs in order, in the caller's transaction."""
        events = [(e, i) for e, i in events if self.tenant is None or e.tenant_id == self.tenant]
        if not events:
            return
        await conn.execute(SET_TENANT_SCOPE, ",".join(sorted({e.tenant_id for e, _ in events})))
        wanted: dict[TableSpec, set[tuple[Any, ...]]] = {}
        for event, _ in events:
            for p in self.projections:
                if p.handles(event):
                    for table, key in p.reads(event):
                        wanted.setdefault(table, set()).add(key)
        view = RowView({t: await t.load(conn, keys, shadow=True) for t, keys in wanted.items()})
        ids: dict[uuid.UUID, int] = {}
        for event, ledger_id in events:
            ids[event.event_id] = ledger_id
            self.stats.events += 1
            self.stats.per_ledger[event.ledger] = self.stats.per_ledger.get(event.ledger, 0) + 1
            try:
                for p in self.projections:
                    if p.handles(event):
                        p.apply(view, event)
            except Rejection:
                view.discard_event()
                self.stats.refused += 1
                continue
            view.commit_event()
        await self.pipeline._save(conn, view, ids, shadow=True)


async def compare(
    conn: asyncpg.Connection, tables: Sequence[TableSpec], tenant: str | None = None
) -> list[TableComparison]:
    """Shadow vs live for each table, in the caller's snapshot (use REPEATABLE READ for a moving writer)."""
    out = []
    for t in tables:
        live = await conn.fetchrow(DIGEST.format(table=t.name), tenant)
        shadow = await conn.fetchrow(DIGEST.format(table=t.shadow), tenant)
        assert live is not None and shadow is not None
        cmp = TableComparison(t.name, live["n"], shadow["n"], live["digest"], shadow["digest"])
        if not cmp.equal:
            keys = ", ".join(t.key)
            rows = await conn.fetch(FIRST_DIFFERENCES.format(keys=keys, live=t.name, shadow=t.shadow), tenant)
            cmp.first_differences = [dict(r) for r in rows]
        out.append(cmp)
    return out
