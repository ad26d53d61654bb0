"""PH1.K end to end on real Kafka and PostgreSQL: the shared AT-K-DB-01..04, the sheet's DB-01 (a device bound
to one tenant refuses another's event) and DB-04 (mixed kinds, every field of the current row, equal after
rebuild) statements, and the failure classes, each dead-lettered with its reason and never appended."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from cli.workload import RawRecord
from consumers.repositories.ph1_k import AudioRuntimeReader
from contracts.codec import encode
from contracts.envelope import LedgerEvent, new_event
from contracts.ph1_k import AudioRuntimeEventCommit
from contracts.reasons import ReasonCode
from contracts.settings import Settings
from contracts.slice import ExampleContext
from tests.e2e.acceptance import SliceAcceptance, onboarding
from tests.e2e.helpers import drain, publish, rebuild_equals_live, send_raw

pytestmark = pytest.mark.e2e


class TestAtKDb(SliceAcceptance):
    slice_name = "ph1_k"


def device(tenant: str, name: str) -> list[LedgerEvent]:
    return onboarding(ExampleContext(tenant, f"u-{name}", name, f"s-{name}", 0, datetime.now(UTC)))


def k(tenant: str, device_id: str, kind: str, **fields: Any) -> LedgerEvent:
    return new_event(
        AudioRuntimeEventCommit,
        tenant_id=tenant,
        engine_id="PH1.K",
        correlation_id=f"k-{device_id}",
        occurred_at=datetime.now(UTC),
        payload={"device_id": device_id, "event_kind": kind, **fields},
    )


async def test_at_k_db_04_mixed_kinds_current_row_equal_after_rebuild(
    topics: Settings, reader_db: asyncpg.Connection, run_id: str
) -> None:
    t, d = f"t-{run_id}", f"d-{run_id}"
    timings = {"jitter_ms_milli": 2000, "drift_ppm_milli": 3000, "buffer_depth_ms_milli": 4000}
    timings |= {"underruns": 5, "overruns": 6}
    flags = {"capture_degraded": True, "aec_unstable": False, "device_changed": True, "stream_gap_detected": True}
    events = [
        k(
            t,
            d,
            "STREAM_REFS",
            session_id=f"s-{d}",
            processed_stream_id="101",
            raw_stream_id="102",
            pre_roll_buffer_id=3,
        ),
        k(t, d, "TIMING_STATS", **timings),
        k(t, d, "DEGRADATION_FLAGS", **flags),
        k(t, d, "INTERRUPT_CANDIDATE", phrase_id=1, phrase_text="wait", reason_code="K_INTERRUPT_CANDIDATE"),
        k(t, d, "TTS_PLAYBACK_ACTIVE", tts_playback_active=True),
        k(t, d, "VAD_EVENT", processed_stream_id="103"),
    ]
    await publish(topics, device(t, d))
    await drain(topics)
    await publish(topics, events)
    assert (await drain(topics)).result.appended == len(events)
    reader = AudioRuntimeReader(reader_db)
    row = await reader.current(t, d)
    assert row is not None
    assert (row.session_id, row.processed_stream_id, row.raw_stream_id, row.pre_roll_buffer_id) == (
        f"s-{d}",
        "103",
        "102",
        3,
    )
    assert (row.jitter_ms_milli, row.drift_ppm_milli, row.buffer_depth_ms_milli, row.underruns, row.overruns) == (
        2000,
        3000,
        4000,
        5,
        6,
    )
    assert {f: getattr(row, f) for f in flags} == flags and row.tts_playback_active
    assert (row.last_interrupt_phrase, row.last_interrupt_reason_code) == ("wait", "K_INTERRUPT_CANDIDATE")
    ledger = await reader.events(t, d)
    assert [e.event_kind for e in ledger] == [e.payload.event_kind for e in events]  # type: ignore[attr-defined]
    assert row.last_event_id == ledger[-1].event_id and row.selected_mic is None
    assert await rebuild_equals_live(topics, [t]) == []


async def test_refusals_are_dead_lettered_and_never_appended(
    topics: Settings, reader_db: asyncpg.Connection, operator_db: asyncpg.Connection, run_id: str
) -> None:
    a, b = f"ta-{run_id}", f"tb-{run_id}"
    da, db = f"da-{run_id}", f"db-{run_id}"
    other_tenant = k(b, da, "VAD_EVENT", processed_stream_id="1")  # the sheet's DB-01: da is bound to a
    other_session = k(a, da, "VAD_EVENT", processed_stream_id="1", session_id=f"s-{db}")
    unknown = k(a, f"nobody-{run_id}", "VAD_EVENT", processed_stream_id="1")
    bad = json.loads(encode(k(a, f"bad-{run_id}", "VAD_EVENT", processed_stream_id="1")).value)
    bad["payload"] |= {"event_kind": "DEVICE_STATE"}  # without its mic, speaker and health
    raw = RawRecord("audio_runtime_events", f"{a}/audio:bad-{run_id}".encode(), json.dumps(bad).encode(), "")
    own = k(a, da, "TTS_PLAYBACK_ACTIVE", tts_playback_active=True)
    await publish(topics, [*device(a, da), *device(b, db)])
    await drain(topics)  # the devices are bound before their events arrive
    await publish(topics, [other_tenant, other_session, unknown, own])
    await send_raw(topics, [raw])
    stats = await drain(topics)
    assert stats.result.dead_lettered == Counter(
        {
            ReasonCode.K_FAIL_TENANT_SCOPE_MISMATCH: 1,
            ReasonCode.K_FAIL_SESSION_INVALID: 1,
            ReasonCode.REFERENCE_UNKNOWN: 1,
            ReasonCode.K_FAIL_EVENT_FIELDS_INVALID: 1,
        }
    )
    rows = await operator_db.fetch(
        "SELECT event_uuid FROM os_core.audio_runtime_events WHERE tenant_id = ANY($1)", [a, b]
    )
    assert [r["event_uuid"] for r in rows] == [own.event_id]
    reader = AudioRuntimeReader(reader_db)
    assert await reader.current(b, da) is None
    assert (await reader.current(a, da)).tts_playback_active  # type: ignore[union-attr]
