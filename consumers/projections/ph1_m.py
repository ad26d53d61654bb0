"""PH1.M: ``memory_current`` from ``memory_ledger``, upstream's reducer in ledger order.

Per (tenant, user, memory key) the latest event wins and the row is built from that event alone: a store or
update makes the row active with its value (upstream's ``memory_value`` and ``provenance`` objects, rebuilt from
the event's flat fields); a forget keeps the row as a tombstone (inactive, no value, no
expiry), even for a key never stored. Nothing is refused here: the contract holds the bounds, and the current
row's foreign key the user (``REFERENCE_UNKNOWN``).
"""

from __future__ import annotations

from collections.abc import Iterable

from consumers.projections.base import Projection, RowRef, RowView
from consumers.tables import TableSpec
from contracts.envelope import LedgerEvent
from contracts.ph1_m import MEMORY_LEDGER, MemoryEventInput

MEMORY_CURRENT = TableSpec(
    "os_core.memory_current",
    columns=(
        ("tenant_id", "text"),
        ("user_id", "text"),
        ("memory_key", "text"),
        ("memory_value", "jsonb"),
        ("confidence", "text"),
        ("sensitivity_flag", "text"),
        ("last_seen_at", "timestamptz"),
        ("active", "boolean"),
        ("use_policy", "text"),
        ("expires_at", "timestamptz"),
        ("provenance", "jsonb"),
        ("source_ledger_id", "bigint"),
    ),
    key=("tenant_id", "user_id", "memory_key"),
)


def _memory(event: LedgerEvent) -> MemoryEventInput:
    assert isinstance(event.payload, MemoryEventInput)
    return event.payload


class MemoryProjection(Projection):
    """memory_current <- memory_ledger: one row per (tenant, user, key), as its latest event left it."""

    name = "ph1_m"
    writes = (MEMORY_CURRENT,)
    ledgers = frozenset({MEMORY_LEDGER.name})
    event_ref_columns = ("source_ledger_id",)

    def reads(self, event: LedgerEvent) -> Iterable[RowRef]:
        p = _memory(event)
        yield MEMORY_CURRENT, (event.tenant_id, p.user_id, p.memory_key)

    def apply(self, view: RowView, event: LedgerEvent) -> None:
        p = _memory(event)
        active = p.kind != "FORGOTTEN"
        view.put(
            MEMORY_CURRENT,
            {
                "tenant_id": event.tenant_id,
                "user_id": p.user_id,
                "memory_key": p.memory_key,
                "memory_value": {"verbatim": p.verbatim, "normalized": p.normalized} if active else None,
                "confidence": p.confidence,
                "sensitivity_flag": p.sensitivity_flag,
                "last_seen_at": event.occurred_at,
                "active": active,
                "use_policy": p.use_policy,
                "expires_at": p.expires_at if active else None,
                "provenance": {"session_id": p.session_id, "transcript_hash": p.transcript_hash},
                "source_ledger_id": event.event_id,  # the caller maps it to the ledger id
            },
        )


PROJECTIONS: tuple[Projection, ...] = (MemoryProjection(),)
