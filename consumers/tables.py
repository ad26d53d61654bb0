"""Set-based load and save of projection rows, generated once from a table's column list.

Projections are pure functions over rows held in memory (dicts keyed by column name). This module is the
only place that moves those rows in and out of PostgreSQL: one ``SELECT ... = ANY($1)`` to load a batch's
rows, one ``INSERT ... SELECT FROM unnest(...) ON CONFLICT DO UPDATE`` to save them, whatever the batch
size. The same spec targets the live table or its shadow twin (replay, rebuild), so both run one code path.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg

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
        self, conn: asyncpg.Connection, keys: Iterable[tuple[Any, ...]], *, shadow: bool = False
    ) -> dict[tuple[Any, ...], Row]:
        keys = list(keys)
        if not keys:
            return {}
        columns = [list(col) for col in zip(*keys, strict=True)]
        records = await conn.fetch(self.queries[f"load:{self._target(shadow)}"], *columns)
        rows = [dict(r) for r in records]
        return {self.row_key(r): r for r in rows}

    async def save(
        self, conn: asyncpg.Connection, rows: Mapping[tuple[Any, ...], Row | None], *, shadow: bool = False
    ) -> None:
        """Upsert the rows that exist and delete the keys mapped to None."""
        target = self._target(shadow)
        live = [r for r in rows.values() if r is not None]
        gone = [k for k, r in rows.items() if r is None]
        if live:
            arrays = [[r[c] for r in live] for c in self.column_names]
            await conn.execute(self.queries[f"save:{target}"], *arrays)
        if gone:
            await conn.execute(self.queries[f"delete:{target}"], *[list(c) for c in zip(*gone, strict=True)])

    def _target(self, shadow: bool) -> str:
        return self.shadow if shadow else self.name
