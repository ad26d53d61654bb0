"""The modes that read Kafka: L3 (read + decode ceiling), drain (the real writer), replay, and naive.

Timing: a consumer mode's clock starts when the mode starts its client (group join and the first fetch are
part of the job) and stops when the last record is committed (drain, naive) or processed (L3, replay), so
the writer's final "caught up?" probe is not counted.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.child import Result, Spec, emit, proc_status_kb, rate_result
from bench.modes_db import InMemoryWriter
from bench.sqlstats import SqlStats
from bench.stream import Template, token
from consumers.chain import GENESIS, link, row_digest
from consumers.db import create_pool
from consumers.ledger import Provenance
from consumers.pipeline import Pipeline, Record
from consumers.projections import LEDGER_TABLES
from consumers.replay import Replayer
from consumers.writer import LedgerWriter, WriterStats, ledger_topics
from contracts.codec import Decoder
from contracts.kafka_clients import reader_options, writer_fetch_options
from contracts.settings import Settings
from sql.tenant_scope import set_scope


def consumer_options(settings: Settings, **extra: Any) -> dict[str, Any]:
    """The writer's fetch settings (read committed included), so every consumer mode reads Kafka the same way."""
    return reader_options(settings, auto_offset_reset="earliest", **writer_fetch_options(settings), **extra)


def to_records(data: dict[Any, list[Any]]) -> list[Record]:
    return [Record.of(m) for msgs in data.values() for m in msgs]


async def _partitions(consumer: AIOKafkaConsumer, topics: Sequence[str]) -> list[TopicPartition]:
    tps = []
    for topic in topics:
        parts = consumer.partitions_for_topic(topic)
        if not parts:
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(topic) or set()
        tps += [TopicPartition(topic, p) for p in sorted(parts)]
    return tps


async def run_l3(spec: Spec) -> Result:
    """getmany + Pipeline.decode (contract validation, transport checks, row mapping), results discarded."""
    settings = spec.settings
    pipeline = Pipeline(settings)
    consumer = AIOKafkaConsumer(**consumer_options(settings, group_id=None))
    started = time.perf_counter()
    await consumer.start()
    records, passes, seconds = 0, 0, 0.0
    try:
        tps = await _partitions(consumer, ledger_topics(settings))
        consumer.assign(tps)
        ends = {tp: o for tp, o in (await consumer.end_offsets(tps)).items() if o > 0}
        while passes == 0 or seconds < spec.min_seconds:
            await consumer.seek_to_beginning(*tps)
            pending = dict(ends)
            while pending:
                data = await consumer.getmany(timeout_ms=300, max_records=settings.batch_max_records)
                batch = to_records(data)
                pipeline.decode(batch)
                records += len(batch)
                for tp, msgs in data.items():
                    if msgs and msgs[-1].offset + 1 >= pending.get(tp, 0):
                        pending.pop(tp, None)
            passes += 1
            seconds = time.perf_counter() - started
    finally:
        await consumer.stop()
    return rate_result(records, seconds, passes=passes)


async def run_drain(spec: Spec) -> Result:
    """The real LedgerWriter until caught up; progress lines (with RSS) for the growth command."""
    report_every = float(spec.params.get("report_every", 0.0))
    sql = SqlStats(spec.params.get("writer_settings"))
    sql.patch_writer()
    writer = LedgerWriter(spec.settings)
    marks: list[tuple[float, int]] = []
    last_emit = time.perf_counter()

    def progress(stats: WriterStats) -> None:
        nonlocal last_emit
        now = time.perf_counter()
        consumed = stats.result.consumed
        if not marks or marks[-1][1] != consumed:
            marks.append((now, consumed))
        if report_every and now - last_emit >= report_every:
            last_emit = now
            emit(
                "PROGRESS",
                {"t": round(now - started, 3), "consumed": consumed, "rss_kb": proc_status_kb("VmRSS"),
                 "hwm_kb": proc_status_kb("VmHWM")},
            )  # fmt: skip

    started, started_at = time.perf_counter(), time.time()
    stats = await writer.run(until_caught_up=True, progress=progress, progress_every=0.0)
    done = marks[-1][0] if marks else time.perf_counter()
    first = next((t for t, c in marks if c > 0), done)
    r = stats.result
    return rate_result(
        r.consumed,
        done - started,
        startup_s=round(first - started, 3),
        batches=stats.batches,
        appended=r.appended,
        deduplicated=r.deduplicated,
        dead_lettered=dict(r.dead_lettered),
        retries=stats.retries,
        sql=sql.summary(),
        # epoch times of the start and of the last record, for rates over several writers (``scale``)
        started_at=started_at,
        done_at=started_at + (done - started),
    )


async def run_replay(spec: Spec) -> Result:
    """consumers.replay.Replayer from the beginning of the drained topics into the shadow tables, no verify;
    again (each run starts by clearing the shadow tables) until ``min_seconds`` have passed."""
    read = applied = duplicates = unaccounted = passes = 0
    seconds = 0.0
    while passes == 0 or seconds < spec.min_seconds:
        result = await Replayer(spec.settings).run()
        s = result.stats
        read, applied, duplicates = read + s.read, applied + s.applied, duplicates + s.duplicates
        unaccounted += s.unaccounted_count
        seconds += result.seconds
        passes += 1
    return rate_result(read, seconds, passes=passes, applied=applied, duplicates=duplicates, unaccounted=unaccounted)


def _insert_one(table_name: str, columns: Sequence[tuple[str, str]]) -> str:
    names = ", ".join(c for c, _ in columns)
    params = ", ".join(f"${i}::{t}" for i, (_, t) in enumerate(columns, start=1))
    return f"INSERT INTO {table_name} ({names}) VALUES ({params}) ON CONFLICT DO NOTHING"


async def run_naive(spec: Spec) -> Result:
    """The hand-rolled alternative: per message, validate, then one INSERT of the ledger row in its own
    transaction (with the tenant scope RLS needs) and COMMIT; offsets committed to Kafka after each fetch."""
    settings = spec.settings
    expected = int(spec.params["expected"])
    max_seconds = float(spec.params.get("max_seconds", 30.0))
    # The audit rows reference identities, devices and sessions: those are written first, untimed.
    template = Template.load(spec.template)
    pool = await create_pool(settings.database_url, max_size=2)
    try:
        setup = InMemoryWriter(settings, pool)
        stream = [r for r in template.variant(token(spec.run_tag, "n")) if r.foundation]
        await setup.write_all(setup.records(stream))
    finally:
        await pool.close()
    decoder = Decoder(settings.max_event_bytes)
    inserts = {name: _insert_one(t.spec.table, t.columns) for name, t in LEDGER_TABLES.items()}
    columns = {name: [c for c, _ in t.columns] for name, t in LEDGER_TABLES.items()}
    heads: dict[tuple[str, str, int], tuple[int, bytes]] = {}
    conn = await asyncpg.connect(settings.database_url)
    consumer = AIOKafkaConsumer(
        *ledger_topics(settings), **consumer_options(settings, group_id=settings.consumer_group)
    )
    started = time.perf_counter()
    await consumer.start()
    processed, first = 0, None
    try:
        while processed < expected and time.perf_counter() - started < max_seconds:
            data = await consumer.getmany(timeout_ms=300)
            for msgs in data.values():
                for m in msgs:
                    first = first or time.perf_counter()
                    event = decoder.decode(m.value)
                    table = LEDGER_TABLES[event.ledger]
                    row = table.row(event, Provenance(m.topic, m.partition, m.offset))
                    # The schema requires hash-chain links; a hand-rolled consumer keeps its heads in memory.
                    chain_key = (table.spec.table, m.topic, m.partition)
                    seq, head = heads.get(chain_key, (0, GENESIS))
                    head = link(head, row_digest(table.spec.table, seq + 1, row.values, columns[event.ledger]))
                    heads[chain_key] = (seq + 1, head)
                    row.values["chain_seq"], row.values["row_hash"] = seq + 1, head
                    async with conn.transaction():
                        await set_scope(conn, event.tenant_id)
                        await conn.execute(inserts[event.ledger], *[row.values[c] for c in columns[event.ledger]])
                    processed += 1
            if data:
                await consumer.commit()
        seconds = time.perf_counter() - started
    finally:
        await consumer.stop()
        await conn.close()
    return rate_result(
        processed,
        seconds,
        startup_s=round((first or started) - started, 3),
        capped=processed < expected,
        expected=expected,
    )


def parse_progress(lines: Sequence[str]) -> list[dict[str, Any]]:
    return [json.loads(line.split(" ", 1)[1]) for line in lines if line.startswith("PROGRESS ")]
