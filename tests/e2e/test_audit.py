"""PH1.J (the audit ledger, seed 000 row 2): the shared acceptance suite, AT-PH1-J-DB-01..04. What is
special to the audit ledger (its rows about users guarded by PH1.F, the work-order emissions) is tested
with those slices."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from consumers.repositories.audit import AuditReader
from contracts.audit import AuditRecordedEvent
from contracts.codec import canonical_payload, content_sha256
from contracts.envelope import LedgerEvent, new_event
from contracts.reasons import ContractViolation, ReasonCode
from contracts.settings import Settings
from producers.audit import AuditWriter
from producers.ledger_writes import LedgerWrites
from producers.publisher import Publisher
from tests.e2e.acceptance import SliceAcceptance, scoped
from tests.e2e.helpers import drain, publish, running_writer

pytestmark = pytest.mark.e2e


class TestAtPh1JDb(SliceAcceptance):
    slice_name = "audit"

    def sample(self, tenant: str, i: int) -> list[LedgerEvent]:
        return [
            new_event(
                AuditRecordedEvent,
                tenant_id=tenant,
                engine_id="PH1.NLP",
                correlation_id=f"c-{tenant}-{i}",
                occurred_at=datetime.now(UTC),
                payload={"reason_code": "NLP_INTENT_OK", "summary": f"decision {i}", "attributes": {"n": i}},
            )
        ]


def audit(tenant: str, corr: str, key: str | None, **payload: Any) -> LedgerEvent:
    return new_event(
        AuditRecordedEvent,
        tenant_id=tenant,
        engine_id="PH1.X",
        correlation_id=corr,
        idempotency_key=key,
        occurred_at=datetime.now(UTC),
        payload={"reason_code": "X_DISPATCH", "summary": "dispatched", **payload},
    )


async def test_at_j_db_03_a_work_orders_key_dedupes_across_correlations(
    topics: Settings, writer_db: asyncpg.Connection, reader_db: asyncpg.Connection, run_id: str
) -> None:
    """Upstream's AT-J-DB-03: (tenant_a, wo_123, idem_same) under two correlations is one row; the same key
    with other content is a conflict; rows without a work order keep their (correlation, key) scope, apart
    from the work order's."""
    t = f"t-{run_id}"
    first = audit(
        t, "corr-1", "idem_same", work_order_id="wo_123", severity="WARN", evidence_ref={"transcript_hash": "h1"}
    )
    await publish(topics, [first])
    assert not (await drain(topics)).result.dead_lettered
    again = audit(
        t, "corr-2", "idem_same", work_order_id="wo_123", severity="WARN", evidence_ref={"transcript_hash": "h1"}
    )
    other = audit(t, "corr-3", "idem_same", work_order_id="wo_123", summary="other")
    legacy = [audit(t, "corr-1", "idem_same"), audit(t, "corr-2", "idem_same"), audit(t, "corr-2", "idem_same")]
    await publish(topics, [again, other, *legacy])
    stats = await drain(topics)
    assert stats.result.dead_lettered == Counter({ReasonCode.IDEMPOTENCY_CONFLICT: 1})
    assert stats.result.deduplicated == 2  # `again`, and the second legacy row of corr-2 (same content)
    rows = await scoped(
        writer_db,
        t,
        "SELECT event_uuid, correlation_id, work_order_id, severity, evidence_ref FROM os_core.audit_events "
        "WHERE tenant_id = $1 ORDER BY event_id",
        t,
    )
    assert (rows[0]["event_uuid"], rows[0]["work_order_id"], rows[0]["severity"]) == (first.event_id, "wo_123", "WARN")
    # The two correlations may be on two partitions: their rows in either order.
    assert {(r["event_uuid"], r["work_order_id"], r["severity"]) for r in rows[1:]} == {
        (legacy[0].event_id, None, "INFO"),
        (legacy[1].event_id, None, "INFO"),
    }
    assert rows[0]["evidence_ref"] == {"transcript_hash": "h1"}
    reader = AuditReader(reader_db)
    standing = await reader.by_work_order_key(t, "wo_123", "idem_same")
    assert standing is not None and (standing.event_uuid, standing.evidence_ref) == (
        first.event_id,
        {"transcript_hash": "h1"},
    )
    by_corr = await reader.by_idempotency_key(t, "corr-1", "idem_same")
    assert by_corr is not None and by_corr.event_uuid == legacy[0].event_id
    # The producer's write repository finds the standing row by the work order's scope, too.
    async with running_writer(topics), Publisher(topics) as publisher:
        written = await AuditWriter(LedgerWrites(publisher, reader_db, timeout=60)).record(
            audit(
                t,
                "corr-4",
                "idem_same",
                work_order_id="wo_123",
                severity="WARN",
                evidence_ref={"transcript_hash": "h1"},
            )
        )
    assert (written.event_uuid, written.outcome) == (first.event_id, "IDEMPOTENCY_REPLAY")


async def test_an_event_without_the_new_fields_hashes_and_lands_as_before(
    topics: Settings, writer_db: asyncpg.Connection, run_id: str
) -> None:
    """The wire contract: a record written before severity, work_order_id and evidence_ref existed (the
    Java example's shape) lands with the defaults, and its content hash is the one it always had, so its
    re-send is a duplicate, not a conflict."""
    t = f"t-{run_id}"
    legacy = audit(t, "corr-1", "k-1")
    body = json.dumps(
        {
            "reason_code": "X_DISPATCH",
            "summary": "dispatched",
            "attributes": {},
            "user_id": None,
            "device_id": None,
            "session_id": None,
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    assert canonical_payload(legacy) == body
    explicit = audit(t, "corr-1", "k-1", severity="INFO", work_order_id=None, evidence_ref=None)
    assert content_sha256(explicit) == content_sha256(legacy)
    await publish(topics, [legacy, explicit])
    stats = await drain(topics)
    assert (stats.result.appended, stats.result.deduplicated, stats.result.dead_lettered) == (1, 1, Counter())
    row = (await scoped(writer_db, t, "SELECT * FROM os_core.audit_events WHERE tenant_id = $1", t))[0]
    assert (row["severity"], row["work_order_id"], row["evidence_ref"]) == ("INFO", None, None)
    assert bytes(row["content_sha256"]) == hashlib.sha256(f"AUDIT_RECORDED\n{body}".encode()).digest()


@pytest.mark.parametrize(
    "payload",
    [
        {"severity": "DEBUG"},
        {"evidence_ref": {}},
        {"evidence_ref": {"transcript_hash": " "}},
        {"evidence_ref": {"memory_ledger_id": 0}},
        {"evidence_ref": {"conversation_turn_id": "7"}},
        {"evidence_ref": {"raw_text": "the user said"}},
        {"work_order_id": ""},
    ],
)
def test_the_new_audit_fields_are_bounded(payload: dict[str, Any]) -> None:
    with pytest.raises(ContractViolation) as info:
        audit("t", "c", "k", **payload)
    assert info.value.reason_code == ReasonCode.EVENT_SCHEMA_INVALID
