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
SELECT $1, u.topic, u.part, 0, $4 FROM unnest($2::text[], $3::int[]) AS u(topic, part)
ON CONFLICT DO NOTHING
"""
LOCK_CHAINS = """
SELECT c.source_topic, c.source_partition, c.seq, c.head_hash FROM selene_ops.ledger_chains c
JOIN unnest($2::text[], $3::int[]) AS u(topic, part) ON c.source_topic = u.topic AND c.source_partition = u.part
WHERE c.ledger_table = $1
ORDER BY c.source_topic, c.source_partition
FOR UPDATE OF c
"""
ADVANCE_CHAINS = """
UPDATE selene_ops.ledger_chains c SET seq = u.seq, head_hash = u.head, updated_at = now()
FROM unnest($2::text[], $3::int[], $4::bigint[], $5::bytea[]) AS u(topic, part, seq, head)
WHERE c.ledger_table = $1 AND c.source_topic = u.topic AND c.source_partition = u.part
"""


def advance_cte(first: int) -> str:
    """``ADVANCE_CHAINS`` with its parameters numbered from ``first``, to run inside the statement that
    inserts the rows (one round trip instead of two per ledger and batch)."""
    return re.sub(r"\$(\d+)", lambda m: f"${first + int(m.group(1)) - 1}", ADVANCE_CHAINS.strip())


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


def row_digest(table: str, seq: int, values: Mapping[str, Any], columns: Iterable[str]) -> bytes:
    """The canonical bytes of a row at chain position ``seq``: ``[table, seq, [[column, value], ...]]`` as
    compact JSON over every stored column but ``UNCHAINED``, datetimes in UTC ISO form, bytes in hex."""
    norm = _NORM_BY_TYPE.get
    pairs = []
    for c in columns:
        if c in UNCHAINED:
            continue
        v = values[c]
        pairs.append([c, norm(type(v), _norm)(v)])
    return _ENCODER.encode([table, seq, pairs]).encode()


def link(previous: bytes, digest: bytes) -> bytes:
    return hashlib.sha256(previous + digest).digest()


async def _lock_heads(
    conn: asyncpg.Connection, table: str, keys: Sequence[tuple[str, int]]
) -> dict[tuple[str, int], tuple[int, bytes]]:
    rows = await conn.fetch(LOCK_CHAINS, table, [k[0] for k in keys], [k[1] for k in keys])
    return {(r["source_topic"], r["source_partition"]): (r["seq"], bytes(r["head_hash"])) for r in rows}


async def link_rows(
    conn: asyncpg.Connection, table: str, columns: Sequence[str], rows: Sequence[dict[str, Any]]
) -> Advance:
    """Give ``rows`` (value dicts about to be inserted, in append order) their chain positions and hashes,
    with the chain heads locked; returns the new heads, which the caller stores in the same transaction."""
    chains: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for values in rows:
        chains.setdefault((values["source_topic"], values["source_partition"]), []).append(values)
    keys = sorted(chains)
    heads = await _lock_heads(conn, table, keys)
    missing = [k for k in keys if k not in heads]
    if missing:  # a chain's first rows: create its head row, then lock it (a concurrent creator waits here)
        await conn.execute(ENSURE_CHAINS, table, [k[0] for k in missing], [k[1] for k in missing], GENESIS)
        heads.update(await _lock_heads(conn, table, missing))
    new_seq, new_head = [], []
    for key in keys:
        seq, head = heads[key]
        for values in chains[key]:
            seq += 1
            head = link(head, row_digest(table, seq, values, columns))
            values["chain_seq"] = seq
            values["row_hash"] = head
        new_seq.append(seq)
        new_head.append(head)
    return Advance([k[0] for k in keys], [k[1] for k in keys], new_seq, new_head)


async def stamp(conn: asyncpg.Connection, table: str, columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> None:
    """``link_rows`` and store the new heads at once (for writers that insert the rows some other way)."""
    advance = await link_rows(conn, table, columns, rows)
    await conn.execute(ADVANCE_CHAINS, table, *advance.params())
