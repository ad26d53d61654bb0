"""A realistic sample workload: several tenants, users with devices and sessions, conversation turns and
audit decisions, about 5 % duplicates, every class of bad input a writer must survive, and (when asked for)
work orders through their life cycle.

Used by the demo, the benchmarks and the end-to-end tests, so all three exercise the same mix.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from contracts.audit import AuditRecordedEvent
from contracts.envelope import LedgerEvent, new_event, uuid7
from contracts.foundation import (
    ConversationTurnEvent,
    DeviceRegisteredEvent,
    IdentityUpsertedEvent,
    SessionOpenedEvent,
)
from contracts.registry import LEDGERS, REGISTRY
from contracts.slice import ExampleContext
from contracts.work_orders import (
    ClarificationResolvedEvent,
    FieldsSetEvent,
    LeaseAcquiredEvent,
    LeaseReleasedEvent,
    PromptAskedEvent,
    StatusChangedEvent,
    StepAttemptFinishedEvent,
    StepAttemptStartedEvent,
    WorkOrderCanceledEvent,
    WorkOrderCreatedEvent,
)

T = TypeVar("T")


@dataclass(frozen=True)
class RawRecord:
    """Bytes sent to a topic as they are: what a misbehaving producer could put there."""

    ledger: str
    key: bytes | None
    value: bytes | None
    expected_reason: str


@dataclass
class Workload:
    foundation: list[LedgerEvent] = field(default_factory=list)
    events: list[LedgerEvent] = field(default_factory=list)
    duplicates: list[LedgerEvent] = field(default_factory=list)
    bad: list[RawRecord] = field(default_factory=list)

    @property
    def good(self) -> list[LedgerEvent]:
        return self.foundation + self.events


def _words(rng: random.Random, n: int) -> str:
    vocab = (
        "order",
        "status",
        "remind",
        "meeting",
        "invoice",
        "delivery",
        "weather",
        "call",
        "note",
        "plan",
        "approve",
        "schedule",
        "budget",
        "report",
        "travel",
        "room",
        "flight",
        "client",
        "draft",
        "review",
    )
    return " ".join(rng.choice(vocab) for _ in range(n))


def build(
    *,
    tenants: int = 3,
    users_per_tenant: int = 3,
    events: int = 600,
    duplicate_ratio: float = 0.05,
    bad: bool = True,
    seed: int = 7,
    run_id: str | None = None,
    work_orders: int = 0,
    slice_examples: int = 0,
    example_users: int | None = None,
) -> Workload:
    """A deterministic (for a seed) mix; ``run_id`` keeps ids of separate runs apart. ``work_orders`` adds that
    many work orders per tenant to ``events`` (after everything else, so the rest of the mix is unchanged);
    ``slice_examples`` adds that many of every slice's declared examples per user (``SliceContract.examples``),
    so the workload covers every slice without naming any; ``example_users`` gives them to that many users only
    (spread over the tenants), for a stream in which the examples are a small share (one user's round is
    ``example_events_per_user()`` events, about 90)."""
    rng = random.Random(seed)
    run = run_id or uuid.uuid4().hex[:8]
    base = datetime.now(UTC) - timedelta(minutes=5)
    w = Workload()
    users: list[tuple[str, str, str, str]] = []  # tenant, user, device, session
    for t in range(tenants):
        tenant = f"tenant-{run}-{t}"
        for u in range(users_per_tenant):
            user, device, session = f"u-{run}-{t}-{u}", f"d-{run}-{t}-{u}", f"s-{run}-{t}-{u}"
            corr = f"onboard-{user}"
            common = {"tenant_id": tenant, "correlation_id": corr, "occurred_at": base}
            w.foundation.append(
                new_event(
                    IdentityUpsertedEvent,
                    engine_id="PH1.F",
                    idempotency_key="identity",
                    payload={
                        "reason_code": "IDENTITY_CREATED",
                        "user_id": user,
                        "display_name": f"User {u} of {tenant}",
                    },
                    **common,
                )
            )
            w.foundation.append(
                new_event(
                    DeviceRegisteredEvent,
                    engine_id="PH1.F",
                    idempotency_key="device",
                    payload={
                        "reason_code": "DEVICE_BOUND",
                        "user_id": user,
                        "device_id": device,
                        "device_type": "PHONE",
                    },
                    **common,
                )
            )
            w.foundation.append(
                new_event(
                    SessionOpenedEvent,
                    engine_id="PH1.L",
                    idempotency_key="session",
                    payload={
                        "reason_code": "SESSION_OPENED",
                        "user_id": user,
                        "device_id": device,
                        "session_id": session,
                    },
                    **common,
                )
            )
            users.append((tenant, user, device, session))
    for i in range(events):
        tenant, user, device, session = rng.choice(users)
        corr = f"conv-{user}-{i // 8}"
        at = base + timedelta(milliseconds=i)
        if rng.random() < 0.6:
            text = _words(rng, rng.randint(20, 50))
            ev = new_event(
                ConversationTurnEvent,
                tenant_id=tenant,
                engine_id="PH1.C",
                correlation_id=corr,
                turn_id=f"turn-{i}",
                idempotency_key=f"turn-{i}",
                occurred_at=at,
                payload={
                    "speaker": rng.choice(["USER", "SELENE"]),
                    "source": "VOICE",
                    "text": text,
                    "user_id": user,
                    "device_id": device,
                    "session_id": session,
                },
            )
        else:
            ev = new_event(
                AuditRecordedEvent,
                tenant_id=tenant,
                engine_id=rng.choice(["PH1.NLP", "PH1.X", "PH1.D"]),
                correlation_id=corr,
                turn_id=f"turn-{i}",
                idempotency_key=f"decision-{i}",
                occurred_at=at,
                payload={
                    "reason_code": rng.choice(["NLP_INTENT_OK", "X_DIRECTIVE_ISSUED", "D_ROUTED"]),
                    "summary": _words(rng, 12),
                    "user_id": user,
                    "device_id": device,
                    "session_id": session,
                    "attributes": {
                        "confidence": rng.randint(50, 99),
                        "lang": "en",
                        "model": rng.choice(["small", "large"]),
                    },
                },
            )
        w.events.append(ev)
    w.duplicates = [rng.choice(w.events) for _ in range(int(events * duplicate_ratio))]
    if bad:
        w.bad = _bad_records(rng, w, users)
    for t in range(tenants if work_orders > 0 else 0):
        tenant_users = [u for u in users if u[0] == f"tenant-{run}-{t}"]
        for n in range(work_orders):
            tenant, user, _, _ = tenant_users[n % len(tenant_users)]
            w.events += _work_order(tenant, user, f"wo-{run}-{t}-{n}", n, base + timedelta(seconds=n))
    chosen = users if example_users is None else _spread(users, example_users)
    for n in range(slice_examples):
        for tenant, user, device, session in chosen:
            ctx = ExampleContext(tenant, user, device, session, n, base + timedelta(seconds=n))
            w.events += [e for s in REGISTRY.slices if s.examples is not None for e in s.examples(ctx)]
    return w


def example_events_per_user() -> int:
    """How many events one round of every slice's examples gives one user."""
    ctx = ExampleContext("tenant-probe", "u-probe", "d-probe", "s-probe", 0, datetime.now(UTC))
    return sum(len(s.examples(ctx)) for s in REGISTRY.slices if s.examples is not None)


def _spread(items: list[T], k: int) -> list[T]:
    """``k`` of ``items`` (all if ``k`` is larger), evenly spaced: with users listed tenant by tenant, every
    tenant gets its share."""
    n = len(items)
    return items if k >= n else [items[i * n // k] for i in range(max(0, k))]


def _work_order(tenant: str, user: str, wo: str, n: int, at: datetime) -> list[LedgerEvent]:
    """One work order's life: created with a prefilled field, a field set, one prompt and its answer, then
    confirmation; then every third is canceled, every third runs (lease, one step) to DONE, the rest stay
    pending in CONFIRM. Every event is one the writer accepts."""
    tick = iter(range(1, 100))

    def ev(model: type[LedgerEvent], key: str, **payload: object) -> LedgerEvent:
        return new_event(
            model,
            tenant_id=tenant,
            engine_id="SELENE_OS",
            correlation_id=f"thread-{wo}",
            turn_id=f"turn-{wo}-{key}",
            idempotency_key=key,
            occurred_at=at + timedelta(milliseconds=next(tick)),
            payload={"work_order_id": wo, **payload},
        )

    events = [
        ev(
            WorkOrderCreatedEvent,
            "create",
            requester_user_id=user,
            intent_type="BOOK_TABLE",
            prefilled={"city": "Lisbon"},
        ),
        ev(FieldsSetEvent, "fields-1", fields={"party_size": 2 + n % 4, "restaurant": f"place-{n}"}),
        ev(StatusChangedEvent, "clarify", to_status="CLARIFY"),
        ev(PromptAskedEvent, "ask-time", field_key="time", prompt_dedupe_key="ask-time"),
        ev(ClarificationResolvedEvent, "answer-time", field_key="time", value="19:30"),
        ev(StatusChangedEvent, "confirm", to_status="CONFIRM"),
    ]
    if n % 3 == 0:
        events.append(ev(WorkOrderCanceledEvent, "cancel", reason_code="USER_CANCELED"))
    elif n % 3 == 1:
        lease = {"lease_id": f"lease-{wo}", "holder_id": "executor-1"}
        events += [
            ev(StatusChangedEvent, "execute", to_status="EXECUTING"),
            ev(LeaseAcquiredEvent, "lease", expires_at=at + timedelta(minutes=10), **lease),
            ev(StepAttemptStartedEvent, "step-1", step_id="reserve", attempt_no=1, lease_id=lease["lease_id"]),
            ev(StepAttemptFinishedEvent, "step-1-done", step_id="reserve", attempt_no=1, outcome="SUCCEEDED"),
            ev(LeaseReleasedEvent, "release", lease_id=lease["lease_id"]),
            ev(StatusChangedEvent, "done", to_status="DONE"),
        ]
    return events


def _bad_records(rng: random.Random, w: Workload, users: list[tuple[str, str, str, str]]) -> list[RawRecord]:
    """One record per bad-input class, then a good event held behind a bad one of its aggregate."""
    tenant = users[0][0]
    sample = rng.choice([e for e in w.events if e.ledger == "audit_events"])
    other_tenant = next((u[0] for u in users if u[0] != sample.tenant_id), f"{sample.tenant_id}-other")
    good = sample.model_dump(mode="json")

    def doc(**changes: object) -> bytes:
        return json.dumps({**good, "event_id": str(uuid7()), **changes}).encode()

    def fresh(name: str) -> bytes:
        return f"{tenant}/{name}-{uuid7()}".encode()

    held_corr = f"held-{uuid7()}"
    # Without a user the aggregate is the correlation, so the key below is the event's own key.
    unbound = {**good["payload"], "user_id": None, "device_id": None, "session_id": None}
    held_key = f"{sample.tenant_id}/{held_corr}".encode()
    conflict = {**good["payload"], "summary": "a different decision under the same idempotency key"}
    return [
        RawRecord("audit_events", fresh("garbage"), b"\xff\xfe not json", "EVENT_UNDECODABLE"),
        RawRecord("audit_events", fresh("bad-schema"), doc(correlation_id=None), "EVENT_SCHEMA_INVALID"),
        RawRecord("audit_events", fresh("unknown"), doc(event_type="NOT_A_TYPE"), "EVENT_UNKNOWN_TYPE"),
        RawRecord("audit_events", fresh("nowhere"), doc(ledger="no_such_ledger"), "EVENT_UNKNOWN_LEDGER"),
        RawRecord("conversation_ledger", fresh("big"), b"{" + b" " * 70000 + b"}", "EVENT_OVERSIZE"),
        RawRecord("audit_events", f"{other_tenant}/{sample.aggregate_id}".encode(), doc(), "EVENT_TENANT_MISMATCH"),
        RawRecord(
            "audit_events",
            fresh("no-tenant"),
            json.dumps({k: v for k, v in good.items() if k != "tenant_id"}).encode(),
            "EVENT_TENANT_MISSING",
        ),
        RawRecord("audit_events", sample.kafka_key, doc(payload=conflict), "IDEMPOTENCY_CONFLICT"),
        RawRecord(
            "audit_events",
            held_key,
            doc(correlation_id=held_corr, turn_id=None, payload={"nope": 1}),
            "EVENT_SCHEMA_INVALID",
        ),
        RawRecord(
            "audit_events",
            held_key,
            doc(correlation_id=held_corr, idempotency_key="held-1", payload=unbound),
            "HELD_BEHIND_DEAD_LETTER",
        ),
    ]


def topic_of(ledger: str, prefix: str) -> str:
    spec = LEDGERS.get(ledger)
    return spec.topic(prefix) if spec else f"{prefix}os_core.audit_events"
