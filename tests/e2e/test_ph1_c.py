"""PH1.C (seed 000 row 13) end to end on real Kafka and PostgreSQL: AT-C-DB-01..04 (the shared suite on the
slice's examples, and the sheet's own readings through the transcript gate), and the failure classes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from consumers.repositories.ph1_c import CReader
from contracts.envelope import LedgerEvent, new_event
from contracts.ph1_c import SttCandidateEvalEvent, TranscriptOkEvent, Turn, transcript_ok, transcript_reject
from contracts.reasons import ContractViolation, ReasonCode
from contracts.settings import Settings
from contracts.slice import ExampleContext
from producers.ledger_writes import LedgerWrites, WriteRefused
from producers.ph1_c import TranscriptCommitted, TranscriptGate
from producers.publisher import Publisher
from tests.e2e.acceptance import SliceAcceptance, onboarding, scoped
from tests.e2e.audit_decisions import decider, person, refusals_while_good_decisions_flow
from tests.e2e.helpers import drain, publish, rebuild_equals_live, running_writer

pytestmark = pytest.mark.e2e

COUNTS = """
SELECT (SELECT count(*) FROM os_core.audit_events WHERE tenant_id = $1 AND engine_id = 'PH1.C') AS audit,
       (SELECT count(*) FROM conversation.conversation_ledger WHERE tenant_id = $1 AND engine_id = 'PH1.C') AS turns
"""


def turn(p: ExampleContext, corr: str, n: int, key: str | None = None, device: str | None = None) -> Turn:
    return Turn(p.tenant_id, corr, f"turn-{n}", key or f"stt-{n}", p.user_id, device or p.device_id, None, p.at)


def ok(t: Turn, text: str = "call mom") -> list[LedgerEvent]:
    return transcript_ok(t, transcript=text, transcript_hash=f"h:{text}", language_tag="en-US", confidence_bucket="MED")


async def counts(conn: asyncpg.Connection, tenant: str) -> tuple[int, int]:
    row = (await scoped(conn, tenant, COUNTS, tenant))[0]
    return row["audit"], row["turns"]


async def onboard(topics: Settings, *people: ExampleContext) -> None:
    await publish(topics, [e for p in people for e in onboarding(p)])
    await drain(topics)


async def test_at_c_db_01_tenant_isolation_enforced(
    topics: Settings, reader_db: asyncpg.Connection, run_id: str
) -> None:
    a, b = person(run_id, f"ta-{run_id}", "a"), person(run_id, f"tb-{run_id}", "b")
    await onboard(topics, a, b)
    async with running_writer(topics), Publisher(topics) as publisher:
        gate = TranscriptGate(LedgerWrites(publisher, reader_db, timeout=60))
        for p in (a, b):
            done = await gate.commit(ok(turn(p, "corr", 1)))
            assert [w.outcome for w in done.audit] == ["APPENDED", "APPENDED"] and done.conversation_turn_id
        # A tenant b commit naming tenant a's device: refused before any write, no transcript row.
        with pytest.raises(WriteRefused) as refused:
            await gate.commit(ok(turn(b, "corr-x", 1, device=a.device_id)))
        assert refused.value.reason_code == ReasonCode.TENANT_SCOPE_VIOLATION
    assert await counts(reader_db, a.tenant_id) == (2, 1)
    assert await counts(reader_db, b.tenant_id) == (2, 1)
    reader = CReader(reader_db)
    assert {t.tenant_id for t in await reader.transcripts(a.tenant_id, "corr")} == {a.tenant_id}
    assert await reader.transcripts(b.tenant_id, "corr-x") == []
    assert await reader.decision_trace(b.tenant_id, "corr-x") == []


async def test_at_c_db_03_idempotency_dedupe_works(
    topics: Settings, reader_db: asyncpg.Connection, run_id: str
) -> None:
    p = person(run_id, f"t-{run_id}", "p")
    await onboard(topics, p)
    async with running_writer(topics), Publisher(topics) as publisher:
        gate = TranscriptGate(LedgerWrites(publisher, reader_db, timeout=60))
        first = await gate.commit(ok(turn(p, "corr", 1)))
        again = await gate.commit(ok(turn(p, "corr", 1)))  # new event ids, same key and content
        other = await gate.commit(ok(turn(p, "corr", 1), text="call dad"))  # same key, other transcript
    assert isinstance(first, TranscriptCommitted) and first.conversation is not None
    assert again.conversation_turn_id == first.conversation_turn_id
    assert [w.event_id for w in again.audit] == [w.event_id for w in first.audit]
    assert [w.outcome for w in again.audit] == ["IDEMPOTENCY_REPLAY"] * 2
    # The first commit stands: the rows whose content differs are conflicts, the candidate eval a replay.
    assert other.conversation_turn_id == first.conversation_turn_id
    assert [w.outcome for w in other.audit] == ["IDEMPOTENCY_CONFLICT", "IDEMPOTENCY_REPLAY"]
    assert other.conversation is not None and other.conversation.outcome == "IDEMPOTENCY_CONFLICT"
    assert await counts(reader_db, p.tenant_id) == (2, 1)
    assert [t.text for t in await CReader(reader_db).transcripts(p.tenant_id, "corr")] == ["call mom"]


async def test_at_c_db_04_no_current_table_rebuild_required(
    topics: Settings, reader_db: asyncpg.Connection, run_id: str
) -> None:
    p = person(run_id, f"t-{run_id}", "p")
    await onboard(topics, p)
    commit_ok = ok(turn(p, "corr", 1))
    commit_reject = transcript_reject(turn(p, "corr", 2), reason_code="STT_FAIL_GARBLED", retry_advice="QUIET_ENV")
    await publish(topics, [*commit_ok, *commit_reject])
    assert not (await drain(topics)).result.dead_lettered
    reader = CReader(reader_db)
    trace = await reader.decision_trace(p.tenant_id, "corr")
    assert [(d.event_type, d.idempotency_key, d.reason_code) for d in trace] == [
        ("TRANSCRIPT_OK", "stt-1:transcript_ok", "STT_TRANSCRIPT_OK"),
        ("STT_CANDIDATE_EVAL", "stt-1:candidate_eval_ok", "STT_CANDIDATE_EVAL_OK"),
        ("TRANSCRIPT_REJECT", "stt-2:transcript_reject", "STT_FAIL_GARBLED"),
        ("STT_CANDIDATE_EVAL", "stt-2:candidate_eval_reject", "STT_CANDIDATE_EVAL_REJECT"),
    ]
    assert [d.decision for d in trace] == [e.payload for e in [*commit_ok[:2], *commit_reject]]
    assert [d.event_uuid for d in await reader.decision_trace(p.tenant_id, "corr", "turn-2")] == [
        e.event_id for e in commit_reject
    ]
    [row] = await reader.transcripts(p.tenant_id, "corr")
    assert (row.text, row.text_hash, row.privacy_scope, row.idempotency_key) == (
        "call mom",
        "h:call mom",
        "PUBLIC_CHAT",
        "stt-1",
    )
    assert await counts(reader_db, p.tenant_id) == (4, 1)
    assert await rebuild_equals_live(topics, [p.tenant_id]) == []


def test_commit_rules_in_the_contract() -> None:
    p = ExampleContext("t", "u", "d", "s", 0, datetime.now(UTC))
    # The audit keys derive from the caller's key; the result must stay within 128 characters.
    with pytest.raises(ContractViolation):
        transcript_reject(turn(p, "c", 1, key="k" * 110), reason_code="STT_FAIL_EMPTY", retry_advice="REPEAT")
    # TRANSCRIPT_OK carries only the transcript hash; a reject only with an STT_FAIL_* reason.
    good = ok(turn(p, "c", 1))[0]
    with pytest.raises(ContractViolation):
        new_event(
            TranscriptOkEvent,
            **{**good.model_dump(exclude={"event_id"}), "payload": {**good.payload.model_dump(), "language_tag": "en"}},
        )
    with pytest.raises(ContractViolation):
        transcript_reject(turn(p, "c", 1), reason_code="N_INTENT_OK", retry_advice="REPEAT")


async def test_c_refusals_dead_lettered_while_good_decisions_flow(
    topics: Settings, reader_db: asyncpg.Connection, operator_db: asyncpg.Connection, run_id: str
) -> None:
    decide = decider(
        SttCandidateEvalEvent,
        {
            "reason_code": "STT_CANDIDATE_EVAL_OK",
            "decision": "TRANSCRIPT_OK",
            "language_tag": "de-DE",
            "confidence_bucket": "HIGH",
            "severity": "INFO",
        },
    )
    bad: list[dict[str, Any]] = [
        {"language_tag": "x" * 65},  # over its bound
        {"language_tag": None},  # an accepted candidate names its language
        {"confidence_bucket": "VERY_HIGH"},  # HIGH, MED or LOW
        {"retry_advice": "REPEAT"},  # retry advice only on a reject
        {"severity": "WARN"},  # an accepted candidate is INFO
        {"reason_code": "STT_CANDIDATE_EVAL_REJECT"},  # its fixed code
    ]
    await refusals_while_good_decisions_flow(topics, CReader(reader_db), operator_db, run_id, decide, bad)


class TestAtCDb(SliceAcceptance):
    """The shared AT-C-DB-01..04 (tests/e2e/acceptance.py), from the slice's declaration."""

    slice_name = "ph1_c"
