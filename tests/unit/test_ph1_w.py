"""PH1.W's sample state machine and refusals (``consumers.projections.ph1_w.decide``), no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from consumers.projections.base import Rejection
from consumers.projections.ph1_w import decide
from consumers.tables import Row
from contracts.ph1_w import (
    METRICS,
    WakeEnrollComplete,
    WakeEnrollDeferReminder,
    WakeEnrollSampleCommit,
    WakeEnrollStart,
)
from contracts.reasons import ReasonCode

T0 = datetime(2026, 1, 1, tzinfo=UTC)
REFS: dict[str, Any] = {"user_id": "u", "device_id": "d", "wake_enrollment_session_id": "wake_enr_1"}
START = WakeEnrollStart(**REFS, pass_target=3, max_attempts=8, enrollment_timeout_ms=180000)


def run(*results: str, at: timedelta = timedelta(seconds=1), row: Row | None = None) -> Row:
    """The session after samples of ``results`` ("PASS", "FAIL" or "FAIL:<reason>"), ``at`` after its start."""
    row = row or {**REFS, **(decide(None, None, START, T0) or {})}
    for r in results:
        reason = r.partition(":")[2] or "FAIL_G3_SCORE_LOW" if r.startswith("FAIL") else None
        p = WakeEnrollSampleCommit.model_validate({**REFS, **METRICS, "result": r[:4], "sample_reason_code": reason})
        row = {**REFS, **(decide(row, "wake_enr_1", p, T0 + at) or {})}
    return row


def state(row: Row) -> tuple[Any, ...]:
    return row["wake_enroll_status"], row["pass_count"], row["attempt_count"], row["reason_code"]


def test_samples_complete_time_out_or_run_out_of_attempts() -> None:
    assert state(run("FAIL", "PASS", "PASS")) == ("IN_PROGRESS", 2, 3, None)
    assert state(done := run("PASS", "FAIL", "PASS", "PASS")) == ("COMPLETE", 3, 4, None)
    assert done["completed_at"] == T0 + timedelta(seconds=1)
    assert state(run("PASS", at=timedelta(minutes=3))) == ("PENDING", 1, 1, "W_ENROLL_REASON_TIMEOUT")
    assert state(run(*["FAIL"] * 6, "PASS", "PASS")) == ("PENDING", 2, 8, "W_ENROLL_REASON_MAX_ATTEMPTS")
    assert state(run(*["FAIL"] * 8)) == ("PENDING", 0, 8, "FAIL_G3_SCORE_LOW")  # the sample's reason first
    assert state(run("FAIL:FAIL_G0_DEVICE_UNHEALTHY", at=timedelta(minutes=4)))[3] == "FAIL_G0_DEVICE_UNHEALTHY"
    # A PENDING session takes samples (another may be IN_PROGRESS now: it stays PENDING) until it completes.
    pending = run("PASS", at=timedelta(minutes=3))
    assert state(run("PASS", row=pending, at=timedelta(minutes=4)))[:3] == ("PENDING", 2, 2)
    assert state(run("PASS", "PASS", row=pending, at=timedelta(minutes=4)))[:3] == ("COMPLETE", 3, 3)


def test_refusals() -> None:
    with pytest.raises(Rejection) as info:
        decide(None, "wake_enr_0", START, T0)
    assert info.value.reason_code == ReasonCode.W_ENROLL_ALREADY_IN_PROGRESS
    assert decide(run(), "wake_enr_1", START, T0) is None  # a start of the session again: no change
    full = run(*["FAIL"] * 8)
    complete = WakeEnrollComplete(**REFS, wake_profile_id="p", artifact_version="v1")
    for row, cmd, reason in (
        (None, complete, ReasonCode.W_ENROLL_SAMPLE_INVALID),
        ({**run(), "device_id": "other"}, complete, ReasonCode.W_ENROLL_SAMPLE_INVALID),
        (run("PASS", "PASS"), complete, ReasonCode.W_ENROLL_PASS_TARGET_NOT_MET),
        (full, WakeEnrollSampleCommit.model_validate({**REFS, **METRICS, "result": "PASS"}),
         ReasonCode.W_ENROLL_SAMPLE_SESSION_CLOSED),
        (run("PASS", "PASS", "PASS"), WakeEnrollDeferReminder(**REFS, reason_code="LATER"),
         ReasonCode.W_ENROLL_SAMPLE_SESSION_CLOSED),
    ):  # fmt: skip
        with pytest.raises(Rejection) as info:
            decide(row, None, cmd, T0)
        assert info.value.reason_code == reason
    bound = decide(run("PASS", "PASS", "PASS"), None, complete, T0 + timedelta(seconds=2))
    assert bound is not None and (bound["wake_profile_id"], bound["completed_at"]) == ("p", T0 + timedelta(seconds=1))
    assert decide(bound, None, complete, T0) is None  # the same complete again
    other = WakeEnrollComplete(**REFS, wake_profile_id="q", artifact_version="v1")
    with pytest.raises(Rejection) as info:
        decide(bound, None, other, T0)
    assert info.value.reason_code == ReasonCode.W_ENROLL_SAMPLE_SESSION_CLOSED
    later = T0 + timedelta(hours=1)
    deferred = decide(run("FAIL"), None, WakeEnrollDeferReminder(**REFS, reason_code="LATER", deferred_until=later), T0)
    assert deferred is not None and (deferred["wake_enroll_status"], deferred["deferred_until"]) == ("PENDING", later)
