"""PH1.CAPREQ end to end on real Kafka and PostgreSQL: the shared AT-CAPREQ-DB-01..04, the sheet's DB-04
statement (with the submission the enforced machine needs), and the machine's refusals through the writer,
each dead-lettered with its reason and none of them appended."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from consumers.repositories.capreq import CapreqReader
from contracts.capreq import EVENT_OF_ACTION
from contracts.envelope import LedgerEvent, new_event
from contracts.reasons import ReasonCode
from contracts.settings import Settings
from producers.capreq import CapreqWriter
from producers.ledger_writes import LedgerWrites, WriteRefused
from producers.publisher import Publisher
from tests.e2e.acceptance import SliceAcceptance
from tests.e2e.helpers import drain, publish, rebuild_equals_live, running_writer

pytestmark = pytest.mark.e2e


def capreq(action: str, tenant: str, capreq_id: str, key: str | None = None, actor: str = "u-alice") -> LedgerEvent:
    return new_event(
        EVENT_OF_ACTION[action],
        tenant_id=tenant,
        engine_id="PH1.CAPREQ",
        correlation_id=f"c-{capreq_id}",
        idempotency_key=key,
        occurred_at=datetime.now(UTC),
        payload={"capreq_id": capreq_id, "requester_user_id": actor, "payload_hash": f"capreq_payload_{action}"},
    )


async def dead_letters(operator_db: asyncpg.Connection, events: list[LedgerEvent]) -> dict[str, tuple[str, str]]:
    rows = await operator_db.fetch(
        "SELECT event_uuid, reason_code, status FROM selene_ops.dead_letters WHERE event_uuid = ANY($1)",
        [e.event_id for e in events],
    )
    by_id = {r["event_uuid"]: (r["reason_code"], r["status"]) for r in rows}
    return {e.event_type: by_id[e.event_id] for e in events if e.event_id in by_id}


async def test_at_capreq_db_04_current_row_after_create_submit_approve(
    topics: Settings, reader_db: asyncpg.Connection, run_id: str
) -> None:
    """The sheet's DB-04: current before == after rebuild; APPROVED, last action APPROVE, source = the last."""
    tenant = f"t-{run_id}"
    events = [capreq(a, tenant, "capreq_1", key=a) for a in ("CREATE_DRAFT", "SUBMIT_FOR_APPROVAL", "APPROVE")]
    await publish(topics, events)
    assert (await drain(topics)).result.appended == 3
    reader = CapreqReader(reader_db)
    ledger = await reader.events(tenant, "capreq_1")
    assert [(e.action, e.status) for e in ledger] == [
        ("CREATE_DRAFT", "DRAFT"),
        ("SUBMIT_FOR_APPROVAL", "PENDING_APPROVAL"),
        ("APPROVE", "APPROVED"),
    ]
    assert ledger[0].capreq_event_id < ledger[1].capreq_event_id < ledger[2].capreq_event_id
    current = await reader.current(tenant, "capreq_1")
    assert current is not None
    assert (current.status, current.last_action, current.source_event_id) == (
        "APPROVED",
        "APPROVE",
        ledger[2].capreq_event_id,
    )
    assert current.last_reason_code == "CAPREQ_OK_APPROVE"
    assert [r.capreq_id for r in await reader.with_status(tenant, "APPROVED")] == ["capreq_1"]
    assert await rebuild_equals_live(topics, [tenant]) == []
    assert await reader.current(tenant, "capreq_1") == current


async def test_refused_transitions_are_dead_lettered_and_never_appended(
    topics: Settings, reader_db: asyncpg.Connection, operator_db: asyncpg.Connection, run_id: str
) -> None:
    tenant = f"t-{run_id}"
    # Upstream's DB-04 sequence (approve straight from DRAFT) is refused and blocks the request's later
    # events; a request never drafted cannot be submitted; a closed request takes no more actions, and that
    # refusal does not block.
    skipped = [capreq("CREATE_DRAFT", tenant, "capreq_skip"), capreq("APPROVE", tenant, "capreq_skip")]
    held = capreq("FULFILL", tenant, "capreq_skip")
    missing = capreq("SUBMIT_FOR_APPROVAL", tenant, "capreq_none")
    closed = [capreq("CREATE_DRAFT", tenant, "capreq_closed"), capreq("CANCEL", tenant, "capreq_closed")]
    late = [capreq("SUBMIT_FOR_APPROVAL", tenant, "capreq_closed"), capreq("CANCEL", tenant, "capreq_closed")]
    await publish(topics, [*skipped, held, missing, *closed, *late])
    stats = await drain(topics)
    assert stats.result.appended == 3
    assert stats.result.dead_lettered == Counter(
        {
            ReasonCode.CAPREQ_INVALID_TRANSITION: 1,
            ReasonCode.HELD_BEHIND_DEAD_LETTER: 1,
            ReasonCode.CAPREQ_NOT_FOUND: 1,
            ReasonCode.CAPREQ_TERMINAL_STATE: 2,
        }
    )
    found = await dead_letters(operator_db, [skipped[1], held, missing])
    assert found["CAPREQ_APPROVE_COMMIT"][0] == "CAPREQ_INVALID_TRANSITION"
    assert found["CAPREQ_FULFILL_COMMIT"][0] == "HELD_BEHIND_DEAD_LETTER"
    assert found["CAPREQ_SUBMIT_FOR_APPROVAL_COMMIT"][0] == "CAPREQ_NOT_FOUND"
    assert {r for r, _ in (await dead_letters(operator_db, late)).values()} == {"CAPREQ_TERMINAL_STATE"}
    reader = CapreqReader(reader_db)
    for capreq_id, actions, status in (
        ("capreq_skip", ["CREATE_DRAFT"], "DRAFT"),
        ("capreq_none", [], None),
        ("capreq_closed", ["CREATE_DRAFT", "CANCEL"], "CANCELED"),
    ):
        assert [e.action for e in await reader.events(tenant, capreq_id)] == actions
        current = await reader.current(tenant, capreq_id)
        assert (current.status if current else None) == status
    assert await rebuild_equals_live(topics, [tenant]) == []


async def test_writer_reports_outcomes_and_refusals(
    topics: Settings, reader_db: asyncpg.Connection, run_id: str
) -> None:
    """The typed write path: appended, replayed (same key: the original id), refused with the reason."""
    tenant = f"t-{run_id}"
    act: dict[str, Any] = {"tenant_id": tenant, "capreq_id": "capreq_w", "correlation_id": "c-w"}
    async with running_writer(topics), Publisher(topics) as publisher:
        writer = CapreqWriter(LedgerWrites(publisher, reader_db, timeout=60))
        created = await writer.act(
            "CREATE_DRAFT", actor_user_id="u-alice", payload_hash="h1", idempotency_key="k-create", **act
        )
        assert created.outcome == "APPENDED"
        again = await writer.act(
            "CREATE_DRAFT", actor_user_id="u-alice", payload_hash="h1", idempotency_key="k-create", **act
        )
        assert (again.event_id, again.outcome, again.reason_code) == (
            created.event_id,
            "IDEMPOTENCY_REPLAY",
            ReasonCode.CAPREQ_IDEMPOTENCY_REPLAY,
        )
        with pytest.raises(WriteRefused) as info:
            await writer.act("FULFILL", actor_user_id="u-bob", payload_hash="h2", idempotency_key="k-fulfill", **act)
        assert info.value.reason_code == ReasonCode.CAPREQ_INVALID_TRANSITION
    current = await CapreqReader(reader_db).current(tenant, "capreq_w")
    assert current is not None and (current.status, current.source_event_id) == ("DRAFT", created.event_id)


class TestAtCapreqDb(SliceAcceptance):
    """The shared AT-CAPREQ-DB-01..04 (tests/e2e/acceptance.py); the tests above are what is special to it."""

    slice_name = "capreq"
