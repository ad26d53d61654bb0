"""PH1.K (seed 000 row 11): voice runtime I/O, a ledger of a device's audio runtime events and its current row.

One event type, ``K_RUNTIME_EVENT_COMMIT`` (upstream's ledger event type), whose ``event_kind`` says which
fields it carries (``FIELDS``): each kind requires its fields and carries no other kind's, else
``K_FAIL_EVENT_FIELDS_INVALID``. Upstream's ``created_at`` is the envelope's ``occurred_at``; its timings
(finite, >= 0 milliseconds or ppm as doubles) arrive in thousandths as integers, the quantisation its
current row applies anyway (``*_milli``), so the ledger holds exactly what the current row shows.

A device belongs to one tenant (PH1.F's ``devices``): the writer refuses an event of another tenant's device
(``K_FAIL_TENANT_SCOPE_MISMATCH``) or of a session of another device (``K_FAIL_SESSION_INVALID``), and the
current row's foreign keys an unknown device or session (``REFERENCE_UNKNOWN``).

Aggregate = the device: the current row's key, whose events must apply in publish order.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, model_validator

from contracts.audit_decisions import Text128
from contracts.envelope import Ident, LedgerEvent, LedgerSpec, Payload, ReasonText, define_event, new_event
from contracts.reasons import ReasonCode
from contracts.slice import ExampleContext, LedgerColumns, SliceContract

AUDIO_RUNTIME_EVENTS = LedgerSpec(
    name="audio_runtime_events",
    table="os_core.audio_runtime_events",
    id_column="event_id",
    idempotency_scope=("tenant_id", "device_id", "event_kind", "idempotency_key"),
    contract_invalid=ReasonCode.K_FAIL_EVENT_FIELDS_INVALID,
    tenant_violation=ReasonCode.K_FAIL_TENANT_SCOPE_MISMATCH,
    duplicate=ReasonCode.K_IDEMPOTENCY_REPLAY,
    append_only_violation=ReasonCode.K_APPEND_ONLY_VIOLATION,
)
ENGINE_ID = "PH1.K"

Count = Annotated[int, Field(ge=0, le=2**31 - 1)]
EventKind = Literal[
    "STREAM_REFS",
    "VAD_EVENT",
    "DEVICE_STATE",
    "TIMING_STATS",
    "INTERRUPT_CANDIDATE",
    "DEGRADATION_FLAGS",
    "TTS_PLAYBACK_ACTIVE",
]
FLAGS = ("capture_degraded", "aec_unstable", "device_changed", "stream_gap_detected")
#: kind -> (fields it requires, fields it may carry besides).
FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "STREAM_REFS": (("processed_stream_id", "pre_roll_buffer_id"), ("raw_stream_id",)),
    "VAD_EVENT": (("processed_stream_id",), ()),
    "DEVICE_STATE": (("selected_mic", "selected_speaker", "device_health"), ()),
    "TIMING_STATS": (("jitter_ms_milli", "drift_ppm_milli", "buffer_depth_ms_milli", "underruns", "overruns"), ()),
    "INTERRUPT_CANDIDATE": (("phrase_id", "phrase_text", "reason_code"), ()),
    "DEGRADATION_FLAGS": (FLAGS, ()),
    "TTS_PLAYBACK_ACTIVE": (("tts_playback_active",), ()),
}
KIND_FIELDS = tuple(dict.fromkeys(f for req, opt in FIELDS.values() for f in (*req, *opt)))


def _kind_rule(kind: str) -> dict[str, Any]:
    """``FIELDS[kind]`` as JSON Schema: the kind's fields required and not null, every other kind's null or
    absent (what ``_fields_of_its_kind`` checks), so a foreign producer's validator agrees with the writer."""
    required, optional = FIELDS[kind]
    props: dict[str, Any] = {f: {"not": {"type": "null"}} for f in required}
    props.update({f: {"type": "null"} for f in KIND_FIELDS if f not in (*required, *optional)})
    return {
        "if": {"properties": {"event_kind": {"const": kind}}, "required": ["event_kind"]},
        "then": {"required": list(required), "properties": props},
    }


class AudioRuntimeEvent(Payload):
    """Upstream's ``ph1k_runtime_event_commit_row`` arguments (its stream ids, u128 in code, as text)."""

    model_config = ConfigDict(json_schema_extra={"allOf": [_kind_rule(k) for k in FIELDS]})

    device_id: Ident
    session_id: Ident | None = None
    event_kind: EventKind
    processed_stream_id: Ident | None = None
    raw_stream_id: Ident | None = None
    pre_roll_buffer_id: Count | None = None
    selected_mic: Text128 | None = None
    selected_speaker: Text128 | None = None
    device_health: Literal["HEALTHY", "DEGRADED", "FAILED"] | None = None
    jitter_ms_milli: Count | None = None
    drift_ppm_milli: Count | None = None
    buffer_depth_ms_milli: Count | None = None
    underruns: Count | None = None
    overruns: Count | None = None
    phrase_id: Count | None = None
    phrase_text: Text128 | None = None
    reason_code: ReasonText | None = None
    tts_playback_active: bool | None = None
    capture_degraded: bool | None = None
    aec_unstable: bool | None = None
    device_changed: bool | None = None
    stream_gap_detected: bool | None = None

    @model_validator(mode="after")
    def _fields_of_its_kind(self) -> AudioRuntimeEvent:
        required, optional = FIELDS[self.event_kind]
        missing = [f for f in required if getattr(self, f) is None]
        stray = [f for f in KIND_FIELDS if f not in (*required, *optional) and getattr(self, f) is not None]
        if missing or stray:
            raise ValueError(f"a {self.event_kind} event needs {missing or 'nothing more'}, carries no {stray or '-'}")
        return self

    def aggregate_id(self, event: LedgerEvent) -> str:
        return f"audio:{self.device_id}"


AudioRuntimeEventCommit = define_event(AUDIO_RUNTIME_EVENTS, "K_RUNTIME_EVENT_COMMIT", AudioRuntimeEvent)


def examples(ctx: ExampleContext) -> list[LedgerEvent]:
    """The user's device opens its streams, reports its state and timings, and hears a barge-in."""
    kinds: list[dict[str, object]] = [
        {"event_kind": "STREAM_REFS", "processed_stream_id": f"{ctx.n}1", "pre_roll_buffer_id": ctx.n},
        {"event_kind": "DEVICE_STATE", "selected_mic": "mic", "selected_speaker": "spk", "device_health": "HEALTHY"},
        {"event_kind": "TIMING_STATS", "underruns": 0, "overruns": 1}
        | {"jitter_ms_milli": 2500, "drift_ppm_milli": 3000, "buffer_depth_ms_milli": 40000},
        {
            "event_kind": "INTERRUPT_CANDIDATE",
            "phrase_id": 7,
            "phrase_text": "stop",
            "reason_code": "K_INTERRUPT_CANDIDATE",
        },
    ]
    return [
        new_event(
            AudioRuntimeEventCommit,
            tenant_id=ctx.tenant_id,
            engine_id=ENGINE_ID,
            correlation_id=f"audio-{ctx.device_id}-{ctx.n}",
            occurred_at=ctx.at,
            payload={"device_id": ctx.device_id, "session_id": ctx.session_id, **kind},
        )
        for kind in kinds
    ]


SLICE = SliceContract(
    name="ph1_k",
    engines=(ENGINE_ID,),
    kind="custom",
    seed_row=11,
    doc="docs/DB_WIRING/PH1_K.md",
    acceptance="AT-K-DB",
    ledgers=(LedgerColumns(AUDIO_RUNTIME_EVENTS, AudioRuntimeEvent),),
    events=(AudioRuntimeEventCommit,),
    reasons=(ReasonCode.K_FAIL_SESSION_INVALID,),
    # A duplicate changes nothing; an event naming another device's session is that event's mistake alone.
    non_blocking=frozenset({ReasonCode.K_FAIL_SESSION_INVALID}),
    requires=("foundation",),
    examples=examples,
)
