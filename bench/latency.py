"""Latency: produce -> committed in PostgreSQL, at fractions of the measured drain capacity.

Method. The writer runs in its own process as a ``LedgerWriter`` whose batch transaction is wrapped: when
``_write`` returns, COMMIT has been acknowledged by PostgreSQL (synchronous_commit=on, so the WAL is
flushed) and every record of the batch is stamped with ``time.monotonic_ns()``. The paced producer, in the
orchestrator's process, stamps each record with the same clock (CLOCK_MONOTONIC is system-wide on Linux)
just before handing it to the producer (the Publisher's settings: idempotent, acks=all, linger 5 ms), and
learns its (topic, partition, offset) from the acknowledgement. Latency = commit stamp - send stamp, matched
on (topic, partition, offset). Resolution: nanosecond clocks; what the figure includes is the producer's
linger and acknowledgement path, the broker, the consumer's fetch, the batch transaction and the commit.
Pacing sends what is due every millisecond, so send times are exact but the rate is smooth only at >= 1 ms.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from bench.child import Result, Spec, rate_result
from bench.sqlstats import SqlStats
from bench.stream import StreamRecord
from consumers.pipeline import BatchResult, Item, Record
from consumers.writer import LedgerWriter
from contracts.kafka_clients import producer_options
from contracts.settings import Settings

TPO = tuple[str, int, int]


class StampingWriter(LedgerWriter):
    """The real writer; each record's commit time is noted when its batch transaction has committed."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.stamps: list[tuple[str, int, int, int]] = []
        #: per batch: (records, transaction start ns, commit ns), to see what bounds the latency
        self.batches: list[tuple[int, int, int]] = []

    async def _write(
        self, records: list[Record], decoded: list[Item] | None = None
    ) -> tuple[BatchResult, dict[tuple[str, int], int]]:
        begun = time.monotonic_ns()
        out = await super()._write(records, decoded)
        now = time.monotonic_ns()
        self.stamps.extend((r.topic, r.partition, r.offset, now) for r in records)
        self.batches.append((len(records), begun, now))
        return out


async def run_latency_writer(spec: Spec) -> Result:
    """Runs until SIGTERM, then writes its commit stamps to ``params['stamps']``."""
    sql = SqlStats(spec.params.get("writer_settings"))
    sql.patch_writer()
    writer = StampingWriter(spec.settings)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    started = time.perf_counter()
    stats = await writer.run(stop=stop)
    await asyncio.to_thread(Path(spec.params["stamps"]).write_text, json.dumps(writer.stamps))
    return rate_result(
        stats.result.consumed,
        time.perf_counter() - started,
        batches=stats.batches,
        batch_log=writer.batches,
        sql=sql.summary(),
    )


def load_stamps(path: Path) -> dict[TPO, int]:
    return {(t, p, o): ns for t, p, o, ns in json.loads(path.read_text())}


async def pace(
    producer: AIOKafkaProducer, stream: Sequence[StreamRecord], prefix: str, rate: float, seconds: float
) -> tuple[list[tuple[TPO, int]], float]:
    """Send ``stream`` (cycled) at ``rate`` records/s for ``seconds``; returns ((t, p, o), send ns) and the
    achieved rate."""
    total = int(rate * seconds)
    futures: list[tuple[int, asyncio.Future[Any]]] = []
    start = time.monotonic_ns()
    sent = 0
    while sent < total:
        due = min(total, int((time.monotonic_ns() - start) / 1e9 * rate) + 1)
        while sent < due:
            r = stream[sent % len(stream)]
            stamp = time.monotonic_ns()
            fut = await producer.send(r.topic(prefix), r.value, key=r.key, headers=list(r.headers))
            futures.append((stamp, fut))
            sent += 1
        await asyncio.sleep(0.001)
    elapsed = (time.monotonic_ns() - start) / 1e9
    out = []
    for stamp, fut in futures:
        md = await fut
        out.append(((md.topic, md.partition, md.offset), stamp))
    return out, sent / elapsed if elapsed > 0 else 0.0


def percentiles(values_ms: Sequence[float]) -> dict[str, float]:
    """Nearest-rank percentiles (p50, p95, p99, p99.9), max and mean, in milliseconds."""
    if not values_ms:
        return {}
    v = sorted(values_ms)

    def rank(q: float) -> float:
        return v[min(len(v) - 1, max(0, round(q * len(v) + 0.5) - 1))]

    return {
        "p50_ms": round(rank(0.50), 2),
        "p95_ms": round(rank(0.95), 2),
        "p99_ms": round(rank(0.99), 2),
        "p99_9_ms": round(rank(0.999), 2),
        "max_ms": round(v[-1], 2),
        "mean_ms": round(sum(v) / len(v), 2),
        "samples": len(v),
    }


def batch_summary(batch_log: Sequence[Sequence[int]], sends: Sequence[tuple[TPO, int]]) -> dict[str, float]:
    """The writer's batches that committed while this level was being sent: how many, how large, how long
    each transaction took (ms). Explains a latency: small batches with long transactions mean a per-batch
    cost; large ones mean a backlog."""
    if not sends:
        return {}
    first, last = min(s for _, s in sends), max(s for _, s in sends)
    mine = [(n, (end - begun) / 1e6) for n, begun, end in batch_log if first <= end <= last]
    if not mine:
        return {"count": 0}
    sizes = sorted(n for n, _ in mine)
    ms = sorted(t for _, t in mine)
    return {
        "count": len(mine),
        "records_mean": round(sum(sizes) / len(sizes), 1),
        "records_max": sizes[-1],
        "txn_ms_p50": round(ms[len(ms) // 2], 2),
        "txn_ms_max": round(ms[-1], 2),
        "busy_pct": round(100 * sum(ms) / ((last - first) / 1e6), 1) if last > first else 0.0,
    }


def latencies_ms(sends: Sequence[tuple[TPO, int]], commits: dict[TPO, int]) -> tuple[list[float], int]:
    """Per-record latency in ms, and how many sent records have no commit stamp (should be 0)."""
    out, missing = [], 0
    for tpo, sent in sends:
        committed = commits.get(tpo)
        if committed is None:
            missing += 1
        else:
            out.append((committed - sent) / 1e6)
    return out, missing


async def new_producer(settings: Settings) -> AIOKafkaProducer:
    producer = AIOKafkaProducer(**producer_options(settings))
    await producer.start()
    return producer
