"""Multi-writer drill over shared global keys (issue 14 item 6): a consumer group of 2, then 3 writer
processes, ``kill -9`` and rebalances, re-drives running beside them, and a workload whose user, device and
work-order ids are claimed across tenants and aggregates at once.

Projection keys are global while Kafka orders only one aggregate, so this is where two writers decide on one
row at the same moment. After the drill: every acknowledged event is in its ledger exactly once or in the
dead letters with a verdict (none lost), no row breaks a rule of global keys (``checker.CROSS_TENANT_ROWS``:
one tenant, and one user for a device, per key, for good), and live equals rebuild equals replay per tenant.
The long version is ``python -m tests.faults.soak --multi-writer``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cli.workload import _work_order, build
from consumers import deadletters
from consumers.db import connect, is_retriable
from consumers.pipeline import Pipeline
from consumers.projections.base import derived_event_id
from consumers.replay import Replayer
from contracts.audit import AuditRecordedEvent
from contracts.envelope import LedgerEvent, new_event
from contracts.foundation import DeviceRegisteredEvent, IdentityUpsertedEvent
from contracts.settings import Settings
from producers.topics import ensure_topics
from tests.e2e.helpers import drain, publish, rebuild_equals_live
from tests.faults.checker import Report, check, cross_tenant_rows
from tests.faults.drivers import Load, WriterProcess, wait_caught_up

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.faults]

DEAD_LETTERS_OF_RUN = """
SELECT event_uuid::text AS id, reason_code, status FROM selene_ops.dead_letters
WHERE source_topic LIKE $1 || '%' AND event_uuid IS NOT NULL
"""
REJECTED_REFERENCES = """
SELECT dead_letter_id FROM selene_ops.dead_letters
WHERE source_topic LIKE $1 || '%' AND status = 'REJECTED' AND reason_code = 'REFERENCE_UNKNOWN'
ORDER BY dead_letter_id
"""


# -- the workload -----------------------------------------------------------------------------------------------
@dataclass
class SharedKeys:
    """Setup (drained before the load), the load, and what the checker needs to know about them."""

    tenants: list[str]
    setup: list[LedgerEvent] = field(default_factory=list)
    #: the load, in the chunks it is published in
    chunks: list[list[LedgerEvent]] = field(default_factory=list)
    #: ids of the PH1.J audit rows the writer emits for work-order events (in a ledger, never acknowledged)
    derived: set[str] = field(default_factory=set)


def _identity(tenant: str, user: str, at: datetime) -> LedgerEvent:
    return new_event(
        IdentityUpsertedEvent, tenant_id=tenant, engine_id="PH1.F", correlation_id=f"onboard-{user}",
        idempotency_key="identity", occurred_at=at,
        payload={"reason_code": "IDENTITY_CREATED", "user_id": user, "display_name": user},
    )  # fmt: skip


def _device(tenant: str, user: str, dev: str, at: datetime) -> LedgerEvent:
    return new_event(
        DeviceRegisteredEvent, tenant_id=tenant, engine_id="PH1.F", correlation_id=f"bind-{user}-{dev}",
        idempotency_key="device", occurred_at=at,
        payload={"reason_code": "DEVICE_BOUND", "user_id": user, "device_id": dev, "device_type": "PHONE"},
    )  # fmt: skip


def _device_ref(tenant: str, dev: str, corr: str, at: datetime) -> LedgerEvent:
    """An audit row naming a device and no user: its own aggregate, so it may arrive before the device."""
    return new_event(
        AuditRecordedEvent, tenant_id=tenant, engine_id="PH1.X", correlation_id=corr, idempotency_key="ref",
        occurred_at=at, payload={"reason_code": "X_DEVICE_SEEN", "summary": f"device {dev} seen", "device_id": dev},
    )  # fmt: skip


def shared_workload(
    run_id: str, *, tenants: int = 3, keys: int = 6, filler: int = 1200, chunk: int = 40, seed: int = 14
) -> SharedKeys:
    """Per contested key k and tenant t: t claims user ``gu-k`` (and registers a device for it), two users of
    t register device ``gd-k``, t creates work order ``gw-k`` and runs its life, and an audit row of t names
    ``gd-k``. Every claim is on an aggregate of its own (tenant/user, tenant/work order), so claims land on
    different partitions, and a key's claims are published as one chunk of their own (the rest of each
    life in the next), between chunks of ``cli.workload``'s mix: writers of the group fetch them at the same
    moment and decide on one row at once. The audit rows naming a device go first, before any device
    exists: dead letters (REFERENCE_UNKNOWN) for the re-drives to pass later."""
    rng = random.Random(seed)
    base = build(tenants=tenants, users_per_tenant=3, events=filler, bad=False, duplicate_ratio=0.0, run_id=run_id)
    w = SharedKeys(tenants=[f"tenant-{run_id}-{t}" for t in range(tenants)], setup=list(base.foundation))
    at = datetime.now(UTC) - timedelta(minutes=2)
    refs: list[LedgerEvent] = []
    bursts: list[list[list[LedgerEvent]]] = []
    for k in range(keys):
        user, dev, wo = f"gu-{run_id}-{k}", f"gd-{run_id}-{k}", f"gw-{run_id}-{k}"
        heads: list[LedgerEvent] = []
        tails: list[list[LedgerEvent]] = []
        for t, tenant in enumerate(w.tenants):
            heads.append(_identity(tenant, user, at))
            tails.append([_device(tenant, user, f"gud-{run_id}-{k}-{t}", at)])
            for c in range(2):
                contender = f"cu-{run_id}-{k}-{t}-{c}"
                w.setup.append(_identity(tenant, contender, at))
                heads.append(_device(tenant, contender, dev, at + timedelta(seconds=1)))
            life = _work_order(tenant, f"u-{run_id}-{t}-0", wo, k, at + timedelta(seconds=k))
            w.derived |= {str(derived_event_id(e, "PH1.J")) for e in life}
            heads.append(life[0])
            tails.append(life[1:])
            refs.append(_device_ref(tenant, dev, f"ref-{run_id}-{k}-{t}", at + timedelta(seconds=2)))
        rng.shuffle(heads)
        bursts.append([heads, _interleaved(rng, tails)])
    mix = _interleaved(rng, [[e] for e in base.events])
    w.chunks = [refs] + [mix[i : i + chunk] for i in range(0, len(mix), chunk)]
    for burst in bursts:  # between two chunks: no event moves past another of its aggregate
        at_index = rng.randrange(1, len(w.chunks) + 1)
        w.chunks[at_index:at_index] = burst
    return w


def _interleaved(rng: random.Random, streams: list[list[LedgerEvent]]) -> list[LedgerEvent]:
    """The streams merged at random, each keeping its order."""
    queues = [list(q) for q in streams if q]
    out = []
    while queues:
        q = rng.choices(queues, weights=[len(q) for q in queues])[0]
        out.append(q.pop(0))
        if not q:
            queues.remove(q)
    return out


# -- re-drives beside the writers -------------------------------------------------------------------------------
@dataclass
class Redrives:
    passes: int = 0
    aggregates: int = 0
    one_by_one: int = 0
    appended: int = 0
    #: re-drives that lost a race with a writer (a retriable failure) and were simply run again later
    lost_races: int = 0


async def redrive_beside(settings: Settings, stop: asyncio.Event, per_pass: int = 8) -> Redrives:
    """What an operator's ``dlq redrive`` does (the same ``consumers.deadletters`` calls as the command), in a
    loop while the writers run: a few of the run's blocked aggregates, and its REFERENCE_UNKNOWN rejections
    (a device named before it was registered), which pass once the device exists."""
    stats = Redrives()
    rng = random.Random(7)
    conn = await connect(settings.database_url)
    pipeline = Pipeline(settings)
    prefix = settings.topic_prefix
    try:
        while not stop.is_set():
            stats.passes += 1
            blocked = [(t, k) for t, k in await deadletters.blocked_aggregates(conn) if t.startswith(prefix)]
            ids = [r["dead_letter_id"] for r in await conn.fetch(REJECTED_REFERENCES, prefix)]
            for topic, key in rng.sample(blocked, min(per_pass, len(blocked))):
                report = await _retried(stats, deadletters.redrive(conn, pipeline, topic, key))
                stats.aggregates += 1
                stats.appended += report.redriven if report is not None else 0
            for dead_letter_id in rng.sample(ids, min(per_pass, len(ids))):
                report = await _retried(stats, deadletters.redrive_one(conn, pipeline, dead_letter_id))
                stats.one_by_one += 1
                stats.appended += report.redriven if report is not None else 0
            await asyncio.sleep(0.3)
    finally:
        await conn.close()
    return stats


async def _retried(
    stats: Redrives, redrive: Coroutine[Any, Any, deadletters.RedriveReport | None]
) -> deadletters.RedriveReport | None:
    """A re-drive that lost a race with a writer (a retriable failure) is counted and left for a later pass."""
    try:
        return await redrive
    except Exception as exc:
        if not is_retriable(exc):
            raise
        stats.lost_races += 1
        return None


# -- the drill ----------------------------------------------------------------------------------------------------
@dataclass
class DrillResult:
    report: Report
    cross_tenant: dict[str, int]
    redrives: Redrives
    kills: int
    #: writers that joined or left the group (each a rebalance; a kill -9 is one more, after the session timeout)
    rebalances: int
    dead_letters: Counter[str]
    lost_races: int
    live_rebuild_replay_equal: bool
    seconds: float

    def summary(self) -> str:
        r, d = self.report, self.redrives
        parts = [
            f"{self.kills} kill -9, {self.rebalances} joins and leaves",
            f"acknowledged {r.acked}, appended {r.in_ledgers} ledger rows, dead-lettered {r.dead_lettered}",
            f"lost {len(r.lost)}, duplicated {len(r.duplicated)}, unexpected {len(r.unexpected)}, "
            f"order inversions {len(r.inversions)}",
            f"cross-tenant rows {sum(self.cross_tenant.values())}",
            f"lost races retried by the writers {self.lost_races}",
            f"re-drives: {d.aggregates} aggregates + {d.one_by_one} one by one in {d.passes} passes, "
            f"{d.appended} events appended, {d.lost_races} retried",
            f"dead letters {dict(sorted(self.dead_letters.items()))}",
            f"live = rebuild = replay: {'yes' if self.live_rebuild_replay_equal else 'NO'}",
            f"{self.seconds:.0f} s",
        ]
        return "; ".join(parts)


async def multi_writer_drill(
    settings: Settings,
    run_id: str,
    log_dir: Path,
    *,
    seconds: float = 24,
    cycles: int = 1,
    keys: int = 6,
    filler: int = 1200,
) -> DrillResult:
    """Load for ``seconds``; ``cycles`` times: in a group of 2 writers one is killed with -9 and replaced, a
    third joins, one of the 3 is killed and replaced, one leaves cleanly; re-drives all along; drain; check."""
    started = time.monotonic()
    s = replace(settings, batch_max_records=50, consumer_session_timeout_ms=6000, consumer_heartbeat_interval_ms=500)
    await ensure_topics(s)
    w = shared_workload(run_id, keys=keys, filler=filler)
    await publish(s, w.setup)
    await drain(s)
    events = [e for c in w.chunks for e in c]
    load = Load(s, events, chunks=w.chunks, pause=max(0.0, seconds / len(w.chunks) - 0.02))
    stop = asyncio.Event()
    producing = asyncio.create_task(load.run())
    redriving = asyncio.create_task(redrive_beside(s, stop))
    logs: list[Path] = []
    writers: list[WriterProcess] = []
    kills = rebalances = 0

    async def join() -> None:
        nonlocal rebalances
        logs.append(log_dir / f"writer{len(logs)}.log")
        writers.append(WriterProcess(s, logs[-1]))
        await writers[-1].start()
        rebalances += 1

    async def kill_one() -> None:
        nonlocal kills
        await writers.pop(0).kill()
        kills += 1

    operator = await connect(s.database_operator_url)
    try:
        await join()
        await join()
        step = seconds / (4 * cycles + 1)
        for _ in range(cycles):
            await asyncio.sleep(step)
            await kill_one()  # group of 2
            await join()
            await asyncio.sleep(step)
            await join()  # group of 3
            await asyncio.sleep(step)
            await kill_one()
            await join()
            await asyncio.sleep(step)
            await writers.pop(0).terminate()  # a clean leave: back to 2
            rebalances += 1
        await producing
        await wait_caught_up(operator, s, limit=180)
        stop.set()
        redrives = await redriving
    finally:
        stop.set()
        producing.cancel()
        for wp in writers:
            await wp.terminate()
        if not redriving.done():
            redriving.cancel()
    try:
        dead = await operator.fetch(DEAD_LETTERS_OF_RUN, s.topic_prefix)
        refused = {r["id"] for r in dead if r["status"] != "REDRIVEN"}
        setup = {str(e.event_id) for e in w.setup}
        may_exist = load.unacked | setup | w.derived
        report = await check(operator, load.acks, w.tenants, may_exist=may_exist, refused=refused)
        cross = await cross_tenant_rows(operator, w.tenants)
    finally:
        await operator.close()
    equal = await rebuild_equals_live(s, w.tenants) == []
    for tenant in w.tenants:
        replayed = await Replayer(s, tenant=tenant).run(verify=True)
        equal = equal and replayed.equal
    lost_races = sum(log.read_text(errors="replace").count("created by another writer") for log in logs)
    return DrillResult(
        report=report,
        cross_tenant=cross,
        redrives=redrives,
        kills=kills,
        rebalances=rebalances,
        dead_letters=Counter(f"{r['reason_code']}/{r['status']}" for r in dead),
        lost_races=lost_races,
        live_rebuild_replay_equal=equal,
        seconds=time.monotonic() - started,
    )


def contested(result: DrillResult) -> Sequence[str]:
    """Reasons the drill did not exercise what it is for (a drill that cannot fail proves nothing)."""
    problems = []
    if result.kills < 2:
        problems.append("fewer than 2 kills")
    if not any(k.startswith("TENANT_SCOPE_VIOLATION") for k in result.dead_letters):
        problems.append("no claim on another tenant's or user's key was refused")
    if not any(k.startswith("OS_WORK_ORDER_TENANT_SCOPE_VIOLATION") for k in result.dead_letters):
        problems.append("no work order id was refused to a second tenant")
    if result.redrives.aggregates + result.redrives.one_by_one == 0:
        problems.append("no re-drive ran beside the writers")
    return problems


async def test_multi_writer_group_over_shared_keys(settings: Settings, run_id: str, tmp_path: Path) -> None:
    result = await multi_writer_drill(settings, run_id, tmp_path)
    print(f"multi-writer drill: {result.summary()}")
    for rule, n in result.cross_tenant.items():
        assert n == 0, f"{n} rows: {rule}"
    assert result.report.ok, result.report.summary()
    assert result.live_rebuild_replay_equal
    assert contested(result) == []
