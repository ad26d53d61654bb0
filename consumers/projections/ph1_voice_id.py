"""PH1.VOICE.ID: enrollment sessions, voice profiles and bindings from the PH1.VOICE.ID audit rows, with the
sheet's sample state machine, and each accepted sample appended to ``voice_enrollment_samples``.

Decided on the session as its earlier commands left it (``decide``): a start for a pair (onboarding session,
device) that has its session is a no-op when it names that session (upstream returns it) and refused
``VID_ENROLLMENT_SESSION_EXISTS`` otherwise; any other command needs the session of its pair
(``VID_ENROLLMENT_SESSION_NOT_FOUND``); a sample needs ``IN_PROGRESS`` and a defer anything but ``LOCKED``
or ``DECLINED`` (``VID_ENROLLMENT_SESSION_CLOSED``); a complete needs ``LOCKED``
(``VID_ENROLLMENT_NOT_LOCKED``). Times are the events' ``occurred_at``: the reducer stays pure.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from consumers.projections.base import Projection, Rejection, RowRef, RowView, derived_event_id
from consumers.tables import Row, TableSpec
from contracts.envelope import LedgerEvent, new_event
from contracts.ph1_voice_id import (
    REASON_MAX_ATTEMPTS,
    REASON_TIMEOUT,
    VOICE_ENROLLMENT_SAMPLES,
    VoiceEnrollComplete,
    VoiceEnrollDeferReminder,
    VoiceEnrollment,
    VoiceEnrollSampleCommit,
    VoiceEnrollStart,
    VoiceSampleEvent,
)
from contracts.reasons import ReasonCode

PAIR = ("tenant_id", "onboarding_session_id", "device_id")
SESSIONS = TableSpec(
    "os_core.voice_enrollment_sessions",
    columns=(
        ("tenant_id", "text"),
        ("voice_enrollment_session_id", "text"),
        ("onboarding_session_id", "text"),
        ("device_id", "text"),
        ("voice_profile_id", "text"),
        ("voice_enroll_status", "text"),
        ("lock_after_consecutive_passes", "smallint"),
        ("consecutive_passes", "smallint"),
        ("attempt_count", "smallint"),
        ("max_total_attempts", "smallint"),
        ("max_session_enroll_time_ms", "integer"),
        ("reason_code", "text"),
        ("deferred_until", "timestamptz"),
        ("created_at", "timestamptz"),
        ("updated_at", "timestamptz"),
    ),
    key=("tenant_id", "voice_enrollment_session_id"),
)
SESSIONS_BY_PAIR = TableSpec(
    SESSIONS.name, (*((c, "text") for c in PAIR), ("voice_enrollment_session_id", "text")), PAIR
)
_PAIRED = (*((c, "text") for c in PAIR), ("voice_profile_id", "text"), ("created_at", "timestamptz"))
PROFILES = TableSpec("os_core.voice_profiles", _PAIRED, PAIR)
BINDINGS = TableSpec("os_core.voice_profile_bindings", _PAIRED, PAIR)
START_FIELDS = ("lock_after_consecutive_passes", "max_total_attempts", "max_session_enroll_time_ms")


def _cmd(event: LedgerEvent) -> VoiceEnrollment:
    assert isinstance(event.payload, VoiceEnrollment)
    return event.payload


def _pair(event: LedgerEvent) -> tuple[str, str, str]:
    return (event.tenant_id, _cmd(event).onboarding_session_id, _cmd(event).device_id)


def decide(session: Row | None, by_pair: str | None, p: VoiceEnrollment, at: datetime) -> Row | None:
    """The session row after ``p`` (None: a start that changes nothing), or ``Rejection``. ``by_pair`` is the
    session id the command's (onboarding session, device) already has."""
    sid = p.voice_enrollment_session_id
    if isinstance(p, VoiceEnrollStart):
        if session is None and by_pair is None:
            counts = {"consecutive_passes": 0, "attempt_count": 0, **{f: getattr(p, f) for f in START_FIELDS}}
            unset = dict.fromkeys(("voice_profile_id", "reason_code", "deferred_until"))
            return {**counts, **unset, "voice_enroll_status": "IN_PROGRESS", "created_at": at, "updated_at": at}
        if by_pair == sid and session is not None:
            return None
        raise Rejection(
            ReasonCode.VID_ENROLLMENT_SESSION_EXISTS,
            f"device {p.device_id} in onboarding session {p.onboarding_session_id} has session {by_pair}; {sid} "
            f"is {'taken' if session else 'not it'}",
        )
    if session is None or by_pair != sid:
        raise Rejection(
            ReasonCode.VID_ENROLLMENT_SESSION_NOT_FOUND,
            f"no voice enrollment session {sid} for device {p.device_id} in {p.onboarding_session_id}",
        )
    status, changed = session["voice_enroll_status"], {"updated_at": max(at, session["updated_at"])}
    if isinstance(p, VoiceEnrollComplete):
        if status != "LOCKED":
            raise Rejection(ReasonCode.VID_ENROLLMENT_NOT_LOCKED, f"session {sid} is {status}, not LOCKED")
        return {**session, **changed, "voice_profile_id": session["voice_profile_id"] or p.voice_profile_id}
    closed = ("LOCKED", "DECLINED") if isinstance(p, VoiceEnrollDeferReminder) else ("LOCKED", "DECLINED", "PENDING")
    if status in closed:
        raise Rejection(ReasonCode.VID_ENROLLMENT_SESSION_CLOSED, f"session {sid} is {status}: no {type(p).__name__}")
    if isinstance(p, VoiceEnrollDeferReminder):
        return {**session, **changed, "voice_enroll_status": "PENDING", "reason_code": p.reason_code,
                "deferred_until": p.deferred_until}  # fmt: skip
    assert isinstance(p, VoiceEnrollSampleCommit)
    attempts = session["attempt_count"] + 1
    passes = session["consecutive_passes"] + 1 if p.sample_result == "PASS" else 0
    row = {**session, **changed, "attempt_count": attempts, "consecutive_passes": passes}
    elapsed_ms = (at - session["created_at"]).total_seconds() * 1000
    if passes >= session["lock_after_consecutive_passes"]:
        return {**row, "voice_enroll_status": "LOCKED", "reason_code": None, "deferred_until": None}
    for over, default in (
        (elapsed_ms >= session["max_session_enroll_time_ms"], REASON_TIMEOUT),
        (attempts >= session["max_total_attempts"], REASON_MAX_ATTEMPTS),
    ):
        if over:
            return {**row, "voice_enroll_status": "PENDING", "reason_code": p.sample_reason_code or default}
    return row


class VoiceEnrollmentProjection(Projection):
    """voice_enrollment_sessions, voice_profiles, voice_profile_bindings <- PH1.VOICE.ID audit rows."""

    name = "voice_enrollment"
    writes = (SESSIONS, PROFILES, BINDINGS)
    indexes = (SESSIONS_BY_PAIR,)
    ledgers = frozenset({"audit_events"})
    event_ref_columns = ()

    def handles(self, event: LedgerEvent) -> bool:
        return isinstance(event.payload, VoiceEnrollment)

    def reads(self, event: LedgerEvent) -> Iterable[RowRef]:
        yield SESSIONS, (event.tenant_id, _cmd(event).voice_enrollment_session_id)
        yield SESSIONS_BY_PAIR, _pair(event)
        if isinstance(event.payload, VoiceEnrollComplete):
            yield PROFILES, _pair(event)
            yield BINDINGS, _pair(event)

    def apply(self, view: RowView, event: LedgerEvent) -> None:
        p, pair, at = _cmd(event), _pair(event), event.occurred_at
        sid = p.voice_enrollment_session_id
        held = view.get(SESSIONS_BY_PAIR, pair)
        row = decide(
            view.get(SESSIONS, (event.tenant_id, sid)), held["voice_enrollment_session_id"] if held else None, p, at
        )
        if row is None:
            return
        keys = dict(zip(PAIR, pair, strict=True))
        view.put(SESSIONS, {**row, **keys, "voice_enrollment_session_id": sid})
        view.put(SESSIONS_BY_PAIR, {**keys, "voice_enrollment_session_id": sid})
        if isinstance(p, VoiceEnrollComplete):
            profile = view.get(PROFILES, pair) or {
                **keys,
                "voice_profile_id": row["voice_profile_id"],
                "created_at": at,
            }
            view.put(PROFILES, profile)
            view.put(BINDINGS, view.get(BINDINGS, pair) or {**profile, "created_at": at})


class VoiceSampleRecorder(Projection):
    """voice_enrollment_samples: each accepted sample commit, with its place in the session (``sample_seq``).

    Live only: the rows are ledger rows, which a rebuild finds in their ledger. Runs after the projection
    above, so it sees the attempt count the sample led to, and only for samples it accepted."""

    name = "voice_enrollment_samples"
    ledgers = frozenset({"audit_events"})
    live_only = True

    def handles(self, event: LedgerEvent) -> bool:
        return isinstance(event.payload, VoiceEnrollSampleCommit)

    def reads(self, event: LedgerEvent) -> Iterable[RowRef]:
        yield SESSIONS, (event.tenant_id, _cmd(event).voice_enrollment_session_id)

    def apply(self, view: RowView, event: LedgerEvent) -> None:
        p = event.payload
        assert isinstance(p, VoiceEnrollSampleCommit)
        session = view.get(SESSIONS, (event.tenant_id, p.voice_enrollment_session_id))
        assert session is not None, "VoiceEnrollmentProjection runs first and refuses samples of unknown sessions"
        view.emit(
            new_event(
                VoiceSampleEvent,
                event_id=derived_event_id(event, VOICE_ENROLLMENT_SAMPLES.name),
                tenant_id=event.tenant_id,
                engine_id=event.engine_id,
                correlation_id=event.correlation_id,
                turn_id=event.turn_id,
                idempotency_key=event.idempotency_key,
                occurred_at=event.occurred_at,
                payload={
                    "voice_enrollment_session_id": p.voice_enrollment_session_id,
                    "sample_seq": session["attempt_count"],
                    "attempt_index": p.attempt_index,
                    "audio_sample_ref": p.audio_sample_ref,
                    "result": p.sample_result,
                    "reason_code": p.sample_reason_code,
                },
            )
        )


PROJECTIONS: tuple[Projection, ...] = (VoiceEnrollmentProjection(), VoiceSampleRecorder())
