"""PH1.POSITION: ``positions`` from ``position_lifecycle_events`` with the lifecycle enforced, and
``tenant_companies`` from PH1.ONB.BIZ's ``TENANT_COMPANY_UPSERTED`` audit rows.

The position's lifecycle is decided on its row as its earlier events left it: a create needs no position with
that id nor another with its natural key (tenant, company, title, department, jurisdiction), else
``POSITION_DUPLICATE_KEY`` (upstream's DuplicateKey; the first stands); any other commit needs the position
(``POSITION_NOT_FOUND``) and ``from_state`` equal to the position's state (``POSITION_INVALID_TRANSITION``).
Each event type's contract holds ``from_state`` to the states its commit may start from (``contracts.position``),
so together they are the sheet's transitions, and every ledger row's ``from_state`` is true. A refused event
is not appended; the ledger holds only effective commits, exactly one per change.
"""

from __future__ import annotations

from collections.abc import Iterable

from consumers.projections.base import Projection, Rejection, RowRef, RowView
from consumers.tables import Row, TableSpec
from contracts.envelope import LedgerEvent
from contracts.position import (
    POSITION_LIFECYCLE_EVENTS,
    PositionCreateDraft,
    PositionEventInput,
    TenantCompanyUpserted,
)
from contracts.reasons import ReasonCode

SNAPSHOT = (
    "company_id",
    "position_title",
    "department",
    "jurisdiction",
    "schedule_type",
    "permission_profile_ref",
    "compensation_band_ref",
)
POSITIONS = TableSpec(
    "os_core.positions",
    columns=(
        ("tenant_id", "text"),
        ("position_id", "text"),
        *((c, "text") for c in SNAPSHOT),
        ("lifecycle_state", "text"),
        ("created_at", "timestamptz"),
        ("updated_at", "timestamptz"),
    ),
    key=("tenant_id", "position_id"),
)
NATURAL_KEY = ("tenant_id", "company_id", "position_title", "department", "jurisdiction")
# Positions by their natural key, read to refuse a second position for it before its unique index would.
POSITIONS_BY_NATURAL_KEY = TableSpec(
    "os_core.positions", columns=(*((c, "text") for c in NATURAL_KEY), ("position_id", "text")), key=NATURAL_KEY
)
TENANT_COMPANIES = TableSpec(
    "os_core.tenant_companies",
    columns=(
        ("tenant_id", "text"),
        ("company_id", "text"),
        ("legal_name", "text"),
        ("jurisdiction", "text"),
        ("lifecycle_state", "text"),
        ("created_at", "timestamptz"),
        ("updated_at", "timestamptz"),
    ),
    key=("tenant_id", "company_id"),
)


def _position(event: LedgerEvent) -> PositionEventInput:
    assert isinstance(event.payload, PositionEventInput)
    return event.payload


def _natural(event: LedgerEvent, p: PositionCreateDraft) -> tuple[str, ...]:
    return (event.tenant_id, p.company_id, p.position_title, p.department, p.jurisdiction)


def decide(current: Row | None, p: PositionEventInput, taken_by: str | None = None) -> None:
    """Raise ``Rejection`` unless ``p`` may follow the position's ``current`` row (``taken_by``: the position
    that holds a create's natural key)."""
    if isinstance(p, PositionCreateDraft):
        holder = p.position_id if current is not None else taken_by
        if holder is not None:
            raise Rejection(
                ReasonCode.POSITION_DUPLICATE_KEY,
                f"position {holder} exists already for company {p.company_id}, {p.position_title}, "
                f"{p.department}, {p.jurisdiction}",
            )
        return
    if current is None:
        raise Rejection(ReasonCode.POSITION_NOT_FOUND, f"no position {p.position_id} to {p.action}")
    state = current["lifecycle_state"]
    if p.from_state != state:
        raise Rejection(
            ReasonCode.POSITION_INVALID_TRANSITION,
            f"position {p.position_id} is {state}: no {p.action} from {p.from_state} to {p.to_state}",
        )


class PositionProjection(Projection):
    """positions <- position_lifecycle_events."""

    name = "positions"
    writes = (POSITIONS,)
    indexes = (POSITIONS_BY_NATURAL_KEY,)
    ledgers = frozenset({POSITION_LIFECYCLE_EVENTS.name})
    event_ref_columns = ()

    def reads(self, event: LedgerEvent) -> Iterable[RowRef]:
        p = _position(event)
        yield POSITIONS, (event.tenant_id, p.position_id)
        if isinstance(p, PositionCreateDraft):
            yield POSITIONS_BY_NATURAL_KEY, _natural(event, p)

    def apply(self, view: RowView, event: LedgerEvent) -> None:
        p, at = _position(event), event.occurred_at
        current = view.get(POSITIONS, (event.tenant_id, p.position_id))
        if isinstance(p, PositionCreateDraft):
            taken = view.get(POSITIONS_BY_NATURAL_KEY, _natural(event, p))
            decide(current, p, taken["position_id"] if taken else None)
            row = {"tenant_id": event.tenant_id, "position_id": p.position_id, **{c: getattr(p, c) for c in SNAPSHOT}}
            view.put(POSITIONS, {**row, "lifecycle_state": p.to_state, "created_at": at, "updated_at": at})
            view.put(POSITIONS_BY_NATURAL_KEY, {c: row[c] for c in POSITIONS_BY_NATURAL_KEY.column_names})
            return
        decide(current, p)
        assert current is not None
        view.put(POSITIONS, {**current, "lifecycle_state": p.to_state, "updated_at": max(at, current["updated_at"])})


class TenantCompanyProjection(Projection):
    """tenant_companies <- TENANT_COMPANY_UPSERTED on the audit ledger: an upsert, the latest wins."""

    name = "tenant_companies"
    writes = (TENANT_COMPANIES,)
    ledgers = frozenset({"audit_events"})
    event_ref_columns = ()

    def handles(self, event: LedgerEvent) -> bool:
        return isinstance(event.payload, TenantCompanyUpserted)

    def reads(self, event: LedgerEvent) -> Iterable[RowRef]:
        assert isinstance(event.payload, TenantCompanyUpserted)
        yield TENANT_COMPANIES, (event.tenant_id, event.payload.company_id)

    def apply(self, view: RowView, event: LedgerEvent) -> None:
        p, at = event.payload, event.occurred_at
        assert isinstance(p, TenantCompanyUpserted)
        old = view.get(TENANT_COMPANIES, (event.tenant_id, p.company_id))
        view.put(
            TENANT_COMPANIES,
            {
                "tenant_id": event.tenant_id,
                "company_id": p.company_id,
                "legal_name": p.legal_name,
                "jurisdiction": p.jurisdiction,
                "lifecycle_state": p.lifecycle_state,
                "created_at": old["created_at"] if old else at,
                "updated_at": max(at, old["updated_at"]) if old else at,
            },
        )


PROJECTIONS: tuple[Projection, ...] = (TenantCompanyProjection(), PositionProjection())
