"""Replay with decode workers is the same replay: same verify verdict, same counts, same unaccounted records,
same shadow rows as decoding in the replaying process."""

from __future__ import annotations

import json
import uuid

import asyncpg
import pytest

import consumers.decode_workers as dw
from cli.workload import RawRecord
from consumers.replay import Replayer
from contracts.settings import Settings
from tests.e2e.helpers import publish, send_raw
from tests.e2e.test_replay import changes, mixed, rows_of

pytestmark = pytest.mark.e2e


async def test_replay_with_decode_workers_equals_replay_in_process(
    topics: Settings, run_id: str, operator_db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dw, "MIN_WORKER_BATCH", 1)  # the test's fetches are small: send them all to workers
    monkeypatch.setattr(dw, "CHUNK_RECORDS", 5)  # and in many pieces, to check the order is kept
    w = await mixed(topics, run_id)
    tenants = sorted({e.tenant_id for e in w.foundation})
    for tenant in tenants:
        verified = await Replayer(topics, tenant=tenant, decode_workers=2).run(verify=True)
        assert verified.equal, (verified.comparisons, verified.stats.unaccounted)

    # Records the writer never saw: the same event under a new id (a duplicate by its scoped key and content),
    # bytes it would dead-letter, and a valid event: the last two are unaccounted.
    sample = next(e for e in w.events if e.ledger == "audit_events" and e.idempotency_key is not None)
    again = {**sample.model_dump(mode="json"), "event_id": str(uuid.uuid4())}
    await send_raw(
        topics,
        [
            RawRecord("audit_events", sample.kafka_key, json.dumps(again).encode(), "duplicate"),
            RawRecord("audit_events", sample.kafka_key, b"\xff not json", "EVENT_UNDECODABLE"),
        ],
    )
    await publish(topics, changes(w, tenants[0])[:1])

    outcomes = []
    for workers in (0, 2):
        replayer = Replayer(topics, decode_workers=workers)
        result = await replayer.run()
        s = result.stats
        # Dead letters are looked up per fetch, after decoding: every record read is decoded.
        assert replayer.decoding.in_workers == (s.read if workers else 0)
        shadow = [await rows_of(operator_db, t, shadow=True) for t in tenants]
        outcomes.append(
            (s.read, s.applied, s.duplicates, s.dead_letters_skipped, s.unaccounted, s.mismatched_content,
             s.per_ledger, shadow)
        )  # fmt: skip
    assert outcomes[0] == outcomes[1]
    read, applied, duplicates, skipped, unaccounted, mismatched, _, _ = outcomes[1]
    assert (applied, duplicates, skipped) == (len(w.good), len(w.duplicates) + 1, len(w.bad))
    assert read == applied + duplicates + skipped + 2
    assert sorted(u.rsplit(": ", 1)[1] for u in unaccounted) == ["EVENT_UNDECODABLE", "not in os_core.audit_events"]
    assert mismatched == []
