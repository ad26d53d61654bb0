"""The blueprint registry (seed 000 row 4): which process blueprint serves each (tenant, intent).

Upstream's rule, by the event's status, when the intent's row is absent or present:

| event status | absent | present |
| ACTIVE       | apply  | apply (always wins) |
| DRAFT        | apply  | only if the row holds the same process and version and is not ACTIVE |
| RETIRED      | skip   | only if the row holds the same process and version |

A skipped event is recorded in the ledger and leaves the row as it is (no refusal: upstream skips it).
"Latest version per key" (``LatestPerKey``) cannot say this (the decision is on status and on which blueprint
the row holds, not on a version order), hence a reducer by hand.

``ux_blueprint_registry_tenant_process_version`` makes a (process, version) current for one intent of a
tenant at most; upstream's reducer does not guard it. Here an event that would make it current for a second
intent is refused, ``PBS_PROCESS_VERSION_CONFLICT``, before the database would refuse the row.
"""

from __future__ import annotations

from collections.abc import Iterable

from consumers.projections.base import Projection, Rejection, RowRef, RowView
from consumers.tables import Row, TableSpec
from contracts.envelope import LedgerEvent
from contracts.pbs import PROCESS_BLUEPRINTS, ProcessBlueprintEventInput
from contracts.reasons import ReasonCode

BLUEPRINT_REGISTRY = TableSpec(
    "os_process.blueprint_registry",
    columns=(
        ("tenant_id", "text"),
        ("intent_type", "text"),
        ("process_id", "text"),
        ("blueprint_version", "integer"),
        ("status", "text"),
        ("source_event_id", "bigint"),
        ("updated_at", "timestamptz"),
    ),
    key=("tenant_id", "intent_type"),
)
# The registry by (tenant, process, version): read to refuse a blueprint version current for two intents.
REGISTRY_BY_PROCESS_VERSION = TableSpec(
    "os_process.blueprint_registry",
    columns=(("tenant_id", "text"), ("process_id", "text"), ("blueprint_version", "integer"), ("intent_type", "text")),
    key=("tenant_id", "process_id", "blueprint_version"),
)


def _payload(event: LedgerEvent) -> ProcessBlueprintEventInput:
    p = event.payload
    assert isinstance(p, ProcessBlueprintEventInput)
    return p


def applies(current: Row | None, p: ProcessBlueprintEventInput) -> bool:
    """Upstream's status table: whether the event overwrites the intent's row."""
    if p.status == "ACTIVE":
        return True
    if current is None:
        return p.status == "DRAFT"
    same = (current["process_id"], current["blueprint_version"]) == (p.process_id, p.blueprint_version)
    if p.status == "DRAFT":
        return same and current["status"] != "ACTIVE"
    return same  # RETIRED


def reduce_registry(current: Row | None, holder: Row | None, event: LedgerEvent) -> Row | None:
    """The intent's next row, or None when the event leaves it as it is. ``holder`` is the registry row that
    holds the event's (process, version) now, if any. Pure; ``source_event_id`` holds the event's uuid."""
    p = _payload(event)
    if not applies(current, p):
        return None
    if holder is not None and holder["intent_type"] != p.intent_type:
        raise Rejection(
            ReasonCode.PBS_PROCESS_VERSION_CONFLICT,
            f"process {p.process_id} version {p.blueprint_version} serves intent {holder['intent_type']}; "
            f"it cannot serve {p.intent_type} too",
        )
    return {
        "tenant_id": event.tenant_id,
        "intent_type": p.intent_type,
        "process_id": p.process_id,
        "blueprint_version": p.blueprint_version,
        "status": p.status,
        "source_event_id": event.event_id,
        "updated_at": event.occurred_at,
    }


class BlueprintRegistry(Projection):
    """``blueprint_registry`` from ``process_blueprints`` by upstream's status table."""

    name = "blueprint_registry"
    writes = (BLUEPRINT_REGISTRY,)
    indexes = (REGISTRY_BY_PROCESS_VERSION,)
    ledgers = frozenset({PROCESS_BLUEPRINTS.name})
    event_ref_columns = ("source_event_id",)

    def reads(self, event: LedgerEvent) -> Iterable[RowRef]:
        p = _payload(event)
        yield BLUEPRINT_REGISTRY, (event.tenant_id, p.intent_type)
        yield REGISTRY_BY_PROCESS_VERSION, (event.tenant_id, p.process_id, p.blueprint_version)

    def apply(self, view: RowView, event: LedgerEvent) -> None:
        p = _payload(event)
        current = view.get(BLUEPRINT_REGISTRY, (event.tenant_id, p.intent_type))
        holder = view.get(REGISTRY_BY_PROCESS_VERSION, (event.tenant_id, p.process_id, p.blueprint_version))
        row = reduce_registry(current, holder, event)
        if row is None:
            return
        if current is not None:  # the (process, version) the intent held is free again, for later events
            view.delete(
                REGISTRY_BY_PROCESS_VERSION, (event.tenant_id, current["process_id"], current["blueprint_version"])
            )
        view.put(BLUEPRINT_REGISTRY, row)
        view.put(
            REGISTRY_BY_PROCESS_VERSION,
            {k: row[k] for k in ("tenant_id", "process_id", "blueprint_version", "intent_type")},
        )


PROJECTIONS = (BlueprintRegistry(),)
