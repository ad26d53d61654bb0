"""Engine capability maps (seed 003): which capabilities an engine offers, and how each one is routed.

An event of ``os_process.engine_capability_maps`` states, for one (engine, capability, version), the
capability's route, that is the fields of a capability entry in seed 002 (name, input and output schema,
allowed callers, side effects), and a governance transition: published, activated or deprecated. Every event
carries the whole route of its version, so the current projection never needs an earlier event to read a
later one.

Two engines are involved and both are kept: ``EngineCapabilityMapEventInput.engine_id`` is the engine whose
capability is mapped (the seed's key column ``engine_id``); the envelope's ``engine_id`` is, as on every
ledger, the engine that published the event (stored as ``publisher_engine_id``). They may differ, e.g. when
Selene OS activates another engine's map after its simulation passed.

Aggregate = (engine, capability): every version of one capability is on one partition and is written by one
writer in publish order, which is what makes "activate v2, then deprecate v1" mean what it says.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, StringConstraints

from contracts.envelope import (
    STORABLE_TEXT_PATTERN,
    EngineId,
    LedgerEvent,
    LedgerSpec,
    Payload,
    ReasonText,
    define_event,
)
from contracts.reasons import ReasonCode
from contracts.slice import ExampleContext, LatestPerKey, LedgerColumns, SliceContract

ENGINE_CAPABILITY_MAPS = LedgerSpec(
    name="engine_capability_maps",
    table="os_process.engine_capability_maps",
    id_column="engine_capability_map_event_id",
    idempotency_scope=("tenant_id", "engine_id", "capability_id", "capability_map_version", "idempotency_key"),
    contract_invalid=ReasonCode.ECM_CONTRACT_VALIDATION_FAILED,
    tenant_violation=ReasonCode.ECM_TENANT_SCOPE_VIOLATION,
    duplicate=ReasonCode.ECM_IDEMPOTENCY_REPLAY,
    append_only_violation=ReasonCode.ECM_APPEND_ONLY_VIOLATION,
)

# Seed 002's capability ids are upper-case tokens (OS_WORK_ORDER_LEDGER_APPEND, WORKORDER_LIST_PENDING).
CapabilityId = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9_.]{0,95}$")]
MapVersion = Annotated[int, Field(ge=1, le=2**31 - 1)]
SchemaRef = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=STORABLE_TEXT_PATTERN)]
# A caller policy as seed 002 writes it (SELENE_OS_ONLY).
CallerPolicy = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9_]{0,63}$")]
# Seed 002's notation: NONE, or DECLARED (DB_WRITE) with up to eight effects.
SideEffects = Annotated[
    str, StringConstraints(pattern=r"^(NONE|DECLARED \([A-Z][A-Z0-9_]*(, [A-Z][A-Z0-9_]*){0,7}\))$")
]

Status = Literal["PUBLISHED", "ACTIVE", "DEPRECATED"]
ROUTE_FIELDS = ("capability_name", "input_schema", "output_schema", "allowed_callers", "side_effects")


class EngineCapabilityMapEventInput(Payload):
    """One (engine, capability, version) and its route; the event type says which transition it is."""

    #: the status the capability's current row takes when this event is its latest word.
    status: ClassVar[Status]

    engine_id: EngineId
    capability_id: CapabilityId
    capability_map_version: MapVersion
    reason_code: ReasonText
    capability_name: Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=STORABLE_TEXT_PATTERN)]
    input_schema: SchemaRef
    output_schema: SchemaRef
    allowed_callers: CallerPolicy
    side_effects: SideEffects

    def aggregate_id(self, event: LedgerEvent) -> str:
        return f"ecm:{self.engine_id}:{self.capability_id}"

    def route(self) -> tuple[str, ...]:
        """What must not change within one version: a version's route is immutable once published."""
        return tuple(getattr(self, f) for f in ROUTE_FIELDS)


class CapabilityMapPublished(EngineCapabilityMapEventInput):
    """A version of a capability's route is published (known, not yet used for routing)."""

    status: ClassVar[Status] = "PUBLISHED"


class CapabilityMapActivated(EngineCapabilityMapEventInput):
    """A version becomes the one to route by."""

    status: ClassVar[Status] = "ACTIVE"


class CapabilityMapDeprecated(EngineCapabilityMapEventInput):
    """A version is deprecated (kept for history; callers should move on)."""

    status: ClassVar[Status] = "DEPRECATED"


CapabilityMapPublishedEvent = define_event(ENGINE_CAPABILITY_MAPS, "CAPABILITY_MAP_PUBLISHED", CapabilityMapPublished)
CapabilityMapActivatedEvent = define_event(ENGINE_CAPABILITY_MAPS, "CAPABILITY_MAP_ACTIVATED", CapabilityMapActivated)
CapabilityMapDeprecatedEvent = define_event(
    ENGINE_CAPABILITY_MAPS, "CAPABILITY_MAP_DEPRECATED", CapabilityMapDeprecated
)


def examples(ctx: ExampleContext) -> list[LedgerEvent]:
    """Selene OS publishes, then activates, a capability of the work-order engine."""
    route = {
        "engine_id": "SELENE_OS_CORE_TABLES",
        "capability_id": f"WORKORDER_EXAMPLE_{ctx.n}",
        "capability_map_version": 1,
        "reason_code": "ECM_GOVERNANCE_APPROVED",
        "capability_name": "Example capability",
        "input_schema": "WorkOrderLedgerEventInput",
        "output_schema": "Result<work_order_event_id, StorageError>",
        "allowed_callers": "SELENE_OS_ONLY",
        "side_effects": "DECLARED (DB_WRITE)",
    }
    published, activated = (CapabilityMapPublishedEvent, route), (CapabilityMapActivatedEvent, route)
    return ctx.events("SELENE_OS", f"gov-{ctx.n}", published, activated)


SLICE = SliceContract(
    name="engine_capability_maps",
    engines=("SELENE_OS",),
    kind="ledger_current",
    seed_row=6,
    doc="docs/DB_WIRING/ENGINE_CAPABILITY_MAPS_TABLES.md",
    acceptance="AT-ECM-DB",
    ledgers=(
        LedgerColumns(
            ENGINE_CAPABILITY_MAPS,
            EngineCapabilityMapEventInput,
            renamed_envelope=(("engine_id", "publisher_engine_id"),),
        ),
    ),
    events=(CapabilityMapPublishedEvent, CapabilityMapActivatedEvent, CapabilityMapDeprecatedEvent),
    # The current row follows the highest version; a version's route is immutable once published.
    current=(
        LatestPerKey(
            table="os_process.engine_capability_maps_current",
            key=("engine_id", "capability_id"),
            version="capability_map_version",
            immutable_within_version=ROUTE_FIELDS,
            conflict=ReasonCode.ECM_VERSION_ROUTE_CONFLICT,
            derived=(("status", "text"),),
        ),
    ),
    non_blocking=frozenset({ReasonCode.ECM_VERSION_ROUTE_CONFLICT}),
    examples=examples,
)
