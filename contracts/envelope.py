"""The ledger event envelope, the ledgers it can target, and the per-(ledger, event type) event models.

One envelope for every engine: who (tenant, engine), where (ledger), what (event type and a typed payload),
and the keys that make appends idempotent and traceable (event id, idempotency key, correlation and turn
ids). Each slice registers its ledgers and event types here; ``contracts.registry`` imports every slice and
builds the decoder, so adding an engine never touches the consumer loop.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, StringConstraints, create_model

from contracts.reasons import ReasonCode

TENANT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
TenantId = Annotated[str, StringConstraints(pattern=TENANT_PATTERN)]
EngineId = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9][A-Z0-9_.]{0,63}$")]
Ident = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^\S+$")]
ReasonText = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9_]{0,95}$")]
ShortText = Annotated[str, StringConstraints(max_length=256)]


class StrictModel(BaseModel):
    """Frozen, strict, closed: unknown fields are an error, never silently dropped."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Payload(StrictModel):
    """Base of every typed payload. ``aggregate_id`` names the stream whose order Kafka must keep."""

    def aggregate_id(self, event: LedgerEvent) -> str:
        """Default aggregate: the correlation (one thread of work), which is also the dedupe scope."""
        return event.correlation_id


class LedgerEvent(StrictModel):
    """The envelope. Concrete subclasses pin ``ledger``, ``event_type`` and the payload model."""

    event_id: uuid.UUID
    tenant_id: TenantId
    engine_id: EngineId
    ledger: str
    event_type: str
    schema_version: int
    idempotency_key: Ident | None = None
    correlation_id: Ident
    turn_id: Ident | None = None
    occurred_at: AwareDatetime
    payload: Payload

    spec: ClassVar[LedgerSpec]

    @property
    def aggregate_id(self) -> str:
        return self.payload.aggregate_id(self)

    @property
    def kafka_key(self) -> bytes:
        """Tenant plus aggregate: all events of one aggregate land on one partition, in order."""
        return f"{self.tenant_id}/{self.aggregate_id}".encode()


@dataclass(frozen=True)
class LedgerSpec:
    """A ledger table this project appends to, and the Kafka topic that feeds it."""

    name: str
    table: str
    id_column: str
    idempotency_scope: tuple[str, ...]
    contract_invalid: ReasonCode
    tenant_violation: ReasonCode
    duplicate: ReasonCode
    append_only_violation: ReasonCode
    max_payload_bytes: int = 16384

    def topic(self, prefix: str) -> str:
        return f"{prefix}{self.table}"


@dataclass(frozen=True)
class EventType:
    """A registered (ledger, event type) and its concrete event model."""

    spec: LedgerSpec
    name: str
    payload: type[Payload]
    model: type[LedgerEvent]

    @property
    def tag(self) -> str:
        return event_tag(self.spec.name, self.name)


LEDGERS: dict[str, LedgerSpec] = {}
EVENT_TYPES: dict[str, EventType] = {}


def event_tag(ledger: object, event_type: object) -> str:
    return f"{ledger}|{event_type}"


def register_ledger(spec: LedgerSpec) -> LedgerSpec:
    """Declare a ledger; its topic is ``<prefix><schema>.<table>``."""
    LEDGERS[spec.name] = spec
    return spec


def _an_int(value: Any) -> Any:
    """JSON ``true`` and ``1.0`` pass a ``Literal[1]`` check (``True == 1.0 == 1`` in Python); a version is
    an integer, and anything else is refused rather than coerced."""
    if isinstance(value, bool | float):
        raise ValueError(f"a schema version is an integer, not {value!r}")  # noqa: TRY004 - pydantic reports ValueError
    return value


def register_event(
    spec: LedgerSpec,
    event_type: str,
    payload: type[Payload],
    schema_versions: tuple[int, ...] = (1,),
    base: type[LedgerEvent] = LedgerEvent,
) -> type[LedgerEvent]:
    """Declare an event type of a ledger and build its envelope model.

    ``base`` lets a slice tighten envelope fields for its event type (a required turn id, a fixed engine),
    so that the publisher refuses what the writer would dead-letter, with the same contract.
    """
    fields: dict[str, Any] = {
        "ledger": (Literal[spec.name], ...),
        "event_type": (Literal[event_type], ...),
        "schema_version": (Annotated[Literal[schema_versions], BeforeValidator(_an_int)], ...),
        "payload": (payload, ...),
    }
    model: type[LedgerEvent] = create_model(f"{payload.__name__}Event", __base__=base, **fields)
    model.spec = spec
    entry = EventType(spec=spec, name=event_type, payload=payload, model=model)
    EVENT_TYPES[entry.tag] = entry
    return model


def uuid7() -> uuid.UUID:
    """A time-ordered UUID (RFC 9562 version 7), so event ids sort roughly by creation time."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | (rand >> 68 & 0xFFF) << 64 | 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return uuid.UUID(int=value)


def new_event(model: type[LedgerEvent], **fields: Any) -> LedgerEvent:
    """Build an event of ``model``, filling ``event_id`` (v7), ``ledger``, ``event_type`` and version 1."""
    fields.setdefault("event_id", uuid7())
    fields.setdefault("schema_version", 1)
    fields.setdefault("ledger", model.model_fields["ledger"].annotation.__args__[0])  # type: ignore[union-attr]
    fields.setdefault("event_type", model.model_fields["event_type"].annotation.__args__[0])  # type: ignore[union-attr]
    return model.model_validate(fields, strict=False)
