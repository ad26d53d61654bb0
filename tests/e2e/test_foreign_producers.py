"""A foreign engine on the ledger topics: Apache Kafka's own Java client (tests/foreign/JavaEngine.java, on
the kafka-clients jar resolved for the broker) publishing valid events the way Java engines do.

What a Python-only suite cannot see (issue 13): batches compressed with every codec a producer may choose,
a transaction that is aborted next to one that is committed, an idempotent producer retrying, and the
partition Java's default partitioner picks for a key. Expected every time: each committed event in its
ledger exactly once, no aborted one, lag 0, replay and rebuild verify equal.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import asyncpg
import pytest

from consumers.replay import Replayer
from consumers.status import end_offsets, lag
from contracts.audit import AuditRecordedEvent
from contracts.codec import encode
from contracts.envelope import LedgerEvent, new_event
from contracts.settings import Settings
from producers.publisher import KeyPartitioner
from producers.topics import ensure_topics
from tests.e2e.helpers import drain, publish, rebuild_equals_live
from tests.fixtures.java import JavaEngine, JavaRecord, SendReport

pytestmark = pytest.mark.e2e

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
CAUGHT_UP_WITHIN = 30.0  # seconds for `run(until_caught_up=True)` after the producer is done
DRAIN_CAP = 60.0  # past this the writer is stopped and taken as never catching up (issue 13: ~100 s)

ROWS = "SELECT event_uuid, source_partition, source_offset FROM os_core.audit_events WHERE tenant_id = $1"


@pytest.fixture(scope="module")
def java(migrated: Settings) -> JavaEngine:
    if migrated.kafka_security.protocol != "PLAINTEXT":
        pytest.skip("the Java engine connects in PLAINTEXT only; these services need TLS or SASL")
    return JavaEngine.compiled()


def audits(
    tenant: str, count: int, *, aggregates: int | None = None, tag: str = "e", corr: str | None = None
) -> list[LedgerEvent]:
    """Valid AUDIT_RECORDED events; ``aggregates`` correlation ids (``corr-<corr>-<n>``, ``corr`` defaulting
    to ``tag``) shared round robin, or one each."""
    return [
        new_event(
            AuditRecordedEvent,
            tenant_id=tenant,
            engine_id="PH1.JAVA",
            correlation_id=f"corr-{corr or tag}-{i % aggregates if aggregates else i}",
            idempotency_key=f"{tag}-{i}",
            occurred_at=datetime.now(UTC),
            payload={"reason_code": "JAVA_OK", "summary": f"decided {tag} {i}", "attributes": {"n": i}},
        )
        for i in range(count)
    ]


def records(settings: Settings, events: Sequence[LedgerEvent]) -> list[JavaRecord]:
    """The records the Python publisher would send (same encoding, key ``<tenant>/<correlation_id>``,
    headers), for the Java engine to send instead."""
    out = []
    for e in events:
        enc = encode(e)
        assert enc.key == f"{e.tenant_id}/{e.correlation_id}".encode()
        out.append(JavaRecord(e.spec.topic(settings.topic_prefix), enc.key, enc.value, enc.headers))
    return out


async def timed_drain(settings: Settings) -> tuple[float, Counter[str]]:
    """Run the writer until caught up: the seconds it took (inf if it had not after ``DRAIN_CAP``: it is
    stopped then, so the ledger can still be looked at) and its counts (appended, deduplicated, dead)."""
    started = time.monotonic()
    task = asyncio.create_task(drain(settings))
    done, _ = await asyncio.wait({task}, timeout=DRAIN_CAP)
    if not done:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return math.inf, Counter()
    r = task.result().result
    return time.monotonic() - started, Counter(appended=r.appended, deduplicated=r.deduplicated, dead=r.dead_total)


async def ledger(conn: asyncpg.Connection, tenant: str) -> Counter[uuid.UUID]:
    return Counter(r["event_uuid"] for r in await conn.fetch(ROWS, tenant))


async def assert_settled(settings: Settings, conn: asyncpg.Connection, tenant: str) -> None:
    """Lag 0 on every partition of the test's topics; replay and rebuild verify equal for the tenant."""
    assert [x for x in await lag(settings, conn) if x.lag != 0] == []
    replayed = await Replayer(settings, tenant=tenant).run(verify=True)
    assert replayed.stats.unaccounted == [] and replayed.stats.mismatched_content == []
    assert replayed.comparisons and replayed.equal, replayed.comparisons
    assert await rebuild_equals_live(settings, [tenant]) == []


@dataclass(frozen=True)
class CodecRun:
    """One codec's events, on topics and with a writer group of their own, and how Java acknowledged them."""

    settings: Settings
    tenant: str
    events: list[LedgerEvent]
    sent: SendReport


@pytest.fixture(scope="module")
async def codec_runs(java: JavaEngine, migrated: Settings) -> dict[str, CodecRun]:
    """Every codec's events published by one JVM (a producer per codec), each to topics of its own: the
    JVM's start-up is paid once, and each codec's test drains and checks only its own topics."""
    setups = {}
    for codec in CODECS:
        run_id = uuid.uuid4().hex[:10]
        settings = replace(migrated, topic_prefix=f"t{run_id}.", consumer_group=f"writer-{run_id}")
        await ensure_topics(settings)
        setups[codec] = (settings, f"tenant-{run_id}", audits(f"tenant-{run_id}", 60, aggregates=12))
    reports = await java.produce_each(
        migrated.kafka_bootstrap_servers, {c: records(s, events) for c, (s, _, events) in setups.items()}
    )
    return {c: CodecRun(*setups[c], reports[c]) for c in CODECS}


@pytest.mark.parametrize("codec", CODECS)
async def test_java_producer_each_codec_lands_exactly_once(
    codec: str, codec_runs: dict[str, CodecRun], operator_db: asyncpg.Connection
) -> None:
    run = codec_runs[codec]
    assert len({s.partition for s in run.sent.sent}) > 1  # several partitions, several compressed batches

    seconds, counts = await timed_drain(run.settings)

    assert await ledger(operator_db, run.tenant) == Counter({e.event_id: 1 for e in run.events})
    assert counts == Counter(appended=60)
    assert seconds < CAUGHT_UP_WITHIN
    await assert_settled(run.settings, operator_db, run.tenant)


async def test_java_transaction_aborted_never_lands_committed_lands_once_promptly(
    java: JavaEngine, topics: Settings, operator_db: asyncpg.Connection, run_id: str
) -> None:
    tenant = f"tenant-{run_id}"
    aborted, committed = audits(tenant, 50, tag="aborted"), audits(tenant, 50, tag="committed")
    await java.transactional(
        topics.kafka_bootstrap_servers, records(topics, aborted + committed), f"selene-java-{run_id}", len(aborted)
    )

    seconds, counts = await timed_drain(topics)

    rows = await ledger(operator_db, tenant)
    landed_aborted = rows.keys() & {e.event_id for e in aborted}
    assert not landed_aborted, f"{len(landed_aborted)} aborted events in the ledger ({sum(rows.values())} rows)"
    assert rows == Counter({e.event_id: 1 for e in committed})
    assert seconds < CAUGHT_UP_WITHIN, f"not caught up after {seconds:.1f} s"
    assert counts == Counter(appended=50)
    await assert_settled(topics, operator_db, tenant)


async def test_java_idempotent_producer_retrying_lands_each_event_once_in_order(
    java: JavaEngine, topics: Settings, operator_db: asyncpg.Connection, run_id: str
) -> None:
    tenant = f"tenant-{run_id}"
    events = audits(tenant, 200, aggregates=20)
    # In each of 8 chunks the producer's connection is cut while produce requests are in flight: their
    # acknowledgements are lost and the producer sends the batches again (same producer id and sequence).
    # On an idle loopback broker an answer can be read before the cut lands, so a run may retry nothing;
    # then the scenario is run again on topics of its own (the earlier runs' topics are never drained).
    tries: list[dict[str, float]] = []
    for attempt in range(6):
        topics = replace(topics, topic_prefix=f"{topics.topic_prefix}i{attempt}.")
        await ensure_topics(topics)
        report = await java.idempotent(topics.kafka_bootstrap_servers, records(topics, events), chunks=8)
        tries.append(report.metrics)
        if report.metrics["record-retry-total"] > 0:
            break
    assert report.metrics["link-breaks"] > 0 and report.metrics["record-retry-total"] > 0, tries
    assert report.metrics["record-error-total"] == 0, report.metrics
    # The broker recognised the resent batches: the log holds each record once (without idempotence the
    # same cuts left 209 records for 200 sends, measured), so the writer has no duplicate to absorb.
    audit_topic = events[0].spec.topic(topics.topic_prefix)
    assert sum((await end_offsets(topics, [audit_topic])).values()) == len(events)
    # Kafka kept each aggregate's order through the retries (offsets rise in the order sent).
    by_key: dict[str, list[tuple[int, int]]] = {}
    for event, s in zip(events, report.sent, strict=True):
        by_key.setdefault(event.correlation_id, []).append((s.partition, s.offset))
    for where in by_key.values():
        assert len({p for p, _ in where}) == 1 and where == sorted(where)

    seconds, counts = await timed_drain(topics)

    assert await ledger(operator_db, tenant) == Counter({e.event_id: 1 for e in events})
    assert counts == Counter(appended=200)
    assert seconds < CAUGHT_UP_WITHIN
    await assert_settled(topics, operator_db, tenant)


async def test_java_and_python_partitioners_agree(java: JavaEngine, run_id: str) -> None:
    rng = random.Random(run_id)
    keys = [f"tenant-{rng.randrange(40)}/{uuid.UUID(int=rng.getrandbits(128))}".encode() for _ in range(440)]
    keys += [f"tenant-{rng.randrange(40)}/user:u-{i}".encode() for i in range(40)]
    keys += [f"tenant-é/corr-{i}-ü€𝄞".encode() for i in range(20)]  # multi-byte UTF-8: hashed as bytes
    counts = [1, 3, 7, 12]

    java_partitions = await java.partitions(keys, counts)

    python = KeyPartitioner()  # the publisher's own partitioner
    python_partitions = [[python(k, list(range(n)), list(range(n))) for n in counts] for k in keys]
    assert java_partitions == python_partitions
    assert {row[-1] for row in java_partitions} == set(range(12))  # the keys spread: not trivially equal


async def test_java_and_python_events_of_one_aggregate_share_a_partition(
    java: JavaEngine, topics: Settings, operator_db: asyncpg.Connection, run_id: str
) -> None:
    tenant = f"tenant-{run_id}"
    from_java = audits(tenant, 24, aggregates=8, tag="java", corr="agg")
    from_python = audits(tenant, 24, aggregates=8, tag="python", corr="agg")
    sent = await java.produce(topics.kafka_bootstrap_servers, records(topics, from_java))
    published = await publish(topics, from_python)

    java_at = {e.correlation_id: s.partition for e, s in zip(from_java, sent.sent, strict=True)}
    python_at = {p.event.correlation_id: p.partition for p in published}
    assert java_at == python_at
    assert len(set(java_at.values())) > 1  # the aggregates spread over partitions

    _, counts = await timed_drain(topics)
    assert counts == Counter(appended=48)
    rows = await operator_db.fetch(
        "SELECT correlation_id, source_partition FROM os_core.audit_events WHERE tenant_id = $1", tenant
    )
    where: dict[str, set[int]] = {}
    for r in rows:
        where.setdefault(r["correlation_id"], set()).add(r["source_partition"])
    assert where == {corr: {p} for corr, p in java_at.items()}
