"""Replay's decode workers give exactly the in-process verdicts, in order, and never lose records quietly
(no Kafka, no database: worker processes only)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

import consumers.decode_workers as dw
from cli.workload import build, topic_of
from consumers.decode_workers import Decoded, DecodePool, DecodeWorkerError, summarize, worker_count
from consumers.pipeline import Pipeline, Record
from contracts.codec import encode
from contracts.settings import Settings

SETTINGS = Settings(topic_prefix="unit.")


def stream() -> list[Record]:
    """Good events, duplicates, every class of bad input, a tombstone and an event on the wrong topic."""
    w = build(tenants=2, users_per_tenant=3, events=120, run_id="decodeworkers")
    offsets: dict[str, int] = {}

    def record(topic: str, key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]]) -> Record:
        offsets[topic] = offsets.get(topic, -1) + 1
        return Record(topic, 0, offsets[topic], key, value, tuple(headers))

    out = []
    for event in w.good + w.duplicates:
        enc = encode(event)
        out.append(record(event.spec.topic(SETTINGS.topic_prefix), enc.key, enc.value, enc.headers))
    out += [record(topic_of(r.ledger, SETTINGS.topic_prefix), r.key, r.value, ()) for r in w.bad]
    first = encode(w.events[0])
    out.append(record(w.events[0].spec.topic(SETTINGS.topic_prefix), first.key, None, ()))
    out.append(record(f"{SETTINGS.topic_prefix}elsewhere", first.key, first.value, first.headers))
    return out


def essence(d: Decoded) -> tuple[Any, ...]:
    """Everything replay uses of a verdict (the in-process path also carries the event and row)."""
    return (d.record, d.ledger, d.event_id, d.tenant_id, d.content_sha256, d.projected, d.reason, d.detail)


@pytest.fixture
async def workers(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[DecodePool]:
    monkeypatch.setattr(dw, "CHUNK_RECORDS", 7)  # many chunks per call: order across chunks and workers
    pool = DecodePool(Pipeline(SETTINGS), 2, min_batch=1)
    await pool.start()
    assert pool.active, "the workers did not start"
    try:
        yield pool
    finally:
        pool.close()


async def test_workers_give_the_in_process_verdicts_in_order(workers: DecodePool) -> None:
    records = stream()
    pipeline = Pipeline(SETTINGS)
    expected = [essence(d) for d in summarize(pipeline, pipeline.decode(records))]
    got = await workers.decode(records)
    assert workers.in_workers == len(records)
    assert [essence(d) for d in got] == expected
    assert [d.record for d in got] == records
    # The stream has valid events, events a shadow projection needs, and dead-letter verdicts.
    assert {d.ledger is None for d in got} == {True, False}
    assert any(d.projected for d in got)


async def test_a_bad_record_gets_the_writers_dead_letter_verdict(workers: DecodePool) -> None:
    good = stream()[0]
    bad = Record(good.topic, 0, 99, good.key, b"\xff not json", good.headers)
    (verdict,) = await workers.decode([bad])
    assert verdict.ledger is None and verdict.event_id is None
    assert verdict.reason == "EVENT_UNDECODABLE"
    (again,) = Pipeline(SETTINGS).decode([bad])
    assert (verdict.reason, verdict.detail) == (again.reason, again.detail)


async def test_small_batches_are_decoded_in_process(workers: DecodePool) -> None:
    workers.min_batch = 50
    records = stream()[:10]
    got = await workers.decode(records)
    assert workers.in_workers == 0
    assert all(d.event is not None for d in got)  # decoded here: the event is at hand


async def test_a_dead_worker_fails_the_decode(workers: DecodePool) -> None:
    records = stream()
    await workers.decode(records[:20])
    for pid in workers.worker_pids():
        os.kill(pid, signal.SIGKILL)
    with pytest.raises(DecodeWorkerError, match="died"):
        await workers.decode(records)


async def test_a_hung_worker_times_out_instead_of_blocking_replay(workers: DecodePool) -> None:
    """A worker that stops answering (SIGSTOP: alive, never dies) fails the decode within the timeout, and the
    pool is gone (closing it does not wait for the hung process)."""
    records = stream()
    await workers.decode(records[:20])
    workers.timeout_s = 1.0
    pids = workers.worker_pids()
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    started = time.monotonic()
    try:
        with pytest.raises(DecodeWorkerError, match="no answer for 1s"):
            await asyncio.wait_for(workers.decode(records), 30)
    finally:
        for pid in pids:  # killed by the pool; this only matters when the test fails
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert time.monotonic() - started < 10
    assert not workers.active
    workers.close()


async def test_workers_that_cannot_start_leave_decoding_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_processes(method: str) -> Any:
        raise OSError(f"no {method} here")

    monkeypatch.setattr("multiprocessing.get_context", no_processes)
    pool = DecodePool(Pipeline(SETTINGS), 2, min_batch=1)
    await pool.start()
    assert not pool.active
    records = stream()
    pipeline = Pipeline(SETTINGS)
    assert [essence(d) for d in await pool.decode(records)] == [
        essence(d) for d in summarize(pipeline, pipeline.decode(records))
    ]
    pool.close()


def test_worker_count_setting() -> None:
    assert worker_count(0) == 0
    assert worker_count(3) == 3
    cores = os.cpu_count() or 1
    assert worker_count(None) == (min(4, cores) if cores > 1 else 0)
    assert Settings.from_env({}).replay_decode_workers is None
    assert Settings.from_env({"SELENE_REPLAY_DECODE_WORKERS": "auto"}).replay_decode_workers is None
    assert Settings.from_env({"SELENE_REPLAY_DECODE_WORKERS": "2"}).replay_decode_workers == 2
