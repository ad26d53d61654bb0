"""Property-based fuzzing of the whole pipeline with bad input mixed into good (issue 8), on real services.

Hypothesis draws a mix of good events, bad records of every class (``tests/unit/fuzzcases.py``), exact
duplicates and idempotency conflicts; each example gets topics and a consumer group of its own. The records
go to Kafka as they are, a ``LedgerWriter`` drains them until caught up, and then:

* the writer did not crash, and its lag is back to 0 on every partition;
* every good event is in its ledger exactly once; duplicates added nothing;
* every bad record (conflicts included) is a dead letter at its own topic, partition and offset, with its raw
  key, value and headers (exactly, as bytes), a Kafka timestamp and the expected reason code; no good record is;
* consumed = appended + deduplicated + dead-lettered, and the counts per reason are the expected ones.

The mix includes the control-character classes (issue 13, item 4): U+0000 and every other C0, DEL and C1
character in the key, in extra headers (key and value, on good and bad records), in the value and in every
text field; none may make the writer raise, and a dead letter's text columns hold none of them.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import replace
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from consumers.db import connect
from consumers.pipeline import headers_from_bytes
from consumers.status import lag
from consumers.writer import LedgerWriter
from contracts.registry import LEDGERS
from contracts.settings import Settings
from producers.topics import ensure_topics
from tests.unit.fuzzcases import Case, bad_cases, conflict_of, good_cases
from tests.unit.test_decode_fuzz import UNSTORABLE

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _is_original(candidate: Case, later: Case) -> bool:
    """The good record that ``later`` (a duplicate or a conflict) must follow in the topic."""
    if candidate.kind != "good" or candidate.event is None or later.event is None:
        return False
    if later.kind == "duplicate":
        return candidate.event == later.event
    same_scope = ("tenant_id", "correlation_id", "idempotency_key")
    return all(getattr(candidate.event, f) == getattr(later.event, f) for f in same_scope)


@st.composite
def mixes(draw: st.DrawFn) -> list[Case]:
    """Good and bad records interleaved; duplicates and conflicts somewhere after their originals."""
    goods = draw(st.lists(good_cases(), min_size=1, max_size=8))
    bads = draw(st.lists(bad_cases(), min_size=1, max_size=10))
    sequence: list[Case] = list(draw(st.permutations(goods + bads)))
    keyed = [g for g in goods if g.event is not None and g.event.idempotency_key is not None]
    later = [replace(g, kind="duplicate") for g in draw(st.lists(st.sampled_from(goods), max_size=3))]
    if keyed:
        later += [conflict_of(g.event) for g in draw(st.lists(st.sampled_from(keyed), max_size=2, unique_by=id))]  # type: ignore[arg-type]
    for case in later:
        original = next(i for i, c in enumerate(sequence) if _is_original(c, case))
        sequence.insert(draw(st.integers(original + 1, len(sequence))), case)
    return sequence


async def _send(settings: Settings, cases: list[Case]) -> list[tuple[str, int, int]]:
    """Send the records as they are, in order; returns (topic, partition, offset) of each."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        enable_idempotence=True,
        acks="all",
        max_request_size=1024 * 1024,
        **settings.kafka_security.client_kwargs(),
    )
    await producer.start()
    try:
        futures = [
            await producer.send(
                LEDGERS[c.topic_ledger].topic(settings.topic_prefix), c.value, key=c.key, headers=list(c.headers)
            )
            for c in cases
        ]
        sent = [await f for f in futures]
    finally:
        await producer.stop()
    return [(md.topic, md.partition, md.offset) for md in sent]


async def _ledger_counts(conn: asyncpg.Connection, cases: list[Case]) -> Counter[str]:
    """How many rows each good event has in its ledger (by event id)."""
    counts: Counter[str] = Counter()
    for ledger in {c.event.ledger for c in cases if c.event is not None}:
        ids = [c.event.event_id for c in cases if c.event is not None and c.event.ledger == ledger]
        rows = await conn.fetch(
            f"SELECT event_uuid::text AS id FROM {LEDGERS[ledger].table} WHERE event_uuid = ANY($1::uuid[])", ids
        )
        counts.update(r["id"] for r in rows)
    return counts


@settings(
    max_examples=15,
    deadline=None,
    phases=(Phase.explicit, Phase.reuse, Phase.generate),  # no shrinking: each step is a real pipeline run
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)
@given(mix=mixes())
async def test_bad_input_mixed_with_good_is_dead_lettered_and_good_flows(migrated: Settings, mix: list[Case]) -> None:
    run = uuid.uuid4().hex[:10]
    settings_ = replace(migrated, topic_prefix=f"fz{run}.", consumer_group=f"fz-{run}", topic_partitions=1)
    await ensure_topics(settings_)
    positions = await _send(settings_, mix)

    stats = await LedgerWriter(settings_).run(until_caught_up=True)  # raises if the writer crashes

    goods = [c for c in mix if c.kind == "good"]
    dups = [c for c in mix if c.kind == "duplicate"]
    bads = [(c, p) for c, p in zip(mix, positions, strict=True) if c.expected is not None]
    r = stats.result
    assert r.consumed == len(mix)
    assert r.consumed == r.appended + r.deduplicated + r.dead_total
    assert r.appended == len(goods)
    assert r.deduplicated == len(dups)
    assert r.dead_lettered == Counter(str(c.expected) for c, _ in bads)

    conn = await connect(settings_.database_operator_url)
    try:
        assert [x for x in await lag(settings_, conn) if x.lag != 0] == []
        counts = await _ledger_counts(conn, goods)
        assert {str(c.event.event_id): counts[str(c.event.event_id)] for c in goods} == {  # type: ignore[union-attr]
            str(c.event.event_id): 1  # type: ignore[union-attr]
            for c in goods
        }
        rows = await conn.fetch(
            "SELECT source_topic, source_partition, source_offset, kafka_timestamp, raw_key, raw_value, raw_headers, "
            "reason_code, status, tenant_id, aggregate_key, error_detail FROM selene_ops.dead_letters "
            "WHERE source_topic LIKE $1",
            f"{settings_.topic_prefix}%",
        )
    finally:
        await conn.close()
    letters: dict[tuple[str, int, int], dict[str, Any]] = {
        (x["source_topic"], x["source_partition"], x["source_offset"]): dict(x) for x in rows
    }
    assert len(letters) == len(bads)  # no good record, and no duplicate, became a dead letter
    for case, position in bads:
        letter = letters.get(position)
        assert letter is not None, (case.kind, position)
        assert letter["reason_code"] == str(case.expected), case.kind
        assert (letter["raw_key"], letter["raw_value"]) == (case.key, case.value), case.kind
        assert headers_from_bytes(letter["raw_headers"]) == case.headers, case.kind
        assert UNSTORABLE.search(letter["error_detail"]) is None, case.kind
        assert UNSTORABLE.search(letter["aggregate_key"] or "") is None, case.kind
        # A record that never decoded proves no tenant: no tenant's reader sees it (issue 14, item 5).
        assert letter["tenant_id"] is None or case.kind == "conflict", case.kind
        assert letter["kafka_timestamp"] is not None
        assert letter["status"] == ("REJECTED" if case.kind == "conflict" else "OPEN"), case.kind
