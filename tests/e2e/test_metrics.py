"""The metrics and health endpoints of a real running writer, scraped over HTTP and checked against the
ledgers and dead letters in PostgreSQL; ready and not-ready cases."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cli import logs
from cli.main import build_parser, cmd_rebuild, cmd_replay
from cli.workload import build
from consumers.metrics import HealthBounds, WriterMetrics
from consumers.writer import LedgerWriter
from contracts.registry import LEDGERS
from contracts.settings import Settings
from tests.e2e.helpers import CLI, cli_env, publish, send_raw

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


async def get(port: int, path: str) -> tuple[int, str]:
    return await asyncio.to_thread(_get, port, path)


async def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics``, by name and sorted labels."""
    status, text = await get(port, "/metrics")
    assert status == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in samples.items() if n == name and labels.items() <= dict(ls).items())


async def until(check: Callable[[], Any], what: str, seconds: float = 120) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.5)


@asynccontextmanager
async def served(writer: LedgerWriter, settings: Settings, bounds: HealthBounds) -> AsyncIterator[int]:
    """The writer running in the background with its metrics served on a free port."""
    metrics = WriterMetrics(writer, settings, bounds, lag_every=0.5, dead_letters_every=0.5)
    stop = asyncio.Event()
    async with metrics.serve("127.0.0.1:0") as server:
        task = asyncio.create_task(writer.run(stop=stop))
        try:
            yield server.port
        finally:
            stop.set()
            await task


async def test_scraped_figures_match_the_ledgers_and_dead_letters(
    topics: Settings, operator_db: asyncpg.Connection, run_id: str
) -> None:
    w = build(tenants=2, users_per_tenant=2, events=80, run_id=run_id)
    tenants = sorted({e.tenant_id for e in w.good})
    await publish(topics, w.foundation + w.events)
    await send_raw(topics, w.bad)
    await publish(topics, w.events[:10])  # redelivered: deduplicated
    sent = len(w.foundation) + len(w.events) + len(w.bad) + 10
    writer = LedgerWriter(topics)
    async with served(writer, topics, HealthBounds()) as port:

        async def settled() -> Any:
            s = await scrape(port)
            if total(s, "selene_writer_records_consumed_total") < sent or not total(
                s, "selene_dead_letters_refreshed_timestamp_seconds"
            ):
                return None
            status, body = await get(port, "/health/ready")
            return (s, status, body) if status == 200 and "caught up" in body else None

        await until(settled, "every record consumed and the writer ready")
        await asyncio.sleep(1.5)  # one more refresh of the dead letters, after the last batch
        s = await scrape(port)
        stats = writer.stats

        assert total(s, "selene_writer_records_consumed_total") == sent
        for name, spec in LEDGERS.items():
            rows = await operator_db.fetchval(f"SELECT count(*) FROM {spec.table} WHERE tenant_id = ANY($1)", tenants)
            assert total(s, "selene_writer_appended_total", ledger=name) == rows, name
        assert total(s, "selene_writer_deduplicated_total") == 10
        letters = await operator_db.fetch(
            "SELECT reason_code, coalesce(tenant_id, '') AS tenant, status FROM selene_ops.dead_letters "
            "WHERE source_topic LIKE $1",
            topics.topic_prefix + "%",
        )
        by_reason = Counter(r["reason_code"] for r in letters)
        assert by_reason == Counter(b.expected_reason for b in w.bad)
        for reason, n in by_reason.items():
            assert total(s, "selene_writer_dead_lettered_total", reason=reason) == n, reason
        still_open = Counter(
            (r["reason_code"], r["tenant"]) for r in letters if r["status"] in ("OPEN", "HELD", "REJECTED")
        )
        scraped_open = {
            (dict(ls)["reason"], dict(ls)["tenant"]): v for (n, ls), v in s.items() if n == "selene_dead_letters_open"
        }
        assert scraped_open == still_open and still_open

        partitions = len(LEDGERS) * topics.topic_partitions
        assert total(s, "selene_writer_partitions_owned") == partitions
        assert total(s, "selene_writer_partitions_claimed_total") >= partitions
        lags = {ls: v for (n, ls), v in s.items() if n == "selene_writer_lag_records"}
        assert len(lags) == partitions and set(lags.values()) == {0}
        assert total(s, "selene_writer_batch_records_sum") == sent
        assert total(s, "selene_writer_batch_records_count") == stats.batches
        assert total(s, "selene_writer_batch_seconds_count") == stats.batches
        assert total(s, "selene_writer_produce_to_commit_seconds_count") == sent  # every record has a timestamp
        assert total(s, "selene_writer_ready") == 1
        assert (await get(port, "/health/live"))[0] == 200
        assert json.loads((await get(port, "/health/ready"))[1]) == {
            "status": "ok",
            "reason": "caught up: nothing to read",
        }
        assert (await get(port, "/nowhere"))[0] == 404


async def test_not_ready_while_far_behind_then_ready(topics: Settings, run_id: str) -> None:
    """A writer that cannot commit (held before its first write) with more records waiting than the bound."""
    w = build(tenants=1, users_per_tenant=1, events=40, bad=False, run_id=run_id)
    await publish(topics, w.foundation + w.events)
    sent = len(w.foundation) + len(w.events)
    gate = asyncio.Event()
    writer = LedgerWriter(topics)

    async def held() -> None:
        await gate.wait()

    writer.before_write = held
    async with served(writer, topics, HealthBounds(max_lag=5)) as port:
        try:
            await _behind_then_ready(port, sent, gate)
        finally:
            gate.set()  # (a failed check must not leave the writer held: it could not stop)


async def _behind_then_ready(port: int, sent: int, gate: asyncio.Event) -> None:
    async def behind() -> Any:
        s = await scrape(port)
        return s if total(s, "selene_writer_lag_records") == sent else None

    s = await until(behind, "the lag of every published record")
    status, body = await get(port, "/health/ready")
    assert status == 503, body
    assert json.loads(body)["reason"].startswith(f"lag {sent} records above 5"), body
    assert total(s, "selene_writer_ready") == 0
    assert (await get(port, "/health/live"))[0] == 200  # alive, only not ready

    gate.set()

    async def ready() -> Any:
        return (await get(port, "/health/ready"))[0] == 200

    await until(ready, "ready once the batches land")
    assert total(await scrape(port), "selene_writer_records_consumed_total") == sent


async def test_not_ready_without_partitions(settings: Settings) -> None:
    """Running, but the group assigned nothing (here: the topics do not exist)."""
    writer = LedgerWriter(settings)
    async with served(writer, settings, HealthBounds()) as port:
        await asyncio.sleep(3)
        status, body = await get(port, "/health/ready")
        assert status == 503 and "no partitions claimed" in json.loads(body)["reason"], body
        assert (await get(port, "/health/live"))[0] == 200


async def test_consume_serves_metrics_from_the_cli(topics: Settings, run_id: str) -> None:
    """``consume --metrics`` as deployed: the endpoints answer, SIGTERM stops it cleanly."""
    port = 18000 + int(run_id[:4], 16) % 1000  # below the ephemeral range
    w = build(tenants=1, users_per_tenant=1, events=10, bad=False, run_id=run_id)
    await publish(topics, w.foundation + w.events)
    proc = await asyncio.create_subprocess_exec(
        *CLI, "consume", "--metrics", f"127.0.0.1:{port}", env=cli_env(topics), cwd=ROOT,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:

        async def consumed() -> Any:
            try:
                s = await scrape(port)
            except OSError:
                return None
            return s if total(s, "selene_writer_records_consumed_total") == len(w.foundation) + len(w.events) else None

        await until(consumed, "the CLI writer's metrics")
        assert (await get(port, "/health/live"))[0] == 200
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert "Traceback" not in err.decode()


async def test_status_as_a_probe(topics: Settings, run_id: str) -> None:
    """``status --max-lag`` exits 5 and ``--max-dead-letters`` 6 above their bound, 0 within it."""
    w = build(tenants=1, users_per_tenant=1, events=20, run_id=run_id)
    await publish(topics, w.foundation + w.events)
    await send_raw(topics, w.bad)
    sent = len(w.foundation) + len(w.events) + len(w.bad)

    async def status(*args: str) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(
            subprocess.run, [*CLI, "status", *args], env=cli_env(topics), cwd=ROOT, capture_output=True,
            text=True, timeout=120, check=False,
        )  # fmt: skip

    behind = await status("--max-lag", str(sent - 1))
    assert behind.returncode == 5, behind
    assert behind.stderr.strip() == f"status: lag {sent} above --max-lag {sent - 1}"
    assert (await status("--max-lag", str(sent), "--max-dead-letters", "0")).returncode == 0  # none yet

    await LedgerWriter(topics).run(until_caught_up=True)
    letters = await status("--json", "--max-lag", "0", "--max-dead-letters", str(len(w.bad) - 1))
    assert letters.returncode == 6, letters
    assert json.loads(letters.stdout)["open_dead_letters"] == len(w.bad)
    assert (await status("--max-lag", "0", "--max-dead-letters", str(len(w.bad)))).returncode == 0


async def test_replay_and_rebuild_serve_their_progress(
    topics: Settings, run_id: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``replay --metrics`` and ``rebuild --metrics`` (the CLI's handlers, in process): at each progress report
    the endpoint shows the figures of that report."""
    w = build(tenants=1, users_per_tenant=1, events=30, bad=False, run_id=run_id)
    await publish(topics, w.foundation + w.events)
    await LedgerWriter(topics).run(until_caught_up=True)
    sent = len(w.foundation) + len(w.events)
    port = 18000 + int(run_id[4:8], 16) % 1000
    seen: list[tuple[str, Any, tuple[int, str]]] = []

    def printer(render: Any, *, label: str, **_: Any) -> Callable[[Any], None]:
        def report(_stats: Any) -> None:  # (a blocking scrape: the server answers from its own thread)
            _, text = _get(port, "/metrics")
            samples = {s.name: s for f in text_string_to_metric_families(text) for s in f.samples}
            seen.append((label, samples, _get(port, "/health/ready")))

        return report

    monkeypatch.setattr(logs, "progress_printer", printer)
    tenant = w.events[0].tenant_id
    replay = build_parser().parse_args(["replay", "--verify", "--tenant", tenant, "--metrics", f"127.0.0.1:{port}"])
    assert await cmd_replay(replay, topics) == 0
    rebuild = build_parser().parse_args(["rebuild", "--verify", "--tenant", tenant, "--metrics", f"127.0.0.1:{port}"])
    capsys.readouterr()
    assert await cmd_rebuild(rebuild, topics) == 0
    match = re.search(r"^rebuild: (\d+) ledger events", capsys.readouterr().out, re.MULTILINE)
    assert match, "no summary line"
    rebuilt = int(match[1])  # (the ledgers its projections read)

    last = {label: (samples, ready) for label, samples, ready in seen}
    samples, ready = last["replay"]
    assert samples["selene_shadow_run_records_read"].value == sent
    assert samples["selene_shadow_run_records_read"].labels == {"run": "replay"}
    assert samples["selene_shadow_run_records_total"].value == sent
    assert ready == (200, json.dumps({"status": "ok", "reason": f"replay: read {sent} of {sent}"}) + "\n")
    samples, ready = last["rebuild"]
    assert 0 < samples["selene_shadow_run_records_read"].value == rebuilt
    assert ready[0] == 200 and json.loads(ready[1])["reason"] == f"rebuild: read {rebuilt}"
