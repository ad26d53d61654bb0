"""PH1.POSITION (seed 000 row 22): positions, their lifecycle ledger, and the tenant companies they belong to.

``position_lifecycle_events`` is the ledger: one event per effective commit (create a draft, activate,
suspend or retire), each with the state it leaves and the state it enters. ``positions`` is its current
table; the create event carries the position's whole snapshot (title, department, band, ...), so the row is
rebuildable from the ledger (the sheet's minimal reading: upstream keeps those fields outside the ledger).

``tenant_companies`` (PH1.ONB.BIZ's table, which positions need first) has no ledger upstream: a company is
upserted. Here an upsert is a ``TENANT_COMPANY_UPSERTED`` row on the PH1.J audit ledger, as PH1.F's identities
are, and ``tenant_companies`` is its projection.

Aggregates: a position (its lifecycle is decided in order); a company (its upserts, in order).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, StringConstraints, model_validator

from contracts.audit import AUDIT_EVENTS, AuditPayload
from contracts.envelope import (
    IDENT_PATTERN,
    Ident,
    LedgerEvent,
    LedgerSpec,
    Payload,
    ReasonText,
    define_event,
    new_event,
)
from contracts.reasons import ReasonCode
from contracts.slice import ExampleContext, LedgerColumns, SliceContract

POSITION_LIFECYCLE_EVENTS = LedgerSpec(
    name="position_lifecycle_events",
    table="os_core.position_lifecycle_events",
    id_column="event_id",
    idempotency_scope=("tenant_id", "position_id", "to_state", "idempotency_key"),
    contract_invalid=ReasonCode.POSITION_CONTRACT_VALIDATION_FAILED,
    tenant_violation=ReasonCode.POSITION_TENANT_SCOPE_VIOLATION,
    duplicate=ReasonCode.POSITION_IDEMPOTENCY_REPLAY,
    append_only_violation=ReasonCode.POSITION_APPEND_ONLY_VIOLATION,
)

ENGINE_ID = "PH1.POSITION"
COMPANY_ENGINE_ID = "PH1.ONB.BIZ"


# Ids and references: one non-blank token; names: non-blank text without control characters or edge spaces.
_NAME = r"^[^\s\x00-\x1f\x7f-\x9f]([^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f])?$"
Id64 = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=IDENT_PATTERN)]
Ref128 = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=IDENT_PATTERN)]
Name128 = Annotated[str, StringConstraints(max_length=128, pattern=_NAME)]
Name64 = Annotated[str, StringConstraints(max_length=64, pattern=_NAME)]
LifecycleState = Literal["DRAFT", "ACTIVE", "SUSPENDED", "RETIRED"]
Action = Literal["CREATE_DRAFT", "ACTIVATE", "SUSPEND", "RETIRE", "POLICY_OVERRIDE"]
ScheduleType = Literal["FULL_TIME", "PART_TIME", "CONTRACT", "SHIFT"]
SimulationId = Annotated[str, StringConstraints(min_length=1, max_length=96, pattern=IDENT_PATTERN)]


class PositionEventInput(Payload):
    """A lifecycle event (upstream's ``PositionLifecycleEventRecord``; ``created_at`` is ``occurred_at``).

    Each event type's ``from_state`` literal is the sheet's "allowed from" (activate: DRAFT or SUSPENDED;
    retire or suspend: ACTIVE or SUSPENDED), and the writer applies an event only when ``from_state`` is the
    position's state: together, the lifecycle's transitions."""

    position_id: Id64
    action: Action
    from_state: LifecycleState
    to_state: LifecycleState
    reason_code: ReasonText
    simulation_id: SimulationId
    actor_user_id: Ident

    def aggregate_id(self, event: LedgerEvent) -> str:
        return f"position:{self.position_id}"


class PositionCreateDraft(PositionEventInput):
    """POSITION_SIM_001: a draft, with the position's snapshot (``DRAFT -> DRAFT``, as upstream records it)."""

    action: Literal["CREATE_DRAFT"] = "CREATE_DRAFT"
    from_state: Literal["DRAFT"] = "DRAFT"
    to_state: Literal["DRAFT"] = "DRAFT"
    reason_code: ReasonText = "POSITION_OK_CREATE_DRAFT"
    simulation_id: Literal["POSITION_SIM_001_CREATE_DRAFT"] = "POSITION_SIM_001_CREATE_DRAFT"
    company_id: Id64
    position_title: Name128
    department: Name128
    jurisdiction: Name64
    schedule_type: ScheduleType
    permission_profile_ref: Ref128
    compensation_band_ref: Ref128


class PositionActivate(PositionEventInput):
    """POSITION_SIM_004: ``DRAFT`` or ``SUSPENDED`` -> ``ACTIVE``."""

    action: Literal["ACTIVATE"] = "ACTIVATE"
    from_state: Literal["DRAFT", "SUSPENDED"]
    to_state: Literal["ACTIVE"] = "ACTIVE"
    reason_code: ReasonText = "POSITION_OK_ACTIVATE_COMMIT"
    simulation_id: Literal["POSITION_SIM_004_ACTIVATE_COMMIT"] = "POSITION_SIM_004_ACTIVATE_COMMIT"


class PositionRetireOrSuspend(PositionEventInput):
    """POSITION_SIM_005: ``ACTIVE`` or ``SUSPENDED`` -> the requested ``SUSPENDED`` or ``RETIRED``."""

    # The validator below, for other languages' validators (contracts.schema_export exports it).
    model_config = ConfigDict(
        json_schema_extra={
            "if": {"properties": {"action": {"const": "SUSPEND"}}},
            "then": {"properties": {"to_state": {"const": "SUSPENDED"}}},
            "else": {"properties": {"to_state": {"const": "RETIRED"}}},
        }
    )

    action: Literal["SUSPEND", "RETIRE"]
    from_state: Literal["ACTIVE", "SUSPENDED"]
    to_state: Literal["SUSPENDED", "RETIRED"]
    reason_code: ReasonText = "POSITION_OK_RETIRE_OR_SUSPEND_COMMIT"
    simulation_id: Literal["POSITION_SIM_005_RETIRE_OR_SUSPEND_COMMIT"] = "POSITION_SIM_005_RETIRE_OR_SUSPEND_COMMIT"

    @model_validator(mode="after")
    def _action_names_its_state(self) -> PositionRetireOrSuspend:
        if (self.action, self.to_state) not in (("SUSPEND", "SUSPENDED"), ("RETIRE", "RETIRED")):
            raise ValueError(f"{self.action} cannot lead to {self.to_state}")
        return self


class TenantCompanyUpserted(AuditPayload):
    """PH1.ONB.BIZ: a tenant's company is created or changed (upstream's upsert)."""

    company_id: Id64
    legal_name: Name128
    jurisdiction: Name64
    lifecycle_state: LifecycleState

    def aggregate_id(self, event: LedgerEvent) -> str:
        return f"company:{self.company_id}"


PositionCreateDraftEvent = define_event(POSITION_LIFECYCLE_EVENTS, "POSITION_SIM_001_CREATE_DRAFT", PositionCreateDraft)
PositionActivateEvent = define_event(POSITION_LIFECYCLE_EVENTS, "POSITION_SIM_004_ACTIVATE_COMMIT", PositionActivate)
PositionRetireOrSuspendEvent = define_event(
    POSITION_LIFECYCLE_EVENTS, "POSITION_SIM_005_RETIRE_OR_SUSPEND_COMMIT", PositionRetireOrSuspend
)
TenantCompanyUpsertedEvent = define_event(AUDIT_EVENTS, "TENANT_COMPANY_UPSERTED", TenantCompanyUpserted)


def examples(ctx: ExampleContext) -> list[LedgerEvent]:
    """A company of the tenant, and a position of it drafted by the user and activated."""
    company, position = f"company_{ctx.user_id}_{ctx.n}", f"pos_{ctx.user_id}_{ctx.n}"[:64]
    common = {"tenant_id": ctx.tenant_id, "correlation_id": f"position-{ctx.user_id}-{ctx.n}", "occurred_at": ctx.at}
    actor = {"position_id": position, "actor_user_id": ctx.user_id}
    return [
        new_event(
            TenantCompanyUpsertedEvent,
            engine_id=COMPANY_ENGINE_ID,
            payload={
                "reason_code": "ONB_BIZ_COMPANY_UPSERT",
                "company_id": company,
                "legal_name": f"Example Company {ctx.n} Ltd",
                "jurisdiction": "US-CA",
                "lifecycle_state": "ACTIVE",
            },
            **common,
        ),
        new_event(
            PositionCreateDraftEvent,
            engine_id=ENGINE_ID,
            payload={
                **actor,
                "company_id": company,
                "position_title": "Delivery Driver",
                "department": "Logistics",
                "jurisdiction": "US-CA",
                "schedule_type": "FULL_TIME",
                "permission_profile_ref": "perm:driver",
                "compensation_band_ref": "band:L2",
            },
            **common,
        ),
        new_event(PositionActivateEvent, engine_id=ENGINE_ID, payload={**actor, "from_state": "DRAFT"}, **common),
    ]


SLICE = SliceContract(
    name="position",
    engines=(ENGINE_ID, COMPANY_ENGINE_ID),
    kind="custom",
    seed_row=22,
    doc="docs/DB_WIRING/PH1_POSITION.md",
    acceptance="AT-POSITION-DB",
    ledgers=(LedgerColumns(POSITION_LIFECYCLE_EVENTS, PositionEventInput),),
    events=(PositionCreateDraftEvent, PositionActivateEvent, PositionRetireOrSuspendEvent, TenantCompanyUpsertedEvent),
    reasons=(
        ReasonCode.POSITION_NOT_FOUND,
        ReasonCode.POSITION_DUPLICATE_KEY,
        ReasonCode.POSITION_INVALID_TRANSITION,
    ),
    # A duplicate changes nothing, and a second create of a recorded position (upstream's DuplicateKey)
    # leaves the first standing: later events concern that one. A missing position or a transition out of
    # order means the position's stream lost an event: its later events wait behind the dead letter.
    non_blocking=frozenset({ReasonCode.POSITION_DUPLICATE_KEY}),
    requires=("audit",),
    examples=examples,
)
