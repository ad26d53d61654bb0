"""Simulation catalog (seed 000 row 5): which simulations a tenant knows, in which version and state.

An event of ``os_process.simulation_catalog`` records one version of one simulation: its type (``DRAFT``,
``COMMIT`` or ``REVOKE``: what the simulation does), its catalog status, the domain that owns it and the
hashes of the table sets it reads and writes. Upstream has one event shape (``SimulationCatalogEventInput``),
so there is one event type, ``SIMULATION_CATALOG_EVENT``; the payload's ``status`` is the transition.

The current table keeps, per (tenant, simulation), the highest version seen, as its latest event left it:
exactly ``LatestPerKey``. Upstream projects neither the table-set hashes nor the reason code; neither does
this (``omit``).

Aggregate = (tenant, simulation): every version of one simulation is on one partition, written in order.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from contracts.envelope import IDENT_PATTERN, LedgerEvent, LedgerSpec, Payload, ReasonText, define_event
from contracts.reasons import ReasonCode
from contracts.slice import ExampleContext, LatestPerKey, LedgerColumns, SliceContract

SIMULATION_CATALOG = LedgerSpec(
    name="simulation_catalog",
    table="os_process.simulation_catalog",
    id_column="simulation_catalog_event_id",
    idempotency_scope=("tenant_id", "simulation_id", "simulation_version", "idempotency_key"),
    contract_invalid=ReasonCode.SIMCAT_CONTRACT_VALIDATION_FAILED,
    tenant_violation=ReasonCode.SIMCAT_TENANT_SCOPE_VIOLATION,
    duplicate=ReasonCode.SIMCAT_IDEMPOTENCY_REPLAY,
    append_only_violation=ReasonCode.SIMCAT_APPEND_ONLY_VIOLATION,
)


def _token(max_length: int) -> object:
    """Upstream's "non-blank, at most N": here one identifier token (no whitespace, no control character)."""
    return StringConstraints(min_length=1, max_length=max_length, pattern=IDENT_PATTERN)


SimulationType = Literal["DRAFT", "COMMIT", "REVOKE"]
SimulationStatus = Literal["DRAFT", "ACTIVE", "DEPRECATED", "DISABLED"]


class SimulationCatalogEventInput(Payload):
    """One version of one simulation, as the catalog records it."""

    simulation_id: Annotated[str, _token(96)]
    simulation_version: Annotated[int, Field(ge=1, le=2**31 - 1)]
    simulation_type: SimulationType
    status: SimulationStatus
    owning_domain: Annotated[str, _token(64)]
    reads_tables_hash: Annotated[str, _token(128)]
    writes_tables_hash: Annotated[str, _token(128)]
    reason_code: ReasonText

    def aggregate_id(self, event: LedgerEvent) -> str:
        return f"simcat:{self.simulation_id}"


SimulationCatalogEvent = define_event(SIMULATION_CATALOG, "SIMULATION_CATALOG_EVENT", SimulationCatalogEventInput)


def examples(ctx: ExampleContext) -> list[LedgerEvent]:
    """A simulation drafted in version 1, then version 2 made active (the final row: v2, ``ACTIVE``)."""
    sim = {
        "simulation_id": f"LINK_INVITE_SEND_COMMIT_{ctx.n}",
        "simulation_type": "COMMIT",
        "owning_domain": "LINK",
        "reads_tables_hash": "sha256:reads-v1",
        "writes_tables_hash": "sha256:writes-v1",
        "reason_code": "SIMCAT_GOVERNANCE_APPROVED",
    }
    v2 = {**sim, "simulation_version": 2, "status": "ACTIVE", "writes_tables_hash": "sha256:writes-v2"}
    v1 = {**sim, "simulation_version": 1, "status": "DRAFT"}
    return ctx.events("SELENE_OS", f"simcat-{ctx.n}", (SimulationCatalogEvent, v1), (SimulationCatalogEvent, v2))


SLICE = SliceContract(
    name="simulation_catalog",
    engines=("SIMULATION_CATALOG_TABLES",),
    kind="ledger_current",
    seed_row=5,
    doc="docs/DB_WIRING/SIMULATION_CATALOG_TABLES.md",
    acceptance="AT-SIMCAT-DB",
    ledgers=(LedgerColumns(SIMULATION_CATALOG, SimulationCatalogEventInput),),
    events=(SimulationCatalogEvent,),
    # Upstream's reducer: the highest version wins, within a version the later event; lower versions are
    # history only. Nothing is immutable within a version (upstream compares nothing).
    current=(
        LatestPerKey(
            table="os_process.simulation_catalog_current",
            key=("simulation_id",),
            version="simulation_version",
            omit=("reads_tables_hash", "writes_tables_hash", "reason_code"),
        ),
    ),
    examples=examples,
)
