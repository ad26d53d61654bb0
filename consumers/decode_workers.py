"""Replay's decoding, in worker processes: the writer's verdict and the content hash of every record.

Replay is decode-bound in one Python thread (contract validation, the canonical payload, its hash), while
applying is cheap: replay only needs, per record, the verdict ``Pipeline.decode`` gives and, for a valid
event, its ledger, tenant, id and content hash. Workers run that very ``Pipeline.decode`` (so verdicts and
hashes cannot drift from the writer's) and send back only those few values: pydantic models of the
contracts are not picklable, and most events feed no shadow projection anyway. The few events replay needs
whole (those a shadow projection handles, and records missing from the ledger) are decoded again here from
the record's bytes by the same decoder.

Workers start from a ``forkserver`` (never ``fork``: the caller runs an event loop and client threads);
if they cannot start, decoding stays in this process. Once started, a worker that dies fails the replay
with ``DecodeWorkerError``: nothing is skipped silently. So does a worker that hangs (stopped, deadlocked):
when no chunk of a fetch comes back for ``timeout_s`` seconds, the workers are killed and the replay stops,
instead of waiting forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import uuid
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from consumers.ledger import LedgerRow
from consumers.pipeline import Item, Pipeline, Record
from contracts.envelope import LedgerEvent
from contracts.reasons import ReasonCode, SeleneError
from contracts.settings import Settings

log = logging.getLogger("selene.replay")

#: Records per task sent to a worker: a fetch of 5000 is cut in several, so that a worker starts on the first
#: part while the rest is still being pickled and several workers share one fetch.
CHUNK_RECORDS = 500
#: Fetches smaller than this are decoded in this process (e.g. the remainder read while the writers are
#: paused): below it the round trip to a worker costs more than it saves.
MIN_WORKER_BATCH = 200
#: How long workers may take to start (import the contracts, build the decoder) before replay gives up on
#: them and decodes in this process.
START_TIMEOUT_S = 60.0
#: How long a fetch's decoding may go without any chunk coming back before the workers count as hung. A chunk
#: is ``CHUNK_RECORDS`` records of at most ``max_event_bytes`` each: tens of milliseconds normally, seconds on
#: a starved machine, so a minute means stuck.
DECODE_TIMEOUT_S = 60.0

# What travels: a record as (topic, partition, offset, key, value, headers); a verdict as
# (ledger, event id bytes, tenant, content hash, projected) for a valid event or (None, reason, detail).
WireRecord = tuple[str, int, int, bytes | None, bytes | None, tuple[tuple[str, bytes], ...]]
WireVerdict = tuple[Any, ...]


class DecodeWorkerError(SeleneError):
    """A decode worker died or hung: the replay cannot know what the records it held would have been."""


@dataclass(slots=True)
class Decoded:
    """One record as replay needs it: the writer's verdict and, for a valid event, what identifies it."""

    record: Record
    ledger: str | None = None  # None: the writer would have dead-lettered the record (``reason``)
    event_id: uuid.UUID | None = None
    tenant_id: str | None = None
    content_sha256: bytes = b""
    projected: bool = False  # a shadow projection handles the event: replay needs the event itself
    reason: ReasonCode | None = None
    detail: str = ""
    event: LedgerEvent | None = None  # when decoded in this process (else decoded on demand)
    row: LedgerRow | None = None


def summarize(pipeline: Pipeline, items: Sequence[Item]) -> list[Decoded]:
    """Pipeline items -> ``Decoded`` (the in-process path; the workers send the same values)."""
    projections = [p for p in pipeline.projections if not p.live_only]
    out = []
    for item in items:
        event, row = item.event, item.row
        if item.outcome == "dead" or event is None or row is None:
            out.append(Decoded(item.record, reason=item.reason, detail=item.detail))
            continue
        projected = any(p.handles(event) for p in projections)
        out.append(
            Decoded(
                item.record, event.ledger, event.event_id, event.tenant_id, row.content_sha256, projected,
                event=event, row=row,
            )
        )  # fmt: skip
    return out


def worker_count(setting: int | None) -> int:
    """``replay_decode_workers`` resolved; 0 means decode in this process. None: one worker per core, at most
    four, none on one core. Not one fewer than the cores: this process needs about half a core (reading Kafka,
    applying), so on two cores a single worker left a share of the machine idle and two did not (bench replay
    mode, 2 cores: ~8 k records/s with one worker, ~10.7 k with two, ~5 k decoding here)."""
    if setting is not None:
        return max(0, setting)
    cores = os.cpu_count() or 1
    return min(4, cores) if cores > 1 else 0


# -- the worker side ----------------------------------------------------------------------------------------
_pipeline: Pipeline | None = None


def _init_worker(settings: Settings) -> None:
    global _pipeline  # one per worker process, built once by the pool's initializer
    _pipeline = Pipeline(settings)


def _ping() -> int:
    return os.getpid()


def _decode_chunk(records: list[WireRecord]) -> list[WireVerdict]:
    """In a worker: ``Pipeline.decode`` of ``records``, reduced to what replay needs (see ``WireVerdict``)."""
    assert _pipeline is not None, "the pool's initializer builds the pipeline"
    items = _pipeline.decode(Record(t, p, o, k, v, h) for t, p, o, k, v, h in records)
    out: list[WireVerdict] = []
    for d in summarize(_pipeline, items):
        if d.ledger is None:
            out.append((None, d.reason, d.detail))
        else:
            assert d.event_id is not None
            out.append((d.ledger, d.event_id.bytes, d.tenant_id, d.content_sha256, d.projected))
    return out


# -- the replay side ---------------------------------------------------------------------------------------
class DecodePool:
    """Decodes fetched records for replay, in ``workers`` processes, or in this process (see the module)."""

    def __init__(
        self, pipeline: Pipeline, workers: int, *, min_batch: int | None = None, timeout_s: float | None = None
    ) -> None:
        """``timeout_s``: how long decoding may make no progress before the workers count as hung."""
        self.pipeline = pipeline
        self.workers = workers
        self.min_batch = MIN_WORKER_BATCH if min_batch is None else min_batch
        self.timeout_s = DECODE_TIMEOUT_S if timeout_s is None else timeout_s
        self.in_workers = 0  # records the workers decoded
        self._executor: ProcessPoolExecutor | None = None

    @property
    def active(self) -> bool:
        """True when decoding happens in worker processes."""
        return self._executor is not None

    def worker_pids(self) -> list[int]:
        """The workers' process ids (for operators and tests)."""
        executor: Any = self._executor
        return list(executor._processes) if executor is not None else []  # no public accessor

    async def start(self) -> None:
        """Start the workers and wait until each answers; on failure, decode in this process instead."""
        if self.workers <= 0:
            return
        try:
            context = multiprocessing.get_context("forkserver")
            # The forkserver imports this module once; each worker is a fork of it, so starts are cheap.
            context.set_forkserver_preload([__name__])
            executor = ProcessPoolExecutor(
                self.workers, mp_context=context, initializer=_init_worker, initargs=(self.pipeline.settings,)
            )
        except (OSError, ValueError) as exc:
            log.warning("replay: decode workers unavailable (%s); decoding in this process", exc)
            return
        self._executor = executor
        try:
            loop = asyncio.get_running_loop()
            pings = [loop.run_in_executor(executor, _ping) for _ in range(self.workers)]
            await asyncio.wait_for(asyncio.gather(*pings), START_TIMEOUT_S)
        except (OSError, BrokenProcessPool, TimeoutError) as exc:
            log.warning("replay: decode workers did not start (%r); decoding in this process", exc)
            self.close()

    def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    def _kill(self) -> None:
        """Stop hung workers for good (SIGKILL also ends a stopped process) and drop the pool without waiting
        for them: ``shutdown(wait=True)`` would wait for the hung worker forever."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        for pid in list(getattr(executor, "_processes", None) or {}):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        executor.shutdown(wait=False, cancel_futures=False)  # pending work fails with the pool (see _gather)

    async def decode(self, records: Sequence[Record]) -> list[Decoded]:
        """Every record's verdict, in the order given."""
        executor = self._executor
        if executor is None or len(records) < self.min_batch:
            return summarize(self.pipeline, await self.pipeline.decode_yielding(records))
        loop = asyncio.get_running_loop()
        chunks = [records[i : i + CHUNK_RECORDS] for i in range(0, len(records), CHUNK_RECORDS)]
        futures = [loop.run_in_executor(executor, _decode_chunk, [_wire(r) for r in c]) for c in chunks]
        try:
            answers = await self._gather(futures)
        except BrokenProcessPool as exc:
            raise DecodeWorkerError(f"a replay decode worker died; the replay stops ({exc})") from exc
        except DecodeWorkerError:
            raise  # the workers were killed: their futures fail with the pool, none is cancelled (see _gather)
        except BaseException:
            for f in futures:
                f.cancel()
            raise
        out: list[Decoded] = []
        for chunk, verdicts in zip(chunks, answers, strict=True):
            if len(verdicts) != len(chunk):
                raise DecodeWorkerError(f"a decode worker answered {len(verdicts)} verdicts for {len(chunk)} records")
            out.extend(_from_wire(r, v) for r, v in zip(chunk, verdicts, strict=True))
        self.in_workers += len(out)
        return out

    async def _gather(self, futures: list[asyncio.Future[list[WireVerdict]]]) -> list[list[WireVerdict]]:
        """The answers in order; ``DecodeWorkerError`` (and the workers killed) when none comes back for
        ``timeout_s`` seconds: a worker that hangs would otherwise block the replay forever."""
        pending: set[asyncio.Future[list[WireVerdict]]] = set(futures)
        while pending:
            done, pending = await asyncio.wait(pending, timeout=self.timeout_s, return_when=asyncio.FIRST_COMPLETED)
            if not done:
                # Not cancelled: cancelling the asyncio side cancels the executor's futures from this thread
                # while its management thread, seeing the killed workers, sets BrokenProcessPool on them
                # (InvalidStateError in that thread). They fail instead; their failure is retrieved here.
                for f in pending:
                    f.add_done_callback(_retrieve)
                self._kill()
                raise DecodeWorkerError(
                    f"a replay decode worker gave no answer for {self.timeout_s:g}s (hung?); its workers were "
                    "killed and the replay stops"
                )
            for f in done:
                f.result()  # raises BrokenProcessPool when a worker died
        return [f.result() for f in futures]


def _retrieve(f: asyncio.Future[Any]) -> None:
    """Take a given-up future's outcome, so it is not reported as never retrieved."""
    if not f.cancelled():
        f.exception()


def _wire(r: Record) -> WireRecord:
    return (r.topic, r.partition, r.offset, r.key, r.value, r.headers)


def _from_wire(record: Record, v: WireVerdict) -> Decoded:
    if v[0] is None:
        return Decoded(record, reason=v[1], detail=v[2])
    return Decoded(record, v[0], uuid.UUID(bytes=v[1]), v[2], v[3], v[4])
