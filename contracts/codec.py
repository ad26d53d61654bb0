"""Bytes to events and back: the one codec the publisher and the consumers share.

Decoding goes straight from the Kafka value's bytes through one cached ``TypeAdapter.validate_json`` over a
union discriminated on ``ledger`` and ``event_type``, so a bad message costs one parse and its failure maps
to exactly one reason code. The transport checks (tenant in key and headers, aggregate key, topic) live
here too, so that what the publisher promises and what the writer checks cannot drift apart.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Union

from pydantic import Discriminator, Tag, TypeAdapter, ValidationError

from contracts.envelope import LedgerEvent, contract_violation, event_tag
from contracts.reasons import ContractViolation, ReasonCode

HEADER_TENANT = "selene-tenant"
HEADER_LEDGER = "selene-ledger"
HEADER_EVENT_TYPE = "selene-event-type"
HEADER_SCHEMA_VERSION = "selene-schema-version"
HEADER_EVENT_ID = "selene-event-id"

Headers = Sequence[tuple[str, bytes | None]]  # Kafka allows a null header value


def _discriminate(value: Any) -> str:
    if isinstance(value, dict):
        return event_tag(value.get("ledger"), value.get("event_type"))
    return event_tag(getattr(value, "ledger", None), getattr(value, "event_type", None))


@dataclass(frozen=True)
class Encoded:
    """An event ready for Kafka."""

    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


#: ``json.dumps(..., sort_keys=True, separators=(",", ":"))`` without building an encoder per call (it does
#: when given any argument): the same output, a few microseconds less per decoded record.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


def canonical_payload(event: LedgerEvent) -> str:
    """The payload as canonical JSON (sorted keys, no spaces): what is stored and what is hashed."""
    return _CANONICAL.encode(event.payload.model_dump(mode="json"))


def content_sha256(event: LedgerEvent, payload_json: str | None = None) -> bytes:
    """What "the same event" means for idempotency: the same event type and the same payload."""
    body = payload_json if payload_json is not None else canonical_payload(event)
    return hashlib.sha256(f"{event.event_type}\n{body}".encode()).digest()


def headers_for(event: LedgerEvent) -> list[tuple[str, bytes]]:
    return [
        (HEADER_TENANT, event.tenant_id.encode()),
        (HEADER_LEDGER, event.ledger.encode()),
        (HEADER_EVENT_TYPE, event.event_type.encode()),
        (HEADER_SCHEMA_VERSION, str(event.schema_version).encode()),
        (HEADER_EVENT_ID, str(event.event_id).encode()),
    ]


def encode(event: LedgerEvent) -> Encoded:
    return Encoded(key=event.kafka_key, value=event.model_dump_json().encode(), headers=headers_for(event))


def split_key(key: bytes | None) -> tuple[str | None, str | None]:
    """``tenant/aggregate`` -> (tenant, aggregate); (None, None) when absent or unreadable."""
    if not key:
        return None, None
    try:
        text = key.decode()
    except UnicodeDecodeError:
        return None, None
    tenant, sep, aggregate = text.partition("/")
    return (tenant or None, aggregate or None) if sep else (text or None, None)


# Control characters (C0, DEL, C1) and UTF-16 surrogates: what a text column of the dead letters never holds
# as it is (U+0000 and surrogates cannot be stored at all; the others would garble an operator's terminal).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# The same, and the backslash that starts an escape: escaping these is one to one.
_CONTROL_OR_BACKSLASH = re.compile(r"[\\\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char == "\\":
        return "\\\\"
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def visible_text(text: str) -> str:
    """``text`` with each control character written as a visible escape (``\\x00``, ``\\x1b``, ``\\x9f``): what
    a record's content may put into a free-text column (a dead letter's detail) so that PostgreSQL always
    stores it and a terminal shows it as it is."""
    return _CONTROL.sub(_escape, text) if _CONTROL.search(text) else text


def escape_key(text: str) -> str:
    """``visible_text`` that also doubles each backslash, so that two different keys never escape to the same
    text: a dead letter's ``aggregate_key`` blocks exactly the records whose key escapes to it. A key without a
    backslash or a control character (every key the contract can produce but those with a backslash) reads
    as it is."""
    return _CONTROL_OR_BACKSLASH.sub(_escape, text) if _CONTROL_OR_BACKSLASH.search(text) else text


def key_text(key: bytes | None) -> str | None:
    """A record's key as the text that names its aggregate in the dead letters (``escape_key`` of its UTF-8);
    None when absent or not UTF-8 (such a key cannot be an event's, so it blocks nothing)."""
    if key is None:
        return None
    try:
        return escape_key(key.decode())
    except UnicodeDecodeError:
        return None


# ``json.dumps`` (ASCII only) writes each character outside printable ASCII as one or two ``\uXXXX``
# escapes: at most six bytes for each byte of pydantic's JSON of the same value (raw UTF-8, or that same
# escape for a control character). Numbers differ by a character at most ("1e16" / "1e+16") and the rest
# is written alike, so pydantic's JSON length times six bounds the canonical payload's length.
CANONICAL_BYTES_PER_JSON_BYTE = 6


def payload_surely_within_bound(event: LedgerEvent) -> bool:
    """True when the canonical payload cannot exceed its ledger's bound, judged from pydantic's JSON of the
    payload (serialised in Rust) instead of the canonical JSON (``json.dumps`` in Python, several times
    dearer); False means only that it must be measured."""
    try:
        size = len(event.payload.__pydantic_serializer__.to_json(event.payload))
    except ValueError:  # pydantic cannot write it (PydanticSerializationError): let the measure decide
        return False
    return size * CANONICAL_BYTES_PER_JSON_BYTE <= event.spec.max_payload_bytes


class Decoder:
    """Validates raw Kafka values into typed events; every failure is a ``ContractViolation``."""

    def __init__(self, max_event_bytes: int) -> None:
        from contracts.registry import registry  # lazily: the registry imports every contracts module

        members = tuple(Annotated[e.model, Tag(e.tag)] for e in registry().event_types.values())
        union = Annotated[Union[members], Discriminator(_discriminate)]  # type: ignore[valid-type]  # noqa: UP007
        self._adapter: TypeAdapter[LedgerEvent] = TypeAdapter(union)
        self.max_event_bytes = max_event_bytes

    def decode(self, value: bytes | None) -> LedgerEvent:
        if value is None:
            raise ContractViolation("the message has no value (a tombstone)", ReasonCode.EVENT_UNDECODABLE)
        if len(value) > self.max_event_bytes:
            raise ContractViolation(
                f"{len(value)} bytes is over the {self.max_event_bytes}-byte limit", ReasonCode.EVENT_OVERSIZE
            )
        try:
            return self._adapter.validate_json(value)
        except ValidationError as exc:
            raise _classify(exc) from exc

    def check_transport(
        self,
        event: LedgerEvent,
        topic: str,
        key: bytes | None,
        headers: Headers,
        prefix: str,
        payload_json: str | None = None,
    ) -> None:
        """The Kafka record must agree with the event it carries: topic, key (tenant/aggregate), headers."""
        spec = event.spec
        if topic != spec.topic(prefix):
            raise ContractViolation(
                f"a {spec.name} event arrived on {topic}, expected {spec.topic(prefix)}",
                ReasonCode.EVENT_WRONG_TOPIC,
            )
        key_tenant, _ = split_key(key)
        header_tenant = next((v for k, v in headers if k == HEADER_TENANT), None)
        if key_tenant != event.tenant_id or (header_tenant is not None and header_tenant != event.tenant_id.encode()):
            raise ContractViolation(
                f"tenant {event.tenant_id!r} does not match the record's key {key!r} or tenant header",
                spec.tenant_violation,
            )
        if key != event.kafka_key:
            raise ContractViolation(
                f"key {key!r} is not the event's tenant/aggregate {event.kafka_key!r}",
                ReasonCode.EVENT_KEY_MISMATCH,
            )
        if payload_json is None and payload_surely_within_bound(event):
            return  # the canonical payload cannot exceed the bound: no need to build it (the publisher's path)
        body = payload_json if payload_json is not None else canonical_payload(event)
        if len(body.encode()) > spec.max_payload_bytes:
            raise ContractViolation(
                f"payload over the {spec.max_payload_bytes}-byte bound of {spec.name}", ReasonCode.EVENT_OVERSIZE
            )


def _classify(exc: ValidationError) -> ContractViolation:
    from contracts.registry import registry  # lazily: the registry imports every contracts module

    errors = exc.errors(include_url=False)
    first = errors[0]
    kind = first["type"]
    if kind in ("json_invalid", "json_type"):
        return ContractViolation(f"not a JSON object: {first['msg']}", ReasonCode.EVENT_UNDECODABLE)
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        raw = first.get("input")
        ledger = raw.get("ledger") if isinstance(raw, dict) else None
        if not isinstance(ledger, str):
            return ContractViolation("the event names no ledger", ReasonCode.EVENT_SCHEMA_INVALID)
        if ledger not in registry().ledgers:
            return ContractViolation(f"unknown ledger {ledger!r}", ReasonCode.EVENT_UNKNOWN_LEDGER)
        return ContractViolation(
            f"unknown event type {raw.get('event_type')!r} for ledger {ledger!r}", ReasonCode.EVENT_UNKNOWN_TYPE
        )
    tag = str(first["loc"][0]) if first["loc"] else ""
    entry = registry().event_types.get(tag)
    code = entry.spec.contract_invalid if entry is not None else ReasonCode.EVENT_SCHEMA_INVALID
    return contract_violation(code, exc, loc_start=1)
