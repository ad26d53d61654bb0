"""PH1.VOICE.ID (seed 000 row 9): voice enrollment of a device during onboarding.

Upstream writes its session, profile and binding tables directly and ledgers only the samples. Here every
command is a typed row of the PH1.J audit ledger (the sheet's audit event types): start, sample, complete and
defer are decided in order by one reducer (``consumers.projections.ph1_voice_id``), and the sessions, profiles
and bindings rebuild from those rows alone. A rebuild reads ledger after ledger, so a machine fed from two
ledgers would see a complete before its samples: one ledger it is. Each accepted sample is also appended, by
the writer in the same transaction, to the sheet's ledger ``voice_enrollment_samples`` with its per-session
``sample_seq``.

Aggregate = the user whose device enrolls (``AuditPayload``): the commands share the partition of the
device's registration, so they never overtake it, and PH1.F's reference guard checks that the device is the
user's, in the event's tenant. Upstream has no user here; the producer names the device's owner.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, ConfigDict, Field, StringConstraints, model_validator

from contracts.audit import AUDIT_EVENTS, AuditPayload
from contracts.audit_decisions import NON_BLANK_PATTERN
from contracts.envelope import IDENT_PATTERN, Ident, LedgerEvent, LedgerSpec, Payload, define_event, new_event
from contracts.reasons import ReasonCode
from contracts.slice import ExampleContext, LedgerColumns, SliceContract

ENGINE_ID = "PH1.VOICE.ID"
VOICE_ENROLLMENT_SAMPLES = LedgerSpec(
    name="voice_enrollment_samples",
    table="os_core.voice_enrollment_samples",
    id_column="sample_id",
    idempotency_scope=("tenant_id", "voice_enrollment_session_id", "idempotency_key"),
    contract_invalid=ReasonCode.EVENT_SCHEMA_INVALID,
    tenant_violation=ReasonCode.EVENT_TENANT_MISMATCH,
    duplicate=ReasonCode.IDEMPOTENCY_REPLAY,
    append_only_violation=ReasonCode.VID_APPEND_ONLY_VIOLATION,
)
Id64 = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=IDENT_PATTERN)]
SampleRef = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=NON_BLANK_PATTERN)]


#: Upstream's PH1.VOICE.ID codes (``ph1_voice_id.rs``, hex placeholders 0x56490001..09), stored by name.
SampleReason = Literal[
    "VID_FAIL_NO_SPEECH",
    "VID_FAIL_LOW_CONFIDENCE",
    "VID_FAIL_MULTI_SPEAKER_PRESENT",
    "VID_FAIL_ECHO_UNSAFE",
    "VID_FAIL_PROFILE_NOT_ENROLLED",
    "VID_ENROLLMENT_REQUIRED",
    "VID_REAUTH_REQUIRED",
    "VID_SPOOF_RISK",
    "VID_DEVICE_CLAIM_REQUIRED",
]
#: Why a sample left the session PENDING when the sample gave no reason (0x56490202, 0x56490201).
REASON_TIMEOUT, REASON_MAX_ATTEMPTS = "VID_ENROLL_REASON_TIMEOUT", "VID_ENROLL_REASON_MAX_ATTEMPTS"


class VoiceIdEvent(LedgerEvent):
    """PH1.VOICE.ID's envelope: its engine, and the key every command is idempotent on."""

    engine_id: Literal["PH1.VOICE.ID"]
    idempotency_key: Ident


class VoiceEnrollment(AuditPayload):
    """What every command names: the session, its onboarding session and device, and the device's user.

    ``onboarding_session_id`` is stored, not checked: ``onboarding_sessions`` (row 21) is not built yet."""

    user_id: Ident
    device_id: Ident
    voice_enrollment_session_id: Id64
    onboarding_session_id: Ident


class VoiceEnrollStart(VoiceEnrollment):
    reason_code: Literal["VOICE_ENROLL_START_DRAFT"] = "VOICE_ENROLL_START_DRAFT"
    consent_asserted: Literal[True]
    lock_after_consecutive_passes: int = Field(ge=2, le=5)
    max_total_attempts: int = Field(ge=5, le=20)
    max_session_enroll_time_ms: int = Field(ge=60000, le=300000)


class VoiceEnrollSampleCommit(VoiceEnrollment):
    """One sample's result (the audio stays outside: a reference only); a FAIL says why."""

    model_config = ConfigDict(
        json_schema_extra={
            "if": {"properties": {"sample_result": {"const": "FAIL"}}},
            "then": {"required": ["sample_reason_code"], "properties": {"sample_reason_code": {"type": "string"}}},
        }
    )
    reason_code: Literal["VOICE_ENROLL_SAMPLE_COMMIT"] = "VOICE_ENROLL_SAMPLE_COMMIT"
    attempt_index: int = Field(ge=1, le=32767)
    audio_sample_ref: SampleRef
    sample_result: Literal["PASS", "FAIL"]
    sample_reason_code: SampleReason | None = None

    @model_validator(mode="after")
    def _fail_says_why(self) -> VoiceEnrollSampleCommit:
        if self.sample_result == "FAIL" and self.sample_reason_code is None:
            raise ValueError("a FAIL sample carries sample_reason_code")
        return self


class VoiceEnrollComplete(VoiceEnrollment):
    reason_code: Literal["VOICE_ENROLL_COMPLETE_COMMIT"] = "VOICE_ENROLL_COMPLETE_COMMIT"
    voice_profile_id: Id64


class VoiceEnrollDeferReminder(VoiceEnrollment):
    """The session waits (``PENDING``) for the reason given (``reason_code``), until ``deferred_until``."""

    deferred_until: AwareDatetime | None = None


class VoiceSample(Payload):
    """A row of ``voice_enrollment_samples``: written by the writer for each accepted sample commit."""

    voice_enrollment_session_id: Id64
    sample_seq: int = Field(ge=1, le=32767)
    attempt_index: int = Field(ge=1, le=32767)
    audio_sample_ref: SampleRef
    result: Literal["PASS", "FAIL"]
    reason_code: SampleReason | None = None


def _define(spec: LedgerSpec, name: str, payload: type[Payload]) -> type[LedgerEvent]:
    return define_event(spec, name, payload, base=VoiceIdEvent)


VoiceEnrollStartEvent = _define(AUDIT_EVENTS, "VOICE_ENROLL_START_DRAFT", VoiceEnrollStart)
VoiceEnrollSampleCommitEvent = _define(AUDIT_EVENTS, "VOICE_ENROLL_SAMPLE_COMMIT", VoiceEnrollSampleCommit)
VoiceEnrollCompleteEvent = _define(AUDIT_EVENTS, "VOICE_ENROLL_COMPLETE_COMMIT", VoiceEnrollComplete)
VoiceEnrollDeferReminderEvent = _define(AUDIT_EVENTS, "VOICE_ENROLL_DEFER_REMINDER_COMMIT", VoiceEnrollDeferReminder)
VoiceSampleEvent = _define(VOICE_ENROLLMENT_SAMPLES, "VOICE_ENROLL_SAMPLE_COMMIT", VoiceSample)


def examples(ctx: ExampleContext) -> list[LedgerEvent]:
    """The user's device enrolls: started, FAIL then three PASS (lock after 3), completed."""
    sid = f"voice_enr_{ctx.device_id}_{ctx.n}"[:64]
    common = {"tenant_id": ctx.tenant_id, "engine_id": ENGINE_ID, "correlation_id": sid, "occurred_at": ctx.at}
    refs = {
        "user_id": ctx.user_id,
        "device_id": ctx.device_id,
        "voice_enrollment_session_id": sid,
        "onboarding_session_id": f"onb_{ctx.user_id}_{ctx.n}",
    }
    start = {"consent_asserted": True, "lock_after_consecutive_passes": 3}
    samples = [
        {"attempt_index": i, "audio_sample_ref": f"blob:voice/{sid}/{i}", "sample_result": result}
        | ({"sample_reason_code": "VID_FAIL_LOW_CONFIDENCE"} if result == "FAIL" else {})
        for i, result in enumerate(("FAIL", "PASS", "PASS", "PASS"), start=1)
    ]
    return [
        new_event(
            VoiceEnrollStartEvent,
            idempotency_key="start",
            payload={**refs, **start, "max_total_attempts": 8, "max_session_enroll_time_ms": 120000},
            **common,
        ),
        *(
            new_event(
                VoiceEnrollSampleCommitEvent,
                idempotency_key=f"sample-{s['attempt_index']}",
                payload={**refs, **s},
                **common,
            )
            for s in samples
        ),
        new_event(
            VoiceEnrollCompleteEvent,
            idempotency_key="complete",
            payload={**refs, "voice_profile_id": f"voice_prof_{ctx.device_id}_{ctx.n}"[:64]},
            **common,
        ),
    ]


SLICE = SliceContract(
    name="ph1_voice_id",
    engines=(ENGINE_ID,),
    kind="custom",
    seed_row=9,
    doc="docs/DB_WIRING/PH1_VOICE_ID.md",
    acceptance="AT-VID-DB",
    ledgers=(LedgerColumns(VOICE_ENROLLMENT_SAMPLES, VoiceSample),),
    events=(
        VoiceEnrollStartEvent,
        VoiceEnrollSampleCommitEvent,
        VoiceEnrollCompleteEvent,
        VoiceEnrollDeferReminderEvent,
        VoiceSampleEvent,
    ),
    reasons=(
        ReasonCode.VID_ENROLLMENT_SESSION_NOT_FOUND,
        ReasonCode.VID_ENROLLMENT_SESSION_EXISTS,
        ReasonCode.VID_ENROLLMENT_NOT_LOCKED,
        ReasonCode.VID_ENROLLMENT_SESSION_CLOSED,
    ),
    # A start the pair already has, or a sample or defer after the session stopped taking them, changes
    # nothing later events depend on. A session never started, or a complete before the lock, means the
    # user's stream lost an event: its later events wait behind the dead letter.
    non_blocking=frozenset({ReasonCode.VID_ENROLLMENT_SESSION_EXISTS, ReasonCode.VID_ENROLLMENT_SESSION_CLOSED}),
    requires=("foundation",),
    examples=examples,
)
