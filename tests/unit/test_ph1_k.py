"""PH1.K's fields per kind (the contract) and the reducer, without I/O: each kind requires exactly its fields
and carries no other kind's; the current row keeps what earlier kinds set and changes only its kind's fields."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from consumers.projections.base import RowView
from consumers.projections.ph1_k import AUDIO_RUNTIME_CURRENT, AudioRuntimeProjection
from contracts.envelope import LedgerEvent, new_event
from contracts.ph1_k import FIELDS, AudioRuntimeEventCommit
from contracts.reasons import ContractViolation, ReasonCode

VALUES: dict[str, Any] = {
    "processed_stream_id": "1",
    "raw_stream_id": "2",
    "pre_roll_buffer_id": 3,
    "selected_mic": "mic",
    "selected_speaker": "spk",
    "device_health": "FAILED",
    "jitter_ms_milli": 4,
    "drift_ppm_milli": 5,
    "buffer_depth_ms_milli": 6,
    "underruns": 7,
    "overruns": 8,
    "phrase_id": 9,
    "phrase_text": "stop",
    "reason_code": "K_INTERRUPT_CANDIDATE",
    "tts_playback_active": True,
    "capture_degraded": True,
    "aec_unstable": True,
    "device_changed": True,
    "stream_gap_detected": True,
}


def event(kind: str, fields: dict[str, Any]) -> LedgerEvent:
    return new_event(
        AudioRuntimeEventCommit,
        tenant_id="t",
        engine_id="PH1.K",
        correlation_id="c",
        occurred_at=datetime.now(UTC),
        payload={"device_id": "d", "event_kind": kind, **fields},
    )


@pytest.mark.parametrize("kind", sorted(FIELDS))
def test_each_kind_requires_its_fields_and_carries_no_other(kind: str) -> None:
    required, optional = FIELDS[kind]
    event(kind, {f: VALUES[f] for f in (*required, *optional)})
    for missing in required:
        with pytest.raises(ContractViolation) as info:
            event(kind, {f: VALUES[f] for f in required if f != missing})
        assert info.value.reason_code == ReasonCode.K_FAIL_EVENT_FIELDS_INVALID
    stray = next(f for f in VALUES if f not in (*required, *optional))
    with pytest.raises(ContractViolation):
        event(kind, {**{f: VALUES[f] for f in required}, stray: VALUES[stray]})


def test_reducer_sets_only_its_kinds_fields_and_keeps_the_rest() -> None:
    view = RowView({AUDIO_RUNTIME_CURRENT: {}})
    projection = AudioRuntimeProjection()
    for kind in ("DEVICE_STATE", "INTERRUPT_CANDIDATE", "VAD_EVENT"):
        e = event(kind, {f: VALUES[f] for f in FIELDS[kind][0]})
        projection.apply(view, e)
        view.commit_event()
    row = view.get(AUDIO_RUNTIME_CURRENT, ("t", "d"))
    assert row is not None
    assert (row["selected_mic"], row["device_health"], row["processed_stream_id"]) == ("mic", "FAILED", "1")
    assert (row["last_interrupt_phrase"], row["last_interrupt_reason_code"]) == ("stop", "K_INTERRUPT_CANDIDATE")
    assert row["last_event_id"] == e.event_id and row["session_id"] is None and row["tts_playback_active"] is False
    assert set(row) == set(AUDIO_RUNTIME_CURRENT.column_names)
