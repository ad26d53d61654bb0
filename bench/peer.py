"""The peer: Kafka Connect standalone running the Debezium JDBC sink into the same PostgreSQL.

Jars come from Maven Central through ``bench/peer/pom.xml`` (Connect 4.3.1: 4.4.0, the broker's version, is
not published there; same 4.x family, same wire protocol). The sink reads JSON-with-schema records made
from the same events (one topic), upserts them on the scoped idempotency key (ledger, tenant, correlation,
idempotency key) into ``bench_peer.ledger_rows``, a table with the ledger's envelope columns and a second
unique index like the ledgers have, with the connector's best settings for this job: batches of 2000 (as
the writer), the reduction buffer (needed for duplicates within a batch) and PostgreSQL UNNEST inserts. The
UNNEST path cannot bind ``bytea`` arrays ("byte[] nested inside Object[]"), so the content digest is hex
text there, not bytea as in the ledgers.

Its clock runs from the first row it committed to the last (JVM and connector start-up are not counted),
so the peer's figure is, if anything, flattering. Throughput is converted from rows to input records with
the stream's records/unique-rows ratio, since duplicates collapse into one row.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import asyncpg

from bench.publish import Item, produce
from bench.stream import StreamRecord
from contracts.settings import Settings
from services.kafka_node import LOG4J2

POM = Path(__file__).resolve().parent / "peer" / "pom.xml"
CONNECTOR_CLASS = "io.debezium.connector.jdbc.JdbcSinkConnector"
PEER_TABLE = "bench_peer.ledger_rows"
PEER_DDL = f"""
CREATE SCHEMA IF NOT EXISTS bench_peer;
CREATE TABLE IF NOT EXISTS {PEER_TABLE} (
  ledger          text        NOT NULL,
  tenant_id       text        NOT NULL,
  correlation_id  text        NOT NULL,
  idempotency_key text        NOT NULL,
  event_uuid      uuid        NOT NULL,
  engine_id       text        NOT NULL,
  event_type      text        NOT NULL,
  schema_version  integer     NOT NULL,
  turn_id         text,
  occurred_at     timestamptz NOT NULL,
  payload         jsonb       NOT NULL,
  content_sha256  text        NOT NULL,
  PRIMARY KEY (ledger, tenant_id, correlation_id, idempotency_key),
  UNIQUE (tenant_id, event_uuid)
);
"""


def _field(name: str, kind: str, *, optional: bool = False, logical: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"field": name, "type": kind, "optional": optional}
    if logical:
        out["name"] = logical
    return out


VALUE_SCHEMA = {
    "type": "struct",
    "name": "selene.bench.ledger_row",
    "optional": False,
    "fields": [
        _field("ledger", "string"),
        _field("tenant_id", "string"),
        _field("correlation_id", "string"),
        _field("idempotency_key", "string"),
        _field("event_uuid", "string", logical="io.debezium.data.Uuid"),
        _field("engine_id", "string"),
        _field("event_type", "string"),
        _field("schema_version", "int32"),
        _field("turn_id", "string", optional=True),
        _field("occurred_at", "string", logical="io.debezium.time.ZonedTimestamp"),
        _field("payload", "string", logical="io.debezium.data.Json"),
        _field("content_sha256", "string"),
    ],
}


def dedupe_key(doc: dict[str, Any]) -> str:
    """The peer's idempotency key: the event's, or ``event:<event id>`` for an event without one (several
    slices' examples carry none). The writer dedupes such a row on its event id alone; the peer's primary key
    needs a non-null text, and the event id keeps keyless events apart and their re-sends together."""
    key = doc.get("idempotency_key")
    return str(key) if key is not None else f"event:{doc['event_id']}"


def json_with_schema(record: StreamRecord) -> bytes:
    """The event as Connect's JsonConverter expects it with ``schemas.enable=true``."""
    doc = json.loads(record.value)
    payload = json.dumps(doc["payload"], sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(f"{doc['event_type']}\n{payload}".encode()).digest()
    row = {
        "ledger": doc["ledger"],
        "tenant_id": doc["tenant_id"],
        "correlation_id": doc["correlation_id"],
        "idempotency_key": dedupe_key(doc),
        "event_uuid": doc["event_id"],
        "engine_id": doc["engine_id"],
        "event_type": doc["event_type"],
        "schema_version": doc["schema_version"],
        "turn_id": doc.get("turn_id"),
        "occurred_at": doc["occurred_at"],
        "payload": payload,
        "content_sha256": digest.hex(),
    }
    return json.dumps({"schema": VALUE_SCHEMA, "payload": row}, separators=(",", ":")).encode()


def peer_items(stream: Sequence[StreamRecord], topic: str) -> Iterator[Item]:
    return ((topic, r.key, json_with_schema(r), ()) for r in stream)


def resolve_jars(lib_dir: Path) -> None:
    """Maven copies the Connect runtime, JSON converter, Debezium JDBC sink and their dependencies; skipped
    when ``lib_dir`` already holds this pom's jars (a stamp of its hash, written last)."""
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()
    stamp = lib_dir / ".pom.sha256"
    if stamp.is_file() and stamp.read_text().strip() == digest:
        return
    mvn = shutil.which("mvn")
    if mvn is None:
        raise PeerError("`mvn` is not on PATH (./run bootstrap installs Maven)")
    staging = lib_dir.with_name(lib_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    cmd = [mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
           f"-DoutputDirectory={staging}", "-DincludeScope=runtime"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        output = (done.stdout + done.stderr)[-3000:]
        raise PeerError(f"Maven could not resolve the peer's jars ({' '.join(cmd)}):\n{output}")
    stamp_tmp = staging / ".pom.sha256"
    stamp_tmp.write_text(digest + "\n")
    shutil.rmtree(lib_dir, ignore_errors=True)
    staging.rename(lib_dir)


class PeerError(RuntimeError):
    """The peer could not be set up, started or measured; the message is the exact error."""


@dataclass(frozen=True)
class PeerRun:
    home: Path
    settings: Settings
    topic: str
    name: str
    #: the role the connector connects as (default: the owner, for ``bench_peer.ledger_rows``)
    database_url: str | None = None
    #: JDBC URL parameters (``options=-c ...`` to set a session setting at connect time)
    jdbc_params: str = ""
    #: connector settings that replace or add to the default ones
    overrides: tuple[tuple[str, str], ...] = ()

    @property
    def lib(self) -> Path:
        return self.home.parent.parent / "connect-lib"

    def _free_port(self) -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
            return port

    def write_config(self, port: int) -> tuple[Path, Path]:
        self.home.mkdir(parents=True, exist_ok=True)
        url = urlsplit(self.database_url or self.settings.database_owner_url)
        worker = {
            "bootstrap.servers": self.settings.kafka_bootstrap_servers,
            "key.converter": "org.apache.kafka.connect.storage.StringConverter",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter.schemas.enable": "true",
            "offset.storage.file.filename": str(self.home / "connect.offsets"),
            "offset.flush.interval.ms": "1000",
            "listeners": f"http://127.0.0.1:{port}",
            "plugin.discovery": "hybrid_warn",
            "consumer.max.poll.records": str(self.settings.batch_max_records),
            "consumer.fetch.max.bytes": str(16 * 1024 * 1024),
            "consumer.max.partition.fetch.bytes": str(4 * 1024 * 1024),
        }
        connector = {
            "name": self.name,
            "connector.class": CONNECTOR_CLASS,
            "tasks.max": "1",
            "topics": self.topic,
            "connection.url": f"jdbc:postgresql://{url.hostname}:{url.port or 5432}{url.path}"
            + (f"?{self.jdbc_params}" if self.jdbc_params else ""),
            "connection.username": unquote(url.username or ""),
            "connection.password": unquote(url.password or ""),
            "insert.mode": "upsert",
            "primary.key.mode": "record_value",
            "primary.key.fields": "ledger,tenant_id,correlation_id,idempotency_key",
            "schema.evolution": "none",
            "collection.name.format": PEER_TABLE,
            "batch.size": str(self.settings.batch_max_records),
            "use.reduction.buffer": "true",
            "dialect.postgres.unnest.insert.enabled": "true",
            **dict(self.overrides),
        }
        connector = {k: v for k, v in connector.items() if v}  # an override of "" removes the setting
        paths = (self.home / "worker.properties", self.home / "connector.properties")
        for path, doc in zip(paths, (worker, connector), strict=True):
            path.write_text("".join(f"{k}={v}\n" for k, v in doc.items()))
        return paths

    def start(self, port: int) -> subprocess.Popen[bytes]:
        worker, connector = self.write_config(port)
        logs = self.home / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        java = shutil.which("java")
        if java is None:
            raise PeerError("`java` is not on PATH")
        cmd = [java, "-Xms256m", "-Xmx1g", "-XX:+UseG1GC", f"-Dkafka.logs.dir={logs}",
               f"-Dlog4j2.configurationFile={LOG4J2}", "-cp", f"{self.lib}/*",
               "org.apache.kafka.connect.cli.ConnectStandalone", str(worker), str(connector)]  # fmt: skip
        out = (logs / "connect.out").open("ab")
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out, cwd=self.home)

    def log_tail(self, lines: int = 40) -> str:
        parts = []
        for name in ("server.log", "connect.out"):
            path = self.home / "logs" / name
            if path.is_file():
                text = path.read_text(errors="replace").splitlines()
                errors = [line for line in text if " ERROR " in line or "Exception" in line][:lines]
                parts.append(f"--- {path} ---\n" + "\n".join(errors or text[-lines:]))
        return "\n".join(parts)


def _status(port: int, name: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/connectors/{name}/status", timeout=2) as resp:
            doc: dict[str, Any] = json.loads(resp.read())
            return doc
    except OSError:
        return None


def _failure(status: dict[str, Any] | None) -> str | None:
    if status is None:
        return None
    states = [status.get("connector", {}), *status.get("tasks", [])]
    for s in states:
        if s.get("state") == "FAILED":
            return str(s.get("trace") or s)
    return None


async def run_peer(
    run: PeerRun, stream: Sequence[StreamRecord], *, max_seconds: float, startup_timeout: float = 180.0
) -> dict[str, Any]:
    """Produce the JSON-with-schema topic, start Connect, and time the sink until every row is in or the
    time cap; raises PeerError with the exact error when it cannot run."""
    resolve_jars(run.lib)
    owner = await asyncpg.connect(run.settings.database_owner_url)
    try:
        await owner.execute(PEER_DDL)
        await produce(run.settings, peer_items(stream, run.topic))

        async def count() -> int:
            return int(await owner.fetchval(f"SELECT count(*) FROM {PEER_TABLE}"))

        return await time_sink(run, count, _expected_rows(stream), len(stream), max_seconds, startup_timeout)
    finally:
        await owner.close()


async def time_sink(
    run: PeerRun,
    count: Callable[[], Awaitable[int]],
    expected: int,
    records: int,
    max_seconds: float,
    startup_timeout: float = 180.0,
) -> dict[str, Any]:
    """Start Connect on the already produced topic and time the sink by ``count`` (rows in) until
    ``expected`` rows or the time cap; Connect is stopped in every case."""
    port = run._free_port()
    proc = run.start(port)
    try:
        return await _watch(run, proc, port, count, expected, records, max_seconds, startup_timeout)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _expected_rows(stream: Sequence[StreamRecord]) -> int:
    keys = set()
    for r in stream:
        d = json.loads(r.value)
        keys.add((d["ledger"], d["tenant_id"], d["correlation_id"], dedupe_key(d)))
    return len(keys)


async def _watch(
    run: PeerRun,
    proc: subprocess.Popen[bytes],
    port: int,
    count: Callable[[], Awaitable[int]],
    expected: int,
    records: int,
    max_seconds: float,
    startup_timeout: float,
) -> dict[str, Any]:
    started = time.perf_counter()
    first: tuple[float, int] | None = None
    last = (started, 0)
    last_status = 0.0
    while True:
        await asyncio.sleep(0.25)
        now = time.perf_counter()
        if proc.poll() is not None:
            raise PeerError(f"Kafka Connect exited with code {proc.returncode}:\n{run.log_tail()}")
        if now - last_status > 2.0:
            last_status = now
            failure = _failure(_status(port, run.name))
            if failure:
                causes = [line.strip() for line in failure.splitlines() if line.startswith("Caused by")]
                raise PeerError("the Debezium JDBC sink task failed:\n" + "\n".join([failure.splitlines()[0], *causes]))
        rows = await count()
        if rows > last[1]:
            last = (time.perf_counter(), rows)
            if first is None:
                first = last
        if rows >= expected:
            break
        if first is None and now - started > startup_timeout:
            raise PeerError(f"no row arrived within {startup_timeout:.0f} s of starting Connect:\n{run.log_tail()}")
        if first is not None and now - first[0] > max_seconds:
            break
    assert first is not None
    seconds = last[0] - first[0]
    rows_done = last[1] - first[1]
    per_row = records / expected
    rate_rows = rows_done / seconds if seconds > 0 else 0.0
    return {
        "records": round(last[1] * per_row),
        "rows": last[1],
        "expected_rows": expected,
        "seconds": round(seconds, 3),
        "rate": round(rate_rows * per_row, 1),
        "rows_per_s": round(rate_rows, 1),
        "startup_s": round(first[0] - started, 3),
        "capped": last[1] < expected,
    }
