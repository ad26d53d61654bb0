"""Tamper evidence, tested as the attacker the append-only guards cannot stop: a superuser who disables the
triggers. A mutated, deleted, inserted or reordered row is found by the chain; a truncated tail (with the
head row rewritten to match) is found against a digest exported before."""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg
import pytest

from cli.workload import build
from consumers.projections import LEDGER_TABLES
from consumers.verify import VerifyReport, load_digest, verify
from contracts.settings import Settings
from tests.e2e.helpers import drain, publish

pytestmark = pytest.mark.e2e
TABLE = "conversation.conversation_ledger"


async def _chain(topics: Settings, run_id: str, operator_db: asyncpg.Connection) -> tuple[str, int, list[int]]:
    """Drain a small workload; return the longest conversation chain (topic, partition, ledger ids)."""
    w = build(tenants=1, users_per_tenant=2, events=60, bad=False, run_id=run_id)
    await publish(topics, w.foundation + w.events)
    await drain(topics)
    rows = await operator_db.fetch(
        f"SELECT source_topic, source_partition, array_agg(conversation_turn_id ORDER BY chain_seq) AS ids "
        f"FROM {TABLE} WHERE source_topic LIKE $1 || '%' GROUP BY 1, 2 ORDER BY count(*) DESC LIMIT 1",
        topics.topic_prefix,
    )
    assert rows and len(rows[0]["ids"]) >= 5
    return rows[0]["source_topic"], rows[0]["source_partition"], list(rows[0]["ids"])


async def _check(operator_db: asyncpg.Connection, topics: Settings, against: Path | None = None) -> VerifyReport:
    digest = load_digest(against, None) if against else None
    return await verify(operator_db, LEDGER_TABLES, digest, topic_prefix=topics.topic_prefix)


async def _as_attacker(admin: asyncpg.Connection, *statements: tuple[str, list[object]]) -> None:
    """Run ``statements`` with the ledger's append-only triggers disabled (a superuser can), then restore them."""
    async with admin.transaction():
        await admin.execute(f"ALTER TABLE {TABLE} DISABLE TRIGGER append_only_row")
        for sql, args in statements:
            await admin.execute(sql, *args)
        await admin.execute(f"ALTER TABLE {TABLE} ENABLE ALWAYS TRIGGER append_only_row")


async def test_untouched_chains_verify(topics: Settings, run_id: str, operator_db: asyncpg.Connection) -> None:
    await _chain(topics, run_id, operator_db)
    report = await _check(operator_db, topics)
    assert report.ok, report.problems
    assert report.rows >= 60


@pytest.mark.parametrize("attack", ["mutate", "delete", "insert", "reorder"])
async def test_tampering_is_detected(
    topics: Settings, run_id: str, operator_db: asyncpg.Connection, admin_db: asyncpg.Connection, attack: str
) -> None:
    topic, part, ids = await _chain(topics, run_id, operator_db)
    victim = ids[len(ids) // 2]
    if attack == "mutate":
        await _as_attacker(
            admin_db, (f"UPDATE {TABLE} SET text_body = 'rewritten' WHERE conversation_turn_id = $1", [victim])
        )
    elif attack == "delete":
        await _as_attacker(admin_db, (f"DELETE FROM {TABLE} WHERE conversation_turn_id = $1", [victim]))
    elif attack == "insert":
        # A forged copy of a row with a new id, placed at the end of the chain with a plausible link.
        await _as_attacker(
            admin_db,
            (
                f"INSERT INTO {TABLE} OVERRIDING SYSTEM VALUE SELECT conversation_turn_id + 1000000000, "
                f"gen_random_uuid(), tenant_id, engine_id, event_type, schema_version, correlation_id, turn_id, "
                f"NULL, user_id, device_id, session_id, speaker, source, 'forged', occurred_at, recorded_at, "
                f"payload, content_sha256, source_topic, source_partition, source_offset, chain_seq + 1000, "
                f"row_hash FROM {TABLE} WHERE conversation_turn_id = $1",
                [victim],
            ),
        )
    else:
        a, b = ids[1], ids[2]
        await _as_attacker(
            admin_db,
            (f"UPDATE {TABLE} SET chain_seq = chain_seq + 1000000 WHERE conversation_turn_id = ANY($1)", [[a, b]]),
            (
                f"UPDATE {TABLE} SET chain_seq = CASE conversation_turn_id WHEN $1 THEN 3 ELSE 2 END "
                f"WHERE conversation_turn_id = ANY($2)",
                [a, [a, b]],
            ),
        )
    report = await _check(operator_db, topics)
    assert not report.ok
    broken = [p for p in report.problems if f"{topic}[{part}]" in p]
    assert broken, report.problems


async def test_truncated_tail_is_caught_by_the_digest(
    topics: Settings, run_id: str, operator_db: asyncpg.Connection, admin_db: asyncpg.Connection, tmp_path: Path
) -> None:
    topic, part, ids = await _chain(topics, run_id, operator_db)
    before = await _check(operator_db, topics)
    assert before.ok
    digest = tmp_path / "digest.json"
    digest.write_text(json.dumps(before.digest()))
    keep = ids[:-2]
    new_head = await operator_db.fetchrow(
        f"SELECT chain_seq, row_hash FROM {TABLE} WHERE conversation_turn_id = $1", keep[-1]
    )
    assert new_head is not None
    # The attacker removes the last two rows and rewinds the head row, so the chain alone looks whole.
    await _as_attacker(admin_db, (f"DELETE FROM {TABLE} WHERE conversation_turn_id = ANY($1)", [ids[-2:]]))
    await admin_db.execute(
        "UPDATE selene_ops.ledger_chains SET seq = $1, head_hash = $2 WHERE ledger_table = $3 "
        "AND source_topic = $4 AND source_partition = $5",
        new_head["chain_seq"],
        new_head["row_hash"],
        TABLE,
        topic,
        part,
    )
    assert (await _check(operator_db, topics)).ok  # why the digest must live outside the database
    report = await _check(operator_db, topics, digest)
    assert any("tail truncated" in p and f"{topic}[{part}]" in p for p in report.problems), report.problems
