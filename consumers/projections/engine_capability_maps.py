"""Engine capability maps: the ledger's row mapping and the current projection (one route per tenant, engine
and capability).

The rule (``reduce_current``), chosen so that current state is a function of the ordered ledger and nothing
else:
- the current row follows the highest ``capability_map_version`` seen; within that version the latest
  event wins, whatever its transition (published, activated, deprecated);
- an event of an older version is recorded in the ledger and leaves the current row as it is ("activate v2,
  then deprecate v1" is the normal way to retire v1);
- a version's route is immutable: an event of the current version with another route is refused
  (``ECM_VERSION_ROUTE_CONFLICT``, non-blocking: the published route stands and later events still apply).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from consumers.ledger import Extractor, LedgerTable
from consumers.projections.base import Projection, Rejection, RowRef, RowView
from consumers.tables import Row, TableSpec
from contracts.engine_capability_maps import ENGINE_CAPABILITY_MAPS, ROUTE_FIELDS, EngineCapabilityMapEventInput
from contracts.envelope import LedgerEvent
from contracts.reasons import ReasonCode


def _ecm(e: LedgerEvent) -> EngineCapabilityMapEventInput:
    assert isinstance(e.payload, EngineCapabilityMapEventInput)
    return e.payload


def _payload_field(name: str) -> Extractor:
    return lambda e: getattr(_ecm(e), name)


# Payload fields stored as columns: the seed's key, the reason, the route.
_COLUMNS = (
    ("engine_id", "text"),
    ("capability_id", "text"),
    ("capability_map_version", "integer"),
    ("reason_code", "text"),
    *((name, "text") for name in ROUTE_FIELDS),
)

ENGINE_CAPABILITY_MAPS_TABLE = LedgerTable(
    ENGINE_CAPABILITY_MAPS,
    extra=tuple((name, pg_type, _payload_field(name)) for name, pg_type in _COLUMNS),
    renamed=(("engine_id", "publisher_engine_id"),),
)

ENGINE_CAPABILITY_MAPS_CURRENT = TableSpec(
    "os_process.engine_capability_maps_current",
    columns=(
        ("tenant_id", "text"),
        ("engine_id", "text"),
        ("capability_id", "text"),
        ("capability_map_version", "integer"),
        ("status", "text"),
        ("reason_code", "text"),
        *((name, "text") for name in ROUTE_FIELDS),
        ("publisher_engine_id", "text"),
        ("updated_at", "timestamptz"),
        ("source_event_id", "bigint"),
    ),
    key=("tenant_id", "engine_id", "capability_id"),
)


def current_key(event: LedgerEvent) -> tuple[Any, ...]:
    p = _ecm(event)
    return (event.tenant_id, p.engine_id, p.capability_id)


def reduce_current(current: Row | None, event: LedgerEvent) -> Row | None:
    """The capability's current row after ``event``, or None when the event leaves it unchanged.

    Pure: ``source_event_id`` holds the event's uuid, which the caller maps to the ledger id.
    """
    p = _ecm(event)
    if current is not None:
        version = current["capability_map_version"]
        if p.capability_map_version < version:
            return None
        if p.capability_map_version == version and p.route() != tuple(current[f] for f in ROUTE_FIELDS):
            raise Rejection(
                ReasonCode.ECM_VERSION_ROUTE_CONFLICT,
                f"{p.engine_id}/{p.capability_id} version {version} was published with another route; "
                "a version's route cannot change (publish a new version)",
            )
    return {
        "tenant_id": event.tenant_id,
        "engine_id": p.engine_id,
        "capability_id": p.capability_id,
        "capability_map_version": p.capability_map_version,
        "status": p.status,
        "reason_code": p.reason_code,
        **dict(zip(ROUTE_FIELDS, p.route(), strict=True)),
        "publisher_engine_id": event.engine_id,
        "updated_at": event.occurred_at,
        "source_event_id": event.event_id,
    }


class EngineCapabilityMapProjection(Projection):
    """engine_capability_maps_current <- every event of the engine_capability_maps ledger."""

    name = "engine_capability_maps"
    writes = (ENGINE_CAPABILITY_MAPS_CURRENT,)
    ledgers = frozenset({ENGINE_CAPABILITY_MAPS.name})
    event_ref_columns = ("source_event_id",)

    def reads(self, event: LedgerEvent) -> Iterable[RowRef]:
        yield ENGINE_CAPABILITY_MAPS_CURRENT, current_key(event)

    def apply(self, view: RowView, event: LedgerEvent) -> None:
        row = reduce_current(view.get(ENGINE_CAPABILITY_MAPS_CURRENT, current_key(event)), event)
        if row is not None:
            view.put(ENGINE_CAPABILITY_MAPS_CURRENT, row)
