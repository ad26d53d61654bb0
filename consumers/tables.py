"""Set-based load and save of projection rows, generated once from a table's column list.

Projections are pure functions over rows held in memory (dicts keyed by column name). This module is the
only place that moves those rows in and out of PostgreSQL: one ``SELECT`` to load a batch's rows, one
``INSERT ... SELECT FROM unnest(...) ON CONFLICT DO UPDATE`` to save them, whatever the batch size. The same
spec targets the live table or its shadow twin (replay, rebuild), so both run one code path.

Live rows have concurrency control, because their keys are global (a user, a device, a work order) while
Kafka orders only one aggregate: two writers of a group, or a writer and ``dlq redrive``, may decide on one
row at once. So, for every table alike:

- the load locks the rows it finds (``FOR NO KEY UPDATE``, in key order, tables in name order): a
  transaction that wants a row another one holds waits for it to commit and then reads its version, so a
  decision is always taken on the row as it stands and no update is lost;
- the save updates only rows that were there at load and inserts the others only if they are still absent
  (``ON CONFLICT ... DO UPDATE ... WHERE`` the key was loaded): a row another writer created since the load
  (absent rows cannot be locked) is never overwritten; the save reports it, and the caller retries the batch
  on fresh state (``RetriableError``), where the projection decides on that row.

The load's locking covers the rows of the batch's tenants (row-level security restricts ``FOR UPDATE`` to
rows the writer may update); rows of other tenants that the writer may read (``writer_binding_read``) come
back unlocked, by the same statement: a projection only refuses on them, and a row's tenant never changes.
Rows are locked in the tuple header, not in the lock table, so a batch of any size fits. Shadow tables are
written by one shadow run at a time, without locks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from contracts.reasons import ReasonCode, RetriableError

Row = dict[str, Any]
SHADOW_SCHEMA = "selene_shadow"


@dataclass(frozen=True)
class TableSpec:
    """A projection table: its columns (name, PostgreSQL type) and its key (one or more columns)."""

    name: str
    columns: tuple[tuple[str, str], ...]
    key: tuple[str, ...]
    queries: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for target in (self.name, self.shadow):
            self.queries[f"load:{target}"] = self._load_sql(target)
            self.queries[f"save:{target}"] = self._save_sql(target)
            self.queries[f"delete:{target}"] = self._delete_sql(target)
        self.queries[f"lock:{self.name}"] = self._lock_sql(self.name)
        self.queries[f"save_if:{self.name}"] = self._save_if_sql(self.name)

    @property
    def shadow(self) -> str:
        schema, table = self.name.split(".")
        return f"{SHADOW_SCHEMA}.{schema}__{table}"

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    def row_key(self, row: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(row[k] for k in self.key)

    def _types(self) -> dict[str, str]:
        return dict(self.columns)

    def _keys_unnest(self) -> str:
        types = self._types()
        args = ", ".join(f"${i}::{types[k]}[]" for i, k in enumerate(self.key, start=1))
        return f"unnest({args}) AS k({', '.join(self.key)})"

    def _load_sql(self, target: str) -> str:
        cols = ", ".join(f"t.{c}" for c in self.column_names)
        on = " AND ".join(f"t.{k} = k.{k}" for k in self.key)
        return f"SELECT {cols} FROM {target} t JOIN {self._keys_unnest()} ON {on}"

    def _lock_sql(self, target: str) -> str:
        """Load and lock: the batch tenants' rows locked in key order; other tenants' readable rows as they are."""
        cols = ", ".join(f"t.{c}" for c in self.column_names)
        on = " AND ".join(f"t.{k} = k.{k}" for k in self.key)
        order = ", ".join(f"t.{k}" for k in self.key)
        locked = (
            f"SELECT {cols} FROM {target} t JOIN {self._keys_unnest()} ON {on} ORDER BY {order} FOR NO KEY UPDATE OF t"
        )
        if "tenant_id" not in self.column_names:
            return locked
        return (
            f"WITH locked AS ({locked}) SELECT * FROM locked UNION ALL "
            f"SELECT {cols} FROM {target} t JOIN {self._keys_unnest()} ON {on} "
            "WHERE NOT selene_ops.in_tenant_scope(t.tenant_id)"
        )

    def _save_if_sql(self, target: str) -> str:
        """The upsert, conditional on the load: a conflicting row is updated only if its key was loaded
        (the key arrays after the columns); counts the rows written."""
        names = self.column_names
        types = self._types()
        args = ", ".join(f"${i}::{t}[]" for i, (_, t) in enumerate(self.columns, start=1))
        loaded = ", ".join(f"${len(names) + i}::{types[k]}[]" for i, k in enumerate(self.key, start=1))
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in names if c not in self.key)
        keys = ", ".join(f"t.{k}" for k in self.key)
        return (
            f"WITH saved AS (INSERT INTO {target} AS t ({', '.join(names)}) SELECT * FROM unnest({args}) "
            f"ON CONFLICT ({', '.join(self.key)}) DO UPDATE SET {updates} "
            f"WHERE ({keys}) IN (SELECT * FROM unnest({loaded})) RETURNING 1) "
            "SELECT count(*) FROM saved"
        )

    def _save_sql(self, target: str) -> str:
        names = self.column_names
        args = ", ".join(f"${i}::{t}[]" for i, (_, t) in enumerate(self.columns, start=1))
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in names if c not in self.key)
        return (
            f"INSERT INTO {target} ({', '.join(names)}) SELECT * FROM unnest({args}) "
            f"ON CONFLICT ({', '.join(self.key)}) DO UPDATE SET {updates}"
        )

    def _delete_sql(self, target: str) -> str:
        on = " AND ".join(f"t.{k} = k.{k}" for k in self.key)
        return f"DELETE FROM {target} t USING {self._keys_unnest()} WHERE {on}"

    async def load(
        self,
        conn: asyncpg.Connection,
        keys: Iterable[tuple[Any, ...]],
        *,
        shadow: bool = False,
        lock: bool = False,
    ) -> dict[tuple[Any, ...], Row]:
        """The rows of ``keys`` that exist. ``lock`` (live tables only): lock them until the transaction ends
        (see the module docstring); callers lock their tables in name order."""
        keys = sorted(keys) if lock and not shadow else list(keys)
        if not keys:
            return {}
        columns = [list(col) for col in zip(*keys, strict=True)]
        lock = lock and not shadow
        query = self.queries[f"lock:{self.name}" if lock else f"load:{self._target(shadow)}"]
        records = await conn.fetch(query, *columns)
        rows = [dict(r) for r in records]
        return {self.row_key(r): r for r in rows}

    async def save(
        self,
        conn: asyncpg.Connection,
        rows: Mapping[tuple[Any, ...], Row | None],
        *,
        shadow: bool = False,
        loaded: frozenset[tuple[Any, ...]] | None = None,
    ) -> None:
        """Upsert the rows that exist and delete the keys mapped to None.

        ``loaded`` (live tables): the keys that had a row at load, which the caller holds locked. Only those
        are updated; any other row is inserted only if still absent. A row found created meanwhile by another
        transaction is left as it is and ``RetriableError`` raised, so the batch is decided again on fresh
        state (the transaction must be rolled back: the other rows of the statement were written).
        """
        target = self._target(shadow)
        live = sorted((r for r in rows.values() if r is not None), key=self.row_key)  # one order: no deadlock
        gone = [k for k, r in rows.items() if r is None]
        if live and loaded is not None and not shadow:
            arrays = [[r[c] for r in live] for c in self.column_names]
            held = [self.row_key(r) for r in live if self.row_key(r) in loaded]
            held_columns = [list(c) for c in zip(*held, strict=True)] if held else [[] for _ in self.key]
            written = await conn.fetchval(self.queries[f"save_if:{target}"], *arrays, *held_columns)
            if written != len(live):
                raise RetriableError(
                    f"{len(live) - written} rows of {self.name} were created by another writer after this batch "
                    "loaded them as absent; the batch is decided again on their current state",
                    ReasonCode.CONCURRENT_APPEND,
                )
        elif live:
            arrays = [[r[c] for r in live] for c in self.column_names]
            await conn.execute(self.queries[f"save:{target}"], *arrays)
        if gone:
            await conn.execute(self.queries[f"delete:{target}"], *[list(c) for c in zip(*gone, strict=True)])

    def _target(self, shadow: bool) -> str:
        return self.shadow if shadow else self.name
