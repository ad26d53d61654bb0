"""Which event models may skip the publisher's decode round trip, and what must still be re-checked.

An event that pydantic validated (``contracts.envelope.validated``) holds exact builtin values that its model
accepted. For the model shapes allowed here, pydantic's JSON of such values is JSON the writer's decoder
accepts and reads back to the same strings, so the round trip can prove nothing more about them, except for
what is rechecked at publish time: the event's size, its payload's size bound, and dict fields, which
``frozen=True`` does not protect from in-place mutation.

The shapes are an allow-list read from each model's pydantic core schema, so a contract that gains a type or
an option whose JSON does not round trip (a float that allows inf and NaN, written as ``null``; bytes; an alias;
a computed field, which the decoder refuses as an unknown field; a custom serialiser; a plain or wrap
validator that may treat JSON and Python input differently) falls back to the full round trip until
someone has checked it and added it here. Before and after validators are allowed: they see the same
values either way (the contracts' ones refuse by value, never by input mode).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from pydantic_core import CoreConfig, SchemaValidator

from contracts.codec import (
    CANONICAL_BYTES_PER_JSON_BYTE,
    HEADER_EVENT_ID,
    HEADER_EVENT_TYPE,
    HEADER_LEDGER,
    HEADER_SCHEMA_VERSION,
    HEADER_TENANT,
    canonical_payload,
    split_key,
)
from contracts.envelope import TENANT_PATTERN, EventType, LedgerEvent, Payload

# Schema type -> the keys it may have. Anything else makes the model take the full round trip.
_COMMON = frozenset({"type", "metadata", "ref"})
ALLOWED: Mapping[str, frozenset[str]] = {
    "model": _COMMON | {"cls", "schema", "custom_init", "root_model", "config", "post_init"},
    "model-fields": _COMMON | {"fields", "model_name", "computed_fields"},
    # A field left out of the JSON while it holds its default (``exclude_if``): read back, it is that default.
    "model-field": _COMMON | {"schema", "serialization_exclude_if"},
    "function-after": _COMMON | {"function", "schema"},
    "function-before": _COMMON | {"function", "schema"},
    "default": _COMMON | {"schema", "default", "default_factory", "default_factory_takes_data"},
    "nullable": _COMMON | {"schema"},
    "union": _COMMON | {"choices"},
    "literal": _COMMON | {"expected"},
    "str": _COMMON | {"min_length", "max_length", "pattern"},
    "int": _COMMON | {"ge", "le", "gt", "lt"},
    "bool": _COMMON,
    # Finite floats only (``allow_inf_nan=False``, checked in ``schema_types``): pydantic writes the shortest
    # repr, which reads back to the same float; inf and NaN would be written as ``null``.
    "float": _COMMON | {"ge", "le", "gt", "lt", "allow_inf_nan"},
    "uuid": _COMMON,
    "datetime": _COMMON | {"tz_constraint", "microseconds_precision"},
    "dict": _COMMON | {"keys_schema", "values_schema", "min_length", "max_length"},
}
# Values that are not schemas: not walked.
_DATA_KEYS = frozenset({"cls", "config", "metadata", "function", "expected", "default", "default_factory", "pattern"})
MUTABLE = frozenset({"dict"})

_QUOTE = ord('"')


def schema_types(schema: Any) -> set[str] | None:
    """Every schema type under ``schema``, or None if any part of it is outside ``ALLOWED``."""
    found: set[str] = set()

    def walk(node: Any) -> bool:
        if isinstance(node, list | tuple):
            return all(walk(n) for n in node)
        if not isinstance(node, dict):
            return True
        kind = node.get("type")
        if isinstance(kind, str):
            allowed = ALLOWED.get(kind)
            if allowed is None or not node.keys() <= allowed or node.get("computed_fields"):
                return False
            if "serialization" in node or (kind == "float" and node.get("allow_inf_nan") is not False):
                return False
            found.add(kind)
        return all(walk(v) for k, v in node.items() if k not in _DATA_KEYS)

    return found if walk(schema) else None


def _model_fields(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    """The ``fields`` of a model's core schema, under its model-level validators."""
    node = schema
    while node["type"] != "model-fields":
        node = node["schema"]
    fields: Mapping[str, Any] = node["fields"]
    return fields


class ContainerCheck:
    """A strict validator of one mutable field's own schema: the field still holds what it accepts."""

    __slots__ = ("empty_ok", "name", "validator")

    def __init__(self, name: str, schema: Any) -> None:
        self.name = name
        self.validator = SchemaValidator(schema, CoreConfig(strict=True))
        # An empty dict (the usual metadata) is known valid or not once and for all.
        self.empty_ok = self.validator.isinstance_python({})

    def holds(self, value: object) -> bool:
        if type(value) is dict and not value:
            return self.empty_ok
        return self.validator.isinstance_python(value)


def container_checks(
    model: type[LedgerEvent] | type[Payload], skip: frozenset[str] = frozenset()
) -> tuple[ContainerCheck, ...] | None:
    """A check for each mutable field of ``model`` (but ``skip``); None when a field's shape is not one
    whose validated values are known to round trip, or when it holds another model (which pydantic takes as
    it is when given an instance, validated or not)."""
    checks = []
    for name, field in _model_fields(model.__pydantic_core_schema__).items():
        if name in skip:
            continue
        kinds = schema_types(field["schema"])
        if kinds is None or "model" in kinds:
            return None
        if kinds & MUTABLE:
            checks.append(ContainerCheck(name, field["schema"]))
    return tuple(checks)


Record = tuple[str, bytes, bytes, list[tuple[str, bytes]]]  # topic, key, value, headers


# pydantic writes an event's fields in declaration order, the envelope's ``event_id`` first, as the
# canonical text of the UUID's integer: what ``str`` gives for a ``uuid.UUID`` (not for a subclass, which
# validation keeps and which may override ``__str__``).
_EVENT_ID_AT = len(b'{"event_id":"')
_EVENT_ID_END = _EVENT_ID_AT + 36


class FastPath:
    """The record of a validated event of one registered model, built without the decode round trip."""

    def __init__(
        self,
        entry: EventType,
        prefix: str,
        max_event_bytes: int,
        envelope_checks: tuple[ContainerCheck, ...],
        payload_checks: tuple[ContainerCheck, ...],
    ) -> None:
        self.model = entry.model
        self.topic = entry.spec.topic(prefix)
        self.max_event_bytes = max_event_bytes
        # The canonical payload is at most six bytes per byte of pydantic's JSON of it (see the codec), and
        # that JSON lies within the event's: an event this short cannot carry a payload over the bound.
        self.surely_within = entry.spec.max_payload_bytes // CANONICAL_BYTES_PER_JSON_BYTE
        self.max_payload_bytes = entry.spec.max_payload_bytes
        self.checks = envelope_checks
        self.payload_checks = payload_checks
        self.to_json = entry.model.__pydantic_serializer__.to_json
        # ``headers_for``'s ledger and event type headers: the model's literals, once validated.
        self.ledger_header = (HEADER_LEDGER, entry.spec.name.encode())
        self.type_header = (HEADER_EVENT_TYPE, entry.name.encode())
        # The writer reads the tenant back from the key; it cannot when the tenant holds a "/". The
        # envelope's pattern forbids one; a slice's envelope redeclaring the field is checked per event.
        fields = _model_fields(entry.model.__pydantic_core_schema__)
        self.id_first = next(iter(fields)) == "event_id"
        tenant = fields["tenant_id"]["schema"]
        self.tenant_in_key = tenant.get("type") == "str" and tenant.get("pattern") == TENANT_PATTERN

    @classmethod
    def of(cls, entry: EventType, prefix: str, max_event_bytes: int) -> FastPath | None:
        """The fast path of a registered model, or None if its shape must take the full round trip."""
        if schema_types(entry.model.__pydantic_core_schema__) is None:
            return None
        envelope = container_checks(entry.model, skip=frozenset({"payload"}))
        payload = container_checks(entry.payload)
        if envelope is None or payload is None:
            return None
        return cls(entry, prefix, max_event_bytes, envelope, payload)

    def record(self, event: LedgerEvent) -> Record | None:
        """``encode(event)`` as topic, key, value, headers when the writer surely accepts it; None when only
        the full round trip can tell (the caller then takes it, and refuses with the writer's reason).

        The writer's transport checks need no decoding here: the topic is the model's, the tenant header is
        the tenant's, and the key's tenant and aggregate are strings, which read back as they were written.
        """
        for check in self.checks:
            if not check.holds(getattr(event, check.name)):
                return None
        payload = event.payload
        for check in self.payload_checks:
            if not check.holds(getattr(payload, check.name)):
                return None
        value = self.to_json(event)
        if len(value) > self.max_event_bytes:
            return None
        if len(value) > self.surely_within and len(canonical_payload(event).encode()) > self.max_payload_bytes:
            return None
        key = event.kafka_key
        tenant = event.tenant_id
        if not self.tenant_in_key and split_key(key)[0] != tenant:
            return None
        event_id = event.event_id
        if self.id_first and type(event_id) is uuid.UUID and value[_EVENT_ID_END] == _QUOTE:
            id_text = value[_EVENT_ID_AT:_EVENT_ID_END]
        else:
            id_text = str(event_id).encode()
        headers = [
            (HEADER_TENANT, tenant.encode()),
            self.ledger_header,
            self.type_header,
            (HEADER_SCHEMA_VERSION, str(event.schema_version).encode()),
            (HEADER_EVENT_ID, id_text),
        ]
        return self.topic, key, value, headers
