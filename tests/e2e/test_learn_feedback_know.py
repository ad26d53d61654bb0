"""PH1.LEARN / PH1.FEEDBACK / PH1.KNOW end to end: the shared AT-LEARN-DB-01..04, then the sheet's readings
(a feedback row on another tenant's device, packs readable under their own tenant only, every commit
deduplicated by its key, a KNOW pack of another type refused) and PH1.LEARN's scope rules, through the writer."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime

import asyncpg
import pytest

from cli.workload import RawRecord
from consumers.repositories.learn_feedback_know import FeedbackReader, PackReader
from contracts.codec import encode
from contracts.envelope import LedgerEvent, new_event
from contracts.learn_feedback_know import KNOW, LEARN, examples
from contracts.reasons import ReasonCode
from contracts.settings import Settings
from contracts.slice import ExampleContext
from tests.e2e.acceptance import SliceAcceptance, onboarding
from tests.e2e.helpers import drain, publish, send_raw

pytestmark = pytest.mark.e2e


def again(event: LedgerEvent, **changes: object) -> LedgerEvent:
    """``event`` with a new event id (and ``changes``: envelope fields, or ``payload`` fields)."""
    fields = event.model_dump(exclude={"event_id"})
    payload = {**fields["payload"], **changes.pop("payload", {})}  # type: ignore[dict-item]
    return new_event(type(event), **{**fields, **changes, "payload": payload})


async def test_learn_feedback_know_readings(topics: Settings, reader_db: asyncpg.Connection, run_id: str) -> None:
    a, b, now = f"ta-{run_id}", f"tb-{run_id}", datetime.now(UTC)
    ua, ub = (ExampleContext(t, f"u-{t}", f"d-{t}", f"s-{t}", 0, now) for t in (a, b))
    (feedback, learn, _), (_, _, know) = examples(ua), examples(ub)
    await publish(topics, [*onboarding(ua), *onboarding(ub), feedback, learn, know])
    assert not (await drain(topics)).result.dead_lettered
    user_learn = again(learn, payload={"scope_type": "USER", "scope_id": ua.user_id})
    wake = json.loads(encode(know).value)
    wake["payload"]["artifact_type"] = "WAKE_PACK"
    wake_key = know.kafka_key.replace(b"TTS_PRONUNCIATION_PACK", b"WAKE_PACK")  # its own aggregate
    await send_raw(topics, [RawRecord("artifacts_ledger", wake_key, json.dumps(wake).encode(), "")])
    await publish(
        topics,
        [
            *(again(e) for e in (feedback, learn, know)),  # AT-LEARN-DB-03: same keys -> no new rows
            again(feedback, tenant_id=b, idempotency_key="fb-2"),  # AT-LEARN-DB-01: tenant a's user and device
            user_learn,
            again(user_learn, tenant_id=b, idempotency_key="learn-2"),  # tenant a's user under tenant b
            again(user_learn, idempotency_key="learn-3", payload={"scope_id": "u-nobody", "artifact_version": 7}),
        ],
    )
    stats = await drain(topics)
    assert (stats.result.appended, stats.result.deduplicated) == (1, 3)
    assert stats.result.dead_lettered == Counter(
        {
            ReasonCode.ART_CONTRACT_VALIDATION_FAILED: 1,  # AT-LEARN-DB-04: a KNOW pack of type WAKE_PACK
            ReasonCode.TENANT_SCOPE_VIOLATION: 2,
            ReasonCode.REFERENCE_UNKNOWN: 1,
        }
    )
    packs = PackReader(reader_db)
    for tenant, engine, event in ((a, LEARN, learn), (b, KNOW, know)):
        p = event.payload
        key = (p.scope_type, p.scope_id, p.artifact_type)  # type: ignore[attr-defined]
        assert [r.event_uuid for r in await packs.packs(tenant, engine, *key)] == [event.event_id]
        other = b if tenant == a else a
        assert await packs.packs(other, engine, *key) == []
    assert await packs.packs(a, KNOW, "TENANT", a, "TTS_PRONUNCIATION_PACK") == []
    trace = await FeedbackReader(reader_db).decision_trace(a, feedback.correlation_id)
    assert [d.event_uuid for d in trace] == [feedback.event_id]
    assert await FeedbackReader(reader_db).decision_trace(b, feedback.correlation_id) == []


class TestAtLearnDb(SliceAcceptance):
    """The shared AT-LEARN-DB-01..04 (tests/e2e/acceptance.py); the test above is what is special to it."""

    slice_name = "learn_feedback_know"
