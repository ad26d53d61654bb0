"""Load and process control for the fault drills: a producer that records every acknowledgement, and
writer processes that can be killed, stopped and continued."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from contracts.envelope import LedgerEvent
from contracts.settings import Settings
from producers.publisher import Publisher
from tests.e2e.helpers import CLI, cli_env
from tests.faults.checker import Ack

ROOT = Path(__file__).resolve().parents[2]
STORED = "SELECT coalesce(sum(next_offset), 0) FROM selene_ops.consumer_offsets WHERE consumer_group = $1"


@dataclass
class Load:
    """Publishes ``events`` in chunks at a steady pace, recording acknowledgements; survives broker outages
    by retrying a chunk (the idempotent producer and the writer's dedupe make a retry safe)."""

    settings: Settings
    events: Sequence[LedgerEvent]
    chunk: int = 50
    pause: float = 0.1
    acks: list[Ack] = field(default_factory=list)
    unacked: set[str] = field(default_factory=set)
    errors: int = 0
    #: the chunks to publish, when the caller cuts them itself (``events`` and ``chunk`` are then unused)
    chunks: Sequence[Sequence[LedgerEvent]] | None = None

    async def run(self) -> None:
        publisher = Publisher(self.settings, request_timeout_ms=5000)
        await publisher.start()
        chunks = self.chunks
        if chunks is None:
            chunks = [self.events[i : i + self.chunk] for i in range(0, len(self.events), self.chunk)]
        try:
            for part in chunks:
                for _ in range(60):
                    try:
                        published, refused = await publisher.publish_many(part)
                        assert not refused, refused
                        break
                    except Exception:
                        self.errors += 1
                        self.unacked.update(str(e.event_id) for e in part)
                        await asyncio.sleep(0.5)
                else:
                    raise AssertionError("the broker never came back")
                self.acks += [
                    Ack(str(p.event.event_id), p.event.tenant_id, p.event.aggregate_id, p.event.ledger, p.partition,
                        p.offset)
                    for p in published
                ]  # fmt: skip
                await asyncio.sleep(self.pause)
        finally:
            await publisher.stop()


class WriterProcess:
    """``selene-ledger consume`` in a child process, with its output in a log file."""

    def __init__(self, settings: Settings, log: Path, *args: str) -> None:
        self.settings, self.log_path, self.args = settings, log, args
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        log = self.log_path.open("a")
        self.proc = await asyncio.create_subprocess_exec(
            *CLI, "consume", *self.args, env=cli_env(self.settings), cwd=ROOT, stdout=log, stderr=log,
            stdin=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        log.close()

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)

    async def kill(self) -> None:
        self.signal(signal.SIGKILL)
        await self.wait()

    async def terminate(self) -> None:
        self.signal(signal.SIGTERM)
        await self.wait()

    async def wait(self, limit: float = 60) -> int:
        assert self.proc is not None
        return await asyncio.wait_for(self.proc.wait(), limit)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


async def stored(conn: asyncpg.Connection, group: str) -> int:
    return int(await conn.fetchval(STORED, group))


async def wait_progress(conn: asyncpg.Connection, group: str, beyond: int, limit: float) -> float:
    """Seconds until the stored offsets of ``group`` pass ``beyond``; raises after ``limit``."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if await stored(conn, group) > beyond:
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise AssertionError(f"no progress past offset sum {beyond} within {limit:.0f}s")


async def end_offsets_sum(settings: Settings) -> int:
    from consumers.status import end_offsets
    from consumers.writer import ledger_topics

    return sum((await end_offsets(settings, ledger_topics(settings))).values())


async def wait_caught_up(conn: asyncpg.Connection, settings: Settings, limit: float = 120) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if await stored(conn, settings.consumer_group) >= await end_offsets_sum(settings):
            return
        await asyncio.sleep(0.2)
    raise AssertionError("the writer did not catch up")
