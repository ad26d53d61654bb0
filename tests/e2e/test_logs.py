"""Lifecycle log lines with their fields, in text and JSON; progress redrawn only on a terminal."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pty
import subprocess
import threading
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from cli.logs import JsonFormatter, TextFormatter
from cli.workload import build
from consumers.offsets import OffsetStore
from consumers.writer import LedgerWriter
from contracts.reasons import ReasonCode, RetriableError
from contracts.registry import LEDGERS
from contracts.settings import Settings
from tests.e2e.helpers import CLI, cli_env, publish, send_raw

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


async def consume(settings: Settings, *options: str, **run: Any) -> subprocess.CompletedProcess[str]:
    run_: Any = subprocess.run  # to_thread cannot type subprocess.run's overloads
    return await asyncio.to_thread(
        run_, [*CLI, *options, "consume", "--until-caught-up"], env=cli_env(settings), cwd=ROOT,
        capture_output=True, text=True, timeout=180, check=False, stdin=subprocess.DEVNULL, **run,
    )  # fmt: skip


async def test_lifecycle_lines_in_json_and_text_into_a_pipe(topics: Settings, run_id: str) -> None:
    w = build(tenants=1, users_per_tenant=1, events=20, run_id=run_id)
    await publish(topics, w.foundation + w.events)
    await send_raw(topics, w.bad)
    partitions = len(LEDGERS) * topics.topic_partitions

    done = await consume(topics, "--log-format", "json")
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr  # a pipe: no redrawn progress
    lines = [json.loads(line) for line in done.stderr.splitlines()]  # every line is one JSON object
    events: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        events.setdefault(line.get("event", ""), []).append(line)
    assert len(events["assigned"]) == partitions
    claimed = events["claimed"]
    assert len(claimed) == partitions
    assert all(isinstance(c["epoch"], int) and c["offset"] == 0 and c["level"] == "INFO" for c in claimed)
    assert {(c["topic"], c["partition"]) for c in claimed} == {
        (spec.topic(topics.topic_prefix), p) for spec in LEDGERS.values() for p in range(topics.topic_partitions)
    }
    dead = events["dead_letter"]
    assert sorted(d["reason"] for d in dead) == sorted(b.expected_reason for b in w.bad)
    assert all({"topic", "partition", "offset", "tenant"} <= d.keys() for d in dead)
    assert {d["tenant"] for d in dead if d["tenant"]} <= {w.events[0].tenant_id}
    assert events["caught_up"] and all("offset" in c for c in events["caught_up"])
    assert len(events["shutdown"]) == 1
    assert events["progress"]  # periodic plain lines instead of the redrawn one
    assert all(p["message"].startswith("progress: writer: consumed") for p in events["progress"])

    again = await consume(topics)  # text, nothing left to read: claims from the stored offsets
    assert again.returncode == 0, again.stderr
    assert "\r" not in again.stderr
    text = [line for line in again.stderr.splitlines() if "claimed partition" in line]
    assert len(text) == partitions
    assert all(" INFO selene.writer: claimed partition event=claimed topic=" in line for line in text), text
    assert all(" epoch=" in line and " offset=" in line for line in text)
    assert any("shutdown" in line and "writer stopped" in line for line in again.stderr.splitlines())


async def test_progress_is_redrawn_on_a_terminal(topics: Settings, run_id: str) -> None:
    w = build(tenants=1, users_per_tenant=1, events=10, bad=False, run_id=run_id)
    await publish(topics, w.foundation + w.events)
    leader, follower = pty.openpty()
    chunks: list[bytes] = []

    def drain_terminal() -> None:
        """Read the terminal while the writer runs: a pseudo-terminal holds only some 20 KB, and a writer
        claiming every ledger's partitions (a line each) blocked on a full one when it was read afterwards."""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the terminal's other side is closed and drained
                return
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=drain_terminal, daemon=True)
    reader.start()
    try:
        done = await asyncio.to_thread(
            subprocess.run, [*CLI, "consume", "--until-caught-up"], env=cli_env(topics), cwd=ROOT,
            stdout=subprocess.PIPE, stderr=follower, timeout=180, check=False, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        os.close(follower)
        follower = -1
        await asyncio.to_thread(reader.join, 30)
    finally:
        if follower >= 0:
            os.close(follower)
        reader.join(30)
        os.close(leader)
    out = b"".join(chunks)
    assert done.returncode == 0, out
    assert b"\rwriter: consumed" in out
    assert b"progress: writer:" not in out  # no periodic log lines on a terminal


async def test_retry_and_fenced_lines(topics: Settings, run_id: str, caplog: pytest.LogCaptureFixture) -> None:
    """A batch whose first attempt fails with an outage is retried with its reason; a newer claim in PostgreSQL
    (another writer's) fences the writer at the retry. Both lines carry topic, partition and offset, in both
    formats. (The outage is raised by hand: a terminated backend is replaced by the pool before it shows.)"""
    w = build(tenants=1, users_per_tenant=1, events=10, bad=False, run_id=run_id)
    await publish(topics, w.foundation)
    writer = LedgerWriter(topics)
    apply = writer.pipeline.apply
    calls = 0

    async def down_once(conn: asyncpg.Connection, items: Any, **options: Any) -> Any:
        if calls == 1:
            raise RetriableError("the database went away", ReasonCode.DATABASE_UNAVAILABLE)
        return await apply(conn, items, **options)

    async def interfere() -> None:
        nonlocal calls
        calls += 1
        if calls == 2:  # another writer claims every partition before the retry
            conn = await asyncpg.connect(topics.database_url)
            try:
                async with conn.transaction():
                    await OffsetStore(topics.consumer_group, "another-writer").claim(conn, list(writer.claims))
            finally:
                await conn.close()

    writer.pipeline.apply = down_once  # type: ignore[method-assign]
    writer.before_write = interfere
    stop = asyncio.Event()
    with caplog.at_level(logging.INFO, logger="selene.writer"):
        task = asyncio.create_task(writer.run(stop=stop))
        try:
            for _ in range(600):
                if writer.stats.fenced_partitions:
                    break
                await asyncio.sleep(0.1)
        finally:
            stop.set()
            await task
    by_event = {getattr(r, "fields", {}).get("event"): r for r in caplog.records}
    retry, fenced = by_event["retry"], by_event["fenced"]
    assert retry.levelno == logging.WARNING and retry.fields["reason"]  # type: ignore[attr-defined]
    assert {"topic", "partition", "offset", "tenant"} <= retry.fields.keys()  # type: ignore[attr-defined]
    assert fenced.fields["epoch"] >= 1 and fenced.fields["topic"].startswith(topics.topic_prefix)  # type: ignore[attr-defined]
    as_json = json.loads(JsonFormatter().format(fenced))
    assert as_json["event"] == "fenced" and as_json["partition"] == fenced.fields["partition"]  # type: ignore[attr-defined]
    assert f" partition={fenced.fields['partition']}" in TextFormatter().format(fenced)  # type: ignore[attr-defined]
