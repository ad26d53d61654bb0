"""PH1.CAPREQ: ``capreq_current`` from ``capreq_ledger``, with the request's status machine enforced.

Upstream's storage applied every appended event (latest event wins) and left the transitions to its OS layer;
this writer is the one place every capability request event passes, so it decides them here
(``contracts.capreq.TRANSITIONS``), on the row as the request's earlier events left it:

- ``CREATE_DRAFT`` needs no row; any other action needs one (else ``CAPREQ_NOT_FOUND``);
- a request that is rejected, fulfilled or canceled takes no further action (``CAPREQ_TERMINAL_STATE``);
- any other action from a status its transition does not start from is ``CAPREQ_INVALID_TRANSITION``
  (a second ``CREATE_DRAFT`` of an open request included).

A refused event is not appended (its dead letter is its record), so the ledger holds only transitions the
machine allows and a rebuild replaying it applies each one: the latest event wins, as upstream's reducer says.
"""

from __future__ import annotations

from collections.abc import Iterable

from consumers.projections.base import Projection, Rejection, RowRef, RowView
from consumers.tables import Row, TableSpec
from contracts.capreq import CAPREQ_LEDGER, TERMINAL, TRANSITIONS, CapreqEventInput
from contracts.envelope import LedgerEvent
from contracts.reasons import ReasonCode

CAPREQ_CURRENT = TableSpec(
    "os_process.capreq_current",
    columns=(
        ("tenant_id", "text"),
        ("capreq_id", "text"),
        ("requester_user_id", "text"),
        ("status", "text"),
        ("last_action", "text"),
        ("payload_hash", "text"),
        ("source_event_id", "bigint"),
        ("updated_at", "timestamptz"),
        ("last_reason_code", "text"),
    ),
    key=("tenant_id", "capreq_id"),
)


def _capreq(event: LedgerEvent) -> CapreqEventInput:
    assert isinstance(event.payload, CapreqEventInput)
    return event.payload


def decide(current: Row | None, p: CapreqEventInput) -> None:
    """Raise ``Rejection`` unless ``p``'s action may follow the request's ``current`` row."""
    allowed, _ = TRANSITIONS[p.action]
    status = None if current is None else current["status"]
    if status in allowed:
        return
    if current is None:
        raise Rejection(ReasonCode.CAPREQ_NOT_FOUND, f"capability request {p.capreq_id}: no draft to {p.action}")
    what = f"capability request {p.capreq_id} is {status}"
    if status in TERMINAL:
        raise Rejection(ReasonCode.CAPREQ_TERMINAL_STATE, f"{what}: closed, no {p.action}")
    starts = ", ".join(sorted(s or "no request" for s in allowed))
    raise Rejection(ReasonCode.CAPREQ_INVALID_TRANSITION, f"{what}: {p.action} starts from {starts} only")


class CapreqProjection(Projection):
    """capreq_current <- capreq_ledger: one row per (tenant, request), its latest allowed action."""

    name = "capreq"
    writes = (CAPREQ_CURRENT,)
    ledgers = frozenset({CAPREQ_LEDGER.name})
    event_ref_columns = ("source_event_id",)

    def reads(self, event: LedgerEvent) -> Iterable[RowRef]:
        yield CAPREQ_CURRENT, (event.tenant_id, _capreq(event).capreq_id)

    def apply(self, view: RowView, event: LedgerEvent) -> None:
        p = _capreq(event)
        decide(view.get(CAPREQ_CURRENT, (event.tenant_id, p.capreq_id)), p)
        view.put(
            CAPREQ_CURRENT,
            {
                "tenant_id": event.tenant_id,
                "capreq_id": p.capreq_id,
                "requester_user_id": p.requester_user_id,
                "status": p.status,
                "last_action": p.action,
                "payload_hash": p.payload_hash,
                "source_event_id": event.event_id,  # the caller maps it to the ledger id
                "updated_at": event.occurred_at,
                "last_reason_code": p.reason_code,
            },
        )


PROJECTIONS: tuple[Projection, ...] = (CapreqProjection(),)
