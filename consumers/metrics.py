"""Prometheus metrics and health endpoints of a running writer, replay or rebuild, on one small HTTP server.

``GET /metrics`` (Prometheus text), ``GET /health/live`` and ``GET /health/ready`` (200 or 503, a JSON body with
the reason). The server runs in a thread of its own, so that a stalled event loop is reported (live: 503) rather
than leaving the probe unanswered; everything it shows is copied from the event loop by a task that runs once a
second (``_Snapshot``), so the thread never reads the writer's state while the loop changes it. The counting
itself is the writer's (``WriterStats``): this module only exports it. OPERATIONS.md lists the metrics and what
live and ready mean.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import asyncpg
from prometheus_client import CollectorRegistry, Gauge, Histogram, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from consumers.db import connect
from consumers.status import open_dead_letters
from consumers.writer import BatchDone, LedgerWriter
from contracts.settings import Settings, parse_address

log = logging.getLogger("selene.metrics")

Health = tuple[bool, str]


@dataclass(frozen=True)
class HealthBounds:
    """When a writer stops counting as ready (see ``readiness``) or alive."""

    #: records left to write (all claimed partitions) above which the writer is not ready
    max_lag: int = 100_000
    #: with records to write, the last batch must have committed within this long
    commit_within_s: float = 60.0
    #: a batch retried this long (an outage, a failure its data causes) makes the writer not ready
    retrying_for_s: float = 60.0
    #: the event loop must have turned (taken a snapshot) within this long to count as live
    loop_within_s: float = 10.0


@dataclass(frozen=True)
class WriterView:
    """What readiness looks at, copied from the writer in the event loop."""

    running: bool
    claimed: int
    #: records left to write per claimed partition whose end the broker reported
    lag: Mapping[tuple[str, int], int]
    started: float
    last_commit: float | None = None
    retrying_since: float | None = None
    retry_reason: str = ""
    #: claimed partitions whose end the broker has not reported yet (just claimed)
    unknown_lag: int = 0


def readiness(view: WriterView, now: float, bounds: HealthBounds) -> Health:
    """Ready: partitions claimed, not stuck retrying, every claimed partition's lag known and within the bound,
    and either nothing to read or a batch committed recently. A writer far behind, or retrying the same batch
    for long, is not ready."""
    if not view.running:
        return False, "the writer is not running"
    if view.claimed == 0:
        return False, "no partitions claimed: the group has assigned none to this writer (yet)"
    if view.retrying_since is not None and now - view.retrying_since > bounds.retrying_for_s:
        return False, f"retrying a batch for {now - view.retrying_since:.0f}s ({view.retry_reason or 'unknown'})"
    if view.unknown_lag:
        return False, f"lag of {view.unknown_lag} claimed partitions not known yet"
    behind = {tp: n for tp, n in view.lag.items() if n > 0}
    total = sum(behind.values())
    if total > bounds.max_lag:
        (topic, partition), worst = max(behind.items(), key=lambda kv: kv[1])
        return False, f"lag {total} records above {bounds.max_lag} (most behind: {topic}[{partition}] {worst})"
    if not behind:
        return True, "caught up: nothing to read"
    since = now - (view.last_commit if view.last_commit is not None else view.started)
    if since <= bounds.commit_within_s:
        return True, f"lag {total} records, last batch committed {since:.1f}s ago"
    return False, f"lag {total} records but no batch committed for {since:.0f}s"


def liveness(taken_at: float, now: float, bounds: HealthBounds) -> Health:
    """Live: the event loop turned (took its once-a-second snapshot) within the bound."""
    if now - taken_at <= bounds.loop_within_s:
        return True, "event loop turning"
    return False, f"event loop has not turned for {now - taken_at:.0f}s"


@dataclass(frozen=True)
class _Snapshot:
    taken_at: float
    families: list[Metric] = field(default_factory=list)
    ready: Health = (False, "starting")


class _SnapshotCollector(Collector):
    """Yields the metric families of the latest snapshot (built in the event loop)."""

    def __init__(self, source: Callable[[], _Snapshot]) -> None:
        self.source = source

    def collect(self) -> Iterable[Metric]:
        return list(self.source().families)


class _Silent(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Probes every few seconds would flood the log."""


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class CannotServe(Exception):
    """The metrics address cannot be listened on (in use, or not this machine's)."""


class MetricsServer:
    """``/metrics``, ``/health/live`` and ``/health/ready`` on ``address`` (``HOST:PORT``; port 0 picks one)."""

    def __init__(
        self, address: str, registry: CollectorRegistry, live: Callable[[], Health], ready: Callable[[], Health]
    ):
        host, port = parse_address(address)
        self._metrics = make_wsgi_app(registry)
        self._live, self._ready = live, ready
        try:
            self._server = make_server(host, port, self._app, server_class=_ThreadingServer, handler_class=_Silent)
        except OSError as exc:  # taken, or not an address of this machine: the operator's to fix
            raise CannotServe(f"cannot serve metrics on {address}: {exc.strerror or exc}") from exc
        self.port = int(self._server.server_port)
        self._thread = threading.Thread(target=self._server.serve_forever, name="selene-metrics", daemon=True)

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return self._metrics(environ, start_response)  # type: ignore[no-any-return]
        checks = {"/health/live": self._live, "/health/ready": self._ready}
        if path not in checks:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found: /metrics, /health/live, /health/ready\n"]
        ok, reason = checks[path]()
        body = json.dumps({"status": "ok" if ok else "failing", "reason": reason}).encode() + b"\n"
        status = "200 OK" if ok else "503 Service Unavailable"
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    def start(self) -> None:
        self._thread.start()
        log.info(
            "serving /metrics, /health/live, /health/ready on port %d",
            self.port,
            extra={"fields": {"event": "metrics_server", "port": self.port}},
        )

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600)
BATCH_SIZE_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000)
BATCH_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class WriterMetrics:
    """The writer's metrics: ``WriterStats`` exported as counters, histograms fed by its committed batches, lag
    per claimed partition (every ``lag_every`` seconds) and open dead letters by reason and tenant (a bounded
    query every ``dead_letters_every`` seconds, on a connection of its own)."""

    def __init__(
        self,
        writer: LedgerWriter,
        settings: Settings,
        bounds: HealthBounds | None = None,
        *,
        lag_every: float = 5.0,
        dead_letters_every: float = 30.0,
    ) -> None:
        self.writer, self.settings = writer, settings
        self.bounds = bounds or HealthBounds()
        self.lag_every, self.dead_letters_every = lag_every, dead_letters_every
        self.registry = CollectorRegistry(auto_describe=True)
        self.batch_records = Histogram(
            "selene_writer_batch_records", "Records per committed batch", buckets=BATCH_SIZE_BUCKETS,
            registry=self.registry,
        )  # fmt: skip
        self.batch_seconds = Histogram(
            "selene_writer_batch_seconds", "Time of the transaction that committed a batch",
            buckets=BATCH_SECONDS_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "selene_writer_produce_to_commit_seconds",
            "From a record's Kafka timestamp to the commit of its batch (records with a timestamp not in the future)",
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.lag: dict[tuple[str, int], int] = {}
        self.dead_letters: list[dict[str, Any]] = []
        self.dead_letters_at: float | None = None
        self._snapshot = _Snapshot(time.monotonic())
        self.registry.register(_SnapshotCollector(lambda: self._snapshot))
        writer.stats.observers.append(self._observe)

    def _observe(self, batch: BatchDone) -> None:
        self.batch_records.observe(batch.records)
        self.batch_seconds.observe(batch.seconds)
        at = batch.committed_at_ms
        for ts in batch.timestamps_ms:
            if ts is not None and ts <= at:
                self.latency.observe((at - ts) / 1000)

    def view(self) -> WriterView:
        w, s = self.writer, self.writer.stats
        lag = dict(self.lag)
        unknown = sum(1 for tp in list(w.claims) if tp not in lag)
        return WriterView(
            w.running, len(w.claims), lag, s.started, s.last_commit, s.retrying_since, s.retry_reason, unknown
        )

    def snapshot(self) -> _Snapshot:
        """The metric families as of now (in the event loop)."""
        s = self.writer.stats
        r = s.result
        now = time.monotonic()
        families: list[Metric] = []

        def counter(name: str, doc: str, value: float) -> None:
            families.append(CounterMetricFamily(name, doc, value=value))

        counter("selene_writer_records_consumed", "Records consumed and committed (in a ledger or a dead letter)",
                r.consumed)  # fmt: skip
        by_outcome = {
            "appended": CounterMetricFamily("selene_writer_appended", "Events appended to a ledger", labels=["ledger"]),
            "duplicate": CounterMetricFamily(
                "selene_writer_deduplicated", "Records already in their ledger (not appended again)", labels=["ledger"]
            ),
            "dead": CounterMetricFamily(
                "selene_writer_dead_lettered", "Records written to the dead letters", labels=["ledger", "reason"]
            ),
        }
        for (ledger, outcome, reason), n in sorted(s.outcomes.items()):
            if outcome in by_outcome:
                by_outcome[outcome].add_metric([ledger, reason] if outcome == "dead" else [ledger], n)
        families += by_outcome.values()
        counter("selene_writer_batch_retries", "Failed attempts at a batch (each retried)", s.retries)
        counter("selene_writer_batch_isolations", "Batches isolated (halved) after the retry limit", s.isolations)
        counter("selene_writer_stalled_writers_ended",
                "Sessions of stalled writers of the group ended because they kept a claim waiting",
                s.stalled_writers_ended)  # fmt: skip
        counter("selene_writer_partitions_claimed", "Partitions claimed (each with a new fencing epoch)",
                s.claimed_partitions)  # fmt: skip
        counter("selene_writer_partitions_fenced", "Partitions found owned by another writer at a batch",
                s.fenced_partitions)  # fmt: skip
        families.append(GaugeMetricFamily("selene_writer_partitions_owned", "Partitions claimed now",
                                          value=len(self.writer.claims)))  # fmt: skip
        lag = GaugeMetricFamily(
            "selene_writer_lag_records", "Records left to write: last stable offset less the stored offset",
            labels=["topic", "partition"],
        )  # fmt: skip
        for (topic, partition), n in sorted(self.lag.items()):
            lag.add_metric([topic, str(partition)], n)
        families.append(lag)
        if s.last_commit is not None:
            families.append(GaugeMetricFamily(
                "selene_writer_last_commit_age_seconds", "Seconds since the last batch committed",
                value=now - s.last_commit,
            ))  # fmt: skip
        families.append(GaugeMetricFamily(
            "selene_writer_retrying_seconds", "How long the batch in flight has been retried (0: not retrying)",
            value=0.0 if s.retrying_since is None else now - s.retrying_since,
        ))  # fmt: skip
        dead = GaugeMetricFamily(
            "selene_dead_letters_open", "Dead letters OPEN, HELD or REJECTED on this writer's topics",
            labels=["reason", "tenant"],
        )  # fmt: skip
        for row in self.dead_letters:
            dead.add_metric([row["reason_code"], row["tenant_id"]], row["n"])
        families.append(dead)
        if self.dead_letters_at is not None:
            families.append(GaugeMetricFamily(
                "selene_dead_letters_refreshed_timestamp_seconds", "When the open dead letters were counted",
                value=self.dead_letters_at,
            ))  # fmt: skip
        ready = readiness(self.view(), now, self.bounds)
        families.append(
            GaugeMetricFamily("selene_writer_ready", "1 when /health/ready answers 200", value=int(ready[0]))
        )
        return _Snapshot(now, families, ready)

    async def _tick(self) -> None:
        while True:
            self._snapshot = self.snapshot()
            await asyncio.sleep(1.0)

    async def _refresh_lag(self) -> None:
        while True:
            with contextlib.suppress(Exception):  # (logged by partition_lag; the last figures stay)
                self.lag = await self.writer.partition_lag()
            # Sooner while a claimed partition's lag is unknown (just claimed): not ready until it is known.
            unknown = any(tp not in self.lag for tp in list(self.writer.claims))
            await asyncio.sleep(min(0.5, self.lag_every) if unknown else self.lag_every)

    async def _refresh_dead_letters(self) -> None:
        conn: asyncpg.Connection | None = None
        try:
            while True:
                try:
                    async with asyncio.timeout(10):
                        if conn is None or conn.is_closed():
                            conn = await connect(self.settings.database_url)
                        self.dead_letters = await open_dead_letters(conn, self.settings.topic_prefix)
                    self.dead_letters_at = time.time()
                except Exception as exc:  # the database may be down: the writer says so itself
                    log.info("open dead letters not counted (%s)", exc)
                    if conn is not None:
                        conn.terminate()
                        conn = None
                await asyncio.sleep(self.dead_letters_every)
        finally:
            if conn is not None:
                conn.terminate()

    def live(self) -> Health:
        return liveness(self._snapshot.taken_at, time.monotonic(), self.bounds)

    def ready(self) -> Health:
        # (from the thread: the readiness as of the last snapshot, and the loop must be turning)
        alive = self.live()
        return self._snapshot.ready if alive[0] else (False, alive[1])

    @contextlib.asynccontextmanager
    async def serve(self, address: str) -> AsyncIterator[MetricsServer]:
        """Serve while the block runs (the writer runs inside it)."""
        server = MetricsServer(address, self.registry, self.live, self.ready)
        self._snapshot = self.snapshot()
        tasks = [asyncio.create_task(t) for t in (self._tick(), self._refresh_lag(), self._refresh_dead_letters())]
        server.start()
        try:
            yield server
        finally:
            server.stop()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


class RunMetrics:
    """Progress of a ``replay`` or ``rebuild`` (a shadow run) while it runs: records read so far, the total when
    known (replay: up to its target offsets), the rate and the estimated time left. Fed by the run's own
    progress callback (``update``); live while the event loop turns, ready while live (a run has no other
    readiness: it is a job, not a service)."""

    def __init__(self, run: str, bounds: HealthBounds | None = None) -> None:
        self.run = run
        self.bounds = bounds or HealthBounds()
        self.registry = CollectorRegistry(auto_describe=True)

        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(name, doc, labelnames=["run"], registry=self.registry)

        self._read = gauge("selene_shadow_run_records_read", "Records (replay) or ledger rows (rebuild) read")
        self._total = gauge("selene_shadow_run_records_total", "Records to read, when known (replay)")
        self._rate = gauge("selene_shadow_run_records_per_second", "Read rate since the run started")
        self._eta = gauge("selene_shadow_run_eta_seconds", "Estimated time left, when known (replay)")
        self._taken_at = time.monotonic()
        self.last = ""

    def update(self, read: int, rate: float, total: int | None = None, eta: float | None = None) -> None:
        self._read.labels(self.run).set(read)
        self._rate.labels(self.run).set(rate)
        if total is not None:
            self._total.labels(self.run).set(total)
        if eta is not None:
            self._eta.labels(self.run).set(eta)
        self.last = f"{self.run}: read {read}" + (f" of {total}" if total is not None else "")

    def live(self) -> Health:
        return liveness(self._taken_at, time.monotonic(), self.bounds)

    def ready(self) -> Health:
        ok, reason = self.live()
        return (True, self.last or f"{self.run} starting") if ok else (False, reason)

    async def _tick(self) -> None:
        while True:
            self._taken_at = time.monotonic()
            await asyncio.sleep(1.0)

    @contextlib.asynccontextmanager
    async def serve(self, address: str) -> AsyncIterator[MetricsServer]:
        server = MetricsServer(address, self.registry, self.live, self.ready)
        tick = asyncio.create_task(self._tick())
        server.start()
        try:
            yield server
        finally:
            server.stop()
            tick.cancel()
            await asyncio.gather(tick, return_exceptions=True)
