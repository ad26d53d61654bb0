"""PH1.ONB.CORE / ORCH / BIZ (seed 000 row 21): onboarding sessions, one per invite link.

Upstream keeps a session as PH1.F runtime state (no DDL) and dedupes each commit in memory. Here each commit is
a row of PH1.LINK's write-dedupe ledger with scope ``ONB`` (upstream shares that table between LINK and ONB):
its unique scope (tenant, ``ONB``, session, key) is the sheet's per-commit dedupe, and ``onboarding_sessions``
is its projection, with the sheet's preconditions enforced by the writer. The session id is derived from its
link (``onboarding_session_id``), so a link has one session; the aggregate is the link's draft, so a session's
commits follow the link's own (send, activate) in one order. Each applied commit also leaves a PH1.ONB
``ONB_STATE_TRANSITION`` row on the audit ledger (derived by the writer in the same transaction).

``tenant_companies`` (PH1.ONB.BIZ) is declared with PH1.POSITION (``contracts.position``), which needs it first.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Annotated, Literal

from pydantic import Field

from contracts.audit import AUDIT_EVENTS, AuditPayload
from contracts.envelope import Ident, LedgerEvent, ReasonText, define_event, new_event
from contracts.link import WRITE_DEDUPE, DraftWrite, InviteeType
from contracts.link import examples as link_examples
from contracts.reasons import ReasonCode
from contracts.slice import ExampleContext, SliceContract

ENGINE_ID = "PH1.ONB.CORE"
#: The example's link is PH1.LINK's example with ``n`` moved by this much (its own link, not LINK's).
LINK_N = 1_000_000
AUDIT_ENGINE_ID = "PH1.ONB"
Status = Literal[
    "DRAFT_CREATED",
    "TERMS_ACCEPTED",
    "TERMS_DECLINED",
    "VERIFICATION_PENDING",
    "VERIFICATION_CONFIRMED",
    "VERIFICATION_REJECTED",
    "PRIMARY_DEVICE_CONFIRMED",
    "ACCESS_INSTANCE_CREATED",
    "COMPLETE",
]


def onboarding_session_id(link_id: str) -> str:
    """Upstream's ``onb_<hash(link_id)>``: one session per link."""
    return f"onb_{hashlib.sha256(link_id.encode()).hexdigest()[:32]}"


class OnbWrite(DraftWrite):
    """A commit on one onboarding session: ``scope_id`` is the session, ``onboarding_session_id(link_id)`` (the
    writer refuses another: JSON Schema cannot say it, and the exported schema must accept what the writer does
    up front)."""

    scope_type: Literal["ONB"] = "ONB"
    link_id: Ident
    reason_code: ReasonText


class OnbSessionStart(OnbWrite):
    """ONB_SESSION_START_DRAFT: the session of an activated link (or the existing one, kept as it is)."""

    reason_code: ReasonText = "ONB_OK_SESSION_START_DRAFT"
    invitee_type: InviteeType
    device_fingerprint_hash: Ident
    prefilled_context_ref: Ident | None = None


class OnbTermsAccept(OnbWrite):
    """ONB_TERMS_ACCEPT_COMMIT: the terms accepted or declined."""

    reason_code: ReasonText = "ONB_OK_TERMS_ACCEPT_COMMIT"
    terms_version_id: Ident
    accepted: bool


class OnbEmployeePhoto(OnbWrite):
    """ONB_EMPLOYEE_PHOTO_CAPTURE_SEND_COMMIT: the employee's photo (a reference) sent to its verifier."""

    reason_code: ReasonText = "ONB_OK_EMPLOYEE_PHOTO_COMMIT"
    photo_blob_ref: Ident
    sender_user_id: Ident


class OnbSenderVerify(OnbWrite):
    """ONB_EMPLOYEE_SENDER_VERIFY_COMMIT: the verifier confirms or rejects."""

    reason_code: ReasonText = "ONB_OK_EMPLOYEE_SENDER_VERIFY_COMMIT"
    sender_user_id: Ident
    decision: Literal["CONFIRMED", "REJECTED"]


class OnbPrimaryDevice(OnbWrite):
    """ONB_PRIMARY_DEVICE_CONFIRM_COMMIT: the primary device and its proof; confirmed only if the proof held."""

    reason_code: ReasonText = "ONB_OK_PRIMARY_DEVICE_CONFIRM_COMMIT"
    device_id: Ident
    proof_type: Literal["BIOMETRIC", "PASSCODE"]
    proof_ok: bool


class OnbAccessInstance(OnbWrite):
    """ONB_ACCESS_INSTANCE_CREATE_COMMIT: the user's access instance (row 10) for the role. Its id is row 10's
    for (tenant, user) (``contracts.access.access_instance_id``); the instance itself is row 10's upsert."""

    reason_code: ReasonText = "ONB_OK_ACCESS_INSTANCE_CREATE_COMMIT"
    user_id: Ident
    role_id: Ident


class OnbComplete(OnbWrite):
    """ONB_COMPLETE_COMMIT: onboarding done."""

    reason_code: ReasonText = "ONB_OK_COMPLETE_COMMIT"


class OnbStateTransition(AuditPayload):
    """PH1.ONB's audit row of an applied commit (upstream's ``STATE_TRANSITION`` with ``state_from``/``state_to``)."""

    onboarding_session_id: Ident
    commit: Annotated[str, Field(pattern=r"^ONB_[A-Z_]{1,92}$")]
    state_from: Status | None
    state_to: Status


OnbSessionStartEvent = define_event(WRITE_DEDUPE, "ONB_SESSION_START_DRAFT", OnbSessionStart)
OnbTermsAcceptEvent = define_event(WRITE_DEDUPE, "ONB_TERMS_ACCEPT_COMMIT", OnbTermsAccept)
OnbEmployeePhotoEvent = define_event(WRITE_DEDUPE, "ONB_EMPLOYEE_PHOTO_CAPTURE_SEND_COMMIT", OnbEmployeePhoto)
OnbSenderVerifyEvent = define_event(WRITE_DEDUPE, "ONB_EMPLOYEE_SENDER_VERIFY_COMMIT", OnbSenderVerify)
OnbPrimaryDeviceEvent = define_event(WRITE_DEDUPE, "ONB_PRIMARY_DEVICE_CONFIRM_COMMIT", OnbPrimaryDevice)
OnbAccessInstanceEvent = define_event(WRITE_DEDUPE, "ONB_ACCESS_INSTANCE_CREATE_COMMIT", OnbAccessInstance)
OnbCompleteEvent = define_event(WRITE_DEDUPE, "ONB_COMPLETE_COMMIT", OnbComplete)
OnbStateTransitionEvent = define_event(AUDIT_EVENTS, "ONB_STATE_TRANSITION", OnbStateTransition)


def examples(ctx: ExampleContext) -> list[LedgerEvent]:
    """An employee invited by PH1.LINK's example (a link of its own: another ``n``) onboards to the end: the
    inviter verifies the photo, the invitee confirms a primary device, gets an access instance, completes."""
    link_events = link_examples(dataclasses.replace(ctx, n=ctx.n + LINK_N))
    link = link_events[0].payload
    assert isinstance(link, DraftWrite)
    ids = {"scope_id": onboarding_session_id(link.scope_id), "draft_id": link.draft_id, "link_id": link.scope_id}
    common = {"tenant_id": ctx.tenant_id, "engine_id": ENGINE_ID, "correlation_id": f"onb-{ctx.user_id}-{ctx.n}"}
    commits: list[tuple[type[LedgerEvent], dict[str, object]]] = [
        (OnbSessionStartEvent, {"invitee_type": "EMPLOYEE", "device_fingerprint_hash": f"fp_{ctx.device_id}"}),
        (OnbTermsAcceptEvent, {"terms_version_id": "terms_v1", "accepted": True}),
        (OnbEmployeePhotoEvent, {"photo_blob_ref": f"blob_{ctx.n}", "sender_user_id": ctx.user_id}),
        (OnbSenderVerifyEvent, {"sender_user_id": ctx.user_id, "decision": "CONFIRMED"}),
        (OnbPrimaryDeviceEvent, {"device_id": ctx.device_id, "proof_type": "PASSCODE", "proof_ok": True}),
        (OnbAccessInstanceEvent, {"user_id": ctx.user_id, "role_id": "driver"}),
        (OnbCompleteEvent, {}),
    ]
    return [
        *link_events,
        *(
            new_event(
                model,
                **common,
                idempotency_key=f"{model.event_type_name.lower()}-{ctx.n}",
                occurred_at=ctx.at,
                payload={**ids, "write_hash": f"onb_write_{i}_{ctx.n}", **payload},
            )
            for i, (model, payload) in enumerate(commits)
        ),
    ]


SLICE = SliceContract(
    name="onb",
    engines=(ENGINE_ID, "PH1.ONB.ORCH", "PH1.ONB.BIZ"),
    kind="custom",
    seed_row=21,
    doc="docs/DB_WIRING/PH1_ONB.md",
    acceptance="AT-ONB-DB",
    events=(
        OnbSessionStartEvent,
        OnbTermsAcceptEvent,
        OnbEmployeePhotoEvent,
        OnbSenderVerifyEvent,
        OnbPrimaryDeviceEvent,
        OnbAccessInstanceEvent,
        OnbCompleteEvent,
        OnbStateTransitionEvent,
    ),
    reasons=(ReasonCode.ONB_REFUSE_INVALID, ReasonCode.ONB_REFUSE_NOT_FOUND),
    # A commit the session's state does not allow leaves the session as it was, and each later commit is
    # decided on that (upstream's calls are independent). A session or link never recorded means the draft's
    # stream lost an event: its later events wait behind the dead letter.
    non_blocking=frozenset({ReasonCode.ONB_REFUSE_INVALID}),
    requires=("link", "audit"),
    examples=examples,
)
