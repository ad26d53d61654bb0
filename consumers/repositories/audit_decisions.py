"""Decision traces of the audit-backed engines of seed 000 rows 13-19 (PH1.C, PH1.NLP, PH1.D, PH1.X,
PH1.WRITE, PH1.TTS, PH1.E): an engine's audit rows of one correlation (optionally one turn) in append order,
each with its payload read back into the engine's typed decision model.

Each engine's module (``consumers/repositories/ph1_<x>.py``) names its engine and its event types' models;
the reads are the same for all seven, and ``decision_reader`` builds the reader from a slice's declaration
alone (PH1.WRITE has no module of its own). Tenant-scoped like every repository (``consumers.repositories``).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Generic, TypeVar

import asyncpg

from consumers.repositories import one_tenant
from consumers.repositories.audit import MAX_PAGE, check_page
from contracts.envelope import LedgerEvent, Payload, unmarked
from contracts.slice import SliceContract

P = TypeVar("P", bound=Payload)


@dataclass(frozen=True, slots=True)
class Decision(Generic[P]):
    """One decision row of ``os_core.audit_events``: its columns and its typed payload."""

    event_id: int
    event_uuid: uuid.UUID
    tenant_id: str
    event_type: str
    correlation_id: str
    turn_id: str
    idempotency_key: str
    reason_code: str
    user_id: str
    device_id: str
    session_id: str | None
    occurred_at: datetime
    recorded_at: datetime
    decision: P


_COLUMNS = """event_id, event_uuid, tenant_id, event_type, correlation_id, turn_id, idempotency_key, reason_code,
       user_id, device_id, session_id, occurred_at, recorded_at, payload"""
# ix_audit_events_tenant_correlation_event serves both trace reads (the turn is a filter within the correlation).
SELECT_TRACE = f"""
SELECT {_COLUMNS} FROM os_core.audit_events
WHERE tenant_id = $1 AND correlation_id = $2 AND engine_id = $3 AND ($4::text IS NULL OR turn_id = $4)
ORDER BY event_id
"""
# The tenant's rows of one engine, a page after an event id: the primary key's order, filtered.
SELECT_BY_TENANT = f"""
SELECT {_COLUMNS} FROM os_core.audit_events
WHERE tenant_id = $1 AND engine_id = $2 AND event_id > $3
ORDER BY event_id LIMIT $4
"""


class DecisionReader(Generic[P]):
    """Typed reads of one engine's decisions, on a reader-role connection. Subclasses name the engine and
    the payload model of each of its event types."""

    engine: ClassVar[str]
    events: ClassVar[tuple[type[LedgerEvent], ...]]
    """The engine's event models (its ``SLICE.events``): each row's type selects its payload model."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.models: dict[str, type[Payload]] = {m.event_type_name: m.payload_model for m in self.events}

    def _decision(self, row: asyncpg.Record) -> Decision[P]:
        fields: dict[str, Any] = dict(row)
        payload = fields.pop("payload")
        payload = json.loads(payload) if isinstance(payload, str) else payload
        with unmarked():  # read back, never published
            decision = self.models[fields["event_type"]].model_validate(payload, strict=False)
        return Decision(**fields, decision=decision)  # type: ignore[arg-type]

    async def decision_trace(
        self, tenant_id: str, correlation_id: str, turn_id: str | None = None
    ) -> list[Decision[P]]:
        """The correlation's decisions of this engine (those of ``turn_id`` only, if given), in the order they
        were appended (``event_id``, never timestamps): the replayable trace."""
        async with one_tenant(self.conn, tenant_id) as conn:
            rows = await conn.fetch(SELECT_TRACE, tenant_id, correlation_id, self.engine, turn_id)
        return [self._decision(r) for r in rows]

    async def decisions(self, tenant_id: str, *, after_event_id: int = 0, limit: int = MAX_PAGE) -> list[Decision[P]]:
        """The tenant's decisions of this engine in append order, a page after ``after_event_id``."""
        check_page(limit)
        async with one_tenant(self.conn, tenant_id) as conn:
            rows = await conn.fetch(SELECT_BY_TENANT, tenant_id, self.engine, after_event_id, limit)
        return [self._decision(r) for r in rows]


def decision_reader(declaration: SliceContract) -> type[DecisionReader[Any]]:
    """The reader of an audit-backed slice, from its declaration (its engine, its event types): a slice needs a
    reader module of its own (``consumers/repositories/<slice>.py``) only to name its decisions' types
    statically or to read more. ``decision_reader(ph1_write.SLICE)(conn)`` reads PH1.WRITE's decisions."""
    if declaration.kind != "audit_backed":
        raise ValueError(f"slice {declaration.name} is {declaration.kind}, not audit-backed")
    name = "".join(p.title() for p in declaration.name.split("_")) + "Reader"
    return type(name, (DecisionReader,), {"engine": declaration.engines[0], "events": declaration.events})
