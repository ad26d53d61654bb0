"""Artifacts ledger (seed 000 row 7) end to end on real Kafka and PostgreSQL: AT-ART-DB-01..04 from the shared
suite, the write order's refusals (a version recorded twice, a TENANT scope naming another tenant), the
writer's ids, and AT-ART-DB-05 (the tool cache's upsert and expiry) on real PostgreSQL."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from consumers.repositories.artifacts_ledger import ArtifactReader, ToolCacheReader
from contracts.artifacts_ledger import ArtifactRecordedEvent
from contracts.envelope import LedgerEvent, new_event
from contracts.reasons import ContractViolation
from contracts.settings import Settings
from producers.artifacts_ledger import ArtifactWriter, ToolCacheWriter
from producers.ledger_writes import LedgerWrites
from producers.publisher import Publisher
from sql.tenant_scope import scoped
from tests.e2e.acceptance import SliceAcceptance
from tests.e2e.helpers import drain, publish, rebuild_equals_live, running_writer

pytestmark = pytest.mark.e2e


def artifact(tenant: str, version: int, *, key: str | None = None, **payload: Any) -> LedgerEvent:
    return new_event(
        ArtifactRecordedEvent,
        tenant_id=tenant,
        engine_id="PH1.KNOW",
        correlation_id=f"art-{version}",
        idempotency_key=key,
        occurred_at=datetime.now(UTC),
        payload={
            "scope_type": "TENANT",
            "scope_id": tenant,
            "artifact_type": "TTS_PRONUNCIATION_PACK",
            "artifact_version": version,
            "package_hash": f"h{version}",
            "payload_ref": f"artifacts://tts/{version}",
            "created_by": "PH1.KNOW",
            "provenance_ref": f"know-{version}",
            "status": "ACTIVE",
            **payload,
        },
    )


class TestAtArtDb(SliceAcceptance):
    """The shared AT-ART-DB-01..04 (tests/e2e/acceptance.py); the tests below are what is special to it."""

    slice_name = "artifacts_ledger"


async def test_a_version_is_recorded_once_and_a_tenant_scope_is_the_events_tenant(
    topics: Settings, reader_db: asyncpg.Connection, run_id: str
) -> None:
    a, b = f"ta-{run_id}", f"tb-{run_id}"
    v1, v2 = artifact(a, 1), artifact(a, 2)
    again_v1 = artifact(a, 1, package_hash="other")  # same scope, type and version, no key: DuplicateKey
    rollback = artifact(a, 3, status="ROLLED_BACK")  # a rollback is a new version
    foreign = artifact(a, 4, scope_id=b)  # a TENANT scope naming another tenant
    await publish(topics, [v1, v2, again_v1, rollback, foreign])
    stats = await drain(topics)
    assert stats.result.appended == 3
    assert stats.result.dead_lettered == Counter({"ART_DUPLICATE_KEY": 1, "ART_SCOPE_TENANT_MISMATCH": 1})
    reader = ArtifactReader(reader_db)
    rows = await reader.versions(a, "TENANT", a, "TTS_PRONUNCIATION_PACK")
    assert [(r.event_uuid, r.artifact_version, r.status) for r in rows] == [
        (v1.event_id, 1, "ACTIVE"),
        (v2.event_id, 2, "ACTIVE"),
        (rollback.event_id, 3, "ROLLED_BACK"),
    ]
    assert rows[0].package_hash == "h1"  # the first stands
    latest = await reader.latest_active(a, "TENANT", a, "TTS_PRONUNCIATION_PACK")
    assert latest is not None and latest.artifact_version == 2
    assert await reader.versions(b, "TENANT", b, "TTS_PRONUNCIATION_PACK") == []
    assert await rebuild_equals_live(topics, [a]) == []


async def test_writer_returns_the_original_artifact_id_on_a_replay(
    topics: Settings, reader_db: asyncpg.Connection, run_id: str
) -> None:
    tenant = f"t-{run_id}"
    first = artifact(tenant, 1, key="pack-1")
    retry = new_event(ArtifactRecordedEvent, **first.model_dump(exclude={"event_id"}))
    async with running_writer(topics), Publisher(topics) as publisher:
        writer = ArtifactWriter(LedgerWrites(publisher, reader_db, timeout=60))
        written = await writer.append(first)
        replayed = await writer.append(retry)
    assert written.outcome == "APPENDED"
    assert (replayed.event_id, replayed.outcome) == (written.event_id, "IDEMPOTENCY_REPLAY")
    rows = await ArtifactReader(reader_db).versions(tenant, "TENANT", tenant, "TTS_PRONUNCIATION_PACK")
    assert [r.artifact_id for r in rows] == [written.event_id]


async def test_at_art_db_05_tool_cache_upsert_and_ttl_read(
    writer_db: asyncpg.Connection, reader_db: asyncpg.Connection, run_id: str
) -> None:
    a, b = f"ta-{run_id}", f"tb-{run_id}"
    now = datetime.now(UTC)
    writer, reader = ToolCacheWriter(writer_db), ToolCacheReader(reader_db)
    first = await writer.upsert(a, "web_search", "q1", "en-US", "first", now + timedelta(minutes=5))
    second = await writer.upsert(a, "web_search", "q1", "en-US", "second", now + timedelta(minutes=10))
    assert second == first  # same key: replaced in place, cache_id kept
    other = await writer.upsert(b, "web_search", "q1", "en-US", "tenant b", now + timedelta(minutes=10))
    assert other != first  # the key is tenant-scoped
    hit = await reader.lookup(a, "web_search", "q1", "en-US", now=now)
    assert hit is not None and (hit.cache_id, hit.result_payload) == (first, "second")
    expiry = hit.expires_at
    assert await reader.lookup(a, "web_search", "q1", "en-US", now=expiry - timedelta(microseconds=1)) == hit
    assert await reader.lookup(a, "web_search", "q1", "en-US", now=expiry) is None  # at expiry: a miss
    assert await reader.lookup(a, "web_search", "q1", "en-US", now=expiry + timedelta(seconds=1)) is None
    assert await reader.lookup(a, "web_search", "q1", "de-DE", now=now) is None
    count = await operator_count(writer_db, a)
    assert count == 1
    with pytest.raises(ContractViolation) as info:
        await writer.upsert(a, "web_search", "q2", "en-US", "   ", now)
    assert info.value.reason_code == "ART_CONTRACT_VALIDATION_FAILED"


async def operator_count(conn: asyncpg.Connection, tenant: str) -> int:
    async with scoped(conn, tenant):
        return int(await conn.fetchval("SELECT count(*) FROM os_core.tool_cache"))
