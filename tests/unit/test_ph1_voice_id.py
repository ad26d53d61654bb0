"""PH1.VOICE.ID's sample state machine and refusals (``consumers.projections.ph1_voice_id.decide``), no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from consumers.projections.base import Rejection
from consumers.projections.ph1_voice_id import decide
from consumers.tables import Row
from contracts.envelope import Payload
from contracts.ph1_voice_id import (
    VoiceEnrollComplete,
    VoiceEnrollDeferReminder,
    VoiceEnrollSampleCommit,
    VoiceEnrollStart,
)
from contracts.reasons import ReasonCode

T0 = datetime(2026, 1, 1, tzinfo=UTC)
REFS: dict[str, Any] = {
    "user_id": "u",
    "device_id": "d",
    "voice_enrollment_session_id": "voice_enr_1",
    "onboarding_session_id": "onb",
}
LIMITS: dict[str, Any] = {
    "lock_after_consecutive_passes": 3,
    "max_total_attempts": 5,
    "max_session_enroll_time_ms": 60000,
}


def start() -> Row:
    row = decide(None, None, VoiceEnrollStart(**REFS, **LIMITS, consent_asserted=True), T0)
    assert row is not None
    return row


def sample(result: str, reason: str | None = None) -> VoiceEnrollSampleCommit:
    fields: dict[str, Any] = {"sample_result": result, "sample_reason_code": reason}
    return VoiceEnrollSampleCommit(**REFS, attempt_index=1, audio_sample_ref="blob:1", **fields)


def run(*results: str, at: timedelta = timedelta(seconds=1), row: Row | None = None) -> Row:
    row = row or start()
    for r in results:
        decided = decide(row, "voice_enr_1", sample(r, "VID_SPOOF_RISK" if r == "FAIL" else None), T0 + at)
        assert decided is not None
        row = decided
    return row


def state(row: Row) -> tuple[Any, ...]:
    return row["voice_enroll_status"], row["consecutive_passes"], row["attempt_count"], row["reason_code"]


def test_consecutive_passes_lock_and_a_fail_resets_them() -> None:
    assert state(run("FAIL", "PASS", "PASS")) == ("IN_PROGRESS", 2, 3, None)
    assert state(run("FAIL", "PASS", "PASS", "PASS")) == ("LOCKED", 3, 4, None)


def test_pending_on_timeout_before_max_attempts_with_the_given_reason_or_the_default() -> None:
    four = run("PASS", "PASS", "FAIL", "PASS")
    assert state(run("PASS", row=four)) == ("PENDING", 2, 5, "VID_ENROLL_REASON_MAX_ATTEMPTS")
    assert state(run("PASS", row=four, at=timedelta(minutes=1))) == ("PENDING", 2, 5, "VID_ENROLL_REASON_TIMEOUT")
    assert state(run("FAIL", at=timedelta(minutes=1))) == ("PENDING", 0, 1, "VID_SPOOF_RISK")


@pytest.mark.parametrize(
    ("status", "command", "reason"),
    [
        ("LOCKED", sample("PASS"), ReasonCode.VID_ENROLLMENT_SESSION_CLOSED),
        ("PENDING", sample("PASS"), ReasonCode.VID_ENROLLMENT_SESSION_CLOSED),
        ("DECLINED", sample("PASS"), ReasonCode.VID_ENROLLMENT_SESSION_CLOSED),
        ("LOCKED", VoiceEnrollDeferReminder(**REFS, reason_code="LATER"), ReasonCode.VID_ENROLLMENT_SESSION_CLOSED),
        ("IN_PROGRESS", VoiceEnrollComplete(**REFS, voice_profile_id="p"), ReasonCode.VID_ENROLLMENT_NOT_LOCKED),
        ("PENDING", VoiceEnrollComplete(**REFS, voice_profile_id="p"), ReasonCode.VID_ENROLLMENT_NOT_LOCKED),
    ],
)
def test_refusals_by_status(status: str, command: Payload, reason: ReasonCode) -> None:
    assert isinstance(command, VoiceEnrollSampleCommit | VoiceEnrollDeferReminder | VoiceEnrollComplete)
    with pytest.raises(Rejection) as info:
        decide({**start(), "voice_enroll_status": status}, "voice_enr_1", command, T0)
    assert info.value.reason_code == reason


def test_start_again_returns_the_session_and_another_id_for_the_pair_is_refused() -> None:
    begin = VoiceEnrollStart(**REFS, **LIMITS, consent_asserted=True)
    assert decide(start(), "voice_enr_1", begin, T0) is None
    with pytest.raises(Rejection) as info:
        decide(None, "voice_enr_0", begin, T0)
    assert info.value.reason_code == ReasonCode.VID_ENROLLMENT_SESSION_EXISTS
    with pytest.raises(Rejection) as info:
        decide(None, None, sample("PASS"), T0)
    assert info.value.reason_code == ReasonCode.VID_ENROLLMENT_SESSION_NOT_FOUND


def test_complete_keeps_the_first_profile_and_defer_waits() -> None:
    locked = run("PASS", "PASS", "PASS")
    done = decide(locked, "voice_enr_1", VoiceEnrollComplete(**REFS, voice_profile_id="p1"), T0)
    assert done is not None and (done["voice_enroll_status"], done["voice_profile_id"]) == ("LOCKED", "p1")
    again = decide(done, "voice_enr_1", VoiceEnrollComplete(**REFS, voice_profile_id="p2"), T0)
    assert again is not None and again["voice_profile_id"] == "p1"
    until = T0 + timedelta(days=1)
    deferred = decide(
        start(), "voice_enr_1", VoiceEnrollDeferReminder(**REFS, reason_code="LATER", deferred_until=until), T0
    )
    assert deferred is not None and state(deferred)[::3] == ("PENDING", "LATER") and deferred["deferred_until"] == until
