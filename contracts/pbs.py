"""PBS tables (seed 000 row 4): process blueprints, versioned, and the registry of which one serves an intent.

An event of ``os_process.process_blueprints`` records one version of one process blueprint: the intent it
serves, its status (``DRAFT``, ``ACTIVE``, ``RETIRED``), its step counts and the hash of its simulation
requirements. Upstream has one input shape, so there is one event type, ``PROCESS_BLUEPRINT_RECORDED``.

``blueprint_registry`` holds, per (tenant, intent), the blueprint that serves it, decided by upstream's
status table (``consumers/projections/pbs.py``): not "latest version per key", since an ACTIVE blueprint
always wins, a DRAFT never displaces an ACTIVE one, and a RETIRED event applies only to the blueprint the
row holds.

Aggregate = (tenant, intent): every event that decides one registry row is on one partition, in order.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from contracts.envelope import IDENT_PATTERN, LedgerEvent, LedgerSpec, Payload, ReasonText, define_event, new_event
from contracts.reasons import ReasonCode
from contracts.slice import ExampleContext, LedgerColumns, SliceContract

PROCESS_BLUEPRINTS = LedgerSpec(
    name="process_blueprints",
    table="os_process.process_blueprints",
    id_column="process_blueprint_event_id",
    idempotency_scope=("tenant_id", "process_id", "blueprint_version", "idempotency_key"),
    contract_invalid=ReasonCode.PBS_CONTRACT_VALIDATION_FAILED,
    tenant_violation=ReasonCode.PBS_TENANT_SCOPE_VIOLATION,
    duplicate=ReasonCode.PBS_IDEMPOTENCY_REPLAY,
    append_only_violation=ReasonCode.PBS_APPEND_ONLY_VIOLATION,
)


def _token(max_length: int) -> StringConstraints:
    """Upstream's "non-blank, at most N": here one identifier token (no whitespace, no control character)."""
    return StringConstraints(min_length=1, max_length=max_length, pattern=IDENT_PATTERN)


BlueprintStatus = Literal["DRAFT", "ACTIVE", "RETIRED"]
StepCount = Annotated[int, Field(ge=0, le=65535)]  # upstream u16


class ProcessBlueprintEventInput(Payload):
    """One version of one process blueprint."""

    process_id: Annotated[str, _token(96)]
    blueprint_version: Annotated[int, Field(ge=1, le=2**31 - 1)]
    intent_type: Annotated[str, _token(96)]
    status: BlueprintStatus
    ordered_step_count: Annotated[int, Field(ge=1, le=65535)]
    confirmation_step_count: StepCount
    simulation_requirements_hash: Annotated[str, _token(128)]
    reason_code: ReasonText

    @model_validator(mode="after")
    def _confirmations_are_steps(self) -> ProcessBlueprintEventInput:
        if self.confirmation_step_count > self.ordered_step_count:
            raise ValueError("confirmation_step_count cannot exceed ordered_step_count")
        return self

    def aggregate_id(self, event: LedgerEvent) -> str:
        return f"pbs:{self.intent_type}"


ProcessBlueprintRecordedEvent = define_event(
    PROCESS_BLUEPRINTS, "PROCESS_BLUEPRINT_RECORDED", ProcessBlueprintEventInput
)


def examples(ctx: ExampleContext) -> list[LedgerEvent]:
    """A blueprint drafted in version 1, then version 2 activated (the registry row ends at v2, ``ACTIVE``)."""
    common = {"tenant_id": ctx.tenant_id, "engine_id": "SELENE_OS", "correlation_id": f"pbs-{ctx.n}"}
    blueprint = {
        "process_id": f"proc.{ctx.user_id}.{ctx.n}",
        "intent_type": f"intent.{ctx.user_id}.{ctx.n}",
        "ordered_step_count": 4,
        "confirmation_step_count": 1,
        "simulation_requirements_hash": "sha256:sims-v1",
        "reason_code": "PBS_GOVERNANCE_APPROVED",
    }
    return [
        new_event(
            ProcessBlueprintRecordedEvent,
            occurred_at=ctx.at,
            payload={**blueprint, "blueprint_version": version, "status": status},
            **common,
        )
        for version, status in ((1, "DRAFT"), (2, "ACTIVE"))
    ]


SLICE = SliceContract(
    name="pbs",
    engines=("PBS_TABLES",),
    kind="custom",
    seed_row=4,
    doc="docs/DB_WIRING/PBS_TABLES.md",
    acceptance="AT-PBS-DB",
    ledgers=(LedgerColumns(PROCESS_BLUEPRINTS, ProcessBlueprintEventInput),),
    events=(ProcessBlueprintRecordedEvent,),
    reasons=(ReasonCode.PBS_PROCESS_VERSION_CONFLICT,),
    # A refused registry move leaves the registry as it was and the intent consistent: later events apply.
    non_blocking=frozenset({ReasonCode.PBS_PROCESS_VERSION_CONFLICT}),
    examples=examples,
)
