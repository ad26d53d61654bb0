"""A batch that keeps failing the same way for a reason its data may cause is isolated event by event, on real
Kafka and PostgreSQL (issue 13 item 5): the event behind the failure becomes a dead letter with its reason, the
others land, and the retries show in ``status``.

No real input is left that makes the insert skip a row the dedupe look-up did not find (derived rows are now
checked like published ones), so the test makes one: a trigger that silently drops one tenant's audit rows,
exactly what ``ON CONFLICT DO NOTHING`` does with a row held by a key the look-up cannot see.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime

import asyncpg
import pytest

from consumers.status import status
from consumers.writer import LedgerWriter, WriterStats
from contracts.audit import AuditRecordedEvent
from contracts.envelope import LedgerEvent, new_event
from contracts.settings import Settings
from tests.e2e.helpers import CLI, cli_env, publish

pytestmark = pytest.mark.e2e
MAX_RETRIES = 3
# The trigger's names carry the test's run id (hex), so concurrent runs on one database never meet.
DROP_TENANT_ROWS = """
CREATE FUNCTION selene_ops.drop_rows_{run}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.tenant_id = 'poison-{run}' THEN RETURN NULL; END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER drop_rows_{run} BEFORE INSERT ON os_core.audit_events
  FOR EACH ROW EXECUTE FUNCTION selene_ops.drop_rows_{run}();
"""
UNDO_DROP_TENANT_ROWS = """
DROP TRIGGER drop_rows_{run} ON os_core.audit_events;
DROP FUNCTION selene_ops.drop_rows_{run}();
"""


def audit(tenant: str, corr: str, key: str) -> LedgerEvent:
    return new_event(
        AuditRecordedEvent,
        tenant_id=tenant,
        engine_id="PH1.NLP",
        correlation_id=corr,
        idempotency_key=key,
        occurred_at=datetime.now(UTC),
        payload={"reason_code": "NLP_OK", "summary": key},
    )


@pytest.fixture
async def poisoned(admin_db: asyncpg.Connection, run_id: str) -> AsyncIterator[str]:
    """A tenant whose audit rows PostgreSQL drops without an error while the test runs."""
    await admin_db.execute(DROP_TENANT_ROWS.format(run=run_id))
    try:
        yield f"poison-{run_id}"
    finally:
        await admin_db.execute(UNDO_DROP_TENANT_ROWS.format(run=run_id))


async def test_a_batch_failing_the_same_way_is_isolated_and_the_rest_lands(
    topics: Settings, poisoned: str, operator_db: asyncpg.Connection, run_id: str
) -> None:
    settings = replace(topics, writer_max_batch_retries=MAX_RETRIES)
    good, other = f"t-{run_id}", f"t2-{run_id}"
    bad = audit(poisoned, "thread-p", "p-1")
    held = audit(poisoned, "thread-p", "p-2")  # same aggregate: held behind the dead letter, in order
    fine = [audit(good, "thread-g", "g-1"), audit(other, "thread-o", "o-1"), audit(poisoned, "thread-q", "q-1")]
    await publish(settings, [bad, held, *fine])

    writer = LedgerWriter(settings)
    async with asyncio.timeout(60):  # before the limit, this writer retried the batch for ever
        stats: WriterStats = await writer.run(until_caught_up=True)

    assert stats.isolations >= 1 and stats.retries >= MAX_RETRIES
    # Every attempt failed the same way; the isolated one pins it on the poisoned events (on their own, the
    # failure came back at once), and everything else is appended.
    dead = await operator_db.fetch(
        "SELECT event_uuid, reason_code, status FROM selene_ops.dead_letters WHERE source_topic LIKE $1 || '%' "
        "ORDER BY source_offset",
        settings.topic_prefix,
    )
    verdicts = {r["event_uuid"]: (r["reason_code"], r["status"]) for r in dead}
    assert verdicts[bad.event_id] == ("CONCURRENT_APPEND", "OPEN")
    assert verdicts[held.event_id] == ("HELD_BEHIND_DEAD_LETTER", "HELD")
    appended = await operator_db.fetch(
        "SELECT event_uuid FROM os_core.audit_events WHERE tenant_id = ANY($1)", [good, other, poisoned]
    )
    assert {r["event_uuid"] for r in appended} == {e.event_id for e in fine[:2]}
    # The third is the poisoned tenant's too, on another aggregate: it fails alone the same way.
    assert verdicts[fine[2].event_id] == ("CONCURRENT_APPEND", "OPEN")
    assert Counter(reason for reason, _ in verdicts.values()) == Counter(
        {"CONCURRENT_APPEND": 2, "HELD_BEHIND_DEAD_LETTER": 1}
    )

    # status shows the retries and the isolation, with the reason, on the partitions concerned.
    report = await status(settings, operator_db)
    assert report["total_lag"] == 0
    retried = report["writer_retries"]
    assert retried, report
    assert sum(r["batch_isolations"] for r in retried) >= 1
    assert max(r["batch_retries"] for r in retried) >= MAX_RETRIES
    assert {r["last_retry_reason"] for r in retried} == {"CONCURRENT_APPEND"}
    assert all(r["last_retry_at"] is not None for r in retried)
    # Counted on the partitions the failing batch held records of, not on every partition the writer owns.
    assert {r["topic"] for r in retried} == {bad.spec.topic(settings.topic_prefix)}, retried
    # ... and so does the command an operator runs.
    cli = await asyncio.to_thread(
        subprocess.run, [*CLI, "status"], env=cli_env(settings), capture_output=True, text=True, timeout=120, check=True
    )
    shown = [line for line in cli.stdout.splitlines() if "last CONCURRENT_APPEND" in line]
    assert len(shown) == len(retried) and all(" isolated " in line for line in shown), cli.stdout
