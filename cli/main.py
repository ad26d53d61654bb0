"""``selene-ledger``: the command line for engines' operators and for the README's two commands.

Settings come from the environment (``SELENE_*``, see README), defaulting to the local services that
``selene-ledger services up`` starts on loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

from cli import logs, loop, services_cmd
from contracts.settings import Settings, SettingsError

#: ``status`` as a probe: a bound it was given is exceeded
EXIT_LAG = 5
EXIT_DEAD_LETTERS = 6

Handler = Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, int]]


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            return raw.decode()
        except UnicodeDecodeError:
            return "base64:" + __import__("base64").b64encode(raw).decode()
    return str(value)


def _print_json(data: Any) -> None:
    print(json.dumps(data, default=_json_default, indent=2, sort_keys=True))


def _progress(label: str) -> Callable[[Any], None]:
    def render(stats: Any) -> str:
        r = stats.result
        dead = sum(r.dead_lettered.values())
        return (
            f"{label}: consumed {r.consumed}  appended {r.appended}  deduplicated {r.deduplicated}  "
            f"dead-lettered {dead}  {stats.rate:,.0f} events/s"
        )

    return logs.progress_printer(render, label=label)


async def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from sql.migrate import migrate

    result = await migrate(settings.database_owner_url)
    for name in result.applied:
        print(f"applied {name}")
    print(f"database is current ({result.already + len(result.applied)} migrations, {len(result.applied)} new)")
    return 0


async def cmd_topics(args: argparse.Namespace, settings: Settings) -> int:
    from producers.topics import ensure_topics, list_topics

    if args.action == "ensure":
        created = await ensure_topics(settings)
        for name in created:
            print(f"created {name}")
    for info in await list_topics(settings):
        print(f"{info.ledger} {info.topic} {info.partitions if info.partitions is not None else 'missing'}")
    return 0


async def cmd_publish(args: argparse.Namespace, settings: Settings) -> int:
    from producers.publisher import Publisher

    # The input is read once, before any I/O of ours starts: blocking here costs nothing.
    source = sys.stdin.buffer if args.file == "-" else Path(args.file).open("rb")  # noqa: SIM115, ASYNC230
    with source:
        lines = [line.strip() for line in source if line.strip()]
    async with Publisher(settings) as publisher:
        published, refused = await publisher.publish_raw(lines)
    for p in published:
        print(
            f"accepted {p.event.event_id} {p.event.ledger}/{p.event.event_type} -> {p.topic}[{p.partition}]@{p.offset}"
        )
    for r in refused:
        print(f"rejected line {r.index + 1}: {r.reason_code}: {r.detail}")
    print(f"{len(published)} accepted, {len(refused)} rejected")
    return 1 if refused else 0


async def cmd_consume(args: argparse.Namespace, settings: Settings) -> int:
    from consumers.kafka import UnreadableRecords
    from consumers.writer import LedgerWriter

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    writer = LedgerWriter(settings)
    address = args.metrics or settings.metrics_address
    try:
        async with contextlib.AsyncExitStack() as stack:
            if address:
                from consumers.metrics import HealthBounds, WriterMetrics

                bounds = HealthBounds(
                    max_lag=args.ready_max_lag, commit_within_s=args.ready_stall, retrying_for_s=args.ready_stall
                )
                await stack.enter_async_context(WriterMetrics(writer, settings, bounds).serve(address))
            stats = await writer.run(
                until_caught_up=args.until_caught_up,
                stop=stop,
                progress=_progress("writer"),
                idle_timeout=args.idle_timeout,
            )
    except UnreadableRecords as exc:
        # A fault of the log, not of one record's content: one line an operator can act on, no traceback.
        # PostgreSQL keeps the offset to resume from.
        logs.end_progress()
        print(f"consume: stopped: {exc}", file=sys.stderr)
        return 3
    logs.end_progress()
    r = stats.result
    print(
        f"consumed {r.consumed}, appended {r.appended}, deduplicated {r.deduplicated}, "
        f"dead-lettered {r.dead_total} {dict(r.dead_lettered)}"
    )
    return 0


async def cmd_dlq(args: argparse.Namespace, settings: Settings) -> int:
    from consumers import deadletters
    from consumers.db import connect
    from consumers.pipeline import Pipeline

    if args.action in ("list", "show"):
        conn = await connect(settings.database_operator_url)
        try:
            if args.action == "list":
                rows = await deadletters.list_dead_letters(
                    conn, status=args.status, reason=args.reason, limit=args.limit
                )
                if args.json:
                    _print_json(rows)
                else:
                    for r in rows:
                        print(
                            f"{r['dead_letter_id']:>6} {r['status']:<9} {r['reason_code']:<32} "
                            f"{r['source_topic']}[{r['source_partition']}]@{r['source_offset']} "
                            f"{r['aggregate_key'] or '-'}  {r['error_detail']}"
                        )
                return 0
            row = await deadletters.show(conn, args.id)
            if row is None:
                print(f"no dead letter {args.id}", file=sys.stderr)
                return 1
            _print_json(row)
            return 0
        finally:
            await conn.close()
    conn = await connect(settings.database_url)
    try:
        if args.action == "discard":
            ok = await deadletters.discard(conn, args.id, args.note)
            print("discarded" if ok else f"dead letter {args.id} is not open, held or rejected")
            return 0 if ok else 1
        pipeline = Pipeline(settings)
        if args.all:
            targets = await deadletters.blocked_aggregates(conn)
            reports = [await deadletters.redrive(conn, pipeline, topic, key) for topic, key in targets]
        else:
            one = await deadletters.redrive_one(conn, pipeline, args.id)
            if one is None:
                print(f"dead letter {args.id}: nothing to re-drive (not found, already re-driven or discarded)")
                return 1
            reports = [one]
        failed = 0
        for report in reports:
            topic, key = report.topic, report.aggregate_key
            print(
                f"{topic} {key}: re-driven {report.redriven}, still blocked {report.still_blocked}, "
                f"rejected {report.rejected}"
                + (f" (first failure: {report.first_failure})" if report.first_failure else "")
            )
            failed += report.still_blocked > 0
        return 1 if failed else 0
    finally:
        await conn.close()


async def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from consumers.db import connect
    from consumers.status import status

    conn = await connect(settings.database_operator_url)
    try:
        data = await status(settings, conn)
    finally:
        await conn.close()
    code = 0
    breaches = []
    if args.max_lag is not None and data["total_lag"] > args.max_lag:
        breaches.append(f"lag {data['total_lag']} above --max-lag {args.max_lag}")
        code = EXIT_LAG
    if args.max_dead_letters is not None and data["open_dead_letters"] > args.max_dead_letters:
        n = data["open_dead_letters"]
        breaches.append(f"{n} open dead letters above --max-dead-letters {args.max_dead_letters}")
        code = code or EXIT_DEAD_LETTERS
    if args.json:
        _print_json(data)
    else:
        print("lag per partition:")
        for x in data["lag"]:
            print(f"  {x['topic']}[{x['partition']}] end {x['end_offset']} stored {x['stored_offset']} lag {x['lag']}")
        print("rows per ledger:")
        for name, n in data["ledgers"].items():
            print(f"  {name} {n}")
        print("dead letters by reason:")
        for d in data["dead_letters"]:
            print(f"  {d['reason_code']} {d['status']} {d['n']}")
        n = data["open_dead_letters"]
        print(f"open dead letters on {settings.topic_prefix}* topics (OPEN, HELD, REJECTED): {n}")
        print("batches the writer had to retry (isolated: written event by event after the retry limit):")
        for r in data["writer_retries"]:
            print(
                f"  {r['topic']}[{r['partition']}] retries {r['batch_retries']} isolated {r['batch_isolations']} "
                f"last {r['last_retry_reason']} at {r['last_retry_at']:%Y-%m-%d %H:%M:%S%z} owner {r['owner_id']}"
            )
    for breach in breaches:
        print(f"status: {breach}", file=sys.stderr)
    return code


async def cmd_schema(args: argparse.Namespace, settings: Settings) -> int:
    from importlib.metadata import version

    from contracts.schema_export import DEFAULT_BASE_URI, export
    from producers.topics import LEDGER_TOPIC_CONFIG

    written = export(
        Path(args.dir),
        prefix=settings.topic_prefix,
        partitions=settings.topic_partitions,
        replicas=settings.replication_factor,
        bootstrap=settings.kafka_bootstrap_servers,
        max_event_bytes=settings.max_event_bytes,
        topic_config=LEDGER_TOPIC_CONFIG,
        base_uri=args.base_uri or DEFAULT_BASE_URI,
        version=version("selene-ledger"),
    )
    print(f"wrote {len(written)} files to {args.dir} (JSON Schemas, events.schema.json, asyncapi.json, index.json)")
    return 0


def _render_replay(stats: Any) -> str:
    total = max(stats.total, stats.read, 1)
    done = min(stats.read / total, 1.0)
    bar = "#" * int(done * 30)
    eta = f"{stats.eta:,.0f}s" if stats.eta is not None else "?"
    return f"[{bar:<30}] {stats.read:,}/{total:,} events  {stats.rate:,.0f} events/s  ETA {eta}   "


@contextlib.asynccontextmanager
async def _run_metrics(run: str, args: argparse.Namespace, settings: Settings) -> AsyncIterator[Any]:
    """``--metrics`` (or SELENE_METRICS_ADDRESS) of a replay or rebuild: its progress served while it runs."""
    address = args.metrics or settings.metrics_address
    if not address:
        yield None
        return
    from consumers.metrics import RunMetrics

    metrics = RunMetrics(run)
    async with metrics.serve(address):
        yield metrics


def _print_comparisons(comparisons: list[Any]) -> bool:
    equal = True
    for c in comparisons:
        verdict = "equal" if c.equal else "DIFFERENT"
        equal = equal and c.equal
        print(f"  {c.table:<40} live {c.live_rows:>8} rows  shadow {c.shadow_rows:>8} rows  {verdict}")
        for d in c.first_differences:
            print(f"      first difference at key {d}")
    return equal


async def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    from consumers.replay import Replayer
    from consumers.shadow import ShadowRunBusy
    from contracts.reasons import SeleneError

    replayer = Replayer(
        settings,
        ledgers=args.ledger,
        tenant=args.tenant,
        from_offsets=args.from_offsets,
        from_time=args.from_time,
        as_of=args.as_of,
        decode_timeout_s=args.decode_timeout,
    )
    if args.apply and (why := replayer.refuse_apply()):
        print(f"refused: {why}", file=sys.stderr)
        return 2
    show = logs.progress_printer(_render_replay, label="replay")
    try:
        async with _run_metrics("replay", args, settings) as metrics:

            def progress(stats: Any) -> None:
                if metrics is not None:
                    metrics.update(stats.read, stats.rate, max(stats.total, stats.read), stats.eta)
                show(stats)

            result = await replayer.run(verify=args.verify, apply=args.apply, progress=progress)
    except SeleneError as exc:  # another shadow run holds the lock, a decode worker hung or died
        if not isinstance(exc, ShadowRunBusy):
            logs.end_progress()
        print(f"replay stopped: {exc.detail}", file=sys.stderr)
        return 1
    logs.end_progress()
    s = result.stats
    print(
        f"replay: read {s.read} records in {result.seconds:.1f}s ({s.read / max(result.seconds, 1e-9):,.0f}/s): "
        f"applied {s.applied} ({s.redriven_moved} re-driven, where live applied them), duplicates {s.duplicates}, "
        f"dead letters skipped {s.dead_letters_skipped}, unaccounted {s.unaccounted_count}"
    )
    print("  per ledger: " + (", ".join(f"{k} {v}" for k, v in sorted(s.per_ledger.items())) or "-"))
    print("  up to offsets: " + ", ".join(f"{t}[{p}]={o}" for (t, p), o in sorted(result.target.items())))
    for u in s.unaccounted[:10]:
        print(f"  UNACCOUNTED (neither in a ledger nor a dead letter): {u}")
    for m in s.mismatched_content[:10]:
        print(f"  CONTENT MISMATCH between topic and ledger: {m}")
    if result.redriven_during:
        print(
            f"  note: {result.redriven_during} dead letters were re-driven while this replay read; a difference "
            "may come from them: run it again"
        )
    if s.unaccounted_count > 10 or s.mismatched_count > 10:
        print(f"  ... in all: {s.unaccounted_count} unaccounted, {s.mismatched_count} content mismatches")
    ok = True
    if args.verify or args.apply:
        ok = _print_comparisons(result.comparisons) and not s.unaccounted_count and not s.mismatched_count
        if args.verify:
            print("replay equals live: exact match" if ok else "replay differs from live")
    if result.applied:
        print("applied: live projections replaced by the replayed state in one transaction")
    return 0 if ok or (args.apply and not args.verify) else 1


async def cmd_rebuild(args: argparse.Namespace, settings: Settings) -> int:
    from consumers.projector import UnknownProjection
    from consumers.rebuild import Rebuilder
    from consumers.shadow import ShadowRunBusy
    from contracts.reasons import SeleneError

    show = logs.progress_printer(
        lambda p: f"rebuild: {p[0]:,} events  {p[0] / max(p[1], 1e-9):,.0f} events/s   ", label="rebuild"
    )

    try:
        rebuilder = Rebuilder(settings, tenant=args.tenant, projections=args.projection)
    except UnknownProjection as exc:
        print(f"rebuild: {exc.detail}", file=sys.stderr)
        return 2
    try:
        async with _run_metrics("rebuild", args, settings) as metrics:

            def progress(events: int, seconds: float) -> None:
                if metrics is not None:
                    metrics.update(events, events / max(seconds, 1e-9))
                show((events, seconds))

            result = await rebuilder.run(verify=args.verify, apply=args.apply, progress=progress)
    except SeleneError as exc:  # another shadow run holds the lock, or an appender never ended
        if not isinstance(exc, ShadowRunBusy):
            logs.end_progress()
        print(f"rebuild stopped: {exc.detail}", file=sys.stderr)
        return 1
    logs.end_progress()
    print(
        f"rebuild: {result.events} ledger events in {result.seconds:.1f}s, refused now {result.refused}; "
        + ", ".join(f"{k} {v}" for k, v in sorted(result.per_ledger.items()))
        + (f"; projections {', '.join(result.projections)}" if args.projection else "")
    )
    for bad in result.invalid_rows[:10]:
        print(f"  LEDGER ROW FAILS ITS CONTRACT: {bad}")
    ok = True
    if args.verify or args.apply:
        ok = _print_comparisons(result.comparisons) and not result.invalid_rows
        if args.verify:
            print("rebuild equals live: exact match" if ok else "rebuild differs from live")
    if result.applied:
        which = f"the tables of {', '.join(result.projections)}" if args.projection else "live projections"
        print(f"applied: {which} replaced by the rebuilt state in one transaction")
    return 0 if ok or (args.apply and not args.verify) else 1


async def cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    from consumers.db import connect
    from consumers.projections import LEDGER_TABLES
    from consumers.verify import digest_key, load_digest, verify

    key = digest_key()
    against = load_digest(Path(args.against), key) if args.against else None
    conn = await connect(settings.database_operator_url)
    try:
        report = await verify(conn, LEDGER_TABLES, against, topic_prefix=args.topic_prefix)
    finally:
        await conn.close()
    print(f"verified {report.rows} ledger rows in {len(report.chains)} hash chains")
    for problem in report.problems:
        print(f"  BROKEN: {problem}")
    if args.digest_out:
        Path(args.digest_out).write_text(json.dumps(report.digest(key), indent=2) + "\n")  # noqa: ASYNC240
        print(f"digest of the chain heads written to {args.digest_out}" + (" (HMAC-signed)" if key else ""))
    print("every chain intact" if report.ok else f"{len(report.problems)} problems")
    return 0 if report.ok else 1


async def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from cli.demo import run_demo

    if not args.verbose:  # the demo prints its own summary: the writer's lifecycle lines would bury it
        logging.getLogger("selene.writer").setLevel(logging.WARNING)
    return await run_demo(settings, tenants=args.tenants, events=args.events)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="selene-ledger",
        description=__doc__,
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="third-party libraries' INFO logs too")
    parser.add_argument(
        "--log-format",
        choices=["text", "json"],
        help="text (default) or one JSON object per line for log shippers (also SELENE_LOG_FORMAT)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    services_cmd.register(sub)
    sub.add_parser("migrate", help="apply the numbered migrations in sql/ (as the owner role)")
    topics = sub.add_parser("topics", help="create or list the ledger topics")
    topics.add_argument("action", choices=["ensure", "list"])
    publish = sub.add_parser("publish", help="publish JSON lines of envelopes (FILE or - for stdin)")
    publish.add_argument("file")
    consume = sub.add_parser("consume", help="run the ledger writer")
    consume.add_argument("--until-caught-up", action="store_true")
    consume.add_argument("--idle-timeout", type=float, default=None)
    consume.add_argument(
        "--metrics",
        metavar="HOST:PORT",
        help="serve /metrics, /health/live and /health/ready here (also SELENE_METRICS_ADDRESS; off by default)",
    )
    consume.add_argument(
        "--ready-max-lag",
        type=int,
        default=100_000,
        metavar="N",
        help="/health/ready fails with more than N records left to write (100000)",
    )
    consume.add_argument(
        "--ready-stall",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="/health/ready fails when records wait and no batch committed for this long, or a batch is retried "
        "this long (60)",
    )
    dlq = sub.add_parser("dlq", help="dead letters: list, show, redrive, discard")
    dsub = dlq.add_subparsers(dest="action", required=True)
    dl = dsub.add_parser("list")
    dl.add_argument("--status")
    dl.add_argument("--reason")
    dl.add_argument("--limit", type=int, default=50)
    dl.add_argument("--json", action="store_true")
    ds = dsub.add_parser("show")
    ds.add_argument("id", type=int)
    dr = dsub.add_parser("redrive")
    dr.add_argument("id", type=int, nargs="?")
    dr.add_argument("--all", action="store_true")
    dd = dsub.add_parser("discard")
    dd.add_argument("id", type=int)
    dd.add_argument("--note", default="discarded by operator")
    st = sub.add_parser(
        "status",
        help="lag, rows per ledger, dead letters by reason; a probe with --max-lag / --max-dead-letters",
        epilog=f"exit {EXIT_LAG} when the total lag is above --max-lag, {EXIT_DEAD_LETTERS} when the open dead letters "
        f"are above --max-dead-letters (lag first when both), 4 when PostgreSQL or Kafka cannot be reached",
    )
    st.add_argument("--json", action="store_true")
    st.add_argument(
        "--max-lag",
        type=int,
        metavar="N",
        help=f"exit {EXIT_LAG} if more than N records are left to write (all partitions)",
    )
    st.add_argument(
        "--max-dead-letters",
        type=int,
        metavar="N",
        help=f"exit {EXIT_DEAD_LETTERS} if more than N dead letters of these topics are OPEN, HELD or REJECTED",
    )
    schema = sub.add_parser("schema", help="export JSON Schema of every contract and an AsyncAPI 3.0 document")
    schema.add_argument("action", choices=["export"])
    schema.add_argument("dir")
    schema.add_argument(
        "--base-uri", help="base of the schemas' $id, where you host them (https://selene-ledger.invalid/schemas/)"
    )
    replay = sub.add_parser("replay", help="rebuild projections from the topics into shadows; verify or apply")
    replay.add_argument(
        "--metrics",
        metavar="HOST:PORT",
        help="serve its progress on /metrics, /health/live, /health/ready while it runs (or SELENE_METRICS_ADDRESS)",
    )
    replay.add_argument("--ledger", action="append", help="ledger to replay (repeatable; default all)")
    replay.add_argument("--from-offsets", help="topic:partition=offset,... or partition=offset,...")
    replay.add_argument("--from-time", help="ISO 8601 timestamp or epoch ms")
    replay.add_argument("--as-of", help="upper bound: offsets (as --from-offsets) or a timestamp")
    replay.add_argument("--tenant")
    replay.add_argument("--verify", action="store_true")
    replay.add_argument(
        "--apply",
        action="store_true",
        help="swap the replayed state into live (whole topics of every ledger only; refused with a scope)",
    )
    replay.add_argument(
        "--decode-timeout", type=float, metavar="SECONDS", help="a decode worker silent this long counts as hung (60)"
    )
    rebuild = sub.add_parser("rebuild", help="rebuild projections from the PostgreSQL ledgers; verify or apply")
    rebuild.add_argument(
        "--metrics",
        metavar="HOST:PORT",
        help="serve its progress on /metrics, /health/live, /health/ready while it runs (or SELENE_METRICS_ADDRESS)",
    )
    rebuild.add_argument("--tenant")
    rebuild.add_argument(
        "--projection",
        action="append",
        metavar="NAME",
        help="rebuild, compare and apply only this projection's tables (repeatable; default all): "
        "foundation, work_orders, engine_capability_maps, ... (an unknown NAME lists them all)",
    )
    rebuild.add_argument("--verify", action="store_true")
    rebuild.add_argument("--apply", action="store_true")
    ver = sub.add_parser("verify", help="check the ledgers' hash chains; export or check a digest of their heads")
    ver.add_argument("--digest-out", help="write the chain heads to this file (keep it outside the database)")
    ver.add_argument("--against", help="a digest written earlier: also detects truncated tails")
    ver.add_argument("--topic-prefix", help="only the chains of topics with this prefix")
    slices = sub.add_parser("slices", help="the engine slices this build wires (from the slice registry), as a table")
    slices.add_argument(
        "--cost", action="store_true", help="non-blank lines of each slice's files per layer (issue 15's budget)"
    )
    slices.add_argument("--files", action="store_true", help="with --cost: also one line per file")
    demo = sub.add_parser("demo", help="the main job on a sample workload, with a summary")
    demo.add_argument("--tenants", type=int, default=3)
    demo.add_argument("--events", type=int, default=600)
    return parser


HANDLERS: dict[str, Handler] = {
    "migrate": cmd_migrate,
    "topics": cmd_topics,
    "publish": cmd_publish,
    "consume": cmd_consume,
    "dlq": cmd_dlq,
    "status": cmd_status,
    "schema": cmd_schema,
    "demo": cmd_demo,
    "replay": cmd_replay,
    "rebuild": cmd_rebuild,
    "verify": cmd_verify,
}


EXIT_CODES = """exit codes: 0 done; 1 the command's check failed (see each command); 2 usage, a bad setting (the
variable is named) or a metrics address that cannot be listened on; 3 consume stopped at records it cannot read;
4 PostgreSQL or Kafka unreachable or refusing the login, or a database behind this build's migrations; 5 status:
lag above --max-lag; 6 status: dead letters above --max-dead-letters; 130 interrupted; 141 output pipe closed
early (as a shell reports SIGPIPE)"""


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.configure(args.log_format or os.environ.get("SELENE_LOG_FORMAT", "text"), verbose=args.verbose)
    if args.command == "services":
        return services_cmd.run(args)
    if args.command == "slices":
        from cli.slices import cost, table

        print(cost(files=args.files) if args.cost else table())
        return 0
    if args.command == "dlq" and args.action == "redrive" and not args.all and args.id is None:
        print("dlq redrive: give a dead letter id or --all", file=sys.stderr)
        return 2
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"selene-ledger: bad setting: {exc}", file=sys.stderr)
        return 2
    try:
        code = loop.run(HANDLERS[args.command](args, settings))
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return code
    except BrokenPipeError:
        # The reader of our output went away (``| head``): not an error of ours. Further writes (the
        # interpreter's final flush) go nowhere instead of printing a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if type(exc).__name__ == "CannotServe":  # (consumers.metrics, imported only with --metrics)
            print(f"selene-ledger {args.command}: {exc}", file=sys.stderr)
            return 2
        problem = unreachable(exc)
        if problem is None:
            raise
        logs.end_progress()
        print(f"selene-ledger {args.command}: {problem}", file=sys.stderr)
        return 4


def unreachable(exc: BaseException) -> str | None:
    """One line for a service that is down, unknown or refuses our login; None for anything else (a bug:
    its traceback is wanted)."""
    import asyncpg
    from aiokafka.errors import KafkaConnectionError

    from consumers.kafka import MissingTopics
    from contracts.reasons import ReasonCode, SeleneError

    if isinstance(exc, MissingTopics):
        return exc.detail
    if isinstance(exc, KafkaConnectionError):
        return f"cannot reach Kafka ({exc}); check SELENE_KAFKA_BOOTSTRAP_SERVERS"
    if isinstance(exc, SeleneError) and exc.reason_code == ReasonCode.DATABASE_UNAVAILABLE:
        return f"{exc.detail}; check the SELENE_DATABASE_*_URL settings"
    if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError | asyncpg.InvalidCatalogNameError):
        return f"PostgreSQL refused the login: {exc}; check the SELENE_DATABASE_*_URL settings"
    if isinstance(exc, asyncpg.UndefinedTableError | asyncpg.UndefinedColumnError):
        # A database behind this build's migrations (a newer selene-ledger, an older schema).
        return f"the database is behind this build's schema ({exc}); run `selene-ledger migrate`"
    if isinstance(exc, ConnectionError | socket.gaierror | asyncpg.CannotConnectNowError):
        return f"cannot connect to PostgreSQL: {exc}; check the SELENE_DATABASE_*_URL settings"
    return None


if __name__ == "__main__":
    sys.exit(main())
