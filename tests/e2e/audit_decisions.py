"""The failure classes of the sheet of seed 000 rows 13-19 (AUDIT_BACKED_ROWS_13_19.md), for any of the seven
audit-backed engines, through the real pipeline: each refusal dead-lettered with its reason while the engine's
good decisions flow, and the decision trace read back by correlation and turn.

A slice's test module gives ``refusals_while_good_decisions_flow`` a function building one valid decision of
its engine (for a person, correlation, key and payload changes), its reader class, and payload changes that
break its own bounds.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg

from cli.workload import RawRecord
from consumers.repositories.audit_decisions import DecisionReader
from contracts.codec import encode
from contracts.envelope import LedgerEvent, new_event
from contracts.settings import Settings
from contracts.slice import ExampleContext
from tests.e2e.acceptance import onboarding
from tests.e2e.helpers import drain, publish, rebuild_equals_live, send_raw

#: (person, correlation id, idempotency key, payload changes) -> one valid decision of the engine
Decide = Callable[[ExampleContext, str, str, dict[str, Any]], LedgerEvent]


def decider(model: type[LedgerEvent], payload: dict[str, Any]) -> Decide:
    """Decisions of ``model`` with ``payload`` (the engine's fields), about the person's user, device and
    session, on turn ``turn-<correlation>``."""
    engine = model.model_fields["engine_id"].annotation.__args__[0]  # type: ignore[union-attr]

    def decide(p: ExampleContext, corr: str, key: str, changes: dict[str, Any]) -> LedgerEvent:
        refs = {"user_id": p.user_id, "device_id": p.device_id, "session_id": p.session_id}
        return new_event(
            model,
            tenant_id=p.tenant_id,
            engine_id=engine,
            correlation_id=corr,
            turn_id=f"turn-{corr}",
            idempotency_key=key,
            occurred_at=p.at,
            payload={**payload, **refs, **changes},
        )

    return decide


def person(run_id: str, tenant: str, name: str) -> ExampleContext:
    return ExampleContext(
        tenant, f"u-{run_id}-{name}", f"d-{run_id}-{name}", f"s-{run_id}-{name}", 0, datetime.now(UTC)
    )


def raw(event: LedgerEvent, **changes: Any) -> RawRecord:
    """The event's bytes with ``changes`` to the envelope or (``payload=``) its payload: what a misbehaving
    engine could send past the publisher's checks."""
    doc = json.loads(encode(event).value)
    doc["payload"].update(changes.pop("payload", {}))
    doc.update(changes)
    return RawRecord(event.ledger, event.kafka_key, json.dumps(doc).encode(), "")


async def refusals_while_good_decisions_flow(
    topics: Settings,
    reader: DecisionReader[Any],
    operator_db: asyncpg.Connection,
    run_id: str,
    decide: Decide,
    bad_payloads: list[dict[str, Any]],
) -> None:
    a, b = f"ta-{run_id}", f"tb-{run_id}"
    ps = {n: person(run_id, a, n) for n in ("good", "wrongdev", "wrongses", "foreign", "bad")}
    other = person(run_id, b, "other")
    await publish(topics, [e for p in [*ps.values(), other] for e in onboarding(p)])
    await drain(topics)
    good = ps["good"]
    goods = [decide(good, f"corr-{i}", f"k-{i}", {}) for i in range(3)]
    # Scope checks before any write. Each refusal names its own user, so the aggregate it blocks is not the
    # good user's.
    refused = {
        "unknown user": (decide(person(run_id, a, "ghost"), "bad-0", "k", {}), "REFERENCE_UNKNOWN"),
        "wrong device": (decide(ps["wrongdev"], "bad-1", "k", {"device_id": good.device_id}), "TENANT_SCOPE_VIOLATION"),
        "mismatched session": (
            decide(ps["wrongses"], "bad-2", "k", {"session_id": good.session_id}),
            "TENANT_SCOPE_VIOLATION",
        ),
        "foreign device": (
            decide(ps["foreign"], "bad-3", "k", {"device_id": other.device_id, "session_id": None}),
            "TENANT_SCOPE_VIOLATION",
        ),
        # the same (correlation, key) as a good decision with another payload: the first stands
        "conflicting retry": (decide(good, "corr-0", "k-0", {"session_id": None}), "IDEMPOTENCY_CONFLICT"),
    }
    bad = decide(ps["bad"], "bad-4", "k", {})
    raw_refusals = [raw(bad, payload=p) for p in bad_payloads] + [
        raw(bad, payload={"unknown_key": "x"}),  # payload_min is exactly the decision's keys
        raw(bad, payload={"user_id": None}),  # every write names its user
        raw(bad, payload={"device_id": None}),  # ... and its device
        raw(bad, turn_id=None),  # every decision is about a turn
        raw(bad, idempotency_key=None),  # every write carries its dedupe key
        raw(bad, engine_id="PH1.J"),  # the envelope pins the engine
    ]
    await publish(topics, goods[:2] + [e for e, _ in refused.values()])
    await send_raw(topics, raw_refusals)
    await publish(topics, goods[2:])
    stats = await drain(topics)
    assert stats.result.appended == len(goods)
    expected = Counter(reason for _, reason in refused.values()) + Counter({"EVENT_SCHEMA_INVALID": len(raw_refusals)})
    assert stats.result.dead_lettered == expected, (stats.result.dead_lettered, expected)
    reasons = {
        r["event_uuid"]: r["reason_code"]
        for r in await operator_db.fetch(
            "SELECT event_uuid, reason_code FROM selene_ops.dead_letters WHERE tenant_id = $1", a
        )
    }
    for name, (event, reason) in refused.items():
        assert reasons[event.event_id] == reason, name
    trace = [d for i in range(3) for d in await reader.decision_trace(a, f"corr-{i}")]
    assert [d.event_uuid for d in trace] == [e.event_id for e in goods]
    assert [d.decision for d in trace] == [e.payload for e in goods]
    turn = goods[1].turn_id
    assert turn is not None
    assert [d.event_uuid for d in await reader.decision_trace(a, "corr-1", turn)] == [goods[1].event_id]
    assert await reader.decision_trace(a, "corr-1", "no-such-turn") == []
    assert await reader.decision_trace(b, "corr-1") == []
    assert {d.event_uuid for d in await reader.decisions(a)} >= {e.event_id for e in goods}
    assert await rebuild_equals_live(topics, [a, b]) == []
