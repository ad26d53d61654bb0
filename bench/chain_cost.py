"""What the hash chain costs the writer: ``python -m bench.chain_cost [--events N] [--passes P]``.

Drives the writer's exact batch transaction (``InMemoryWriter``, as the L2 mode does) over the workload
template, in alternating passes, once with the chain as shipped and once without it, in the same process so
both see the same machine at the same moment (the 2 cores here are shared: only figures of one run compare).

"Without" must skip all of the chain's work, not only its Python: ``consumers.ledger.link_tables`` is replaced
by a function that leaves ``chain_seq``/``row_hash`` NULL, so neither the ENSURE/LOCK/ADVANCE statements on
``selene_ops.ledger_chains`` nor the per-row digests run. It writes into its own scratch database whose ledgers
had their ``ck_*_chained`` CHECK constraints (sql/0007) dropped by the superuser, since those refuse an
unchained row, and their ``ux_*_chain`` unique indexes too: they exist only for the chain, so maintaining
them is part of its cost (and an index of NULL links would be a cost no chainless schema has). The "with"
database is migrated and untouched. Both are ``selene_bench_chain*`` databases,
recreated at the start and dropped at the end (``--keep-databases`` keeps them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import asyncpg

from bench.env import BenchEnv, drop_database, fresh_database, postgres_facts
from bench.modes_db import InMemoryWriter, writer_session_settings
from bench.report import RESULTS_DIR
from bench.stream import Template, build_template, random_run_tag, token
from consumers.chain import Advance
from consumers.db import create_pool
from contracts.settings import Settings

WITH_DB = "selene_bench_chain"
WITHOUT_DB = "selene_bench_chain_off"
VARIANTS = ("with", "without")
# One token letter per variant, so their tenants (hence rows) never collide across passes or databases.
LETTER = {"with": "k", "without": "n", "warm-with": "q", "warm-without": "r"}

CHAIN_CHECKS = """
SELECT format('%s', c.conrelid::regclass) AS tbl, quote_ident(c.conname) AS name
FROM pg_constraint c WHERE c.contype = 'c' AND c.conname LIKE 'ck\\_%\\_chained'
"""
CHAIN_INDEXES = """
SELECT format('%s', i.indexrelid::regclass) AS name FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE c.relname LIKE 'ux\\_%\\_chain'
"""


async def no_chain(
    conn: asyncpg.Connection,
    tables: Mapping[str, tuple[Sequence[str], Sequence[dict[str, Any]]]],
    pairs: Mapping[str, Sequence[str | None]] | None = None,
) -> dict[str, Advance]:
    """``consumers.chain.link_tables`` with the chain taken out: no statement, no digest, NULL links, and no
    head to advance (the insert's chain-head update then matches nothing)."""
    for _, rows in tables.values():
        for values in rows:
            values["chain_seq"] = None
            values["row_hash"] = None
    return {table: Advance([], [], [], []) for table in tables}


@contextmanager
def chain_disabled() -> Iterator[None]:
    """The writer's ledger inserts without the chain (``consumers.ledger`` looks ``link_tables`` up per call)."""
    with mock.patch("consumers.ledger.link_tables", no_chain):
        yield


async def drop_chain_schema(env: BenchEnv) -> tuple[int, int]:
    """Drop the ``ck_*_chained`` constraints and ``ux_*_chain`` indexes in ``env``'s scratch database (never
    anywhere else); returns how many of each."""
    assert env.database != WITH_DB and env.database.startswith("selene_bench_chain"), env.database
    conn = await asyncpg.connect(env.admin_url)
    try:
        checks = await conn.fetch(CHAIN_CHECKS)
        for c in checks:
            await conn.execute(f"ALTER TABLE {c['tbl']} DROP CONSTRAINT {c['name']}")
        indexes = await conn.fetch(CHAIN_INDEXES)
        for i in indexes:
            await conn.execute(f"DROP INDEX {i['name']}")
        return len(checks), len(indexes)
    finally:
        await conn.close()


@dataclass
class Side:
    """One variant's database, writer and timings."""

    name: str
    env: BenchEnv
    writer: InMemoryWriter | None = None
    pool: asyncpg.Pool | None = None
    events: list[int] = field(default_factory=list)
    appended: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return sum(self.events) / sum(self.seconds) if sum(self.seconds) > 0 else 0.0

    async def open(self) -> None:
        settings = self.env.settings(self.name)
        self.pool = await create_pool(
            settings.database_url, max_size=2, server_settings=writer_session_settings(settings)
        )
        self.writer = InMemoryWriter(settings, self.pool)

    async def write(self, template: Template, letter: str, index: int) -> tuple[int, int, float]:
        """One pass of the template through the writer's transaction: (events, rows appended, seconds)."""
        assert self.writer is not None
        records = self.writer.records(template.variant(token(self.env.run_tag, letter, index)))
        await self.writer.claim(records)
        started = time.perf_counter()
        if self.name == "without":
            with chain_disabled():
                result = await self.writer.write_all(records)
        else:
            result = await self.writer.write_all(records)
        return result.consumed, result.appended, time.perf_counter() - started

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()


async def chain_links(env: BenchEnv) -> int:
    """Ledger chain heads advanced in ``env``'s database (a check that "with" chained and "without" did not)."""
    conn = await asyncpg.connect(env.admin_url)
    try:
        return int(await conn.fetchval("SELECT coalesce(sum(seq), 0) FROM selene_ops.ledger_chains"))
    finally:
        await conn.close()


async def measure(
    base: Settings,
    *,
    events: int,
    passes: int,
    databases: tuple[str, str] = (WITH_DB, WITHOUT_DB),
    keep_databases: bool = False,
    log: Any = print,
) -> dict[str, Any]:
    """Alternating passes with and without the chain; the figures as a JSON-able document."""
    tag = random_run_tag()
    sides = {
        "with": Side("with", BenchEnv(base, tag, database=databases[0])),
        "without": Side("without", BenchEnv(base, tag, database=databases[1])),
    }
    for side in sides.values():
        await fresh_database(side.env)
    checks, indexes = await drop_chain_schema(sides["without"].env)
    template = build_template(events)
    log(f"workload: {template.counts}; dropped {checks} ck_*_chained, {indexes} ux_*_chain in {databases[1]}")
    try:
        for side in sides.values():
            await side.open()
            await side.write(template, LETTER[f"warm-{side.name}"], 0)  # untimed: plans, caches, chain heads
        for p in range(passes):
            # Alternate which goes first, so neither always follows the other's checkpoint or autovacuum.
            order = VARIANTS if p % 2 == 0 else VARIANTS[::-1]
            for name in order:
                n, appended, seconds = await sides[name].write(template, LETTER[name], p)
                side = sides[name]
                side.events.append(n)
                side.appended.append(appended)
                side.seconds.append(seconds)
                log(f"  pass {p + 1}/{passes} {name:<7} {n} events in {seconds:.2f} s: {n / seconds:,.0f} events/s")
        links = {name: await chain_links(side.env) for name, side in sides.items()}
        facts = await postgres_facts(sides["with"].env)
    finally:
        for side in sides.values():
            await side.close()
        if not keep_databases:
            for side in sides.values():
                await drop_database(side.env)
    return document(sides, template, events, passes, links, facts)


def document(
    sides: dict[str, Side],
    template: Template,
    events: int,
    passes: int,
    links: dict[str, int],
    facts: dict[str, str],
) -> dict[str, Any]:
    w, wo = sides["with"], sides["without"]
    pair_ratios = [(a / sa) / (b / sb) for a, sa, b, sb in zip(w.events, w.seconds, wo.events, wo.seconds, strict=True)]
    return {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": f"python -m bench.chain_cost --events {events} --passes {passes}",
        "workload": template.counts,
        "passes": passes,
        "with": _side_doc(w, links["with"]),
        "without": _side_doc(wo, links["without"]),
        "ratio_with_over_without": round(w.rate / wo.rate, 3) if wo.rate else None,
        "pass_ratios": [round(r, 3) for r in pair_ratios],
        "pass_ratio_median": round(statistics.median(pair_ratios), 3) if pair_ratios else None,
        "us_per_event_difference": round(1e6 / w.rate - 1e6 / wo.rate, 1) if w.rate and wo.rate else None,
        "postgres": facts,
    }


def _side_doc(side: Side, links: int) -> dict[str, Any]:
    return {
        "database": side.env.database,
        "events": sum(side.events),
        "appended": sum(side.appended),
        "seconds": round(sum(side.seconds), 3),
        "events_per_s": round(side.rate, 1),
        "us_per_event": round(1e6 / side.rate, 1) if side.rate else None,
        "pass_events_per_s": [round(n / s, 1) for n, s in zip(side.events, side.seconds, strict=True)],
        "chain_links_written": links,
    }


def markdown(doc: dict[str, Any]) -> str:
    w, wo = doc["with"], doc["without"]
    lines = [
        f"# What the hash chain costs the writer ({doc['measured_at']})",
        "",
        f"`{doc['command']}`: the writer's batch transaction (`InMemoryWriter`, as bench mode L2) from pre-built "
        f"records, {doc['passes']} alternating passes of {doc['workload']['records']} records each way, after one "
        "untimed warm-up pass each (events: records consumed, foundation and duplicates included). "
        '"without": `consumers.ledger.link_tables` replaced by a no-op (no chain '
        "statements, no digests; `ck_*_chained` and `ux_*_chain` dropped in its scratch database).",
        "",
        "| variant | events | rows appended | seconds | events/s | us/event | per pass (events/s) | chain links |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for name, s in (("with chain", w), ("without chain", wo)):
        per_pass = ", ".join(f"{r:,.0f}" for r in s["pass_events_per_s"])
        lines.append(
            f"| {name} | {s['events']} | {s['appended']} | {s['seconds']} | {s['events_per_s']:,.0f} | "
            f"{s['us_per_event']} | {per_pass} | {s['chain_links_written']} |"
        )
    lines += [
        "",
        f"Ratio with / without: **{doc['ratio_with_over_without']}** (per pass: "
        f"{', '.join(str(r) for r in doc['pass_ratios'])}; median {doc['pass_ratio_median']}); the chain adds "
        f"**{doc['us_per_event_difference']} us per event**.",
        "",
        "PostgreSQL: " + ", ".join(f"{k}={v}" for k, v in doc["postgres"].items()),
        "",
    ]
    return "\n".join(lines)


def write(doc: dict[str, Any], out_dir: Path = RESULTS_DIR) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = datetime.now(UTC).strftime("%Y-%m-%dT%H%M") + "-chain-cost"
    paths = [out_dir / f"{stem}.json", out_dir / f"{stem}.md"]
    paths[0].write_text(json.dumps(doc, indent=2) + "\n")
    paths[1].write_text(markdown(doc))
    return paths


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.chain_cost", description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=20_000, help="conversation + audit events per pass (20000)")
    p.add_argument("--passes", type=int, default=4, help="timed passes per variant, alternating (4)")
    p.add_argument("--out", type=Path, default=RESULTS_DIR, help="results directory (bench/results)")
    p.add_argument("--keep-databases", action="store_true", help="keep selene_bench_chain* afterwards")
    return p


async def _main(args: argparse.Namespace) -> int:
    doc = await measure(Settings.from_env(), events=args.events, passes=args.passes, keep_databases=args.keep_databases)
    paths = write(doc, args.out)
    w, wo = doc["with"], doc["without"]
    print(f"with chain:    {w['events_per_s']:>10,.0f} events/s  ({w['us_per_event']} us/event)")
    print(f"without chain: {wo['events_per_s']:>10,.0f} events/s  ({wo['us_per_event']} us/event)")
    print(
        f"ratio with/without: {doc['ratio_with_over_without']} (per pass {doc['pass_ratios']}); "
        f"chain cost: {doc['us_per_event_difference']} us per event"
    )
    print("results: " + ", ".join(str(p) for p in paths))
    return 0


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(_main(parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
