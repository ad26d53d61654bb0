"""How the writer joins a batch fetched ahead with what arrived after it (pure: no Kafka, no database)."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest

from consumers.pipeline import Item, Record
from consumers.writer import LedgerWriter, Prepared, _Prefetch
from contracts.settings import Settings

A, B = ("t.a", 0), ("t.b", 0)


def _batch(offsets: dict[tuple[str, int], range], generations: dict[tuple[str, int], int]) -> Prepared:
    records = [Record(t, p, o, b"k", b"v") for (t, p), rng in offsets.items() for o in rng]
    return Prepared(records, [Item(r) for r in records], generations)


def test_followed_by_keeps_kafka_order_per_partition() -> None:
    first = _batch({A: range(3), B: range(2)}, {A: 1, B: 1})
    later = _batch({A: range(3, 5)}, {A: 1, B: 1})
    joined = first.followed_by(later)
    in_a = [(r.topic, r.offset) for r in joined.records if (r.topic, r.partition) == A]
    assert in_a == [("t.a", o) for o in range(5)]
    assert [i.record for i in joined.items] == joined.records
    assert joined.generations == {A: 1, B: 1}


def test_followed_by_leaves_out_records_of_a_partition_claimed_in_between() -> None:
    # A was claimed again after ``first`` was fetched (the consumer sought to PostgreSQL's offset): ``first``'s
    # records of A may not continue from there, so they go; B's stay.
    first = _batch({A: range(10, 13), B: range(2)}, {A: 1, B: 1})
    later = _batch({A: range(5, 7)}, {A: 2, B: 1})
    joined = first.followed_by(later)
    assert [(r.topic, r.offset) for r in joined.records] == [("t.b", 0), ("t.b", 1), ("t.a", 5), ("t.a", 6)]
    assert joined.generations == {A: 2, B: 1}


def test_followed_by_leaves_out_records_fetched_before_the_first_claim() -> None:
    first = _batch({A: range(50, 52)}, {})  # fetched from Kafka's position before the writer claimed A
    later = _batch({B: range(1)}, {A: 1, B: 1})
    assert [(r.topic, r.offset) for r in first.followed_by(later).records] == [("t.b", 0)]


def test_followed_by_an_empty_fetch_is_the_batch_itself() -> None:
    first = _batch({A: range(2)}, {A: 1})
    assert first.followed_by(_batch({}, {A: 3})) is first


class _Fetches:
    """Stands in for ``LedgerWriter`` as ``_Prefetch`` sees it: settings and ``_prepare`` (scripted fetches)."""

    def __init__(self, fetches: list[Prepared | Exception], batch_max_records: int = 5) -> None:
        self.settings = Settings(batch_max_records=batch_max_records)
        self.fetches = fetches
        self.asked: list[int] = []

    async def _prepare(
        self, timeout_ms: int = 300, max_records: int | None = None, prefetch: object = None
    ) -> Prepared:
        self.asked.append(max_records or 0)
        if not self.fetches:
            await asyncio.sleep(timeout_ms / 1000)
            return _batch({}, {})
        nxt = self.fetches.pop(0)
        if isinstance(nxt, Exception):
            raise nxt
        return nxt


async def test_prefetch_hands_over_everything_fetched_since_the_last_batch_up_to_a_batch() -> None:
    fetches = _Fetches(
        [_batch({A: range(2)}, {A: 1}), _batch({A: range(2, 5)}, {A: 1}), _batch({A: range(5, 7)}, {A: 1})]
    )
    prefetch = _Prefetch(cast(LedgerWriter, fetches))
    try:
        await asyncio.sleep(0.05)  # all three fetches are made, but the buffer holds one batch at most
        first = await prefetch.take()
        assert [r.offset for r in first.records] == [0, 1, 2, 3, 4]
        assert fetches.asked[:2] == [5, 3]  # each fetch asks only for the room left
        second = await prefetch.take()
        assert [r.offset for r in second.records] == [5, 6]
        assert (await prefetch.take(wait_seconds=0.05)).records == []
    finally:
        await prefetch.close()


async def test_prefetch_raises_a_failed_fetch_in_the_writers_loop() -> None:
    prefetch = _Prefetch(cast(LedgerWriter, _Fetches([_batch({A: range(2)}, {A: 1}), RuntimeError("broker gone")])))
    try:
        await asyncio.sleep(0.05)
        with pytest.raises(RuntimeError, match="broker gone"):
            await prefetch.take()
    finally:
        await prefetch.close()
