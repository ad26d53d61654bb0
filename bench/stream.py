"""The benchmark's event stream: one template built by ``cli.workload.build``, copied per mode with fresh ids.

Every mode must write the same rows without colliding with the others, so the template is built once (the
expensive part: pydantic models) and each mode gets a *variant*: the same bytes with the template's token
replaced by the mode's token. The token is in every tenant, user, device and session id (so in keys,
headers, correlation ids), has the same length (so sizes are identical) and uses letters outside the hex
alphabet (so it can never match inside an event id). Event ids repeat across variants, which the schema
allows: a ledger's uniqueness is per tenant, and variants never share a tenant.

The stream is what a producer would send, in order: identities, devices and sessions first, then the
conversation and audit events with ~5 % duplicates re-sent a little later, as a retried publish would.
"""

from __future__ import annotations

import inspect
import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from aiokafka.partitioner import DefaultPartitioner

from cli.workload import build, example_events_per_user
from consumers.pipeline import Record
from contracts.codec import encode
from contracts.envelope import LedgerEvent
from contracts.registry import LEDGERS

#: Letters that are not hex digits: a token made of them cannot appear inside a UUID's text.
TOKEN_LETTERS = "ghjkmnpqrstvwxyz"
TOKEN_LENGTH = 8
TEMPLATE_TOKEN = "zzzzzzzz"
DUPLICATE_DELAY = 2000  # a duplicate is re-sent within this many records of its original
WORK_ORDER_SHARE = 0.10  # of the events, when the workload generator makes work orders
SLICE_EXAMPLE_SHARE = 0.02
WORK_ORDER_EVENTS = 7  # events per work order in cli.workload (about)

_partitioner = DefaultPartitioner()
T = TypeVar("T")


def token(run_tag: str, mode: str, index: int = 0) -> str:
    """``run_tag`` (3 letters) + ``mode`` (1 letter) + ``index`` in 4 letters of ``TOKEN_LETTERS``."""
    digits = ""
    for _ in range(TOKEN_LENGTH - 4):
        digits = TOKEN_LETTERS[index % 16] + digits
        index //= 16
    out = f"{run_tag}{mode}{digits}"
    # One letter outside the hex alphabet is enough for the token never to match inside a UUID.
    assert len(out) == TOKEN_LENGTH and out.isalpha() and any(c in TOKEN_LETTERS for c in out), out
    return out


def random_run_tag(rng: random.Random | None = None) -> str:
    r = rng or random.Random()
    return "".join(r.choice(TOKEN_LETTERS) for _ in range(3))


@dataclass(frozen=True)
class StreamRecord:
    """One Kafka record of the stream, ledger-addressed (the topic depends on the mode's prefix)."""

    ledger: str
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    foundation: bool = False
    duplicate: bool = False

    def with_token(self, new: str, old: str = TEMPLATE_TOKEN) -> StreamRecord:
        o, n = old.encode(), new.encode()
        return StreamRecord(
            self.ledger,
            self.key.replace(o, n),
            self.value.replace(o, n),
            tuple((k, v.replace(o, n)) for k, v in self.headers),
            self.foundation,
            self.duplicate,
        )

    def topic(self, prefix: str) -> str:
        return LEDGERS[self.ledger].topic(prefix)


@dataclass(frozen=True)
class Template:
    """The stream of one workload, with the template token in every id."""

    records: tuple[StreamRecord, ...]

    @property
    def counts(self) -> dict[str, int]:
        dup = sum(r.duplicate for r in self.records)
        found = sum(r.foundation for r in self.records)
        return {
            "records": len(self.records),
            "foundation": found,
            "events": len(self.records) - dup - found,
            "duplicates": dup,
            "unique_rows": len(self.records) - dup,
        }

    def variant(self, new_token: str) -> list[StreamRecord]:
        return [r.with_token(new_token) for r in self.records]

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w") as out:
            for r in self.records:
                doc = {
                    "l": r.ledger,
                    "k": r.key.decode(),
                    "v": r.value.decode(),
                    "h": [[k, v.decode()] for k, v in r.headers],
                    "f": r.foundation,
                    "d": r.duplicate,
                }
                out.write(json.dumps(doc, separators=(",", ":")) + "\n")

    @classmethod
    def load(cls, path: Path) -> Template:
        records = []
        with path.open() as src:
            for line in src:
                d = json.loads(line)
                headers = tuple((k, v.encode()) for k, v in d["h"])
                records.append(StreamRecord(d["l"], d["k"].encode(), d["v"].encode(), headers, d["f"], d["d"]))
        return cls(tuple(records))


def build_template(
    events: int, *, tenants: int = 8, users_per_tenant: int = 16, duplicate_ratio: float = 0.05, seed: int = 7
) -> Template:
    """The workload generator's mix as a stream: audit + conversation events, plus work orders (~10 % of
    the events, interleaved, each work order's events in order) and every slice's declared examples (~2 %)
    when the generator supports them."""
    extra: dict[str, int] = {}
    if "work_orders" in inspect.signature(build).parameters:
        extra["work_orders"] = max(1, round(events * WORK_ORDER_SHARE / WORK_ORDER_EVENTS / tenants))
    if "example_users" in inspect.signature(build).parameters:
        # Every declared slice's examples too, ~2 % of the events: one round of them (about 90 events: every
        # slice's examples) for as many users as that share takes, spread over the tenants, interleaved like
        # work orders. (Until 2026-12-03 every user got its round: ~35 % of a 60,000-event stream.)
        extra["slice_examples"] = 1
        extra["example_users"] = max(1, round(events * SLICE_EXAMPLE_SHARE / example_events_per_user()))
    w = build(
        tenants=tenants,
        users_per_tenant=users_per_tenant,
        events=events,
        duplicate_ratio=duplicate_ratio,
        bad=False,
        seed=seed,
        run_id=TEMPLATE_TOKEN,
        **extra,
    )
    rng = random.Random(seed + 1)
    w.events = _interleave(w.events[:events], w.events[events:], rng)

    def rec(event: LedgerEvent, *, foundation: bool = False, duplicate: bool = False) -> StreamRecord:
        enc = encode(event)
        return StreamRecord(event.ledger, enc.key, enc.value, tuple(enc.headers), foundation, duplicate)

    body = [rec(e) for e in w.events]
    position = {id(e): i for i, e in enumerate(w.events)}
    # Each duplicate goes in a little after its original: (index to insert after, order of insertion).
    inserts = sorted(
        (min(len(body) - 1, position[id(e)] + rng.randint(1, DUPLICATE_DELAY)), n) for n, e in enumerate(w.duplicates)
    )
    dup_records = [rec(e, duplicate=True) for e in w.duplicates]
    out = [rec(e, foundation=True) for e in w.foundation]
    k = 0
    for i, r in enumerate(body):
        out.append(r)
        while k < len(inserts) and inserts[k][0] == i:
            out.append(dup_records[inserts[k][1]])
            k += 1
    return Template(tuple(out))


def _interleave(first: list[LedgerEvent], second: list[LedgerEvent], rng: random.Random) -> list[LedgerEvent]:
    """A random merge that keeps each list's own order (so every aggregate's events stay in order)."""
    slots = set(rng.sample(range(len(first) + len(second)), len(second)))
    a, b = iter(first), iter(second)
    return [next(b) if i in slots else next(a) for i in range(len(first) + len(second))]


def partition_of(key: bytes, partitions: int) -> int:
    """Kafka's default partitioner (murmur2 of the key), as the producers use it."""
    parts = list(range(partitions))
    return int(_partitioner(key, parts, parts))


def as_records(
    stream: Sequence[StreamRecord], prefix: str, partitions: int, next_offset: dict[tuple[str, int], int] | None = None
) -> list[Record]:
    """The stream as the records a consumer would get: partitioned by key, offsets counted per partition
    (continuing from ``next_offset``, which is updated, so that passes over one topic keep advancing)."""
    next_offset = {} if next_offset is None else next_offset
    out = []
    for r in stream:
        topic = r.topic(prefix)
        part = partition_of(r.key, partitions)
        offset = next_offset.get((topic, part), 0)
        next_offset[(topic, part)] = offset + 1
        out.append(Record(topic, part, offset, r.key, r.value, r.headers, 0))
    return out


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
