"""Tamper evidence: a SHA-256 hash chain through every ledger, one chain per (ledger, topic, partition).

    row_hash(n) = SHA-256(row_hash(n-1) || canonical(row n)),   row_hash(0) = 32 zero bytes

Why per partition: a partition has one writer at a time (fenced offsets), so its chain is one sequence,
computed by the writer inside the batch transaction that appends the rows; the chain head row in
``selene_ops.ledger_chains`` is locked for the append, which also serialises a re-drive with the writer.
``canonical`` covers every stored column except ``payload`` (covered by ``content_sha256``, which the
verifier recomputes from the stored payload), with its chain position, so a changed, deleted, inserted or
reordered row breaks the chain where it happened.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

GENESIS = bytes(32)
UNCHAINED = ("payload", "chain_seq", "row_hash")

ENSURE_CHAINS = """
INSERT INTO selene_ops.ledger_chains (ledger_table, source_topic, source_partition, seq, head_hash)
SELECT u.tbl, u.topic, u.part, 0, $4 FROM unnest($1::text[], $2::text[], $3::int[]) AS u(tbl, topic, part)
ON CONFLICT DO NOTHING
"""
# Every chain a batch appends to, in every ledger, locked in one statement and in one order (table, topic,
# partition), so that two transactions appending to the same chains (a writer and a re-drive) queue instead
# of deadlocking.
LOCK_CHAINS = """
SELECT c.ledger_table, c.source_topic, c.source_partition, c.seq, c.head_hash FROM selene_ops.ledger_chains c
JOIN unnest($1::text[], $2::text[], $3::int[]) AS u(tbl, topic, part)
  ON c.ledger_table = u.tbl AND c.source_topic = u.topic AND c.source_partition = u.part
ORDER BY c.ledger_table, c.source_topic, c.source_partition
FOR UPDATE OF c
"""
ADVANCE_CHAINS = """
UPDATE selene_ops.ledger_chains c SET seq = u.seq, head_hash = u.head, updated_at = now()
FROM unnest($2::text[], $3::int[], $4::bigint[], $5::bytea[]) AS u(topic, part, seq, head)
WHERE c.ledger_table = $1 AND c.source_topic = u.topic AND c.source_partition = u.part
"""

# Every table's chains at once: the heads a batch reached, in the statement that appends its rows.
ADVANCE_ALL_CHAINS = """
UPDATE selene_ops.ledger_chains c SET seq = u.seq, head_hash = u.head, updated_at = now()
FROM unnest($1::text[], $2::text[], $3::int[], $4::bigint[], $5::bytea[]) AS u(tbl, topic, part, seq, head)
WHERE c.ledger_table = u.tbl AND c.source_topic = u.topic AND c.source_partition = u.part
"""


def renumber(sql: str, first: int) -> str:
    """``sql`` with its parameters ``$1, $2, ...`` numbered from ``first``, to run inside a larger statement."""
    return re.sub(r"\$(\d+)", lambda m: f"${first + int(m.group(1)) - 1}", sql.strip())


@dataclass(frozen=True)
class Advance:
    """New chain heads to store with the rows that reach them: ``ADVANCE_CHAINS``'s parameters 2-5."""

    topics: list[str]
    parts: list[int]
    seqs: list[int]
    heads: list[bytes]

    def params(self) -> tuple[list[str], list[int], list[int], list[bytes]]:
        return self.topics, self.parts, self.seqs, self.heads


def _norm(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _same(value: Any) -> Any:
    return value


#: ``_norm`` by exact type, for the types ledger rows hold: one dict look-up per value instead of a chain of
#: ``isinstance`` checks (the digest runs for every row the writer appends, so this is on the hot path).
#: Any other type falls back to ``_norm``; the output is the same either way.
_NORM_BY_TYPE: dict[type, Callable[[Any], Any]] = {
    str: _same,
    int: _same,
    bool: _same,
    float: _same,
    type(None): _same,
    datetime: lambda v: v.astimezone(UTC).isoformat(),
    bytes: bytes.hex,
    uuid.UUID: str,
}
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def canonical_json(value: Any) -> str:
    """A jsonb column's value as the chain digests it: compact JSON, keys sorted (PostgreSQL's jsonb keeps
    neither the writer's key order nor its spacing, so both sides digest this form)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _reference_pairs(values: Mapping[str, Any], columns: Iterable[str]) -> str:
    """``chained_pairs`` by its definition (one ``json`` encoding of the normalised list): the reference the
    fast path is tested against (``tests/unit/test_chain_digest.py``)."""
    norm = _NORM_BY_TYPE.get
    return _ENCODER.encode([[c, norm(type(v := values[c]), _norm)(v)] for c in columns if c not in UNCHAINED])


#: Each stored value's JSON text by exact type, as ``_ENCODER`` writes it after ``_norm`` (strings escaped by
#: the same C function the encoder uses; ints by ``int.__repr__``, as the encoder does). Any other type (floats,
#: with their NaN/Infinity rules, and whatever else) goes through ``_ENCODER`` itself.
_ENCODE_STR: Callable[[str], str] = json.encoder.encode_basestring
_JSON_BY_TYPE: dict[type, Callable[[Any], str]] = {
    str: _ENCODE_STR,
    int: int.__repr__,
    bool: lambda v: "true" if v else "false",
    type(None): lambda v: "null",
    datetime: lambda v: _ENCODE_STR(v.astimezone(UTC).isoformat()),
    bytes: lambda v: f'"{v.hex()}"',
    uuid.UUID: lambda v: f'"{v}"',
}


def _other_json(value: Any) -> str:
    return _ENCODER.encode(_norm(value))


@functools.lru_cache(maxsize=256)
def _pair_heads(columns: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """Each chained column with the constant start of its pair (``[<column as JSON>,``), once per table."""
    return tuple((c, f"[{_ENCODE_STR(c)},") for c in columns if c not in UNCHAINED)


def chained_pairs(values: Mapping[str, Any], columns: Iterable[str]) -> str:
    """The part of ``row_digest`` that does not depend on the chain position: ``[[column, value], ...]`` as
    compact JSON over every stored column but ``UNCHAINED``. Computed before the rows' positions are known
    (when the record is decoded), so that the transaction only joins it with the position and hashes.

    Written out value by value rather than by one ``json`` encoding of a list of lists (``_reference_pairs``):
    the same text, at about half the cost, for every record the writer decodes; the columns' part of each
    pair is built once per table (``_pair_heads``)."""
    to_json = _JSON_BY_TYPE.get
    heads = _pair_heads(columns if isinstance(columns, tuple) else tuple(columns))
    parts = [f"{head}{to_json(type(v := values[c]), _other_json)(v)}]" for c, head in heads]
    return f"[{','.join(parts)}]"


def digest_of(table: str, seq: int, pairs: str) -> bytes:
    """``row_digest`` from ``chained_pairs``: the same bytes (compact JSON of a list is its items' JSON
    joined by commas, and an int's JSON is its decimal form)."""
    return f"[{_ENCODER.encode(table)},{int(seq)},{pairs}]".encode()


def row_digest(table: str, seq: int, values: Mapping[str, Any], columns: Iterable[str]) -> bytes:
    """The canonical bytes of a row at chain position ``seq``: ``[table, seq, [[column, value], ...]]`` as
    compact JSON over every stored column but ``UNCHAINED``, datetimes in UTC ISO form, bytes in hex."""
    return digest_of(table, seq, chained_pairs(values, columns))


def link(previous: bytes, digest: bytes) -> bytes:
    return hashlib.sha256(previous + digest).digest()


ChainKey = tuple[str, str, int]  # (ledger table, source topic, source partition)


async def _lock_heads(conn: asyncpg.Connection, keys: Sequence[ChainKey]) -> dict[ChainKey, tuple[int, bytes]]:
    rows = await conn.fetch(LOCK_CHAINS, [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys])
    return {
        (r["ledger_table"], r["source_topic"], r["source_partition"]): (r["seq"], bytes(r["head_hash"])) for r in rows
    }


async def link_tables(
    conn: asyncpg.Connection,
    tables: Mapping[str, tuple[Sequence[str], Sequence[dict[str, Any]]]],
    pairs: Mapping[str, Sequence[str | None]] | None = None,
) -> dict[str, Advance]:
    """For each ledger table, give its ``rows`` (value dicts about to be inserted, in append order; ``columns``
    are the table's) their chain positions and hashes, with every chain head involved locked in one round
    trip; returns each table's new heads, which the caller stores in the same transaction. ``pairs``: each
    row's ``chained_pairs`` where already computed (aligned with ``rows``; None: compute it here)."""
    chains: dict[ChainKey, list[tuple[dict[str, Any], str | None]]] = {}
    for table, (_, rows) in tables.items():
        known = (pairs or {}).get(table) or [None] * len(rows)
        for values, pair in zip(rows, known, strict=True):
            chains.setdefault((table, values["source_topic"], values["source_partition"]), []).append((values, pair))
    keys = sorted(chains)
    heads = await _lock_heads(conn, keys) if keys else {}
    missing = [k for k in keys if k not in heads]
    if missing:  # a chain's first rows: create its head row, then lock it (a concurrent creator waits here)
        await conn.execute(
            ENSURE_CHAINS, [k[0] for k in missing], [k[1] for k in missing], [k[2] for k in missing], GENESIS
        )
        heads.update(await _lock_heads(conn, missing))
    out = {table: Advance([], [], [], []) for table in tables}
    for key in keys:
        table, topic, part = key
        columns = tables[table][0]
        seq, head = heads[key]
        for values, pair in chains[key]:
            seq += 1
            head = link(head, digest_of(table, seq, pair if pair is not None else chained_pairs(values, columns)))
            values["chain_seq"] = seq
            values["row_hash"] = head
        advance = out[table]
        advance.topics.append(topic)
        advance.parts.append(part)
        advance.seqs.append(seq)
        advance.heads.append(head)
    return out


async def link_rows(
    conn: asyncpg.Connection, table: str, columns: Sequence[str], rows: Sequence[dict[str, Any]]
) -> Advance:
    """``link_tables`` for one table."""
    return (await link_tables(conn, {table: (columns, rows)}))[table]


async def stamp(conn: asyncpg.Connection, table: str, columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> None:
    """``link_rows`` and store the new heads at once (for writers that insert the rows some other way)."""
    advance = await link_rows(conn, table, columns, rows)
    await conn.execute(ADVANCE_CHAINS, table, *advance.params())
