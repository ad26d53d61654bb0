"""``python -m bench run``: every mode on the local services, one after the other, in one run.

Order: set-up (fresh bench database, the workload template, topics filled), then L0, L1, L2 (database only),
L3 and drain (the same pre-filled topics), replay (of what drain wrote), naive, peer, peer_fair (the same sink
into a real ledger as the writer role), publisher, and last latency (paced at fractions of this run's drain
capacity). A mode that fails is recorded with its error and the run goes on. A CHECKPOINT precedes every
mode that writes PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench import latency as lat
from bench.env import BenchEnv, checkpoint, delete_run_topics, ensure_mode_topics, fresh_database, postgres_facts
from bench.peer import PeerError, PeerRun, run_peer
from bench.peer_fair import run_fair_peer
from bench.procs import Background, BenchError, run_child
from bench.publish import produce, stream_items
from bench.stream import Template, build_template, token
from consumers.writer import ledger_topics
from contracts.settings import Settings

ALL_MODES = ("L0", "L1", "L2", "L3", "drain", "replay", "scale", "naive", "peer", "peer_fair", "publisher", "latency")
DB_MODES = {"L0", "L1", "L2", "drain", "replay", "scale", "naive", "peer", "peer_fair", "latency"}
#: Modes that start Kafka Connect (heavy): never in a quick run unless asked.
CONNECT_MODES = {"peer", "peer_fair"}
DEFAULT_EVENTS = 60_000
QUICK_EVENTS = 1_500


@dataclass(frozen=True)
class RunConfig:
    events: int = DEFAULT_EVENTS
    modes: tuple[str, ...] = ALL_MODES
    min_seconds: float = 20.0
    naive_seconds: float = 30.0
    naive_events: int = 60_000
    peer_seconds: float = 60.0
    latency_seconds: float = 20.0
    latency_warmup: float = 3.0
    loads: tuple[float, ...] = (0.25, 0.5, 0.75)
    #: records/s the latency levels are fractions of; None: this run's drain rate (or a short drain's)
    latency_capacity: float | None = None
    profile: tuple[str, ...] = ()
    keep_topics: bool = False
    quick: bool = False
    #: PostgreSQL session settings added to the writer's connections (L2, drain, latency): a proposal, measured.
    writer_settings: tuple[tuple[str, str], ...] = ()

    @classmethod
    def quick_config(cls, modes: Sequence[str] | None = None, events: int | None = None) -> RunConfig:
        """A CI-sized run: tiny stream, no minimum duration, short latency levels; no peer unless asked."""
        chosen = tuple(modes) if modes else tuple(m for m in ALL_MODES if m not in CONNECT_MODES)
        return cls(
            events=events or QUICK_EVENTS,
            modes=chosen,
            min_seconds=0.0,
            naive_seconds=3.0,
            naive_events=events or QUICK_EVENTS,
            peer_seconds=10.0,
            latency_seconds=1.5,
            latency_warmup=0.3,
            quick=True,
        )


@dataclass
class Run:
    """State of one run: where it lives, its template, and what each mode produced."""

    config: RunConfig
    env: BenchEnv
    template: Template = field(default_factory=lambda: Template(()))
    modes: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    log: Callable[[str], None] = print

    @property
    def template_path(self) -> Path:
        return self.env.state / "template.jsonl"

    @property
    def logs(self) -> Path:
        return self.env.state / "logs"

    def params(self, **extra: Any) -> dict[str, Any]:
        return {
            "template": str(self.template_path),
            "run_tag": self.env.run_tag,
            "min_seconds": self.config.min_seconds,
            "writer_settings": dict(self.config.writer_settings),
            **extra,
        }

    def profile_path(self, mode: str) -> Path | None:
        if mode not in self.config.profile:
            return None
        return self.env.state / "profiles" / f"{mode}.txt"

    async def child(
        self, mode: str, settings: Settings, *, profiled: bool = True, log_name: str | None = None, **params: Any
    ) -> dict[str, Any]:
        profile = self.profile_path(mode) if profiled else None
        if profile:
            profile.parent.mkdir(parents=True, exist_ok=True)
        result = await run_child(mode, settings, self.params(**params), self.logs, profile, log_name)
        if profile and profile.exists():
            from bench.profile import summarise

            result["profile"] = summarise(profile)
            result["profile"]["file"] = str(profile)
        return result


async def _fill(run: Run, mode: str, stream_token: str, *, body_only: bool = False, limit: int | None = None) -> int:
    settings = run.env.settings(mode)
    await ensure_mode_topics(settings)
    stream = run.template.variant(stream_token)
    if body_only:
        stream = [r for r in stream if not r.foundation]
    if limit is not None:
        stream = stream[:limit]
    return await produce(settings, stream_items(stream, settings.topic_prefix))


async def mode_l0(run: Run) -> dict[str, Any]:
    return await run.child("L0", run.env.settings("l0"))


async def mode_l1(run: Run) -> dict[str, Any]:
    return await run.child("L1", run.env.settings("l1"))


async def mode_l2(run: Run) -> dict[str, Any]:
    return await run.child("L2", run.env.settings("l2"))


async def mode_l3(run: Run) -> dict[str, Any]:
    return await run.child("L3", run.env.settings("drain"))


async def mode_drain(run: Run) -> dict[str, Any]:
    return await run.child("drain", run.env.settings("drain"))


async def mode_replay(run: Run) -> dict[str, Any]:
    if "drain" not in run.modes:  # replay needs the ledger rows the writer appended from these topics
        await run.child("drain", run.env.settings("drain"))
    return await run.child("replay", run.env.settings("drain"))


#: Writer processes in one consumer group measured by the ``scale`` mode (1 is ``drain``).
SCALE_WRITERS = (2, 3)


async def mode_scale(run: Run) -> dict[str, Any]:
    """Scale-out: N writer processes as one consumer group draining the same stream (fresh ids per N, its own
    topics and group), for N in ``SCALE_WRITERS``. The rate is every writer's records over the wall time from
    the first writer's start to the last one's last record (each process reports both as epoch times), so a
    late starter or a straggler counts against it."""
    out: dict[str, Any] = {}
    for n in SCALE_WRITERS:
        mode = f"scale{n}"
        sent = await _fill(run, mode, token(run.env.run_tag, "w", n))
        settings = run.env.settings(mode)
        writers = await asyncio.gather(
            *(run.child("drain", settings, profiled=False, log_name=f"{mode}-{i}") for i in range(n))
        )
        consumed = sum(int(w["records"]) for w in writers)
        wall = max(float(w["done_at"]) for w in writers) - min(float(w["started_at"]) for w in writers)
        out[str(n)] = {
            "records": consumed,
            "sent": sent,
            "seconds": round(wall, 3),
            "rate": round(consumed / wall, 1) if wall > 0 else 0.0,
            "per_writer": [{k: w[k] for k in ("records", "seconds", "rate", "peak_rss_mb")} for w in writers],
            "appended": sum(int(w["appended"]) for w in writers),
            "deduplicated": sum(int(w["deduplicated"]) for w in writers),
        }
        run.log(f"    {n} writers: {consumed} records in {wall:.1f}s = {out[str(n)]['rate']}/s")
    return {"writers": out}


async def mode_naive(run: Run) -> dict[str, Any]:
    sent = await _fill(run, "naive", token(run.env.run_tag, "n"), body_only=True, limit=run.config.naive_events)
    return await run.child("naive", run.env.settings("naive"), expected=sent, max_seconds=run.config.naive_seconds)


async def mode_peer(run: Run) -> dict[str, Any]:
    settings = run.env.settings("peer")
    peer = PeerRun(
        home=run.env.state / "connect",
        settings=settings,
        topic=f"{settings.topic_prefix}ledger_rows",
        name=f"bench-{run.env.run_tag}-peer",
    )
    from bench.env import create_topic

    await create_topic(settings, peer.topic, settings.topic_partitions)
    # Four copies (fresh tenants each): the peer ran 4.7-10.9 k records/s, so one copy takes it under 20 s.
    copies = 1 if run.config.quick else 4
    stream = [r for i in range(copies) for r in run.template.variant(token(run.env.run_tag, "p", i))]
    try:
        return await run_peer(peer, stream, max_seconds=run.config.peer_seconds)
    except PeerError as exc:
        raise BenchError(f"peer (Debezium JDBC sink on Kafka Connect) could not run: {exc}") from exc


async def mode_peer_fair(run: Run) -> dict[str, Any]:
    """The same sink into the busiest real ledger table as the writer role (``bench.peer_fair``)."""
    settings = run.env.settings("peer_fair")
    peer = PeerRun(
        home=run.env.state / "connect-fair",
        settings=settings,
        topic=f"{settings.topic_prefix}rows",
        name=f"bench-{run.env.run_tag}-peer-fair",
    )
    from bench.env import create_topic

    await create_topic(settings, peer.topic, settings.topic_partitions)
    copies = 1 if run.config.quick else 4  # as the peer: fresh tenants each
    stream = [r for i in range(copies) for r in run.template.variant(token(run.env.run_tag, "k", i))]
    try:
        return await run_fair_peer(peer, stream, max_seconds=run.config.peer_seconds)
    except PeerError as exc:
        raise BenchError(f"fair peer (Debezium JDBC sink into a ledger, writer role) could not run: {exc}") from exc


async def mode_publisher(run: Run) -> dict[str, Any]:
    pub, raw = run.env.settings("pub"), run.env.settings("raw")
    await ensure_mode_topics(pub)
    await ensure_mode_topics(raw)
    return await run.child("publisher", pub, raw_prefix=raw.topic_prefix)


async def _capacity(run: Run) -> float:
    if run.config.latency_capacity:  # given: to compare two writers at the same rates
        return run.config.latency_capacity
    drain = run.modes.get("drain")
    if drain:
        return float(drain["rate"])
    run.log("  latency: no drain result in this run; measuring capacity with a short drain")
    await _fill(run, "cal", token(run.env.run_tag, "c"))
    return float((await run.child("drain", run.env.settings("cal")))["rate"])


async def mode_latency(run: Run) -> dict[str, Any]:
    capacity = await _capacity(run)
    settings = run.env.settings("lat")
    await ensure_mode_topics(settings)
    stamps = run.env.state / "latency-stamps.json"
    profile = run.profile_path("latency")
    if profile:
        profile.parent.mkdir(parents=True, exist_ok=True)
    writer = Background("latency_writer", settings, run.params(stamps=str(stamps)), run.logs, profile)
    await writer.start()
    producer = await lat.new_producer(settings)
    levels: list[tuple[float, list[tuple[lat.TPO, int]], float]] = []
    try:
        await _wait_claimed(run, settings, writer)
        for i, load in enumerate(run.config.loads):
            rate = capacity * load
            stream = run.template.variant(token(run.env.run_tag, "l", i))
            # Warm-up first (fresh tenants' first rows, the writer's first fetches), then the measured part.
            warm = stream[: max(1, int(rate * run.config.latency_warmup))]
            await lat.pace(producer, warm, settings.topic_prefix, rate, run.config.latency_warmup)
            sends, achieved = await lat.pace(
                producer, stream[len(warm) :], settings.topic_prefix, rate, run.config.latency_seconds
            )
            levels.append((load, sends, achieved))
        await _wait_committed(run, settings, [s for _, sends, _ in levels for s in sends], writer)
    finally:
        await producer.stop()
        writer_result = await writer.stop()
    commits = lat.load_stamps(stamps)
    batch_log = writer_result.pop("batch_log", [])
    # The raw material, beside the run's other state, for looking into a tail: per batch (records, begun ns,
    # committed ns) and per record (send ns, commit ns).
    detail = {
        "batches": batch_log,
        "records": [[sent, commits.get(tpo)] for _, sends, _ in levels for tpo, sent in sends],
    }
    (run.env.state / "latency-detail.json").write_text(json.dumps(detail))
    if profile and profile.exists():
        from bench.profile import summarise

        writer_result["profile"] = {**summarise(profile), "file": str(profile)}
    out: dict[str, Any] = {"capacity_rate": capacity, "levels": {}, "writer": writer_result}
    for load, sends, achieved in levels:
        values, missing = lat.latencies_ms(sends, commits)
        out["levels"][f"{int(load * 100)}%"] = {
            "target_rate": round(capacity * load, 1),
            "achieved_rate": round(achieved, 1),
            "missing": missing,
            **lat.percentiles(values),
            "batches": lat.batch_summary(batch_log, sends),
        }
    return out


async def _wait_claimed(run: Run, settings: Settings, writer: Background, within: float = 60.0) -> None:
    """Until the writer has claimed every partition of its topics (so the paced records meet a running writer)."""
    import asyncpg

    partitions = settings.topic_partitions * len(ledger_topics(settings))
    conn = await asyncpg.connect(run.env.admin_url)
    try:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if not writer.alive():
                raise BenchError("the latency writer exited before it claimed its partitions")
            n = await conn.fetchval(
                "SELECT count(*) FROM selene_ops.consumer_offsets WHERE consumer_group = $1", settings.consumer_group
            )
            if n >= partitions:
                return
            await asyncio.sleep(0.2)
        raise BenchError("the latency writer did not claim its partitions in time")
    finally:
        await conn.close()


async def _wait_committed(
    run: Run, settings: Settings, sends: Sequence[tuple[lat.TPO, int]], writer: Background, within: float = 300.0
) -> None:
    import asyncpg

    want: dict[tuple[str, int], int] = {}
    for (t, p, o), _ in sends:
        want[(t, p)] = max(want.get((t, p), 0), o + 1)
    conn = await asyncpg.connect(run.env.admin_url)
    try:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline and writer.alive():
            rows = await conn.fetch(
                "SELECT topic, partition, next_offset FROM selene_ops.consumer_offsets WHERE consumer_group = $1",
                settings.consumer_group,
            )
            have = {(r["topic"], r["partition"]): r["next_offset"] for r in rows}
            if all(have.get(tp, 0) >= o for tp, o in want.items()):
                return
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


MODES: dict[str, Callable[[Run], Coroutine[Any, Any, dict[str, Any]]]] = {
    "L0": mode_l0,
    "L1": mode_l1,
    "L2": mode_l2,
    "L3": mode_l3,
    "drain": mode_drain,
    "replay": mode_replay,
    "scale": mode_scale,
    "naive": mode_naive,
    "peer": mode_peer,
    "peer_fair": mode_peer_fair,
    "publisher": mode_publisher,
    "latency": mode_latency,
}


async def execute(config: RunConfig, env: BenchEnv, log: Callable[[str], None] = print) -> Run:
    """Set up, run every requested mode (errors recorded, not raised), clean up the run's topics."""
    run = Run(config, env, log=log)
    log(f"bench run {env.run_tag}: {config.events} events, modes {', '.join(config.modes)}")
    await fresh_database(env)
    started = time.monotonic()
    run.template = build_template(config.events)
    run.template.save(run.template_path)
    log(f"  workload template: {run.template.counts} ({time.monotonic() - started:.1f}s)")
    if DB_MODES & set(config.modes):
        # A production ledger is neither empty nor unanalysed; with an empty one the planner picks
        # sequential scans for the dedupe look-up and every early batch pays for it (seen: 5x slower).
        seed = await run.child("L1", env.settings("seed"), profiled=False, letter="s", min_seconds=0.0)
        log(f"  ledgers seeded with {seed['records']} rows (COPY), then analysed")
    if {"L3", "drain", "replay"} & set(config.modes):
        sent = await _fill(run, "drain", token(env.run_tag, "d"))
        log(f"  drain topics filled: {sent} records")
    try:
        for mode in ALL_MODES:
            if mode not in config.modes:
                continue
            if mode in DB_MODES:
                await checkpoint(env)
            log(f"  {mode} ...")
            t0 = time.monotonic()
            load_before = os.getloadavg()[0]
            try:
                run.modes[mode] = await MODES[mode](run)
                run.modes[mode]["loadavg_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
                log(f"  {mode}: {_brief(run.modes[mode])} ({time.monotonic() - t0:.0f}s wall)")
            except Exception as exc:
                run.errors[mode] = f"{type(exc).__name__}: {exc}"
                log(f"  {mode}: FAILED {run.errors[mode][:2000]}")
    finally:
        if not config.keep_topics:
            await delete_run_topics(env)
        run.template_path.unlink(missing_ok=True)  # rebuilt by every run; logs and profiles stay
    return run


def _brief(result: dict[str, Any]) -> str:
    if "levels" in result:
        return "; ".join(f"{k}: p50 {v.get('p50_ms')} p99 {v.get('p99_ms')} ms" for k, v in result["levels"].items())
    if "writers" in result:
        return "; ".join(f"{n} writers {v['rate']}/s" for n, v in result["writers"].items())
    if "raw" in result:
        return f"publisher {result['publisher']['rate']}/s, raw {result['raw']['rate']}/s"
    return f"{result.get('records')} records in {result.get('seconds')}s = {result.get('rate')}/s"


async def facts(env: BenchEnv) -> dict[str, Any]:
    return {"postgres": await postgres_facts(env)}


def with_modes(config: RunConfig, modes: Sequence[str]) -> RunConfig:
    return replace(config, modes=tuple(modes))
