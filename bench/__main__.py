"""``python -m bench run|growth``: the benchmark harness (see BENCHMARKS.md)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from bench.env import BENCH_DATABASE, BenchEnv, delete_run_topics, postgres_facts
from bench.growth import run_growth, write_growth
from bench.report import RESULTS_DIR, build, write
from bench.runner import ALL_MODES, DEFAULT_EVENTS, RunConfig, execute
from bench.stream import random_run_tag
from contracts.settings import Settings


def _modes(text: str) -> tuple[str, ...]:
    modes = tuple(m.strip() for m in text.split(",") if m.strip())
    unknown = [m for m in modes if m not in ALL_MODES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown modes {unknown}; choose from {', '.join(ALL_MODES)}")
    return modes


def _fractions(text: str) -> tuple[float, ...]:
    return tuple(float(s) for s in text.split(",") if s.strip())


def _sizes(text: str) -> list[int]:
    return [int(float(s)) for s in text.split(",") if s.strip()]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="every mode, one run, results in bench/results/<date>.{json,md,png}")
    run.add_argument("--events", type=int, help=f"conversation + audit events in the stream ({DEFAULT_EVENTS})")
    run.add_argument("--modes", type=_modes, help=f"comma-separated subset of {','.join(ALL_MODES)}")
    run.add_argument("--quick", action="store_true", help="CI-sized: tiny stream, no minimum duration, no peer")
    run.add_argument("--min-seconds", type=float, help="fast modes repeat passes until this long (20)")
    run.add_argument("--naive-seconds", type=float, help="time cap of the naive consumer (30)")
    run.add_argument("--peer-seconds", type=float, help="time cap of the peer after its first row (60)")
    run.add_argument("--latency-seconds", type=float, help="measured seconds per load level (20)")
    run.add_argument(
        "--latency-capacity", type=float, help="records/s the load levels are fractions of (this run's drain rate)"
    )
    run.add_argument(
        "--loads", type=_fractions, help="latency load levels as fractions of the capacity (0.25,0.5,0.75)"
    )
    run.add_argument("--profile", type=_modes, default=(), help="modes to run under py-spy (e.g. drain,L2,L3)")
    run.add_argument("--out", type=Path, default=RESULTS_DIR, help="results directory (bench/results)")
    run.add_argument("--keep-topics", action="store_true", help="keep the run's topics afterwards")
    run.add_argument(
        "--database",
        default=BENCH_DATABASE,
        help=f"the run's database, dropped and recreated (selene_bench*; {BENCH_DATABASE}): to run beside another run",
    )
    run.add_argument(
        "--writer-setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a PostgreSQL setting for the writer's sessions in L2, drain and latency (to measure a proposal)",
    )
    grow = sub.add_parser("growth", help="time per event and writer peak RSS at growing ledger sizes")
    grow.add_argument("--events", type=_sizes, default=[1_000_000, 10_000_000], help="sizes (1000000,10000000)")
    grow.add_argument("--chunk", type=int, default=200_000, help="events per workload chunk (fresh tenants each)")
    grow.add_argument("--out", type=Path, default=RESULTS_DIR)
    grow.add_argument("--keep-topics", action="store_true")
    return p


def config_from(args: argparse.Namespace) -> RunConfig:
    config = RunConfig.quick_config(args.modes, args.events) if args.quick else RunConfig()
    if not args.quick:
        config = replace(config, events=args.events or config.events, modes=args.modes or config.modes)
    overrides = {
        "min_seconds": args.min_seconds,
        "naive_seconds": args.naive_seconds,
        "peer_seconds": args.peer_seconds,
        "latency_seconds": args.latency_seconds,
        "latency_capacity": args.latency_capacity,
        "loads": args.loads,
    }
    config = replace(config, **{k: v for k, v in overrides.items() if v is not None})
    settings = tuple(tuple(s.split("=", 1)) for s in args.writer_setting)
    return replace(config, profile=args.profile, keep_topics=args.keep_topics, writer_settings=settings)


async def _run(args: argparse.Namespace) -> int:
    env = BenchEnv(Settings.from_env(), random_run_tag(), database=args.database)
    run = await execute(config_from(args), env)
    doc = build(run, await postgres_facts(env))
    stem = datetime.now(UTC).strftime("%Y-%m-%dT%H%M")
    if run.config.writer_settings:  # a measured proposal, not the writer as it is: say so in the name
        stem += "-" + "-".join(value for _, value in run.config.writer_settings)
    paths = write(doc, args.out, stem=stem)
    print("results: " + ", ".join(str(p) for p in paths.values()))
    for r in doc["ratios"]:
        print(f"  {r['name']:<28} {r['value']!s:>10}  target {r['target']:<8} met={r['met']}")
    return 1 if run.errors and args.quick else 0


async def _growth(args: argparse.Namespace) -> int:
    env = BenchEnv(Settings.from_env(), random_run_tag())
    try:
        doc = await run_growth(env, args.events, chunk_events=args.chunk)
    finally:
        if not args.keep_topics:
            await delete_run_topics(env)
    paths = write_growth(doc, args.out)
    print("results: " + ", ".join(str(p) for p in paths))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return asyncio.run(_run(args) if args.command == "run" else _growth(args))


if __name__ == "__main__":
    sys.exit(main())
