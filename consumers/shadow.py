"""Shadow projections: build them with the live projection code, compare them with live, swap them in.

Replay (from Kafka) and rebuild (from the PostgreSQL ledgers) both feed events to ``ShadowBuilder``, which
drives the very projections the writer uses (``Pipeline.projections``, same load/apply/save) against the
``selene_shadow`` twins. ``compare`` then checks shadow against live table by table: row count, an
order-independent digest, and the first differing keys.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from consumers.pipeline import SET_TENANT_SCOPE, Pipeline
from consumers.projections.base import Rejection, RowView
from consumers.tables import TableSpec
from contracts.envelope import LedgerEvent

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
