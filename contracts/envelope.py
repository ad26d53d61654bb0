"""The ledger event envelope, the ledgers it can target, and the per-(ledger, event type) event models.

One envelope for every engine: who (tenant, engine), where (ledger), what (event type and a typed payload),
and the keys that make appends idempotent and traceable (event id, idempotency key, correlation and turn
ids). Each slice defines its ledgers (``LedgerSpec``) and event models (``define_event``) and declares them in
its ``SLICE`` (``contracts.slice``); nothing here keeps a global list: ``contracts.registry`` builds the one
immutable registry from the slices' declarations, so adding an engine never touches the consumer loop.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import sys
import time
import uuid
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    StringConstraints,
    ValidationError,
    create_model,
)

from contracts.reasons import ContractViolation, ReasonCode

TENANT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
#: An identifier (ids, keys, correlation, turn and idempotency ids) is one token: no whitespace and no control
#: character (C0, DEL, C1). Identifiers become Kafka keys, text columns, dedupe scopes and log lines; a control
#: character there is never meant, and U+0000 is one PostgreSQL cannot store at all (issue 13, item 4).
IDENT_PATTERN = r"^[^\s\x00-\x1f\x7f-\x9f]+$"
#: Free text keeps every character PostgreSQL's ``text`` and ``jsonb`` can store, that is all but U+0000.
#: (Lone surrogates, which UTF-8 cannot encode, pydantic refuses by itself: in JSON as invalid, in Python as
#: not a valid string.) Refused here, such text is ``EVENT_SCHEMA_INVALID`` up front instead of a database
#: error on the batch.
STORABLE_TEXT_PATTERN = r"^[^\x00]*$"
TenantId = Annotated[str, StringConstraints(pattern=TENANT_PATTERN)]
EngineId = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9][A-Z0-9_.]{0,63}$")]
Ident = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=IDENT_PATTERN)]
ReasonText = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9_]{0,95}$")]
StorableText = Annotated[str, StringConstraints(pattern=STORABLE_TEXT_PATTERN)]
ShortText = Annotated[str, StringConstraints(max_length=256, pattern=STORABLE_TEXT_PATTERN)]


class StrictModel(BaseModel):
    """Frozen, strict, closed: unknown fields are an error, never silently dropped."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# Objects that pydantic built by validating their values, by identity. Not a private
# attribute: pydantic carries those into ``model_copy(update=...)``, ``copy``/``deepcopy`` and pickles (so a
# copy with unvalidated values would inherit the mark) and compares them in ``==`` (so a ``model_construct``
# twin would no longer equal its validated original). Not a ``WeakKeyDictionary``: that goes by ``==`` and
# ``hash``, and ``1 == 1.0 == True`` while their JSON differs. Only ``model_post_init`` puts an object here; an entry
# whose object is gone answers for no later object given the same ``id`` (its reference is dead), and dead
# entries are swept whenever the table has doubled since the last sweep. No callback per reference: that
# doubled the cost of a mark.
_VALIDATED: dict[int, weakref.ref[StrictModel]] = {}
_SWEEP_AT = [4096]


#: False while a consumer decodes (``unmarked``): the mark serves the publisher alone, and a writer or replay
#: that validates thousands of events a second would only pay for marks (and weak references) it never reads.
_MARKING: contextvars.ContextVar[bool] = contextvars.ContextVar("selene_marking", default=True)


@contextlib.contextmanager
def unmarked() -> Iterator[None]:
    """Validation inside this block leaves no mark (``validated`` is False for what it builds): for the
    consumers' decoding, which never publishes what it decodes. Leaving a mark out is always safe: an unmarked
    event only takes the publisher's full round trip."""
    token = _MARKING.set(False)
    try:
        yield
    finally:
        _MARKING.reset(token)


def _mark_validated(obj: StrictModel) -> None:
    _VALIDATED[id(obj)] = weakref.ref(obj)
    if len(_VALIDATED) >= _SWEEP_AT[0]:
        for key, ref in list(_VALIDATED.items()):  # a snapshot: another thread may mark meanwhile
            if ref() is None and _VALIDATED.get(key) is ref:
                del _VALIDATED[key]
        _SWEEP_AT[0] = max(4096, 2 * len(_VALIDATED))


# ``model_construct`` calls ``model_post_init`` itself; validation calls it from pydantic-core (C), so the
# Python frame under it is the caller of the validation. A test holds this (``model_construct`` unmarked).
_MODEL_CONSTRUCT = BaseModel.model_construct.__func__.__code__  # type: ignore[attr-defined]


def validated(obj: StrictModel) -> bool:
    """True when this very object was built by pydantic validation (``Model(...)``, ``model_validate``,
    ``new_event``, ``model_validate_json``, the writer's decoder) and, for an event, its payload too, with
    the exact registered types.

    False for ``model_construct``, ``model_copy`` (with or without ``update``), ``copy``, ``deepcopy`` and
    unpickled objects: each is another object. What the mark cannot see is tampering after validation:
    ``object.__setattr__`` on a frozen model or writing into its ``__dict__`` (out of scope: that defeats
    ``frozen=True`` itself), and mutating a dict field in place (the publisher re-checks those fields).
    """
    ref = _VALIDATED.get(id(obj))
    return ref is not None and ref() is obj


class Payload(StrictModel):
    """Base of every typed payload. ``aggregate_id`` names the stream whose order Kafka must keep."""

    def model_post_init(self, context: Any, /) -> None:
        # pydantic calls this on an object it has just built and validated, and from ``model_construct``
        # (told apart by its caller). Not an "after" validator: pydantic also runs those on an instance it
        # was given and took as it is (``revalidate_instances='never'``), ``model_construct``'d or not; nor
        # a wrap or before validator: those make pydantic hand JSON input over as Python values (a
        # datetime's text then fails the strict check), which would change what the writer's decoder accepts.
        if _MARKING.get() and sys._getframe(1).f_code is not _MODEL_CONSTRUCT:
            _mark_validated(self)

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
    #: the payload model this (ledger, event type) was defined with (``define_event``).
    payload_model: ClassVar[type[Payload]]
    #: the event type's name (the ``event_type`` literal).
    event_type_name: ClassVar[str]

    def model_post_init(self, context: Any, /) -> None:
        # As for payloads; and pydantic takes a payload *instance* as it is, ``model_construct``'d or of a
        # subclass: the event is marked only when its payload was validated too and is exactly the payload
        # model its (ledger, event type) was registered with.
        if not _MARKING.get() or sys._getframe(1).f_code is _MODEL_CONSTRUCT:
            return  # first: a model_construct'd event may lack any field
        payload = self.payload
        # The class's own attribute, not an inherited one: a subclass of a defined model is not that model.
        if type(payload) is vars(type(self)).get("payload_model") and validated(payload):
            _mark_validated(self)

    @property
    def aggregate_id(self) -> str:
        return self.payload.aggregate_id(self)

    @property
    def kafka_key(self) -> bytes:
        """Tenant plus aggregate: all events of one aggregate land on one partition, in order."""
        return f"{self.tenant_id}/{self.aggregate_id}".encode()


@dataclass(frozen=True)
class UniqueKey:
    """A unique key of a ledger besides the event id and the idempotency scope, for the rows whose
    ``columns`` and ``when`` columns are all set (a conversation turn id, once per correlation: PH1_F.md). A row
    holding a key already used is a duplicate when its content is the same, else ``IDEMPOTENCY_CONFLICT``."""

    columns: tuple[str, ...]
    when: tuple[str, ...] = ()


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
    #: a narrower dedupe scope that replaces ``idempotency_scope`` for a row whose columns of it are all set
    #: (the audit rows of a work order dedupe on (tenant, work order, key) across correlations: PH1_J.md).
    preferred_scope: tuple[str, ...] = ()
    #: further unique keys of the ledger, each dedupes like the scope (same content: duplicate; else conflict).
    unique_keys: tuple[UniqueKey, ...] = ()

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

    @classmethod
    def of(cls, model: type[LedgerEvent]) -> EventType:
        """The entry of an event model built by ``define_event``."""
        return cls(spec=model.spec, name=model.event_type_name, payload=model.payload_model, model=model)


def event_tag(ledger: object, event_type: object) -> str:
    return f"{ledger}|{event_type}"


def _an_int(value: Any) -> Any:
    """JSON ``true`` and ``1.0`` pass a ``Literal[1]`` check (``True == 1.0 == 1`` in Python); a version is
    an integer, and anything else is refused rather than coerced."""
    if isinstance(value, bool | float):
        raise ValueError(f"a schema version is an integer, not {value!r}")  # noqa: TRY004 - pydantic reports ValueError
    return value


def define_event(
    spec: LedgerSpec,
    event_type: str,
    payload: type[Payload],
    schema_versions: tuple[int, ...] = (1,),
    base: type[LedgerEvent] = LedgerEvent,
) -> type[LedgerEvent]:
    """Build the envelope model of an event type of a ledger (registered nowhere: a slice lists it in its
    ``SLICE`` declaration, and ``contracts.registry`` collects the declarations).

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
    model.payload_model = payload
    model.event_type_name = event_type
    return model


def uuid7() -> uuid.UUID:
    """A time-ordered UUID (RFC 9562 version 7), so event ids sort roughly by creation time."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | (rand >> 68 & 0xFFF) << 64 | 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return uuid.UUID(int=value)


def new_event(model: type[LedgerEvent], **fields: Any) -> LedgerEvent:
    """Build an event of ``model``, filling ``event_id`` (v7), ``ledger``, ``event_type`` and version 1.

    Raises ``ContractViolation`` with the reason code the writer's decoder gives the same content (the
    ledger's contract code, or ``EVENT_TENANT_MISSING``), as ``Publisher.parse`` and ``publish`` do: a caller
    handles one error type whichever way it builds events, never pydantic's ``ValidationError``.
    """
    fields.setdefault("event_id", uuid7())
    fields.setdefault("schema_version", 1)
    fields.setdefault("ledger", model.model_fields["ledger"].annotation.__args__[0])  # type: ignore[union-attr]
    fields.setdefault("event_type", model.model_fields["event_type"].annotation.__args__[0])  # type: ignore[union-attr]
    try:
        return model.model_validate(fields, strict=False)
    except ValidationError as exc:
        raise contract_violation(model.spec.contract_invalid, exc) from exc


def contract_violation(code: ReasonCode, exc: ValidationError, loc_start: int = 0) -> ContractViolation:
    """A model's validation errors as the ``ContractViolation`` the writer reports: no tenant is
    ``EVENT_TENANT_MISSING``, anything else ``code`` (the ledger's contract code) with the first errors.
    ``loc_start`` skips the leading locations a union adds (the decoder's member tag)."""
    errors = exc.errors(include_url=False)
    for err in errors:
        if err["loc"][loc_start:] == ("tenant_id",) and (err["type"] == "missing" or err.get("input") in (None, "")):
            return ContractViolation("the event has no tenant_id", ReasonCode.EVENT_TENANT_MISSING)
    detail = "; ".join(f"{'.'.join(map(str, e['loc'][loc_start:]))}: {e['msg']}" for e in errors[:5])
    return ContractViolation(detail[:2000], code)
