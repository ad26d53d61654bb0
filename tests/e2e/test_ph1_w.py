"""PH1.W end to end on real Kafka and PostgreSQL: the shared AT-W-DB-01..04, the sheet's DB-01 and DB-04
statements, the active binding replaced within a batch and across batches, and the refusals, each
dead-lettered with its reason."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from consumers.repositories.ph1_w import WakeReader
from contracts.envelope import LedgerEvent, new_event
from contracts.ph1_w import METRICS, examples
from contracts.ph1_w import WakeEnrollCompleteEvent as Complete
from contracts.ph1_w import WakeEnrollSampleCommitEvent as Sample
from contracts.ph1_w import WakeEnrollStartEvent as Start
from contracts.reasons import ReasonCode
from contracts.settings import Settings
from contracts.slice import ExampleContext
from tests.e2e.acceptance import SliceAcceptance, onboarding
from tests.e2e.helpers import drain, publish, rebuild_equals_live

pytestmark = pytest.mark.e2e


class TestAtWDb(SliceAcceptance):
    """The shared AT-W-DB-01..04 (tests/e2e/acceptance.py); the tests below are what is special to it."""

    slice_name = "ph1_w"


def ctx(tenant: str, n: int = 0) -> ExampleContext:
    return ExampleContext(tenant, f"u-{tenant}-{n}", f"d-{tenant}-{n}", f"s-{tenant}-{n}", n, datetime.now(UTC))


def enroll(c: ExampleContext, sid: str, profile: str | None, passes: int = 3, **refs: Any) -> list[LedgerEvent]:
    """Start ``sid`` for ``c``'s user and device (``refs`` overrides), ``passes`` PASS samples, a complete."""
    common = {"tenant_id": c.tenant_id, "engine_id": "PH1.W", "correlation_id": sid, "occurred_at": c.at}
    ids = {"user_id": c.user_id, "device_id": c.device_id, "wake_enrollment_session_id": sid, **refs}
    start = {"pass_target": 3, "max_attempts": 8, "enrollment_timeout_ms": 180000}
    done = [] if profile is None else [{"wake_profile_id": profile, "artifact_version": "wake-pack-v2"}]
    return [
        new_event(Start, idempotency_key="start", payload={**ids, **start}, **common),
        *(new_event(Sample, idempotency_key=f"s{i}", payload={**ids, **METRICS, "result": "PASS"}, **common)
          for i in range(passes)),
        *(new_event(Complete, idempotency_key="complete", payload={**ids, **d}, **common) for d in done),
    ]  # fmt: skip


async def test_at_w_db_04_current_table_consistency_with_enrollment_and_runtime_ledger(
    topics: Settings, reader_db: asyncpg.Connection, run_id: str
) -> None:
    c = ctx(f"t-{run_id}")
    start, *_, complete, _, _ = mine = examples(c)
    await publish(topics, [*onboarding(c), *mine])
    assert not (await drain(topics)).result.dead_lettered
    reader, sid = WakeReader(reader_db), start.payload.model_dump()["wake_enrollment_session_id"]
    s = await reader.session(c.tenant_id, sid)
    assert s is not None and (s.wake_enroll_status, s.pass_count, s.attempt_count) == ("COMPLETE", 3, 4)
    assert s.wake_profile_id == complete.payload.model_dump()["wake_profile_id"]
    samples = await reader.samples(c.tenant_id, sid)
    assert [(r.sample_seq, r.result, r.reason_code) for r in samples] == [
        (1, "FAIL", "FAIL_G3_SCORE_LOW"), (2, "PASS", None), (3, "PASS", None), (4, "PASS", None)
    ]  # fmt: skip
    assert {(r.peak_dbfs, r.vad_coverage, r.noise_floor_dbfs) for r in samples} == {(-3.125, 0.92, -58.25)}
    [binding] = await reader.bindings(c.tenant_id, c.user_id, c.device_id)
    assert (binding.wake_profile_id, binding.active) == (s.wake_profile_id, True)
    wakes = await reader.runtime_events(c.tenant_id, c.device_id)
    assert [(w.accepted, w.reason_code, w.suppression_reason_code) for w in wakes] == [
        (True, "W_WAKE_ACCEPTED", None), (False, "FAIL_G3_SCORE_LOW", "SUPPRESS_COOLDOWN")
    ]  # fmt: skip
    assert await rebuild_equals_live(topics, [c.tenant_id]) == []


def redo(event: LedgerEvent, **update: Any) -> LedgerEvent:
    """``event`` again as a new event (new id), with ``update`` applied to the envelope."""
    return new_event(type(event), **{**event.model_dump(exclude={"event_id"}), **update})


async def test_bindings_replaced_and_refusals_dead_lettered(
    topics: Settings, reader_db: asyncpg.Connection, run_id: str
) -> None:
    c0, c1, c2 = (ctx(f"t-{run_id}", n) for n in range(3))
    wake = examples(c0)[-1]
    a = enroll(c0, "wake_enr_a", "prof_a")
    events = [
        *a, *enroll(c0, "wake_enr_b", "prof_b"),
        enroll(c0, "wake_enr_c", None, 0)[0],  # starts: wake_enr_c is IN_PROGRESS
        enroll(c0, "wake_enr_d", None, 0)[0],  # ALREADY_IN_PROGRESS
        redo(a[1], idempotency_key="late"),  # SESSION_CLOSED: wake_enr_a is complete
        redo(wake, idempotency_key="alien", payload={**wake.payload.model_dump(), "device_id": "d-unknown"}),
        *enroll(c2, "wake_enr_e", None, 0, device_id=c0.device_id),  # TENANT_SCOPE_VIOLATION: not c2's device
        *enroll(c1, "wake_enr_f", "prof_f", passes=2),  # PASS_TARGET_NOT_MET: blocks c1's stream
        redo(enroll(c1, "wake_enr_f", None)[1], idempotency_key="held"),  # held behind it
    ]  # fmt: skip
    # c2 names c0's device: registered first, as Kafka orders the two users' partitions against nothing.
    await publish(topics, [*onboarding(c0), *onboarding(c1), *onboarding(c2)])
    assert not (await drain(topics)).result.dead_lettered
    await publish(topics, events)
    assert (await drain(topics)).result.dead_lettered == Counter({
        ReasonCode.W_ENROLL_ALREADY_IN_PROGRESS: 1, ReasonCode.W_ENROLL_SAMPLE_SESSION_CLOSED: 1,
        ReasonCode.REFERENCE_UNKNOWN: 1, ReasonCode.TENANT_SCOPE_VIOLATION: 1,
        ReasonCode.W_ENROLL_PASS_TARGET_NOT_MET: 1, ReasonCode.HELD_BEHIND_DEAD_LETTER: 1,
    })  # fmt: skip
    reader, t = WakeReader(reader_db), c0.tenant_id
    active = [(x.wake_profile_id, x.active) for x in await reader.bindings(t, c0.user_id, c0.device_id)]
    assert active == [("prof_b", True), ("prof_a", False)]  # replaced within one batch
    sessions = [await reader.session(t, s) for s in ("wake_enr_c", "wake_enr_d", "wake_enr_e", "wake_enr_f")]
    assert [s and (s.wake_enroll_status, s.pass_count) for s in sessions] == [("IN_PROGRESS", 0), None, None,
                                                                              ("IN_PROGRESS", 2)]  # fmt: skip
    assert await rebuild_equals_live(topics, [t]) == []


async def test_active_binding_replaced_across_batches(
    topics: Settings, reader_db: asyncpg.Connection, run_id: str
) -> None:
    c = ctx(f"t-{run_id}")
    await publish(topics, [*onboarding(c), *enroll(c, "wake_enr_a", "prof_a")])
    assert not (await drain(topics)).result.dead_lettered
    await publish(topics, [redo(e, occurred_at=c.at + timedelta(seconds=1)) for e in enroll(c, "wake_enr_b", "p_b")])
    assert not (await drain(topics)).result.dead_lettered
    bindings = await WakeReader(reader_db).bindings(c.tenant_id, c.user_id, c.device_id)
    assert [(x.wake_profile_id, x.active) for x in bindings] == [("p_b", True), ("prof_a", False)]
    assert await rebuild_equals_live(topics, [c.tenant_id]) == []
