"""PH1.VOICE.ID end to end on real Kafka and PostgreSQL: the shared AT-VID-DB-01..04, the sheet's DB-03 and
DB-04 statements, and the state machine's refusals through the writer, each dead-lettered with its reason."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from consumers.repositories.ph1_voice_id import VoiceIdReader
from contracts.envelope import LedgerEvent, new_event
from contracts.ph1_voice_id import VoiceEnrollCompleteEvent as Complete
from contracts.ph1_voice_id import VoiceEnrollDeferReminderEvent as Defer
from contracts.ph1_voice_id import VoiceEnrollSampleCommitEvent as Sample
from contracts.ph1_voice_id import VoiceEnrollStartEvent as Start
from contracts.ph1_voice_id import examples
from contracts.reasons import ReasonCode
from contracts.settings import Settings
from contracts.slice import ExampleContext
from tests.e2e.acceptance import SliceAcceptance, onboarding
from tests.e2e.helpers import drain, publish, rebuild_equals_live

pytestmark = pytest.mark.e2e


class TestAtVidDb(SliceAcceptance):
    """The shared AT-VID-DB-01..04 (tests/e2e/acceptance.py); the tests below are what is special to it."""

    slice_name = "ph1_voice_id"


def enrollment(tenant: str, n: int = 0) -> tuple[list[LedgerEvent], list[LedgerEvent]]:
    """A user's onboarding, and the slice's example: start, FAIL, PASS, PASS, PASS (lock after 3), complete."""
    ctx = ExampleContext(tenant, f"u-{tenant}-{n}", f"d-{tenant}-{n}", f"s-{tenant}-{n}", n, datetime.now(UTC))
    return onboarding(ctx), examples(ctx)


REFS = ("user_id", "device_id", "voice_enrollment_session_id", "onboarding_session_id")


def cmd(model: type[LedgerEvent], ref: LedgerEvent, key: str, at: float = 0, **payload: Any) -> LedgerEvent:
    """A PH1.VOICE.ID command about ``ref``'s session (``payload`` overrides), ``at`` seconds after ``ref``."""
    refs = {k: v for k, v in ref.payload.model_dump().items() if k in REFS}
    return new_event(
        model,
        **ref.model_dump(include={"tenant_id", "engine_id", "correlation_id"}),
        idempotency_key=key,
        occurred_at=ref.occurred_at + timedelta(seconds=at),
        payload={**refs, **payload},
    )


async def test_at_vid_db_04_current_table_consistency_with_sample_ledger(
    topics: Settings, reader_db: asyncpg.Connection, run_id: str
) -> None:
    tenant = f"t-{run_id}"
    onboard, (start, *samples, complete) = enrollment(tenant)
    p = start.payload.model_dump()
    await publish(topics, [*onboard, start, *samples[:3]])
    assert not (await drain(topics)).result.dead_lettered
    reader = VoiceIdReader(reader_db)
    sid = p["voice_enrollment_session_id"]
    session = await reader.session(tenant, sid)
    assert session is not None
    assert (session.voice_enroll_status, session.consecutive_passes, session.attempt_count) == ("IN_PROGRESS", 2, 3)
    await publish(topics, [samples[3], complete])
    assert not (await drain(topics)).result.dead_lettered
    session = await reader.session(tenant, sid)
    assert session is not None and (session.voice_enroll_status, session.attempt_count) == ("LOCKED", 4)
    rows = await reader.samples(tenant, sid)
    assert [(r.sample_seq, r.result, r.reason_code) for r in rows] == [
        (1, "FAIL", "VID_FAIL_LOW_CONFIDENCE"),
        (2, "PASS", None),
        (3, "PASS", None),
        (4, "PASS", None),
    ]
    binding = await reader.binding(tenant, p["onboarding_session_id"], p["device_id"])
    assert binding is not None and binding.voice_profile_id == session.voice_profile_id is not None
    assert await rebuild_equals_live(topics, [tenant]) == []


async def test_at_vid_db_03_idempotency_dedupe_works(
    topics: Settings, reader_db: asyncpg.Connection, run_id: str
) -> None:
    """Start, samples and complete again (new event ids, same keys and content): all deduplicated."""
    tenant = f"t-{run_id}"
    onboard, mine = enrollment(tenant)
    await publish(topics, [*onboard, *mine])
    assert not (await drain(topics)).result.dead_lettered
    reader = VoiceIdReader(reader_db)
    sid = mine[0].payload.model_dump()["voice_enrollment_session_id"]
    before = (await reader.session(tenant, sid), await reader.samples(tenant, sid))
    await publish(topics, [new_event(type(e), **e.model_dump(exclude={"event_id"})) for e in mine])
    stats = await drain(topics)
    assert (stats.result.deduplicated, stats.result.appended) == (len(mine), 0)
    assert (await reader.session(tenant, sid), await reader.samples(tenant, sid)) == before


async def test_refusals_are_dead_lettered_with_their_reasons(
    topics: Settings, reader_db: asyncpg.Connection, run_id: str
) -> None:
    tenant = f"t-{run_id}"
    onboard, (start, *_) = enrollment(tenant)
    onboard_1, (start_1, *_) = enrollment(tenant, 1)
    begin: dict[str, Any] = {"consent_asserted": True, "lock_after_consecutive_passes": 3, "max_total_attempts": 5}
    begin["max_session_enroll_time_ms"] = 120000
    fail: dict[str, Any] = {
        "sample_result": "FAIL",
        "sample_reason_code": "VID_FAIL_NO_SPEECH",
        "audio_sample_ref": "blob:x",
    }
    slow: dict[str, Any] = {"onboarding_session_id": "onb-slow", "voice_enrollment_session_id": "voice_enr_slow"}
    events = [
        cmd(Start, start, "start", **begin),
        cmd(Start, start, "start-2", **begin, voice_enrollment_session_id="voice_enr_other"),  # EXISTS
        # Five attempts allowed: the fifth FAIL (10 s in) leaves the session PENDING with its reason.
        *(cmd(Sample, start, f"f{i}", 10 * (i == 5), attempt_index=i, **fail) for i in range(1, 6)),
        cmd(Sample, start, "f6", 20, attempt_index=6, **fail),  # CLOSED: the session is PENDING
        cmd(Defer, start, "defer", 30, reason_code="VID_REAUTH_REQUIRED"),
        # Another session of the device times out: a PASS 120 s after its start leaves it PENDING.
        cmd(Start, start, "start-slow", **begin, **slow),
        cmd(Sample, start, "slow-1", 120, **slow, attempt_index=1, audio_sample_ref="blob:y", sample_result="PASS"),
        cmd(Complete, start, "complete", 40, voice_profile_id="voice_prof_x"),  # NOT_LOCKED, blocks the user
        cmd(Sample, start_1, "unknown", attempt_index=1, **fail),  # NOT_FOUND: never started, blocks
        cmd(Start, start_1, "start", **begin),  # held behind it
    ]
    await publish(topics, [*onboard, *onboard_1, *events])
    stats = await drain(topics)
    assert stats.result.dead_lettered == Counter(
        {
            ReasonCode.VID_ENROLLMENT_SESSION_EXISTS: 1,
            ReasonCode.VID_ENROLLMENT_SESSION_CLOSED: 1,
            ReasonCode.VID_ENROLLMENT_NOT_LOCKED: 1,
            ReasonCode.VID_ENROLLMENT_SESSION_NOT_FOUND: 1,
            ReasonCode.HELD_BEHIND_DEAD_LETTER: 1,
        }
    )
    reader = VoiceIdReader(reader_db)
    sid = start.payload.model_dump()["voice_enrollment_session_id"]
    session = await reader.session(tenant, sid)
    assert session is not None
    assert (session.voice_enroll_status, session.attempt_count, session.reason_code) == (
        "PENDING",
        5,
        "VID_REAUTH_REQUIRED",
    )
    assert [s.reason_code for s in await reader.samples(tenant, sid)] == ["VID_FAIL_NO_SPEECH"] * 5
    timed_out = await reader.session(tenant, "voice_enr_slow")
    assert timed_out is not None
    assert (timed_out.voice_enroll_status, timed_out.reason_code) == ("PENDING", "VID_ENROLL_REASON_TIMEOUT")
    assert await reader.session(tenant, "voice_enr_other") is None
    assert await rebuild_equals_live(topics, [tenant]) == []
