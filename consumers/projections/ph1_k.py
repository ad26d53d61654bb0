"""PH1.K: ``audio_runtime_current`` from ``audio_runtime_events`` (upstream's reducer, in ledger order), and
the device and session guard.

Per (tenant, device) one row, created all-null/false by the device's first event; every event sets
``last_event_id`` and ``updated_at``, replaces ``session_id`` only when it names one, and sets the fields of
its kind (``contracts.ph1_k.FIELDS``; an interrupt candidate's phrase and reason as ``last_interrupt_*``).
"""

from __future__ import annotations

from collections.abc import Iterable

from consumers.projections.base import Projection, Rejection, RowRef, RowView
from consumers.projections.foundation import DEVICES, SESSIONS
from consumers.tables import TableSpec
from contracts.envelope import LedgerEvent
from contracts.ph1_k import AUDIO_RUNTIME_EVENTS, FIELDS, FLAGS, AudioRuntimeEvent
from contracts.reasons import ReasonCode

AUDIO_RUNTIME_CURRENT = TableSpec(
    "os_core.audio_runtime_current",
    columns=(
        ("tenant_id", "text"),
        ("device_id", "text"),
        ("session_id", "text"),
        ("last_event_id", "bigint"),
        ("processed_stream_id", "text"),
        ("raw_stream_id", "text"),
        ("pre_roll_buffer_id", "bigint"),
        ("selected_mic", "text"),
        ("selected_speaker", "text"),
        ("device_health", "text"),
        ("jitter_ms_milli", "bigint"),
        ("drift_ppm_milli", "bigint"),
        ("buffer_depth_ms_milli", "bigint"),
        ("underruns", "bigint"),
        ("overruns", "bigint"),
        ("tts_playback_active", "boolean"),
        *((flag, "boolean") for flag in FLAGS),
        ("last_interrupt_phrase", "text"),
        ("last_interrupt_reason_code", "text"),
        ("updated_at", "timestamptz"),
    ),
    key=("tenant_id", "device_id"),
)
_COLUMNS = frozenset(AUDIO_RUNTIME_CURRENT.column_names)
_FALSE = ("tts_playback_active", *FLAGS)
_RENAMED = {"phrase_text": "last_interrupt_phrase", "reason_code": "last_interrupt_reason_code"}


def _k(event: LedgerEvent) -> AudioRuntimeEvent:
    assert isinstance(event.payload, AudioRuntimeEvent)
    return event.payload


class DeviceGuard(Projection):
    """The device is the event's tenant's, and the session (if any) is that device's: a device's tenant and a
    session's device never change, so a row that exists decides. A row not there yet is left to the current
    row's foreign keys (``REFERENCE_UNKNOWN``): identities, devices and sessions arrive on the audit topic."""

    name = "ph1_k_device_guard"
    ledgers = frozenset({AUDIO_RUNTIME_EVENTS.name})
    live_only = True

    def reads(self, event: LedgerEvent) -> Iterable[RowRef]:
        p = _k(event)
        yield DEVICES, (p.device_id,)
        if p.session_id is not None:
            yield SESSIONS, (p.session_id,)

    def apply(self, view: RowView, event: LedgerEvent) -> None:
        p = _k(event)
        device = view.get(DEVICES, (p.device_id,))
        if device is not None and device["tenant_id"] != event.tenant_id:
            raise Rejection(ReasonCode.K_FAIL_TENANT_SCOPE_MISMATCH, f"device {p.device_id} is another tenant's")
        session = view.get(SESSIONS, (p.session_id,)) if p.session_id is not None else None
        if session is not None and (session["tenant_id"], session["device_id"]) != (event.tenant_id, p.device_id):
            raise Rejection(ReasonCode.K_FAIL_SESSION_INVALID, f"session {p.session_id} is not device {p.device_id}'s")


class AudioRuntimeProjection(Projection):
    """audio_runtime_current <- audio_runtime_events."""

    name = "ph1_k"
    writes = (AUDIO_RUNTIME_CURRENT,)
    ledgers = frozenset({AUDIO_RUNTIME_EVENTS.name})

    def reads(self, event: LedgerEvent) -> Iterable[RowRef]:
        yield AUDIO_RUNTIME_CURRENT, (event.tenant_id, _k(event).device_id)

    def apply(self, view: RowView, event: LedgerEvent) -> None:
        p = _k(event)
        row = view.get(AUDIO_RUNTIME_CURRENT, (event.tenant_id, p.device_id))
        if row is None:
            row = dict.fromkeys(AUDIO_RUNTIME_CURRENT.column_names) | dict.fromkeys(_FALSE, False)
        required, optional = FIELDS[p.event_kind]
        # An interrupt's phrase id has no column: upstream keeps the phrase and its reason only.
        changed = {c: getattr(p, f) for f in (*required, *optional) if (c := _RENAMED.get(f, f)) in _COLUMNS}
        if p.session_id is not None:
            changed["session_id"] = p.session_id
        view.put(
            AUDIO_RUNTIME_CURRENT,
            row
            | changed
            | {"tenant_id": event.tenant_id, "device_id": p.device_id}
            | {"last_event_id": event.event_id, "updated_at": event.occurred_at},
        )


# The guard first: a refused event changes nothing.
PROJECTIONS: tuple[Projection, ...] = (DeviceGuard(), AudioRuntimeProjection())
