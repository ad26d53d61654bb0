"""The README's first command: the whole path on a sample workload, and a summary whose numbers add up."""

from __future__ import annotations

import time
from collections import Counter

from cli.workload import build, topic_of
from consumers.db import connect
from consumers.projections import LEDGER_TABLES
from consumers.rebuild import Rebuilder
from consumers.replay import Replayer
from consumers.status import ledger_counts, slice_counts
from consumers.verify import verify
from consumers.writer import LedgerWriter, WriterStats
from contracts.registry import REGISTRY
from contracts.settings import Settings
from producers.publisher import Publisher
from producers.topics import ensure_topics


async def _drain(settings: Settings) -> WriterStats:
    return await LedgerWriter(settings).run(until_caught_up=True)


async def run_demo(settings: Settings, *, tenants: int, events: int) -> int:
    """Publish a mixed workload, drain it with the writer, print the summary; non-zero if it does not add up."""
    started = time.monotonic()
    await ensure_topics(settings)
    workload = build(tenants=tenants, events=events, work_orders=4, slice_examples=1)
    kinds = Counter(e.ledger for e in workload.events)
    print(
        f"workload: {tenants} tenants, {len(workload.foundation)} identity/device/session events, "
        f"{len(workload.events)} events ({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))}), "
        f"{len(workload.duplicates)} duplicates, "
        f"{len(workload.bad)} bad records"
    )
    before = await _drain(settings)  # whatever an earlier run left on the topics, so the summary is this run's
    async with Publisher(settings) as publisher:
        published, refused = await publisher.publish_many(workload.foundation)
        first = await _drain(settings)
        more, refused_more = await publisher.publish_many(workload.events + workload.duplicates)
        published += more
        refused += refused_more
        for bad in workload.bad:
            await publisher.send_unchecked(topic_of(bad.ledger, settings.topic_prefix), bad.value, bad.key)
    second = await _drain(settings)
    result = first.result
    result.add(second.result)

    conn = await connect(settings.database_operator_url)
    try:
        rows = await ledger_counts(conn)
        per_slice = await slice_counts(conn, [p.event for p in published])
    finally:
        await conn.close()
    expected = Counter(b.expected_reason for b in workload.bad)
    got = result.dead_lettered
    sent = len(published) + len(workload.bad)
    adds_up = result.consumed == result.appended + result.deduplicated + result.dead_total
    print()
    print("summary")
    print(f"  published (acknowledged by Kafka)   {len(published)}")
    print(f"  refused by the publisher            {len(refused)}")
    print(f"  bad records sent around it          {len(workload.bad)}")
    print(
        f"  consumed by the writer              {result.consumed}"
        + (f"  (plus {before.result.consumed} left over from earlier runs)" if before.result.consumed else "")
    )
    print(f"  appended to ledgers                 {result.appended}")
    print(f"  deduplicated (counted no-ops)       {result.deduplicated}")
    print(f"  dead-lettered                       {result.dead_total}")
    for reason, n in sorted(got.items()):
        print(f"    {reason:<34}{n}")
    print("  rows now in ledgers                 " + ", ".join(f"{k} {v}" for k, v in rows.items()))
    print("  per slice (seed 000 rows): this run's distinct events acknowledged, and found in their ledgers")
    for sl in sorted(REGISTRY.slices, key=lambda x: x.seed_row):
        seed_rows = ",".join(str(r) for r in (sl.seed_row, *(a.row for a in sl.also)))
        acked, found = per_slice[sl.name]
        print(f"    {seed_rows:<6}{sl.name:<24}{acked:>6} acknowledged {found:>6} in ledgers")
    print(
        f"  consumed = appended + deduplicated + dead-lettered: "
        f"{result.consumed} = {result.appended} + {result.deduplicated} + {result.dead_total} "
        f"-> {'yes' if adds_up else 'NO'}"
    )
    matches = consumed_ok = result.consumed == sent
    for reason, n in expected.items():
        matches = matches and got.get(reason, 0) >= n
    print(
        f"  every record sent was consumed: {'yes' if consumed_ok else 'NO'}; "
        f"every bad class dead-lettered with its reason: {'yes' if matches else 'NO'}"
    )
    replayed = await Replayer(settings).run(verify=True)
    rebuilt = await Rebuilder(settings).run(verify=True, apply=False)
    print(
        f"  replay from the topics equals live: {'yes' if replayed.equal else 'NO'} "
        f"({replayed.stats.read} records, {replayed.seconds:.1f}s; "
        f"{sum(c.live_rows for c in replayed.comparisons)} projection rows compared)"
    )
    print(
        f"  rebuild from the ledgers equals live: {'yes' if rebuilt.equal else 'NO'} "
        f"({rebuilt.events} ledger rows, {rebuilt.seconds:.1f}s)"
    )
    conn = await connect(settings.database_operator_url)
    try:
        chains = await verify(conn, LEDGER_TABLES)
    finally:
        await conn.close()
    print(
        f"  hash chains intact: {'yes' if chains.ok else 'NO'} ({chains.rows} ledger rows in {len(chains.chains)} "
        "chains; `selene-ledger verify`)"
    )
    print(f"  time {time.monotonic() - started:.1f}s")
    return 0 if adds_up and matches and replayed.equal and rebuilt.equal and chains.ok else 1
