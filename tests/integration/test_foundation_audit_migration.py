"""sql/0021 on ledgers that already hold chained rows: their hash chains still verify, and the new columns
hold what their payloads imply (a work order's audit row its work_order_id, a transcript turn its text hash,
every other row the defaults)."""

from __future__ import annotations

import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from consumers.ledger import Provenance, insert_ledgers
from consumers.projections import LEDGER_TABLES
from consumers.verify import verify
from contracts.audit import AuditRecordedEvent
from contracts.envelope import LedgerEvent, new_event
from contracts.foundation import ConversationTurnEvent
from contracts.settings import ROLE_PASSWORDS, Settings, role_url
from contracts.work_orders import WORK_ORDER_AUDIT_MODELS
from sql.migrate import MIGRATIONS_DIR, migrate
from sql.tenant_scope import set_scope

pytestmark = pytest.mark.integration
AT = datetime(2026, 1, 1, tzinfo=UTC)


def _events(tenant: str) -> list[LedgerEvent]:
    common = {"tenant_id": tenant, "correlation_id": "corr-1", "occurred_at": AT}
    return [
        new_event(AuditRecordedEvent, engine_id="PH1.X", payload={"reason_code": "R", "summary": "s"}, **common),
        new_event(
            next(iter(WORK_ORDER_AUDIT_MODELS.values())),
            engine_id="SELENE_OS_CORE_TABLES",
            turn_id="turn-1",
            idempotency_key="work_order_ledger:1",
            payload={
                "reason_code": "OS_WORK_ORDER_LEDGER_APPEND",
                "capability": "OS_WORK_ORDER_LEDGER_APPEND",
                "work_order_id": "wo-1",
                "work_order_event_type": "WORK_ORDER_CREATED",
                "source_event_id": str(uuid.uuid4()),
                "idempotency_key": None,
                "status": "DRAFT",
            },
            **common,
        ),
        new_event(
            ConversationTurnEvent,
            engine_id="PH1.C",
            turn_id="turn-1",
            payload={"speaker": "USER", "source": "TEXT", "text": "hi", "text_hash": "h:hi"},
            **common,
        ),
        new_event(
            ConversationTurnEvent,
            engine_id="PH1.C",
            payload={"speaker": "SELENE", "source": "TEXT", "text": "hello"},
            **common,
        ),
    ]


async def test_rows_chained_before_0021_verify_after_it_with_their_payloads_values(
    migrated: Settings, tmp_path: Path
) -> None:
    if not migrated.database_admin_url:
        pytest.skip("needs SELENE_DATABASE_ADMIN_URL to create a scratch database")
    name = f"mig21_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(migrated.database_admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" OWNER selene_owner')
        await admin.execute(f'GRANT CONNECT ON DATABASE "{name}" TO selene_writer, selene_reader, selene_operator')
        base = migrated.database_owner_url.rsplit("/", 1)[0] + f"/{name}"
        url = {r: role_url(base, r, ROLE_PASSWORDS[r]) for r in ("selene_owner", "selene_writer", "selene_operator")}
        before = tmp_path / "sql"
        before.mkdir()
        for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
            if int(path.name[:4]) < 21:
                shutil.copy(path, before)
        await migrate(url["selene_owner"], before)
        events = _events("t1")
        writer = await asyncpg.connect(url["selene_writer"])
        try:
            async with writer.transaction():
                await set_scope(writer, ["t1"])
                pending = []
                for ledger in ("audit_events", "conversation_ledger"):
                    table = LEDGER_TABLES[ledger]
                    mine = [e for e in events if e.ledger == ledger]
                    pending.append((table, [table.row(e, Provenance("old", 0, i)) for i, e in enumerate(mine)]))
                await insert_ledgers(writer, pending)
        finally:
            await writer.close()
        await migrate(url["selene_owner"])
        operator = await asyncpg.connect(url["selene_operator"])
        try:
            report = await verify(operator, LEDGER_TABLES)
            assert report.ok, report.problems
            assert report.rows == 4
            audit = await operator.fetch(
                "SELECT work_order_id, severity, evidence_ref FROM os_core.audit_events ORDER BY event_id"
            )
            assert [tuple(r) for r in audit] == [(None, "INFO", None), ("wo-1", "INFO", None)]
            turns = await operator.fetch(
                "SELECT text_hash, privacy_scope, tombstone_of_conversation_turn_id FROM "
                "conversation.conversation_ledger ORDER BY conversation_turn_id"
            )
            assert [tuple(r) for r in turns] == [("h:hi", "PUBLIC_CHAT", None), (None, "PUBLIC_CHAT", None)]
        finally:
            await operator.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
