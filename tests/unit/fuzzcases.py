"""Hypothesis strategies for the consumer's input: good ledger events, and every class of bad Kafka record.

Shared by the unit fuzz test (``Pipeline.decode`` alone, no I/O) and the end-to-end one (the same records
through real Kafka and PostgreSQL). A case is a record as it would sit on a topic plus what the writer must
make of it: ``expected`` is the reason code of a bad record, None for a good one.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hypothesis import strategies as st

from contracts.audit import AuditRecordedEvent
from contracts.codec import HEADER_TENANT, encode
from contracts.envelope import LedgerEvent, new_event
from contracts.foundation import ConversationTurnEvent, IdentityUpsertedEvent
from contracts.reasons import ReasonCode
from contracts.registry import EVENT_TYPES, LEDGERS

# What decode may answer for input that is not a valid event, whatever it is.
DECODE_REASONS = frozenset(
    {
        ReasonCode.EVENT_UNDECODABLE,
        ReasonCode.EVENT_OVERSIZE,
        ReasonCode.EVENT_UNKNOWN_LEDGER,
        ReasonCode.EVENT_UNKNOWN_TYPE,
        ReasonCode.EVENT_TENANT_MISSING,
        ReasonCode.EVENT_TENANT_MISMATCH,
        ReasonCode.EVENT_KEY_MISMATCH,
        ReasonCode.EVENT_WRONG_TOPIC,
        ReasonCode.EVENT_SCHEMA_INVALID,
    }
    | {spec.contract_invalid for spec in LEDGERS.values()}
    | {spec.tenant_violation for spec in LEDGERS.values()}
)

BAD_CLASSES = (
    "tombstone",
    "not_utf8",
    "truncated",
    "missing_field",
    "unknown_field",
    "wrong_type",
    "bad_tenant_pattern",
    "unknown_ledger",
    "ledger_not_a_name",
    "unknown_type",
    "registered_type_bad_payload",
    "oversize_value",
    "oversize_payload",
    "wrong_tenant_in_key",
    "wrong_tenant_in_header",
    "no_key",
    "wrong_aggregate_in_key",
    "wrong_topic",
    "missing_tenant",
    # Control characters (issue 13, item 4): U+0000 and every other C0, DEL and C1 character.
    "nul_in_text",
    "control_in_identifier",
    "control_in_key",
    "raw_control_byte_in_value",
)

#: Every control character: C0, DEL, C1. Identifiers refuse them all; free text takes all but U+0000, which
#: PostgreSQL cannot store.
CONTROLS = tuple(chr(c) for c in (*range(0x20), *range(0x7F, 0xA0)))
STORABLE_CONTROLS = CONTROLS[1:]
#: Bytes that are never valid anywhere in JSON text (control bytes but JSON's whitespace: tab, LF, CR).
JSON_BREAKING_BYTES = tuple(bytes([b]) for b in range(0x20) if b not in (0x09, 0x0A, 0x0D))


@dataclass(frozen=True)
class Case:
    """A Kafka record (topic given by ledger name: ``<prefix><table>`` is resolved by the caller)."""

    kind: str
    topic_ledger: str
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]  # Kafka allows a null header value
    expected: ReasonCode | None  # None: a good event
    event: LedgerEvent | None = None  # the good event (or the original a bad case was made from)


tenants = st.from_regex(r"[a-z][a-z0-9_.:-]{0,15}", fullmatch=True)
idents = st.from_regex(r"[A-Za-z0-9_.:-]{1,24}", fullmatch=True)
reason_texts = st.from_regex(r"[A-Z][A-Z0-9_]{0,30}", fullmatch=True)
# Free text as the contract takes it: every character but U+0000 (PostgreSQL stores none in text or jsonb) and
# lone surrogates (not UTF-8); the other control characters drawn often, not only as hypothesis happens to.
_storable = st.sampled_from(STORABLE_CONTROLS) | st.characters(exclude_categories=["Cs"], exclude_characters="\x00")
texts = st.text(_storable, max_size=120)
attribute_values = st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53), texts)
attributes = st.dictionaries(st.text(_storable, max_size=20), attribute_values, max_size=4)
#: Extra Kafka headers any producer may add: keys and values with any character or byte, U+0000 included (the
#: writer ignores them, and a dead letter keeps them exactly). Kafka allows a null value.
_any_chars = st.sampled_from(CONTROLS) | st.characters(exclude_categories=["Cs"])
extra_headers = st.lists(
    st.tuples(
        st.text(_any_chars, max_size=12).map(lambda k: f"x-{k}"),
        st.none() | st.binary(max_size=12) | st.text(_any_chars, max_size=12).map(str.encode),
    ),
    max_size=3,
)
times = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC))


@st.composite
def good_events(draw: st.DrawFn, tenant: str | None = None) -> LedgerEvent:
    """A valid event of the foundation slices (no references to other aggregates, so nothing can hold it)."""
    common: dict[str, Any] = {
        "tenant_id": tenant or draw(tenants),
        # Globally unique (the database is shared across runs): a scope (tenant, correlation, key) of another
        # run would make this event a duplicate or a conflict.
        "correlation_id": f"c-{draw(idents)}-{uuid.uuid4().hex[:12]}",
        "idempotency_key": draw(st.one_of(st.none(), idents)),
        "turn_id": draw(st.one_of(st.none(), idents)),
        "occurred_at": draw(times),
    }
    kind = draw(st.sampled_from(("audit", "conversation", "identity")))
    if kind == "audit":
        payload = {"reason_code": draw(reason_texts), "summary": draw(texts), "attributes": draw(attributes)}
        return new_event(AuditRecordedEvent, engine_id="PH1.NLP", payload=payload, **common)
    if kind == "conversation":
        payload = {
            "speaker": draw(st.sampled_from(("USER", "SELENE"))),
            "source": draw(st.sampled_from(("VOICE", "TEXT", "SYSTEM"))),
            "text": draw(texts),
            "metadata": draw(attributes),
        }
        return new_event(ConversationTurnEvent, engine_id="PH1.C", payload=payload, **common)
    payload = {"reason_code": "IDENTITY_CREATED", "user_id": f"u-{uuid.uuid4().hex}", "display_name": draw(texts)}
    return new_event(IdentityUpsertedEvent, engine_id="PH1.F", payload=payload, **common)


def good_case(event: LedgerEvent, extra: tuple[tuple[str, bytes | None], ...] = ()) -> Case:
    enc = encode(event)
    return Case("good", event.ledger, enc.key, enc.value, (*enc.headers, *extra), None, event)


@st.composite
def good_cases(draw: st.DrawFn) -> Case:
    """A good event's record, with or without extra headers holding control characters."""
    return good_case(draw(good_events()), tuple(draw(extra_headers)))


def _with_control(draw: st.DrawFn, text: str, controls: tuple[str, ...] = CONTROLS) -> str:
    """``text`` with a control character inserted somewhere."""
    at = draw(st.integers(0, len(text)))
    return text[:at] + draw(st.sampled_from(controls)) + text[at:]


def _doc(event: LedgerEvent) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(encode(event).value)
    return doc


def _bytes(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()


@st.composite
def bad_cases(draw: st.DrawFn, kind: str | None = None, max_event_bytes: int = 65536) -> Case:
    """A record of one bad-input class, made from a fresh good event (its own aggregate, so that it never
    holds a good event of the mix behind it)."""
    kind = kind or draw(st.sampled_from(BAD_CLASSES))
    event = draw(good_events())
    spec = event.spec
    enc = encode(event)
    doc = _doc(event)
    key: bytes | None = enc.key
    headers: tuple[tuple[str, bytes | None], ...] = tuple(enc.headers)
    ledger = event.ledger
    value: bytes | None
    if kind == "tombstone":
        value, expected = None, ReasonCode.EVENT_UNDECODABLE
    elif kind == "not_utf8":
        cut = draw(st.integers(0, len(enc.value)))
        junk = draw(st.sampled_from((b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80\x80", b"\xf8\x88\x80\x80\x80")))
        value, expected = enc.value[:cut] + junk + enc.value[cut:], ReasonCode.EVENT_UNDECODABLE
    elif kind == "truncated":
        value, expected = enc.value[: draw(st.integers(0, len(enc.value) - 1))], ReasonCode.EVENT_UNDECODABLE
    elif kind == "missing_field":
        field = draw(st.sampled_from(("event_id", "engine_id", "correlation_id", "occurred_at", "payload")))
        doc.pop(field)
        value, expected = _bytes(doc), spec.contract_invalid
    elif kind == "unknown_field":
        doc[draw(st.sampled_from(("extra", "tenant", "Payload", "event_uuid")))] = draw(attribute_values)
        value, expected = _bytes(doc), spec.contract_invalid
    elif kind == "wrong_type":
        field = draw(st.sampled_from(("event_id", "schema_version", "correlation_id", "occurred_at", "payload")))
        doc[field] = draw(st.sampled_from(([], {"x": 1}, "not a value", -1.5)))
        value, expected = _bytes(doc), spec.contract_invalid
    elif kind == "bad_tenant_pattern":
        doc["tenant_id"] = draw(st.sampled_from(("has space", "-lead", "a/b", "x" * 65, "a,b", "ü")))
        value, expected = _bytes(doc), spec.contract_invalid
    elif kind == "unknown_ledger":
        doc["ledger"] = draw(st.text(max_size=30).filter(lambda s: s not in LEDGERS))
        value, expected = _bytes(doc), ReasonCode.EVENT_UNKNOWN_LEDGER
    elif kind == "ledger_not_a_name":
        # Found by the envelope fuzz: a JSON array or object where the ledger's name belongs.
        doc["ledger"] = draw(st.sampled_from(([], [event.ledger], {}, {"name": event.ledger})))
        value, expected = _bytes(doc), ReasonCode.EVENT_SCHEMA_INVALID
    elif kind == "unknown_type":
        known = {e.name for e in EVENT_TYPES.values() if e.spec.name == event.ledger}
        doc["event_type"] = draw(st.text(max_size=30).filter(lambda s: s not in known))
        value, expected = _bytes(doc), ReasonCode.EVENT_UNKNOWN_TYPE
    elif kind == "registered_type_bad_payload":
        entry = draw(st.sampled_from(sorted(EVENT_TYPES.values(), key=lambda e: e.tag)))
        doc.update(ledger=entry.spec.name, event_type=entry.name, payload={"not_a_field": 1})
        value, expected, ledger = _bytes(doc), entry.spec.contract_invalid, entry.spec.name
    elif kind == "oversize_value":
        value, expected = enc.value + b" " * (max_event_bytes + 1 - len(enc.value)), ReasonCode.EVENT_OVERSIZE
    elif kind == "oversize_payload":
        # Under the Kafka value limit, over the ledger's payload bound: 8,192 characters of 3 UTF-8 bytes each.
        turn = new_event(
            ConversationTurnEvent,
            tenant_id=event.tenant_id,
            engine_id="PH1.C",
            correlation_id=event.correlation_id,
            occurred_at=event.occurred_at,
            payload={"speaker": "USER", "source": "TEXT", "text": "€" * 8192},
        )
        enc = encode(turn)
        key, value, headers, ledger = enc.key, enc.value, tuple(enc.headers), turn.ledger
        expected = ReasonCode.EVENT_OVERSIZE
    elif kind == "wrong_tenant_in_key":
        other = draw(tenants.filter(lambda t: t != event.tenant_id))
        value, key, expected = enc.value, f"{other}/{event.aggregate_id}".encode(), spec.tenant_violation
    elif kind == "wrong_tenant_in_header":
        other = draw(tenants.filter(lambda t: t != event.tenant_id))
        headers = tuple((k, other.encode() if k == HEADER_TENANT else v) for k, v in headers)
        value, expected = enc.value, spec.tenant_violation
    elif kind == "no_key":
        value, key, expected = enc.value, None, spec.tenant_violation
    elif kind == "wrong_aggregate_in_key":
        value, key, expected = (
            enc.value,
            f"{event.tenant_id}/not-{event.aggregate_id}".encode(),
            ReasonCode.EVENT_KEY_MISMATCH,
        )
    elif kind == "wrong_topic":
        ledger = draw(st.sampled_from(sorted(set(LEDGERS) - {event.ledger})))
        value, expected = enc.value, ReasonCode.EVENT_WRONG_TOPIC
    elif kind == "missing_tenant":
        how = draw(st.sampled_from(("drop", "empty", "null")))
        if how == "drop":
            doc.pop("tenant_id")
        else:
            doc["tenant_id"] = "" if how == "empty" else None
        value, expected = _bytes(doc), ReasonCode.EVENT_TENANT_MISSING
    elif kind == "nul_in_text":
        # U+0000 in a free-text field, an attribute's name or an attribute's value.
        body = doc["payload"]
        text_field = next(f for f in ("summary", "text", "display_name") if f in body)
        mapping = next((f for f in ("attributes", "metadata") if f in body), None)
        where = draw(st.sampled_from(("text", "name", "value") if mapping else ("text",)))
        if where == "text":
            body[text_field] = _with_control(draw, body[text_field] or "", ("\x00",))
        else:
            assert mapping is not None
            name = _with_control(draw, draw(st.text(_storable, max_size=8)), ("\x00",) if where == "name" else ("_",))
            body[mapping][name] = _with_control(draw, "v", ("\x00",)) if where == "value" else "v"
        value, expected = _bytes(doc), spec.contract_invalid
    elif kind == "control_in_identifier":
        # Any control character in an envelope identifier; a foreign producer keys the record with it.
        field = draw(st.sampled_from(("correlation_id", "idempotency_key", "turn_id")))
        doc[field] = _with_control(draw, doc.get(field) or "id")
        if field == "correlation_id" and event.aggregate_id == event.correlation_id:
            key = f"{event.tenant_id}/{doc[field]}".encode()
        value, expected = _bytes(doc), spec.contract_invalid
    elif kind == "control_in_key":
        # The envelope is intact; the key's tenant or aggregate holds a control character.
        in_tenant = draw(st.booleans())
        tenant = _with_control(draw, event.tenant_id) if in_tenant else event.tenant_id
        aggregate = event.aggregate_id if in_tenant else _with_control(draw, event.aggregate_id)
        key = f"{tenant}/{aggregate}".encode()
        value, expected = enc.value, spec.tenant_violation if in_tenant else ReasonCode.EVENT_KEY_MISMATCH
    elif kind == "raw_control_byte_in_value":
        at = draw(st.integers(0, len(enc.value)))
        value = enc.value[:at] + draw(st.sampled_from(JSON_BREAKING_BYTES)) + enc.value[at:]
        expected = ReasonCode.EVENT_UNDECODABLE
    else:
        raise AssertionError(kind)
    headers = (*headers, *draw(extra_headers))
    return Case(kind, ledger, key, value, headers, expected, event)


# Envelope-shaped JSON whose values are anything JSON can hold: what a confused producer might send.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=8,
)
ENVELOPE_FIELDS = (
    "event_id", "tenant_id", "engine_id", "ledger", "event_type", "schema_version", "idempotency_key",
    "correlation_id", "turn_id", "occurred_at", "payload",
)  # fmt: skip


@st.composite
def envelope_shaped(draw: st.DrawFn) -> bytes:
    doc = draw(st.dictionaries(st.sampled_from(ENVELOPE_FIELDS), json_values, max_size=len(ENVELOPE_FIELDS)))
    if draw(st.booleans()):
        doc["ledger"] = draw(st.sampled_from(sorted(LEDGERS)) | json_values)
    if draw(st.booleans()):
        doc["event_type"] = draw(st.sampled_from(sorted({e.name for e in EVENT_TYPES.values()})) | json_values)
    return json.dumps(doc).encode()


def conflict_of(event: LedgerEvent) -> Case:
    """Same tenant, correlation and idempotency key as ``event``, another payload and event id: the writer
    keeps the original and dead-letters this one (decode alone cannot know)."""
    assert event.idempotency_key is not None
    payload = event.payload.model_dump(mode="json")
    field = "summary" if "summary" in payload else "text" if "text" in payload else "display_name"
    payload[field] = f"{payload.get(field) or ''} (changed)"
    other = new_event(type(event), **{**event.model_dump(exclude={"event_id", "payload"}), "payload": payload})
    enc = encode(other)
    return Case(
        "conflict", other.ledger, enc.key, enc.value, tuple(enc.headers), ReasonCode.IDEMPOTENCY_CONFLICT, other
    )
