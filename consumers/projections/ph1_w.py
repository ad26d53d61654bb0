"""PH1.W: wake enrollment sessions and profile bindings from the PH1.W audit rows, with the sheet's sample
state machine; each accepted sample appended to ``wake_enrollment_samples``, each runtime event to
``wake_runtime_events``.

Decided on the session as its earlier commands left it (``decide``): a start of a session that exists is a
no-op (upstream returns it), and refused ``W_ENROLL_ALREADY_IN_PROGRESS`` while the user's device has another
session IN_PROGRESS; any other command needs the session, of that user and device
(``W_ENROLL_SAMPLE_INVALID``); nothing changes a COMPLETE or DECLINED session, and a sample needs an attempt
left (``W_ENROLL_SAMPLE_SESSION_CLOSED``); a complete needs the pass target met
(``W_ENROLL_PASS_TARGET_NOT_MET``). Times are the events' ``occurred_at``: the reducer stays pure.

Which session is IN_PROGRESS and which binding is active, per (tenant, user, device), are index views of the
two tables keyed by that triple plus the status or flag (at most one row each). The binding a complete
replaces is known only from the loaded active one: ``reads_after`` names it, so it is loaded and locked too.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from consumers.projections.base import Projection, Rejection, RowRef, RowView, derived_event_id
from consumers.tables import Row, TableSpec
from contracts.envelope import LedgerEvent, new_event
from contracts.ph1_w import (
    REASON_MAX_ATTEMPTS,
    REASON_TIMEOUT,
    RUNTIME,
    SAMPLES,
    SampleMetrics,
    WakeEnrollComplete,
    WakeEnrollDeferReminder,
    WakeEnrollment,
    WakeEnrollSampleCommit,
    WakeEnrollStart,
    WakeRuntime,
    WakeRuntimeCommit,
    WakeRuntimeEvent,
    WakeSampleEvent,
)
from contracts.reasons import ReasonCode

OWNER = (("tenant_id", "text"), ("user_id", "text"), ("device_id", "text"))
SESSIONS = TableSpec(
    "os_core.wake_enrollment_sessions",
    columns=(
        ("tenant_id", "text"),
        ("wake_enrollment_session_id", "text"),
        *OWNER[1:],
        ("onboarding_session_id", "text"),
        ("wake_enroll_status", "text"),
        ("pass_target", "smallint"),
        ("pass_count", "smallint"),
        ("attempt_count", "smallint"),
        ("max_attempts", "smallint"),
        ("enrollment_timeout_ms", "integer"),
        ("reason_code", "text"),
        ("wake_profile_id", "text"),
        ("deferred_until", "timestamptz"),
        ("created_at", "timestamptz"),
        ("updated_at", "timestamptz"),
        ("completed_at", "timestamptz"),
    ),
    key=("tenant_id", "wake_enrollment_session_id"),
)
IN_PROGRESS = TableSpec(
    SESSIONS.name,
    (*OWNER, ("wake_enroll_status", "text"), ("wake_enrollment_session_id", "text")),
    ("tenant_id", "user_id", "device_id", "wake_enroll_status"),
)
_BINDING = (*OWNER, ("wake_profile_id", "text"), ("artifact_version", "text"), ("active", "boolean"))
BINDINGS = TableSpec(
    "os_core.wake_profile_bindings",
    (*_BINDING, ("created_at", "timestamptz"), ("updated_at", "timestamptz")),
    ("tenant_id", "user_id", "device_id", "wake_profile_id"),
)
ACTIVE = TableSpec(BINDINGS.name, BINDINGS.columns, ("tenant_id", "user_id", "device_id", "active"))
START_FIELDS = ("onboarding_session_id", "pass_target", "max_attempts", "enrollment_timeout_ms")


def _cmd(event: LedgerEvent) -> WakeEnrollment:
    assert isinstance(event.payload, WakeEnrollment)
    return event.payload


def _owner(event: LedgerEvent) -> tuple[str, str, str]:
    return (event.tenant_id, _cmd(event).user_id, _cmd(event).device_id)


def decide(session: Row | None, in_progress: str | None, p: WakeEnrollment, at: datetime) -> Row | None:
    """The session row after ``p`` (None: a command that changes nothing), or ``Rejection``. ``in_progress``
    is the id of the session IN_PROGRESS for the command's user and device, if any."""
    sid = p.wake_enrollment_session_id
    mine = session is not None and (session["user_id"], session["device_id"]) == (p.user_id, p.device_id)
    if isinstance(p, WakeEnrollStart):
        if session is None and in_progress is None:
            counts = {"pass_count": 0, "attempt_count": 0, **{f: getattr(p, f) for f in START_FIELDS}}
            unset = dict.fromkeys(("reason_code", "wake_profile_id", "deferred_until", "completed_at"))
            return {**counts, **unset, "wake_enroll_status": "IN_PROGRESS", "created_at": at, "updated_at": at}
        if mine:
            return None
        raise Rejection(
            ReasonCode.W_ENROLL_ALREADY_IN_PROGRESS,
            f"device {p.device_id} of {p.user_id} has session {in_progress} in progress, or {sid} is taken",
        )
    if session is None or not mine:
        raise Rejection(ReasonCode.W_ENROLL_SAMPLE_INVALID, f"no session {sid} of {p.user_id} on {p.device_id}")
    status, row = session["wake_enroll_status"], {**session, "updated_at": max(at, session["updated_at"])}
    if isinstance(p, WakeEnrollComplete) and status == "COMPLETE" and session["wake_profile_id"] == p.wake_profile_id:
        return None
    full = isinstance(p, WakeEnrollSampleCommit) and session["attempt_count"] >= session["max_attempts"]
    if status == "DECLINED" or full or (status == "COMPLETE" and session["wake_profile_id"] is not None):
        raise Rejection(ReasonCode.W_ENROLL_SAMPLE_SESSION_CLOSED, f"session {sid} is {status}: no {type(p).__name__}")
    if isinstance(p, WakeEnrollComplete):
        if session["pass_count"] < session["pass_target"]:
            raise Rejection(
                ReasonCode.W_ENROLL_PASS_TARGET_NOT_MET, f"session {sid}: {session['pass_count']} passes of target"
            )
        return {**row, "wake_enroll_status": "COMPLETE", "wake_profile_id": p.wake_profile_id,
                "completed_at": session["completed_at"] or at}  # fmt: skip
    if status == "COMPLETE":  # reached its target by a sample; only the complete binds it
        raise Rejection(ReasonCode.W_ENROLL_SAMPLE_SESSION_CLOSED, f"session {sid} is COMPLETE")
    if isinstance(p, WakeEnrollDeferReminder):
        return {**row, "wake_enroll_status": "PENDING", "reason_code": p.reason_code,
                "deferred_until": p.deferred_until}  # fmt: skip
    assert isinstance(p, WakeEnrollSampleCommit)
    passes = session["pass_count"] + (p.result == "PASS")
    row |= {"attempt_count": session["attempt_count"] + 1, "pass_count": passes}
    if passes >= session["pass_target"]:
        return {**row, "wake_enroll_status": "COMPLETE", "completed_at": at, "reason_code": None}
    elapsed_ms = (at - session["created_at"]).total_seconds() * 1000
    for over, default in (
        (elapsed_ms >= session["enrollment_timeout_ms"], REASON_TIMEOUT),
        (row["attempt_count"] >= session["max_attempts"], REASON_MAX_ATTEMPTS),
    ):
        if over:
            return {**row, "wake_enroll_status": "PENDING", "reason_code": p.sample_reason_code or default}
    return row  # IN_PROGRESS stays so; a PENDING session stays PENDING (another may have started since)


class WakeEnrollmentProjection(Projection):
    """wake_enrollment_sessions, wake_profile_bindings <- PH1.W audit rows."""

    name = "wake_enrollment"
    writes = (SESSIONS, BINDINGS)
    indexes = (IN_PROGRESS, ACTIVE)
    ledgers = frozenset({"audit_events"})
    event_ref_columns = ()

    def handles(self, event: LedgerEvent) -> bool:
        return isinstance(event.payload, WakeEnrollment)

    def reads(self, event: LedgerEvent) -> Iterable[RowRef]:
        yield SESSIONS, (event.tenant_id, _cmd(event).wake_enrollment_session_id)
        yield IN_PROGRESS, (*_owner(event), "IN_PROGRESS")
        if isinstance(p := event.payload, WakeEnrollComplete):
            yield BINDINGS, (*_owner(event), p.wake_profile_id)
            yield ACTIVE, (*_owner(event), True)

    def reads_after(self, view: RowView, event: LedgerEvent) -> Iterable[RowRef]:
        if isinstance(event.payload, WakeEnrollComplete) and (old := view.get(ACTIVE, (*_owner(event), True))):
            yield BINDINGS, BINDINGS.row_key(old)

    def apply(self, view: RowView, event: LedgerEvent) -> None:
        p, owner, at = _cmd(event), _owner(event), event.occurred_at
        sid = p.wake_enrollment_session_id
        held = view.get(IN_PROGRESS, (*owner, "IN_PROGRESS"))
        held_id = held["wake_enrollment_session_id"] if held else None
        row = decide(view.get(SESSIONS, (event.tenant_id, sid)), held_id, p, at)
        if row is None:
            return
        row |= {
            **dict(zip(("tenant_id", "user_id", "device_id"), owner, strict=True)),
            "wake_enrollment_session_id": sid,
        }
        view.put(SESSIONS, row)
        if row["wake_enroll_status"] == "IN_PROGRESS":
            view.put(IN_PROGRESS, row)
        elif held_id == sid:
            view.delete(IN_PROGRESS, (*owner, "IN_PROGRESS"))
        if isinstance(p, WakeEnrollComplete):
            old = view.get(ACTIVE, (*owner, True))
            if old is not None and old["wake_profile_id"] != p.wake_profile_id:
                view.put(BINDINGS, {**old, "active": False, "updated_at": max(at, old["updated_at"])})
            new = view.get(BINDINGS, (*owner, p.wake_profile_id)) or {**row, "created_at": at}
            bound = {c: new[c] for c in BINDINGS.column_names if c in new} | {"wake_profile_id": p.wake_profile_id}
            bound |= {"artifact_version": p.artifact_version, "active": True, "updated_at": at}
            view.put(BINDINGS, bound)
            view.put(ACTIVE, bound)


def _derived(event: LedgerEvent, model: type[LedgerEvent], ledger: str, payload: dict[str, object]) -> LedgerEvent:
    """``event``'s row on ``ledger``: same envelope and key, an id derived from the event's."""
    return new_event(
        model,
        event_id=derived_event_id(event, ledger),
        **event.model_dump(include={"tenant_id", "engine_id", "correlation_id", "turn_id", "occurred_at"}),
        idempotency_key=event.idempotency_key,
        payload=payload,
    )


class WakeLedgerRecorder(Projection):
    """wake_enrollment_samples and wake_runtime_events: each accepted sample commit, with its place in the
    session (``sample_seq``), and each runtime event PH1.F's guard let through.

    Live only: the rows are ledger rows, which a rebuild finds in their ledger. Runs after the projection
    above, so it sees the attempt count a sample led to, and only for samples it accepted."""

    name = "wake_ledger_rows"
    ledgers = frozenset({"audit_events"})
    live_only = True

    def handles(self, event: LedgerEvent) -> bool:
        return isinstance(event.payload, WakeEnrollSampleCommit | WakeRuntimeCommit)

    def reads(self, event: LedgerEvent) -> Iterable[RowRef]:
        if isinstance(event.payload, WakeEnrollSampleCommit):
            yield SESSIONS, (event.tenant_id, event.payload.wake_enrollment_session_id)

    def apply(self, view: RowView, event: LedgerEvent) -> None:
        p = event.payload
        if isinstance(p, WakeRuntimeCommit):
            row = p.model_dump(include=set(WakeRuntime.model_fields))
            view.emit(_derived(event, WakeRuntimeEvent, RUNTIME.name, row))
            return
        assert isinstance(p, WakeEnrollSampleCommit)
        session = view.get(SESSIONS, (event.tenant_id, p.wake_enrollment_session_id))
        assert session is not None, "WakeEnrollmentProjection runs first and refuses samples of unknown sessions"
        row = p.model_dump(include=set(SampleMetrics.model_fields))
        row |= {"wake_enrollment_session_id": p.wake_enrollment_session_id, "sample_seq": session["attempt_count"]}
        view.emit(_derived(event, WakeSampleEvent, SAMPLES.name, row))


PROJECTIONS: tuple[Projection, ...] = (WakeEnrollmentProjection(), WakeLedgerRecorder())
