"""PH1.ONB: ``onboarding_sessions`` from the ONB rows of the write-dedupe ledger, with the sheet's preconditions
enforced, and each applied commit's ``ONB_STATE_TRANSITION`` audit row.

A start needs its link recorded, ``ACTIVATED`` and of the invitee type it names (``OnbLinkGuard``, live only: it
reads PH1.LINK's tables); it creates the session or keeps the existing one (upstream's reuse). Every other commit
needs the session (else ``ONB_REFUSE_NOT_FOUND``) and the sheet's precondition (else ``ONB_REFUSE_INVALID``); a
``COMPLETE`` session takes no more commits. A refused commit is not appended, so a rebuild replaying the ledger
applies every row, and the session table rebuilds alone from it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from consumers.projections.base import Projection, Rejection, RowRef, RowView, derived_event_id
from consumers.projections.link import DRAFTS, TOKENS
from consumers.tables import Row, TableSpec
from contracts.access import access_instance_id
from contracts.envelope import LedgerEvent, new_event
from contracts.link import WRITE_DEDUPE
from contracts.onb import (
    AUDIT_ENGINE_ID,
    OnbAccessInstance,
    OnbComplete,
    OnbEmployeePhoto,
    OnbPrimaryDevice,
    OnbSenderVerify,
    OnbSessionStart,
    OnbStateTransitionEvent,
    OnbTermsAccept,
    OnbWrite,
    onboarding_session_id,
)
from contracts.reasons import ReasonCode

SESSIONS = TableSpec(
    "os_core.onboarding_sessions",
    columns=(
        ("tenant_id", "text"),
        ("onboarding_session_id", "text"),
        ("link_id", "text"),
        ("invitee_type", "text"),
        ("prefilled_context_ref", "text"),
        ("device_fingerprint_hash", "text"),
        ("status", "text"),
        ("created_at", "timestamptz"),
        ("updated_at", "timestamptz"),
        ("terms_version_id", "text"),
        ("terms_status", "text"),
        ("photo_blob_ref", "text"),
        ("photo_proof_ref", "text"),
        ("sender_user_id", "text"),
        ("verification_status", "text"),
        ("primary_device_device_id", "text"),
        ("primary_device_proof_type", "text"),
        ("primary_device_confirmed", "boolean"),
        ("access_engine_instance_id", "text"),
    ),
    key=("tenant_id", "onboarding_session_id"),
)


def _onb(event: LedgerEvent) -> OnbWrite:
    assert isinstance(event.payload, OnbWrite)
    return event.payload


def _start(event: LedgerEvent, p: OnbSessionStart) -> Row:
    at = event.occurred_at
    row: Row = dict.fromkeys(SESSIONS.column_names)
    return {
        **row,
        "tenant_id": event.tenant_id,
        "onboarding_session_id": p.scope_id,
        "link_id": p.link_id,
        "invitee_type": p.invitee_type,
        "prefilled_context_ref": p.prefilled_context_ref,
        "device_fingerprint_hash": p.device_fingerprint_hash,
        "status": "DRAFT_CREATED",
        "created_at": at,
        "updated_at": at,
        "primary_device_confirmed": False,
    }


def decide(event: LedgerEvent, session: Row | None) -> Row:
    """The session row after ``event`` (``session``: its row), or ``Rejection``."""
    p = _onb(event)
    if p.scope_id != onboarding_session_id(p.link_id):
        raise Rejection(ReasonCode.ONB_REFUSE_INVALID, f"{p.scope_id} is not link {p.link_id}'s session")
    if isinstance(p, OnbSessionStart):
        return session if session is not None else _start(event, p)
    if session is None:
        raise Rejection(ReasonCode.ONB_REFUSE_NOT_FOUND, f"no onboarding session {p.scope_id} (link {p.link_id})")

    def need(ok: bool, what: str) -> None:
        if not ok:
            raise Rejection(
                ReasonCode.ONB_REFUSE_INVALID,
                f"session {p.scope_id} is {session['status']}: {event.event_type} needs {what}",
            )

    s = {**session, "updated_at": max(event.occurred_at, session["updated_at"])}
    employee, accepted = s["invitee_type"] == "EMPLOYEE", s["terms_status"] == "ACCEPTED"
    need(s["status"] != "COMPLETE", "an open session")
    if isinstance(p, OnbTermsAccept):
        need(s["status"] == "DRAFT_CREATED", "status DRAFT_CREATED")
        terms = "ACCEPTED" if p.accepted else "DECLINED"
        return {**s, "terms_version_id": p.terms_version_id, "terms_status": terms, "status": f"TERMS_{terms}"}
    need(accepted, "accepted terms")
    if isinstance(p, OnbEmployeePhoto):
        need(employee, "an EMPLOYEE invitee")
        proof = f"photo_proof_{hashlib.sha256(p.photo_blob_ref.encode()).hexdigest()[:32]}"
        return {
            **s,
            "photo_blob_ref": p.photo_blob_ref,
            "photo_proof_ref": proof,
            "sender_user_id": p.sender_user_id,
            "verification_status": "PENDING",
            "status": "VERIFICATION_PENDING",
        }
    if isinstance(p, OnbSenderVerify):
        need(employee and s["verification_status"] == "PENDING", "an EMPLOYEE verification PENDING")
        need(p.sender_user_id == s["sender_user_id"], f"the photo's sender {s['sender_user_id']}")
        return {**s, "verification_status": p.decision, "status": f"VERIFICATION_{p.decision}"}
    if isinstance(p, OnbPrimaryDevice):
        status = "PRIMARY_DEVICE_CONFIRMED" if p.proof_ok else s["status"]
        return {
            **s,
            "primary_device_device_id": p.device_id,
            "primary_device_proof_type": p.proof_type,
            "primary_device_confirmed": p.proof_ok,
            "status": status,
        }
    need(not employee or s["verification_status"] == "CONFIRMED", "the employee's verification CONFIRMED")
    if isinstance(p, OnbAccessInstance):
        need(s["primary_device_confirmed"], "a confirmed primary device")
        instance = access_instance_id(event.tenant_id, p.user_id)
        return {**s, "access_engine_instance_id": instance, "status": "ACCESS_INSTANCE_CREATED"}
    assert isinstance(p, OnbComplete)
    need(s["access_engine_instance_id"] is not None, "an access instance")
    return {**s, "status": "COMPLETE"}


def transition(event: LedgerEvent, state_from: str | None, state_to: str) -> LedgerEvent:
    """PH1.ONB's audit row of an applied commit; its id derived from the commit's, so it is emitted once."""
    return new_event(
        OnbStateTransitionEvent,
        event_id=derived_event_id(event, "PH1.ONB"),
        tenant_id=event.tenant_id,
        engine_id=AUDIT_ENGINE_ID,
        correlation_id=event.correlation_id,
        turn_id=event.turn_id,
        # The audit ledger dedupes on (tenant, correlation, key): a key of its own for each commit.
        idempotency_key=f"{event.ledger}:{event.event_id}",
        occurred_at=event.occurred_at,
        payload={
            "reason_code": _onb(event).reason_code,
            "onboarding_session_id": _onb(event).scope_id,
            "commit": event.event_type,
            "state_from": state_from,
            "state_to": state_to,
        },
    )


class SessionProjection(Projection):
    """onboarding_sessions <- the ONB rows of onboarding_draft_write_dedupe (and their audit rows, live)."""

    name = "onboarding_sessions"
    writes = (SESSIONS,)
    ledgers = frozenset({WRITE_DEDUPE.name})
    event_ref_columns = ()

    def handles(self, event: LedgerEvent) -> bool:
        return isinstance(event.payload, OnbWrite)

    def reads(self, event: LedgerEvent) -> Iterable[RowRef]:
        yield SESSIONS, (event.tenant_id, _onb(event).scope_id)

    def apply(self, view: RowView, event: LedgerEvent) -> None:
        current = view.get(SESSIONS, (event.tenant_id, _onb(event).scope_id))
        row = decide(event, current)
        view.put(SESSIONS, row)
        view.emit(transition(event, current["status"] if current else None, row["status"]))


class OnbLinkGuard(Projection):
    """A session starts on a recorded, ``ACTIVATED`` link of the draft and invitee type it names. Live only:
    it reads PH1.LINK's tables, and replay reproduces the live decision."""

    name = "onboarding_session_links"
    ledgers = frozenset({WRITE_DEDUPE.name})
    live_only = True

    def handles(self, event: LedgerEvent) -> bool:
        return isinstance(event.payload, OnbSessionStart)

    def reads(self, event: LedgerEvent) -> Iterable[RowRef]:
        p = _onb(event)
        yield TOKENS, (event.tenant_id, p.link_id)
        yield DRAFTS, (event.tenant_id, p.draft_id)

    def apply(self, view: RowView, event: LedgerEvent) -> None:
        p = event.payload
        assert isinstance(p, OnbSessionStart)
        token, draft = view.get(TOKENS, (event.tenant_id, p.link_id)), view.get(DRAFTS, (event.tenant_id, p.draft_id))
        if token is None or draft is None or token["draft_id"] != p.draft_id:
            raise Rejection(ReasonCode.ONB_REFUSE_NOT_FOUND, f"no link {p.link_id} of draft {p.draft_id}")
        if token["status"] != "ACTIVATED" or draft["invitee_type"] != p.invitee_type:
            raise Rejection(
                ReasonCode.ONB_REFUSE_INVALID,
                f"link {p.link_id} is {token['status']} for a {draft['invitee_type']}: no {p.invitee_type} session",
            )


PROJECTIONS: tuple[Projection, ...] = (SessionProjection(), OnbLinkGuard())
