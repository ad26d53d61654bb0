"""Minimal valid rows for each ledger table, inserted with plain SQL, for the database-level tests.

These tests exercise what PostgreSQL itself enforces (RLS, triggers, privileges, unique keys), so they go
around the Python writer on purpose. A ledger's rows come from its slice's declared examples
(``derived_row``: the example event through the ledger's row mapping, with the test's tenant, correlation
and key), so a new slice's ledger is covered without an edit here; the hand-written rows below are for the
first slices, whose examples reference users that these tests do not create.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg

from consumers.ledger import Provenance
from consumers.projections import LEDGER_TABLES
from contracts.envelope import LedgerEvent, new_event
from contracts.link import LinkDelivery, delivery_proof
from contracts.ph1_voice_id import VoiceSampleEvent
from contracts.ph1_w import METRICS, WakeRuntimeEvent, WakeSampleEvent
from contracts.registry import REGISTRY
from contracts.slice import ExampleContext
from sql.tenant_scope import SET_TENANT_SCOPE as SCOPE


def audit_row(tenant: str, correlation: str = "c-1", key: str | None = "k-1") -> dict[str, Any]:
    return {
        "event_uuid": uuid.uuid4(),
        "tenant_id": tenant,
        "engine_id": "PH1.J",
        "event_type": "AUDIT_RECORDED",
        "reason_code": "TEST_REASON",
        "schema_version": 1,
        "correlation_id": correlation,
        "turn_id": None,
        "idempotency_key": key,
        "occurred_at": datetime.now(UTC),
        "payload": json.dumps({"reason_code": "TEST_REASON", "summary": "x"}),
        "content_sha256": hashlib.sha256(b"x").digest(),
        # Each row its own one-row chain: these rows bypass the writer, which links real chains.
        "source_topic": f"test-{uuid.uuid4().hex}",
        "chain_seq": 1,
        "row_hash": hashlib.sha256(uuid.uuid4().bytes).digest(),
        "source_partition": 0,
        "source_offset": 0,
    }


def conversation_row(tenant: str, correlation: str = "c-1", key: str | None = "k-1") -> dict[str, Any]:
    row = audit_row(tenant, correlation, key)
    del row["reason_code"]
    row.update(
        {
            "engine_id": "PH1.C",
            "event_type": "CONVERSATION_TURN_RECORDED",
            "speaker": "USER",
            "source": "TEXT",
            "text_body": "hello",
            "payload": json.dumps({"speaker": "USER", "source": "TEXT", "text": "hello"}),
        }
    )
    return row


def work_order_row(tenant: str, correlation: str = "c-1", key: str | None = "k-1") -> dict[str, Any]:
    """Idempotency is scoped by work order: the ``correlation`` argument picks the work order too."""
    row = audit_row(tenant, correlation, key)
    row.update(
        {
            "engine_id": "SELENE_OS",
            "event_type": "WORK_ORDER_CREATED",
            "work_order_id": f"wo-{correlation}",
            "payload": json.dumps({"work_order_id": f"wo-{correlation}"}),
        }
    )
    return row


def derived_row(ledger: str, derive: Callable[[list[LedgerEvent]], list[LedgerEvent]] | None = None) -> Any:
    """Rows of ``ledger`` from its owner's examples: the last example event on that ledger, with the test's
    tenant, correlation (which also picks the example's ``n``, so correlations give distinct scopes) and key,
    as its row mapping stores it. ``derive``: for a ledger the writer derives from other events, those events."""
    table = LEDGER_TABLES[ledger]
    examples = REGISTRY.slice(REGISTRY.owner[ledger]).examples
    assert examples is not None, f"{ledger}: its slice declares no examples; write its row here"

    def row(tenant: str, correlation: str = "c-1", key: str | None = "k-1") -> dict[str, Any]:
        n = int(hashlib.sha256(correlation.encode()).hexdigest()[:6], 16)
        ctx = ExampleContext(tenant, f"u-{n}", f"d-{n}", f"s-{n}", n, datetime.now(UTC))
        event = [e for e in (derive or list)(examples(ctx)) if e.ledger == ledger][-1]
        fields = {**event.model_dump(exclude={"event_id"}), "correlation_id": correlation, "idempotency_key": key}
        values = table.row(new_event(type(event), **fields), Provenance(f"test-{uuid.uuid4().hex}", 0, 0)).values
        # Each row its own one-row chain: these rows bypass the writer, which links real chains.
        return {**values, "chain_seq": 1, "row_hash": hashlib.sha256(uuid.uuid4().bytes).digest()}

    return row


def emitted_row(model: type[LedgerEvent], payload: Callable[[str], dict[str, Any]]) -> Any:
    """Rows of a ledger only the writer appends (a projection emits them, so no example is published there):
    an event of ``model`` with ``payload(correlation)``, which keeps the ledger's scope distinct per
    correlation."""

    def row(tenant: str, correlation: str = "c-1", key: str | None = "k-1") -> dict[str, Any]:
        event = new_event(
            model,
            tenant_id=tenant,
            engine_id=model.model_fields["engine_id"].annotation.__args__[0],  # type: ignore[union-attr]
            correlation_id=correlation,
            idempotency_key=key or "k-none",
            occurred_at=datetime.now(UTC),
            payload=payload(correlation),
        )
        values = LEDGER_TABLES[model.spec.name].row(event, Provenance(f"test-{uuid.uuid4().hex}", 0, 0)).values
        return {
            **values,
            "idempotency_key": key,
            "chain_seq": 1,
            "row_hash": hashlib.sha256(uuid.uuid4().bytes).digest(),
        }

    return row


LEDGER_ROWS = {
    **{
        spec.table: derived_row(name)
        for name, spec in REGISTRY.ledgers.items()
        if REGISTRY.slice(REGISTRY.owner[name]).examples is not None
    },
    "os_core.audit_events": audit_row,
    "conversation.conversation_ledger": conversation_row,
    "os_core.work_order_ledger": work_order_row,
    "os_core.voice_enrollment_samples": emitted_row(
        VoiceSampleEvent,
        lambda c: {
            "voice_enrollment_session_id": f"voice_enr_{c}"[:64],
            "sample_seq": 1,
            "attempt_index": 1,
            "audio_sample_ref": "blob:voice/1",
            "result": "PASS",
        },
    ),
    "os_core.link_delivery_proofs": derived_row(
        "link_delivery_proofs",
        lambda events: [delivery_proof(e, uuid.uuid4()) for e in events if isinstance(e.payload, LinkDelivery)],
    ),
    "os_core.wake_enrollment_samples": emitted_row(
        WakeSampleEvent,
        lambda c: {**METRICS, "wake_enrollment_session_id": f"wake_enr_{c}"[:64], "sample_seq": 1, "result": "PASS"},
    ),
    # Its events all carry a key (the runtime ledger's scope); these rows test a NULL key too.
    "os_core.wake_runtime_events": emitted_row(
        WakeRuntimeEvent,
        lambda c: (
            {"wake_event_id": f"w-{c}", "device_id": f"d-{c}", "accepted": True, "reason_code": "W_WAKE_ACCEPTED"}
            | {"tts_active_at_trigger": False, "media_playback_active_at_trigger": False}
        ),
    ),
}


async def insert(conn: asyncpg.Connection, table: str, row: dict[str, Any], scope: str | None) -> None:
    """Insert ``row`` in its own transaction with ``scope`` as the tenant setting (None: unset)."""
    cols = list(row)
    casts = ["::jsonb" if c == "payload" else "" for c in cols]
    sql = (
        f"INSERT INTO {table} ({', '.join(cols)}) VALUES "
        f"({', '.join(f'${i}{cast}' for i, cast in enumerate(casts, start=1))})"
    )
    async with conn.transaction():
        if scope is not None:
            await conn.execute(SCOPE, scope)
        await conn.execute(sql, *[row[c] for c in cols])


async def count(conn: asyncpg.Connection, table: str, scope: str | None, where: str = "true", *args: Any) -> int:
    async with conn.transaction():
        if scope is not None:
            await conn.execute(SCOPE, scope)
        n: int = await conn.fetchval(f"SELECT count(*) FROM {table} WHERE {where}", *args)
        return n
