"""PH1.CAPREQ (seed 000 row 26): capability requests, a ledger of lifecycle actions and their current row.

A capability request (``capreq_id``, derived by Selene OS from the request) goes through six actions, one
event type each (named after upstream's simulation ids): it is drafted, submitted for approval, approved or
rejected, fulfilled, or canceled while open. Each event carries the action, the status it leads to, its
reason code and the hash of the request's payload, as upstream's ``capreq_ledger`` row does.

The status machine (``TRANSITIONS``) is upstream's, which only its OS layer checked before appending; here the
writer enforces it (``consumers.projections.capreq``): an action the request's status does not allow is
dead-lettered with its reason and never appended. Within one event type the action and status are fixed
(a ``CAPREQ_APPROVE_COMMIT`` is ``APPROVE`` to ``APPROVED``), so a payload that contradicts its type is a
contract violation.

Aggregate = the request: all its events are on one partition, in the order Selene OS decided them.
"""

from __future__ import annotations

from typing import Literal

from contracts.envelope import Ident, LedgerEvent, LedgerSpec, Payload, ReasonText, define_event, new_event
from contracts.reasons import ReasonCode
from contracts.slice import ExampleContext, LedgerColumns, SliceContract

CAPREQ_LEDGER = LedgerSpec(
    name="capreq_ledger",
    table="os_process.capreq_ledger",
    id_column="capreq_event_id",
    idempotency_scope=("tenant_id", "capreq_id", "idempotency_key"),
    contract_invalid=ReasonCode.CAPREQ_CONTRACT_VALIDATION_FAILED,
    tenant_violation=ReasonCode.CAPREQ_TENANT_SCOPE_VIOLATION,
    duplicate=ReasonCode.CAPREQ_IDEMPOTENCY_REPLAY,
    append_only_violation=ReasonCode.CAPREQ_APPEND_ONLY_VIOLATION,
)

ENGINE_ID = "PH1.CAPREQ"

Action = Literal["CREATE_DRAFT", "SUBMIT_FOR_APPROVAL", "APPROVE", "REJECT", "FULFILL", "CANCEL"]
Status = Literal["DRAFT", "PENDING_APPROVAL", "APPROVED", "REJECTED", "FULFILLED", "CANCELED"]

#: action -> (statuses it may start from, the status it leads to); ``None`` = no row yet (upstream's table).
TRANSITIONS: dict[str, tuple[frozenset[str | None], str]] = {
    "CREATE_DRAFT": (frozenset({None}), "DRAFT"),
    "SUBMIT_FOR_APPROVAL": (frozenset({"DRAFT"}), "PENDING_APPROVAL"),
    "APPROVE": (frozenset({"PENDING_APPROVAL"}), "APPROVED"),
    "REJECT": (frozenset({"PENDING_APPROVAL"}), "REJECTED"),
    "FULFILL": (frozenset({"APPROVED"}), "FULFILLED"),
    "CANCEL": (frozenset({"DRAFT", "PENDING_APPROVAL", "APPROVED"}), "CANCELED"),
}
#: statuses no action leaves.
TERMINAL: frozenset[str] = frozenset({"REJECTED", "FULFILLED", "CANCELED"})


class CapreqEventInput(Payload):
    """Upstream's ``CapabilityRequestLedgerEventInput`` (its ``created_at`` is the envelope's ``occurred_at``).

    ``requester_user_id`` is the user acting (upstream fills it with each request's ``actor_user_id``), so an
    approval names the approver. ``reason_code`` defaults to upstream's ``CAPREQ_OK_<ACTION>``."""

    capreq_id: Ident
    requester_user_id: Ident
    action: Action
    status: Status
    reason_code: ReasonText
    payload_hash: Ident

    def aggregate_id(self, event: LedgerEvent) -> str:
        return f"capreq:{self.capreq_id}"


class CapreqCreateDraft(CapreqEventInput):
    action: Literal["CREATE_DRAFT"] = "CREATE_DRAFT"
    status: Literal["DRAFT"] = "DRAFT"
    reason_code: ReasonText = "CAPREQ_OK_CREATE_DRAFT"


class CapreqSubmitForApproval(CapreqEventInput):
    action: Literal["SUBMIT_FOR_APPROVAL"] = "SUBMIT_FOR_APPROVAL"
    status: Literal["PENDING_APPROVAL"] = "PENDING_APPROVAL"
    reason_code: ReasonText = "CAPREQ_OK_SUBMIT_FOR_APPROVAL"


class CapreqApprove(CapreqEventInput):
    action: Literal["APPROVE"] = "APPROVE"
    status: Literal["APPROVED"] = "APPROVED"
    reason_code: ReasonText = "CAPREQ_OK_APPROVE"


class CapreqReject(CapreqEventInput):
    action: Literal["REJECT"] = "REJECT"
    status: Literal["REJECTED"] = "REJECTED"
    reason_code: ReasonText = "CAPREQ_OK_REJECT"


class CapreqFulfill(CapreqEventInput):
    action: Literal["FULFILL"] = "FULFILL"
    status: Literal["FULFILLED"] = "FULFILLED"
    reason_code: ReasonText = "CAPREQ_OK_FULFILL"


class CapreqCancel(CapreqEventInput):
    action: Literal["CANCEL"] = "CANCEL"
    status: Literal["CANCELED"] = "CANCELED"
    reason_code: ReasonText = "CAPREQ_OK_CANCEL"


CapreqCreateDraftEvent = define_event(CAPREQ_LEDGER, "CAPREQ_CREATE_DRAFT", CapreqCreateDraft)
CapreqSubmitForApprovalEvent = define_event(CAPREQ_LEDGER, "CAPREQ_SUBMIT_FOR_APPROVAL_COMMIT", CapreqSubmitForApproval)
CapreqApproveEvent = define_event(CAPREQ_LEDGER, "CAPREQ_APPROVE_COMMIT", CapreqApprove)
CapreqRejectEvent = define_event(CAPREQ_LEDGER, "CAPREQ_REJECT_COMMIT", CapreqReject)
CapreqFulfillEvent = define_event(CAPREQ_LEDGER, "CAPREQ_FULFILL_COMMIT", CapreqFulfill)
CapreqCancelEvent = define_event(CAPREQ_LEDGER, "CAPREQ_CANCEL_REVOKE", CapreqCancel)

#: action -> its event model.
EVENT_OF_ACTION: dict[str, type[LedgerEvent]] = {
    "CREATE_DRAFT": CapreqCreateDraftEvent,
    "SUBMIT_FOR_APPROVAL": CapreqSubmitForApprovalEvent,
    "APPROVE": CapreqApproveEvent,
    "REJECT": CapreqRejectEvent,
    "FULFILL": CapreqFulfillEvent,
    "CANCEL": CapreqCancelEvent,
}


def examples(ctx: ExampleContext) -> list[LedgerEvent]:
    """The user drafts a capability request, submits it, and it is approved."""
    capreq_id = f"capreq_{ctx.user_id}_{ctx.n}"
    return [
        new_event(
            EVENT_OF_ACTION[action],
            tenant_id=ctx.tenant_id,
            engine_id=ENGINE_ID,
            correlation_id=f"capreq-{ctx.user_id}-{ctx.n}",
            occurred_at=ctx.at,
            payload={
                "capreq_id": capreq_id,
                "requester_user_id": ctx.user_id,
                "payload_hash": f"capreq_payload_{action.lower()}_{ctx.n}",
            },
        )
        for action in ("CREATE_DRAFT", "SUBMIT_FOR_APPROVAL", "APPROVE")
    ]


SLICE = SliceContract(
    name="capreq",
    engines=(ENGINE_ID,),
    kind="custom",
    seed_row=26,
    doc="docs/DB_WIRING/PH1_CAPREQ.md",
    acceptance="AT-CAPREQ-DB",
    ledgers=(LedgerColumns(CAPREQ_LEDGER, CapreqEventInput),),
    events=tuple(EVENT_OF_ACTION.values()),
    reasons=(
        ReasonCode.CAPREQ_NOT_FOUND,
        ReasonCode.CAPREQ_INVALID_TRANSITION,
        ReasonCode.CAPREQ_TERMINAL_STATE,
    ),
    # A duplicate changes nothing; an action on a closed request (rejected, fulfilled, canceled) is a late
    # word nothing later depends on. A missing request or a transition out of order means the request's
    # stream lost an event: its later events wait behind the dead letter.
    non_blocking=frozenset({ReasonCode.CAPREQ_TERMINAL_STATE}),
    examples=examples,
)
