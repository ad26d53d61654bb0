"""``python -m bench.compression``: the publisher's throughput and the broker's bytes per codec.

For choosing ``SELENE_KAFKA_COMPRESSION``'s default. Rounds alternate the codecs (none, gzip, snappy, lz4,
zstd) over the same events so that drift in the machine's load spreads over all of them; each round
publishes into fresh topics, and the bytes are the topics' log sizes on the local broker (the measure of
disk and network the codec saves). Prints a Markdown table; nothing is kept.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from dataclasses import replace

from cli.workload import build
from contracts.settings import KAFKA_CODECS, Settings
from producers.publisher import Publisher
from producers.topics import ensure_topics
from services import local


def _log_bytes(prefix: str) -> int:
    data = local.kafka_node().data_dir
    return sum(f.stat().st_size for d in data.glob(f"{prefix}*") for f in d.glob("*.log"))


async def _round(base: Settings, codec: str, events: list) -> tuple[float, int]:  # type: ignore[type-arg]
    prefix = f"bc{uuid.uuid4().hex[:8]}."
    settings = replace(base, topic_prefix=prefix, kafka_compression=codec)
    await ensure_topics(settings)
    async with Publisher(settings) as publisher:
        started = time.perf_counter()
        for i in range(0, len(events), 2000):
            _, refused = await publisher.publish_many(events[i : i + 2000])
            assert not refused
        rate = len(events) / (time.perf_counter() - started)
    return rate, _log_bytes(prefix)


async def main(events: int, rounds: int) -> None:
    base = Settings.from_env()
    w = build(tenants=3, users_per_tenant=3, events=events, bad=False, duplicate_ratio=0.0, run_id="bc")
    stream = [*w.foundation, *w.events]
    rates: dict[str, list[float]] = {c: [] for c in KAFKA_CODECS}
    sizes: dict[str, int] = {}
    for r in range(rounds):
        order = KAFKA_CODECS if r % 2 == 0 else tuple(reversed(KAFKA_CODECS))
        for codec in order:
            rate, size = await _round(base, codec, stream)
            rates[codec].append(rate)
            sizes[codec] = size
    print(f"{len(stream)} events, {rounds} rounds (median events/s; log bytes of one round)\n")
    print("| codec | publisher events/s (median) | min-max | log bytes | bytes vs none |")
    print("|---|---|---|---|---|")
    for codec in KAFKA_CODECS:
        rs = rates[codec]
        print(
            f"| {codec} | {statistics.median(rs):,.0f} | {min(rs):,.0f}-{max(rs):,.0f} | {sizes[codec]:,} | "
            f"{sizes[codec] / sizes['none']:.2f} |"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.compression", description=__doc__)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.events, args.rounds))
