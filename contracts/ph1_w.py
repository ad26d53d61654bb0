"""PH1.W (seed 000 row 12): wake-word enrollment of a user's device, and the wake decisions at runtime.

Upstream writes its session and binding tables directly and ledgers only samples and runtime events. Here,
as for PH1.VOICE.ID (its sibling), every enrollment command is a typed PH1.J audit row, decided in order by
one reducer (``consumers.projections.ph1_w``); sessions and bindings rebuild from those rows alone, and the
writer appends each accepted sample to ``wake_enrollment_samples`` with its ``sample_seq``. A runtime event
is an audit row too (``WAKE_RUNTIME_EVENT_COMMIT``), appended by the writer to ``wake_runtime_events``: on
a topic of its own it could overtake the registration of the device it names (no order across topics).

Aggregate = the user (``AuditPayload``): the commands share the partition of the device's registration, and
PH1.F's reference guard holds the device to the user, in the event's tenant. A runtime event without a user
follows its correlation.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, ConfigDict, Field, StringConstraints, model_validator

from contracts.audit import AUDIT_EVENTS, AuditPayload
from contracts.audit_decisions import Text64
from contracts.envelope import (
    IDENT_PATTERN,
    Ident,
    LedgerEvent,
    LedgerSpec,
    Payload,
    UniqueKey,
    define_event,
    new_event,
)
from contracts.reasons import ReasonCode
from contracts.slice import ExampleContext, LedgerColumns, SliceContract

ENGINE_ID = "PH1.W"


def _ledger(name: str, id_column: str, scope_key: str, *unique: UniqueKey) -> LedgerSpec:
    return LedgerSpec(
        name=name,
        table=f"os_core.{name}",
        id_column=id_column,
        idempotency_scope=("tenant_id", scope_key, "idempotency_key"),
        contract_invalid=ReasonCode.EVENT_SCHEMA_INVALID,
        tenant_violation=ReasonCode.EVENT_TENANT_MISMATCH,
        duplicate=ReasonCode.IDEMPOTENCY_REPLAY,
        append_only_violation=ReasonCode.W_APPEND_ONLY_VIOLATION,
        unique_keys=unique,
    )


SAMPLES = _ledger(
    "wake_enrollment_samples",
    "sample_id",
    "wake_enrollment_session_id",
    UniqueKey(("tenant_id", "wake_enrollment_session_id", "sample_seq")),
)
RUNTIME = _ledger("wake_runtime_events", "runtime_event_id", "device_id")
Id64 = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=IDENT_PATTERN)]
#: Signal metrics: finite (``allow_inf_nan=False``), so their JSON round-trips exactly.
Metric = Annotated[float, Field(allow_inf_nan=False)]
#: Upstream's audit reason names for a failed sample or a rejected wake (placeholders 0x5700xxxx, by name).
FailReason = Literal["FAIL_G0_DEVICE_UNHEALTHY", "FAIL_G3_SCORE_LOW", "FAIL_G3A_REPLAY_SUSPECTED"]
#: Why a sample left the session PENDING when the sample gave no reason (0x57000202, 0x57000201).
REASON_TIMEOUT, REASON_MAX_ATTEMPTS = "W_ENROLL_REASON_TIMEOUT", "W_ENROLL_REASON_MAX_ATTEMPTS"


class WakeEvent(LedgerEvent):
    """PH1.W's envelope: its engine, and the key every command is idempotent on."""

    engine_id: Literal["PH1.W"]
    idempotency_key: Ident


class WakeEnrollment(AuditPayload):
    """What every command names: the session, the user and their device, and the optional onboarding session
    (stored, not yet checked against ``onboarding_sessions``, row 21: docs/DB_WIRING/PH1_W.md)."""

    user_id: Ident
    device_id: Ident
    wake_enrollment_session_id: Id64
    onboarding_session_id: Ident | None = None


class WakeEnrollStart(WakeEnrollment):
    reason_code: Literal["WAKE_OK_ENROLL_START_DRAFT"] = "WAKE_OK_ENROLL_START_DRAFT"
    pass_target: int = Field(ge=3, le=8)
    max_attempts: int = Field(ge=8, le=20)
    enrollment_timeout_ms: int = Field(ge=180000, le=600000)


class SampleMetrics(Payload):
    """A sample's measurements (raw wake audio is never stored) and its result; a FAIL says why."""

    model_config = ConfigDict(
        json_schema_extra={
            "if": {"properties": {"result": {"const": "FAIL"}}},
            "then": {"required": ["sample_reason_code"], "properties": {"sample_reason_code": {"type": "string"}}},
            "else": {"properties": {"sample_reason_code": {"type": "null"}}},
        }
    )

    sample_duration_ms: int = Field(ge=500, le=2200)
    vad_coverage: Metric
    snr_db: Metric
    clipping_pct: Metric
    rms_dbfs: Metric
    noise_floor_dbfs: Metric
    peak_dbfs: Metric
    overlap_ratio: Metric
    result: Literal["PASS", "FAIL"]
    sample_reason_code: FailReason | None = None

    @model_validator(mode="after")
    def _fail_says_why(self) -> SampleMetrics:
        if (self.result == "FAIL") != (self.sample_reason_code is not None):
            raise ValueError("a FAIL sample, and only a FAIL sample, carries sample_reason_code")
        return self


class WakeEnrollSampleCommit(SampleMetrics, WakeEnrollment):
    reason_code: Literal["WAKE_OK_ENROLL_SAMPLE_COMMIT"] = "WAKE_OK_ENROLL_SAMPLE_COMMIT"


class WakeEnrollComplete(WakeEnrollment):
    """Binds ``wake_profile_id`` (wake pack ``artifact_version``, row 7) as the active profile of the device."""

    reason_code: Literal["WAKE_OK_ENROLL_COMPLETE_COMMIT"] = "WAKE_OK_ENROLL_COMPLETE_COMMIT"
    wake_profile_id: Id64
    artifact_version: Text64


class WakeEnrollDeferReminder(WakeEnrollment):
    """The session waits (``PENDING``) for the reason given (``reason_code``), until ``deferred_until``."""

    deferred_until: AwareDatetime | None = None


class WakeSample(SampleMetrics):
    """A row of ``wake_enrollment_samples``, written by the writer for each accepted sample commit."""

    wake_enrollment_session_id: Id64
    sample_seq: int = Field(ge=1, le=32767)


class RuntimeFields(Payload):
    """A wake decision on a device: accepted (``W_WAKE_ACCEPTED``) or rejected with its reason."""

    model_config = ConfigDict(
        json_schema_extra={
            "if": {"properties": {"accepted": {"const": True}}},
            "then": {"properties": {"reason_code": {"const": "W_WAKE_ACCEPTED"}}},
            "else": {"properties": {"reason_code": {"not": {"const": "W_WAKE_ACCEPTED"}}}},
        }
    )

    wake_event_id: Ident
    accepted: bool
    reason_code: Literal["W_WAKE_ACCEPTED", "W_WAKE_REJECTED_TIMEOUT"] | FailReason
    wake_profile_id: Id64 | None = None
    tts_active_at_trigger: bool
    media_playback_active_at_trigger: bool
    suppression_reason_code: Literal["SUPPRESS_COOLDOWN", "SUPPRESS_POLICY_SUSPENDED"] | None = None

    @model_validator(mode="after")
    def _accepted_says_so(self) -> RuntimeFields:
        if self.accepted != (self.reason_code == "W_WAKE_ACCEPTED"):
            raise ValueError("accepted iff reason_code is W_WAKE_ACCEPTED")
        return self


class WakeRuntimeCommit(RuntimeFields, AuditPayload):
    """The published runtime event: an audit row, so it stays behind the registration of the device (and
    user and session) it names, which PH1.F's reference guard checks; the writer appends its ledger row."""

    reason_code: Literal["W_WAKE_ACCEPTED", "W_WAKE_REJECTED_TIMEOUT"] | FailReason
    device_id: Ident


class WakeRuntime(RuntimeFields):
    """A row of ``wake_runtime_events``."""

    session_id: Ident | None = None
    user_id: Ident | None = None
    device_id: Ident


def _define(spec: LedgerSpec, name: str, payload: type[Payload]) -> type[LedgerEvent]:
    return define_event(spec, name, payload, base=WakeEvent)


WakeEnrollStartEvent = _define(AUDIT_EVENTS, "WAKE_ENROLL_START_DRAFT", WakeEnrollStart)
WakeEnrollSampleCommitEvent = _define(AUDIT_EVENTS, "WAKE_ENROLL_SAMPLE_COMMIT", WakeEnrollSampleCommit)
WakeEnrollCompleteEvent = _define(AUDIT_EVENTS, "WAKE_ENROLL_COMPLETE_COMMIT", WakeEnrollComplete)
WakeEnrollDeferReminderEvent = _define(AUDIT_EVENTS, "WAKE_ENROLL_DEFER_REMINDER_COMMIT", WakeEnrollDeferReminder)
WakeSampleEvent = _define(SAMPLES, "WAKE_ENROLL_SAMPLE_COMMIT", WakeSample)
WakeRuntimeCommitEvent = _define(AUDIT_EVENTS, "WAKE_RUNTIME_EVENT_COMMIT", WakeRuntimeCommit)
WakeRuntimeEvent = _define(RUNTIME, "WAKE_RUNTIME_EVENT_COMMIT", WakeRuntime)
METRICS = {"sample_duration_ms": 1200, "vad_coverage": 0.92, "snr_db": 18.5, "clipping_pct": 0.25}
METRICS |= {"rms_dbfs": -21.5, "noise_floor_dbfs": -58.25, "peak_dbfs": -3.125, "overlap_ratio": 0.0}


def examples(ctx: ExampleContext) -> list[LedgerEvent]:
    """The user's device enrolls (FAIL, then three PASS of target 3; completed), then wakes twice."""
    sid = f"wake_enr_{ctx.device_id}_{ctx.n}"[:64]
    profile = f"wake_prof_{ctx.device_id}_{ctx.n}"[:64]
    common = {"tenant_id": ctx.tenant_id, "engine_id": ENGINE_ID, "correlation_id": sid, "occurred_at": ctx.at}
    refs = {"user_id": ctx.user_id, "device_id": ctx.device_id, "wake_enrollment_session_id": sid}
    start = {"pass_target": 3, "max_attempts": 8, "enrollment_timeout_ms": 300000}
    samples = [
        {**METRICS, "result": r} | ({"sample_reason_code": "FAIL_G3_SCORE_LOW"} if r == "FAIL" else {})
        for r in ("FAIL", "PASS", "PASS", "PASS")
    ]
    at_device: dict[str, object] = {"session_id": ctx.session_id, "user_id": ctx.user_id, "device_id": ctx.device_id}
    at_device |= {"wake_profile_id": profile, "media_playback_active_at_trigger": False}
    wakes = [
        {"accepted": True, "reason_code": "W_WAKE_ACCEPTED", "tts_active_at_trigger": False},
        {"accepted": False, "reason_code": "FAIL_G3_SCORE_LOW", "tts_active_at_trigger": True,
         "suppression_reason_code": "SUPPRESS_COOLDOWN"},
    ]  # fmt: skip
    return [
        new_event(WakeEnrollStartEvent, idempotency_key="start", payload={**refs, **start}, **common),
        *(
            new_event(WakeEnrollSampleCommitEvent, idempotency_key=f"sample-{i}", payload={**refs, **s}, **common)
            for i, s in enumerate(samples, start=1)
        ),
        new_event(
            WakeEnrollCompleteEvent,
            idempotency_key="complete",
            payload={**refs, "wake_profile_id": profile, "artifact_version": "wake-pack-v1"},
            **common,
        ),
        *(
            new_event(
                WakeRuntimeCommitEvent, idempotency_key=k, payload={**w, **at_device, "wake_event_id": k}, **common
            )
            for k, w in ((f"wake-{sid}-{i}", w) for i, w in enumerate(wakes, start=1))
        ),
    ]


SLICE = SliceContract(
    name="ph1_w",
    engines=(ENGINE_ID,),
    kind="custom",
    seed_row=12,
    doc="docs/DB_WIRING/PH1_W.md",
    acceptance="AT-W-DB",
    ledgers=(
        LedgerColumns(SAMPLES, WakeSample, renamed_fields=(("sample_reason_code", "reason_code"),)),
        LedgerColumns(RUNTIME, WakeRuntime),
    ),
    events=(
        WakeEnrollStartEvent,
        WakeEnrollSampleCommitEvent,
        WakeEnrollCompleteEvent,
        WakeEnrollDeferReminderEvent,
        WakeRuntimeCommitEvent,
        WakeSampleEvent,
        WakeRuntimeEvent,
    ),
    reasons=(
        ReasonCode.W_ENROLL_ALREADY_IN_PROGRESS,
        ReasonCode.W_ENROLL_SAMPLE_INVALID,
        ReasonCode.W_ENROLL_SAMPLE_SESSION_CLOSED,
        ReasonCode.W_ENROLL_PASS_TARGET_NOT_MET,
    ),
    # A second start for a busy device, or a command after the session closed, changes nothing later events
    # depend on. A session never started, or a complete before the target, means the user's stream lost an
    # event: its later events wait behind the dead letter.
    non_blocking=frozenset({ReasonCode.W_ENROLL_ALREADY_IN_PROGRESS, ReasonCode.W_ENROLL_SAMPLE_SESSION_CLOSED}),
    requires=("foundation",),
    examples=examples,
)
